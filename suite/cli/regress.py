"""``lyapbench regress``: run the baseline's grid again and compare accuracy, T_eps and throughput with it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.cli.options import (EXIT_FAIL, EXIT_OK, add_estimators, add_run, check_up_front, executor, journal,
                               seed_flag, set_threads)
from suite.core.errors import InvalidArgumentError
from suite.core.specs import split_flag, split_list
from suite.reporting.tables import atomic_write, write_csv
from suite.studies import regress as rg


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("regress", help="run the baseline's grid again and compare: accuracy, T_eps, "
                                              "throughput; exit 1 on a regression")
    p.add_argument("--update-baseline", action="store_true",
                   help="run the grid (the default one, or as given) and write it as the new baseline")
    p.add_argument("--baseline-dir", default="results/baseline", help="where the baseline lives "
                                                                       "(default: results/baseline)")
    p.add_argument("--systems", help="override the baseline's systems (comma-separated specs)")
    p.add_argument("--tasks", help="override the baseline's tasks (ids, globs or tag:NAME)")
    add_estimators(p, "override the baseline's estimators")
    p.add_argument("--seed", type=int, help="seed of this run (default: the baseline's)")
    p.add_argument("--length", choices=["quick", "full"], help="quick: validation budgets / 10 (the default grid); "
                                                               "full: the validation budgets")
    p.add_argument("--steps", type=int, help="steps per trajectory for every cell")
    p.add_argument("--batch", type=int, help="trajectories per cell")
    p.add_argument("--no-throughput", action="store_true", help="do not time the cells (accuracy and T_eps only)")
    p.add_argument("--min-seconds", type=float, help="duration of each timed repeat (default 0.1)")
    p.add_argument("--repeats", type=int, help="timed repeats per cell; the median is kept (default 5)")
    add_run(p, device=None, dtype=None)  # device and dtype default to the baseline's
    return p


def _grid(args, base) -> rg.RegressGrid:
    """The baseline's grid (or the default one) with the command line's changes."""
    changes = dict(systems=args.systems, tasks=args.tasks, estimators=args.estimators, seed=args.seed,
                   steps=args.steps, batch=args.batch, device=args.device, dtype=args.dtype,
                   quick=None if args.length is None else args.length == "quick",
                   throughput=False if args.no_throughput else None, min_seconds=args.min_seconds,
                   repeats=args.repeats)
    if args.systems is not None or args.tasks is not None:  # as for compare: the systems and tasks named, only
        changes.update(systems=args.systems or "", tasks=args.tasks or "")
    return (base.grid if base is not None else rg.RegressGrid()).override(**changes)


def _promote(run_dir: Path, base_dir: Path, now) -> int:
    rg.promote(run_dir, base_dir)
    errors = [r for r in now.accuracy if r["status"] == "error"]
    print(f"wrote the baseline to {base_dir}: {len(now.accuracy)} accuracy rows, {len(now.convergence)} "
          f"convergence rows, {len(now.throughput)} throughput rows ({now.info['seconds']:.0f} s, commit "
          f"{now.info['git_sha']})")
    for r in errors:
        print(f"note: the baseline records an error cell {r['system']} x {r['estimator']}: {r['message']}",
              file=sys.stderr)
    return EXIT_OK


def run(args) -> int:
    """Run the baseline's grid (or a new one with --update-baseline) and compare; exit 1 on a regression."""
    set_threads(args.threads)
    seed_flag(args.seed)
    for flag in ("systems", "tasks", "estimators"):  # given empty or with an empty item: refused
        split_flag(getattr(args, flag), f"--{flag}")
    base_dir = Path(args.baseline_dir)
    out = Path(args.output_dir)
    base = None if args.update_baseline else rg.read_measurement(base_dir)
    grid = _grid(args, base)
    if grid.throughput and args.executor == "dask":
        raise InvalidArgumentError("--executor", "dask", "in-process while regress times the cells (timings taken "
                                   "beside busy workers are not comparable with the baseline's); add "
                                   "--no-throughput to check accuracy and T_eps on a cluster")
    check_up_front(split_list(grid.estimators), grid.device, [grid.dtype])
    run_dir = None if args.no_write else out / "regress_run"
    with executor(args) as ex:
        now = rg.measure(grid, progress=None if args.quiet else sys.stderr, run_dir=run_dir,
                         journal=journal(args, "regress_run"), executor=ex, baseline=base)
    if args.update_baseline:
        if args.no_write:
            print("--no-write: the baseline was not written", file=sys.stderr)
            return EXIT_OK
        return _promote(run_dir, base_dir, now)
    verdicts = rg.compare(base, now)
    bad = rg.regressions(verdicts)
    if not args.no_write:
        write_csv(verdicts, out / "regress.csv", rg.VERDICT_COLUMNS)
        atomic_write(out / "regress.md", rg.report(verdicts, base, now))
    counts = {k: sum(v["verdict"] == k for v in verdicts) for k in ("ok", "regression", "not compared")}
    print("regress: " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + (f"; wrote {out / 'regress.md'}, {out / 'regress.csv'} and {run_dir}/" if not args.no_write else ""))
    for v in bad:
        what = f"{v['quantity']} {v['index']}" + (f" eps={v['eps']:g}" if v.get("eps") else "")
        print(f"REGRESSION {v['check']}: {v['system']} x {v['estimator']} {what}: {v['reason']}", file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK
