"""``lyapbench race``: time to a given accuracy on Lorenz-63, Rössler and Hénon, lyapbench against lyapax, jitcode
and lyapynov."""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import List

import torch

from suite.cli.options import EXIT_OK, add_output, add_quiet, add_threads, seed_flag, set_threads
from suite.core.args import check_int, check_positive
from suite.core.errors import UnknownNameError
from suite.core.provenance import git_sha
from suite.core.specs import split_flag
from suite.reporting.tables import atomic_write, markdown, write_csv
from suite.studies import race as rc


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("race", help="time to a given accuracy (Lorenz-63, Rossler, Henon): lyapbench vs lyapax, "
                                           "jitcode and lyapynov")
    p.add_argument("--systems", default=",".join(rc.RACE_SYSTEMS),
                   help=f"comma-separated subset of {','.join(rc.RACE_SYSTEMS)} (default: all)")
    p.add_argument("--eps", type=float, default=2e-3, help="target worst exponent error (default 2e-3)")
    p.add_argument("--budget", type=float, default=600.0, help="seconds per contender before giving up (default 600)")
    p.add_argument("--contenders", help=f"comma-separated subset of {','.join(rc.CONTENDERS)}")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of each reaching configuration of <= 60 s, contenders taking turns; the median "
                        "is its time (default 3)")
    p.add_argument("--seed", type=int, default=0)
    add_threads(p, "torch CPU threads (default: torch's choice)")
    add_output(p, "where race_SYSTEM.{csv,md} go (default: lyapbench-results in the current directory; "
                  "--output-dir results rewrites the committed tables)")
    add_quiet(p, "run")
    return p


def _report(args, system_name: str, rows: List[dict]) -> str:
    """race_SYSTEM.md: how the race is run, every run, and each contender's time to eps and its ratio to
    lyapbench_defaults' (to the tuned lyapbench's where the defaults did not run)."""
    times, counts = rc.time_to_eps(rows), rc.repeat_counts(rows)
    base_name = "lyapbench_defaults" if "lyapbench_defaults" in times else "lyapbench"
    lines = [f"# Time to worst exponent error <= {args.eps:g} on {system_name} (suite/studies/race.py)\n",
             "Each contender runs T = T0, 2 T0, ... until |error| + 2 stderr <= eps for all three exponents; "
             "its time is that run's wall time (jitcode's compilation added); a contender that ran out of budget "
             "is bounded below by the seconds it spent. Reaching runs of at most "
             f"{rc.REPEAT_LIMIT_S:g} s are then repeated ({args.repeats} runs in all, the contenders taking turns; "
             "`repeat` > 0) and the median taken. Machine: "
             f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; "
             f"git {git_sha()}.\n",
             markdown(rows, rc.DISPLAY),
             f"\n| contender | configuration | time to eps (s) | reaching runs (median of) | ratio to {base_name} |",
             "|---|---|---|---|---|"]
    base = times.get(base_name)
    for name, t in times.items():
        if any(r["contender"] == name and str(r["reached"]).startswith(("not applicable", "not installed"))
               for r in rows):
            lines.append(f"| {name} | {rc.CONTENDERS[name]['config']} | "
                         f"{next(r['reached'] for r in rows if r['contender'] == name)} | 0 | n/a |")
            continue
        ratio = (f"{t / base:.1f}x" if t and base else
                 (f"> {sum(r['wall_seconds'] or 0 for r in rows if r['contender'] == name) / base:.1f}x (not reached)"
                  if base else "n/a"))
        lines.append(f"| {name} | {rc.CONTENDERS[name]['config']} | {'not reached' if t is None else f'{t:.2f}'} "
                     f"| {counts.get(name, 0)} | {ratio} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    set_threads(args.threads)
    seed_flag(args.seed)
    names = split_flag(args.contenders, "--contenders") or list(rc.CONTENDERS)
    for n in names:
        if n not in rc.CONTENDERS:
            raise UnknownNameError("contender", n, rc.CONTENDERS)
    systems = split_flag(args.systems, "--systems") or list(rc.RACE_SYSTEMS)
    for n in systems:
        if n not in rc.RACE_SYSTEMS:
            raise UnknownNameError("race system", n, rc.RACE_SYSTEMS)
    check_positive("--eps", args.eps, allowed="a number > 0")
    check_int("--repeats", args.repeats, 1)
    out = Path(args.output_dir)
    for system_name in systems:
        rows: list = []

        def keep(row, system_name=system_name, rows=rows):
            rows.append(row)
            if not args.no_write:
                write_csv(rows, out / f"race_{system_name}.csv", rc.COLUMNS)
            if not args.quiet:
                shown = "" if row["wall_seconds"] is None else (
                    f"T={row['T']:g} B={row['batch']}: {row['wall_seconds']:.2f} s, "
                    f"worst |err|+2se = {row['worst_error_plus_2se']:.2g}, ")
                print(f"{system_name} {row['contender']}: {shown}reached {row['reached']}", file=sys.stderr,
                      flush=True)

        rc.race(args.eps, args.budget, args.seed, names, on_row=keep, repeats=args.repeats, system_name=system_name)
        text = _report(args, system_name, rows)
        print(text)
        if not args.no_write:
            atomic_write(out / f"race_{system_name}.md", text)
    return EXIT_OK
