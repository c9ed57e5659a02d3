"""``lyapbench throughput``: steps per second over batch, dimension and k, and the fraction of peak."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import reference_systems as rs
import tasks
from suite.cli.options import (EXIT_FAIL, EXIT_OK, add_device, add_dtype, add_estimators, add_output, add_quiet,
                               add_resume, add_systems, add_tasks, add_threads, check_up_front, existing_rows,
                               journal, set_threads)
from suite.core.args import check_int_list
from suite.core.errors import GridInterrupted
from suite.core.specs import parse_spec, split_flag, split_list
from suite.grid.journal import key_of
from suite.reporting.plots import throughput_figure
from suite.reporting.tables import atomic_write, markdown, text_table, write_csv
from suite.studies import throughput as tp

PROFILES = {
    # quick: every code path once in about a minute on a laptop; full: the tables committed under results/
    "quick": {"systems": "henon,lorenz63,random_rnn", "batch": "1,256", "dims": "64", "k": "all"},
    "full": {"systems": "henon,lorenz63,random_rnn,gaussian_products", "batch": "1,16,256,4096",
             "dims": "16,64,256", "k": "all,1"},
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("throughput", help="steps per second over batch, dimension and k; fraction of peak")
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="grid preset: quick (default, about a minute) or full (the committed tables)")
    add_systems(p, "comma-separated systems; those whose factory takes N are run at every --dims")
    add_tasks(p, "comma-separated task ids, globs or tag:NAME (at their own size); "
                 "without --systems only the tasks are measured")
    add_estimators(p, "comma-separated estimators, name or name(param=value) (default: qr,jvp_qr)")
    p.add_argument("--batch", help="comma-separated batch sizes")
    p.add_argument("--dims", help="comma-separated dimensions for systems that scale with N")
    p.add_argument("--k", help="comma-separated numbers of exponents, or 'all'")
    add_device(p)
    add_dtype(p, several=True)
    p.add_argument("--min-seconds", type=float, default=0.2, help="target duration of each timed repeat")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    add_threads(p, "torch CPU threads (default: torch's choice)")
    add_output(p)
    p.add_argument("--no-peer", action="store_true", help=f"no {tp.PEER} rows beside the B = 1 rows (by default "
                                                           "they run where it is installed, CPU float64, flows)")
    p.add_argument("--append", action="store_true", help="add the rows to an existing table of this device and "
                                                          "profile instead of replacing it")
    add_quiet(p, "case")
    add_resume(p, "cases")
    return p


def _cases(args, prof, est_names) -> list:
    """The grid of --profile with --batch, --dims, --k, --systems and --tasks applied (names checked)."""
    ints = {}
    for key in ("batch", "dims"):
        given = getattr(args, key)
        items = split_flag(given, f"--{key}") if given is not None else split_list(prof[key])
        ints[key] = check_int_list(f"--{key}", items, 1, allowed="comma-separated integers >= 1")
    ks = []
    for v in split_flag(args.k, "--k") if args.k is not None else split_list(prof["k"]):
        ks += [None] if v == "all" else check_int_list("--k", [v], 1, allowed="comma-separated integers >= 1 "
                                                                              "or 'all'")
    systems = (split_flag(args.systems, "--systems") if args.systems is not None else
               [] if args.tasks else split_list(prof["systems"]))
    for spec in systems:  # fail fast on unknown names
        rs.get(parse_spec(spec, "--systems")[0]) if "(" not in spec else None
    if args.tasks is not None:
        systems += ["task:" + t for t in tasks.select(split_flag(args.tasks, "--tasks"))]
    return tp.cases(systems, est_names, ints["batch"], ints["dims"], ks)


def _measure(args, per_dtype, device, grid_journal, rows, out, stem) -> None:
    """Measure every case of ``per_dtype`` (dtype -> cases; replayed from the journal where it holds it), rewriting
    the tables after each."""
    n_old, t_start = len(rows), time.perf_counter()
    total = sum(len(cases) for cases in per_dtype.values())
    for dtype in per_dtype:
        measured = []
        for case in per_dtype[dtype]:
            if case["estimator"] == tp.PEER:
                case = dict(case, steps=tp.pair_steps(case, measured))
            def measure_case(case=case, dtype=dtype):
                return tp.run_case(case, device, dtype, min_seconds=args.min_seconds, repeats=args.repeats)
            row = measure_case() if grid_journal is None else grid_journal.cached(
                key_of([case, str(device), str(dtype), args.min_seconds, args.repeats]), measure_case)
            rows.append(row)
            measured.append((case, row))
            tp.peer_ratios(rows)
            if not args.no_write:
                write_csv(rows, out / f"{stem}.csv", tp.COLUMNS)
                atomic_write(out / f"{stem}.md", f"# Throughput on {row['device_name'] or device}\n\n"
                             + tp.README + markdown(rows, tp.DISPLAY))
            if not args.quiet:
                done = len(rows) - n_old
                left = (time.perf_counter() - t_start) / done * (total - done)
                rate = f"{row['traj_steps_per_s']:.3g} traj-steps/s" if row["status"] == "ok" else row["status"]
                print(f"[{done}/{total}] {row['system']} x {row['estimator']} B={row['batch']} "
                      f"k={row['k']} {row['dtype']}: {rate} (~{left:.0f} s left)", file=sys.stderr, flush=True)


def run(args) -> int:
    set_threads(args.threads)
    prof = PROFILES[args.profile]
    est_names = split_flag(args.estimators, "--estimators") or ["qr", "jvp_qr"]
    device, dtypes = check_up_front(est_names, args.device, split_flag(args.dtype, "--dtype"))
    grid = _cases(args, prof, est_names)
    out = Path(args.output_dir)
    stem = f"throughput_{tp.slug(device)}" + ("" if args.profile == "full" else f"_{args.profile}")
    rows = existing_rows(out / f"{stem}.csv") if args.append else []  # several grids into one table
    n_old = len(rows)
    grid_journal = journal(args, stem)
    per_dtype = {dtype: list(grid) + ([] if args.no_peer else tp.peer_cases(grid, device, dtype)) for dtype in dtypes}
    try:
        _measure(args, per_dtype, device, grid_journal, rows, out, stem)
    except KeyboardInterrupt as exc:
        raise GridInterrupted.after(len(rows) - n_old, sum(map(len, per_dtype.values())), "cases",
                                    [] if args.no_write else [out / f"{stem}.csv", out / f"{stem}.md"],
                                    grid_journal) from exc
    print(text_table(rows[n_old:], tp.DISPLAY))
    if not args.no_write:
        throughput_figure(rows, out / f"{stem}.png", f"lyapbench throughput on "
                          f"{rows[0]['device_name'] if rows else device} at {rows[0]['git_sha'] if rows else ''}")
        print(f"wrote {out / (stem + '.csv')}, {out / (stem + '.md')} and {out / (stem + '.png')}")
    bad = [r for r in rows if r["status"] == "error"]
    for r in bad:
        print(f"ERROR {r['system']} x {r['estimator']} B={r['batch']}: {r['message']}", file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK
