"""The ``lyapbench`` command line.

    lyapbench validate [--quick] [--systems a,b] [--estimators qr] [--system-file F]
    lyapbench compare  [--estimators qr,pkg.mod:Mine] [--systems a,b] [--seeds 0,1] [--steps N]
    lyapbench convergence | throughput | race | tasks ...
    lyapbench regress  [--update-baseline] [--baseline-dir results/baseline] [--seed N]
    lyapbench report   [--results-dir results]
    lyapbench list

Exit status: 0 when every row passes, 1 when a row fails or a cell errors,
2 for bad usage (unknown names, bad arguments).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

import reference_systems as rs
from suite import estimators
from suite.core.errors import InvalidArgumentError, LyapbenchError
from suite.core.provenance import git_sha, row_provenance
from suite.core.specs import parse_spec, split_list
from suite.grid.cells import validation_cells
from suite.grid.runner import DISPLAY, DISPLAY_HEADERS, run_grid, with_display
from suite.grid.selection import build_systems
from suite.reporting.tables import atomic_write, markdown, text_table, write_csv
from suite.scoring.compare import COMPARE_COLUMNS, COMPARE_DISPLAY, summarise
from suite.scoring.rows import failed, summary
from suite.scoring.tolerance import RULE

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _names(value: Optional[str]) -> Optional[List[str]]:
    return split_list(value)


def _select_systems(args) -> List[rs.System]:
    return build_systems(_names(args.systems), args.system_file, _names(getattr(args, "tasks", None)))


def _set_threads(threads: Optional[int]) -> None:
    if threads is None:
        return
    if threads < 1:
        raise InvalidArgumentError("--threads", threads, "an integer >= 1")
    torch.set_num_threads(threads)


def _journal(args, stem: str):
    """The grid's journal under --output-dir (None with --no-write, where --resume is refused)."""
    from suite.grid.journal import journal_for
    if args.no_write:
        if getattr(args, "resume", False):
            raise InvalidArgumentError("--resume", True, "a run that writes its tables (not with --no-write)")
        return None
    return journal_for(Path(args.output_dir), stem, getattr(args, "resume", False))


@contextlib.contextmanager
def _executor(args):
    """The executor of --executor / --workers / --scheduler (suite.grid.executors), closed afterwards."""
    from suite.grid.executors import make_executor
    ex = make_executor(getattr(args, "executor", None), getattr(args, "workers", None),
                       getattr(args, "scheduler", None), threads_per_worker=getattr(args, "threads", None) or 1)
    try:
        yield ex
    finally:
        ex.close()


def _prepare(args):
    """Shared by validate and compare: threads, systems, checked estimator names, device and dtype."""
    _set_threads(args.threads)
    systems = _select_systems(args)
    est_names = _names(args.estimators) or estimators.validation_defaults()
    for name in est_names:  # fail fast on unknown names and bad hyperparameters, before any work
        estimators.from_spec(name)
    from suite.core.devices import resolve_device, resolve_dtype
    resolve_device(args.device)
    resolve_dtype(args.dtype)
    return systems, est_names


def cmd_validate(args) -> int:
    systems, est_names = _prepare(args)
    cells = validation_cells(systems, est_names, quick=args.quick, seed=args.seed,
                             device=args.device, dtype=args.dtype)
    out = Path(args.output_dir)
    title = ("# Validation: reference systems x estimators\n\n"
             f"Tolerance rule: `{RULE}`. Exponents in natural log, per step (maps) or per unit time (flows).\n\n")
    with _executor(args) as ex:
        rows = run_grid(cells, csv_path=None if args.no_write else out / "validation.csv",
                        md_path=None if args.no_write else out / "validation.md", title=title,
                        progress=None if args.quiet else sys.stderr, journal=_journal(args, "validation"),
                        executor=ex)
    print(text_table(with_display(rows), DISPLAY, DISPLAY_HEADERS))
    counts = summary(rows)
    print("summary: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if not args.no_write:
        print(f"wrote {out / 'validation.csv'} and {out / 'validation.md'}")
    bad = failed(rows)
    for r in bad:
        print(f"FAILED {r['system']} x {r['estimator']} #{r['index']}: {r['status']}"
              + (f" {r['message']}" if r.get("message") else
                 f" |error| {r['abs_error']:.3g} > tolerance {r['tolerance']:.3g}"), file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK


def _seeded_cells(args, systems, est_names, overrides) -> list:
    """The validation grid once per ``--seeds`` value, with the command-line ``overrides`` applied."""
    for key in overrides:
        if getattr(args, key) is not None and getattr(args, key) < 1:
            raise InvalidArgumentError(f"--{key}", getattr(args, key), "an integer >= 1")
    seeds = [int(v) for v in _names(args.seeds)] if args.seeds else [0]
    cells = []
    for seed in seeds:
        for cell in validation_cells(systems, est_names, quick=args.quick, seed=seed, device=args.device,
                                     dtype=args.dtype):
            for key in overrides:
                if getattr(args, key) is not None:
                    cell.settings[key] = getattr(args, key)
                    cell.settings["k_is_default"] &= key != "k"
            cells.append(cell)
    return cells


def _existing_rows(path: Path) -> List[dict]:
    """The rows of a table written earlier (``--append``; empty cells as None), [] if there is none."""
    if not path.is_file():
        return []
    import pandas as pd
    old = pd.read_csv(path)
    return [{c: (None if pd.isna(v) else v) for c, v in r.items()} for r in old.to_dict("records")]


def cmd_compare(args, stem: str = "compare", heading: str = "Estimator comparison") -> int:
    systems, est_names = _prepare(args)
    cells = _seeded_cells(args, systems, est_names, ("steps", "batch", "k"))
    out = Path(args.output_dir)
    append = getattr(args, "append", False) and not args.no_write
    summaries = _existing_rows(out / f"{stem}.csv") if append else []
    n_old = len(summaries)

    def keep_summary(cell, rows, result):  # every finished cell is kept
        summaries.append(summarise(cell.system, rows, result))
        if not args.no_write:
            write_csv(summaries, out / f"{stem}.csv", COMPARE_COLUMNS)
            atomic_write(out / f"{stem}.md", f"# {heading}\n\n" + markdown(summaries, COMPARE_DISPLAY))

    with _executor(args) as ex:
        run_grid(cells, csv_path=None if args.no_write else out / f"{stem}_rows.csv",
                 progress=None if args.quiet else sys.stderr, on_cell=keep_summary, journal=_journal(args, stem),
                 executor=ex, initial_rows=_existing_rows(out / f"{stem}_rows.csv") if append else ())
    print(text_table(summaries[n_old:], COMPARE_DISPLAY))
    bad = [s_ for s_ in summaries[n_old:] if s_["status"] in ("fail", "error")]
    for s_ in bad:
        print(f"FAILED {s_['system']} x {s_['estimator']} (seed {s_['seed']}): {s_['status']} {s_['message']}",
              file=sys.stderr)
    if not args.no_write:
        print(f"wrote {out / (stem + '.csv')}, {out / (stem + '.md')} and {out / (stem + '_rows.csv')}")
    return EXIT_FAIL if bad else EXIT_OK


def cmd_convergence(args) -> int:
    from suite.reporting.plots import convergence_figure
    from suite.scoring.convergence import CURVE_COLUMNS, SUMMARY_COLUMNS, SUMMARY_DISPLAY, convergence_rows
    systems, est_names = _prepare(args)
    cells = _seeded_cells(args, systems, est_names, ("steps", "batch"))
    out = Path(args.output_dir)
    curves, summaries = [], []

    def keep(cell, rows, result):
        if result is not None:
            c, s_ = convergence_rows(cell.system, cell.estimator_name, cell.settings.get("seed", 0), result)
        else:
            c, s_ = [], [{**dict.fromkeys(SUMMARY_COLUMNS), "system": cell.system.label,
                          "estimator": cell.estimator_name, "seed": cell.settings.get("seed", 0),
                          "status": rows[0]["status"], "message": rows[0].get("message"),
                          **row_provenance(cell.settings)}]
        curves.extend(c)
        summaries.extend(s_)
        if not args.no_write:
            write_csv(curves, out / "convergence.csv", CURVE_COLUMNS)
            write_csv(summaries, out / "convergence_summary.csv", SUMMARY_COLUMNS)
            atomic_write(out / "convergence.md", "# Convergence in T\n\nbias: fitted a in error = a/T (nats); "
                         "noise: fitted c in stderr = c/sqrt(T) for the batch mean; T_eps: smallest history T "
                         "from which |error| + 2 stderr < eps (suite/convergence.py).\n\n"
                         + markdown(summaries, SUMMARY_DISPLAY))

    with _executor(args) as ex:
        run_grid(cells, progress=None if args.quiet else sys.stderr, on_cell=keep,
                 journal=_journal(args, "convergence"), executor=ex)
    print(text_table(summaries, SUMMARY_DISPLAY))
    if not args.no_write:
        for label in dict.fromkeys(r["system"] for r in curves):
            slug = "".join(ch if ch.isalnum() else "_" for ch in label).strip("_")
            convergence_figure([r for r in curves if r["system"] == label],
                               [r for r in summaries if r["system"] == label],
                               out / "figures" / f"convergence_{slug}.png", f"convergence in T: {label}")
        print(f"wrote {out / 'convergence.csv'}, {out / 'convergence_summary.csv'}, {out / 'convergence.md'} and {out / 'figures'}/convergence_*.png")
    return EXIT_OK


def cmd_regress(args) -> int:
    """Run the baseline's grid (or a new one with --update-baseline) and compare; exit 1 on a regression."""
    from suite.studies import regress as rg
    _set_threads(args.threads)
    base_dir = Path(args.baseline_dir)
    out = Path(args.output_dir)
    changes = dict(systems=args.systems, tasks=args.tasks, estimators=args.estimators, seed=args.seed,
                   steps=args.steps, batch=args.batch, device=args.device, dtype=args.dtype,
                   quick=None if args.length is None else args.length == "quick",
                   throughput=False if args.no_throughput else None, min_seconds=args.min_seconds,
                   repeats=args.repeats)
    if args.systems is not None or args.tasks is not None:  # as for compare: the systems and tasks named, only
        changes.update(systems=args.systems or "", tasks=args.tasks or "")
    base = None if args.update_baseline else rg.read_measurement(base_dir)
    grid = (base.grid if base is not None else rg.RegressGrid()).override(**changes)
    if grid.throughput and args.executor == "dask":
        raise InvalidArgumentError("--executor", "dask", "in-process while regress times the cells (timings taken "
                                   "beside busy workers are not comparable with the baseline's); add "
                                   "--no-throughput to check accuracy and T_eps on a cluster")
    for name in split_list(grid.estimators):  # fail fast on unknown names, before any work
        estimators.from_spec(name)
    from suite.core.devices import resolve_device, resolve_dtype
    resolve_device(grid.device)
    resolve_dtype(grid.dtype)
    run_dir = None if args.no_write else out / "regress_run"
    with _executor(args) as ex:
        now = rg.measure(grid, progress=None if args.quiet else sys.stderr, run_dir=run_dir,
                         journal=_journal(args, "regress_run"), executor=ex, baseline=base)
    if args.update_baseline:
        if args.no_write:
            print("--no-write: the baseline was not written", file=sys.stderr)
            return EXIT_OK
        rg.promote(run_dir, base_dir)
        errors = [r for r in now.accuracy if r["status"] == "error"]
        print(f"wrote the baseline to {base_dir}: {len(now.accuracy)} accuracy rows, {len(now.convergence)} "
              f"convergence rows, {len(now.throughput)} throughput rows ({now.info['seconds']:.0f} s, commit "
              f"{now.info['git_sha']})")
        for r in errors:
            print(f"note: the baseline records an error cell {r['system']} x {r['estimator']}: {r['message']}",
                  file=sys.stderr)
        return EXIT_OK
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


def cmd_report(args) -> int:
    from suite.reporting.report import build
    results = Path(args.results_dir)
    if not results.is_dir():
        raise InvalidArgumentError("--results-dir", str(results), "an existing folder of lyapbench tables")
    out = build(results, Path(args.output) if args.output else None)
    print(f"wrote {out['report']} and {len(out['figures'])} figures: "
          + ", ".join(str(p) for p in out["figures"]))
    for name in out["missing"]:
        print(f"note: {name} is missing; its section says which command writes it", file=sys.stderr)
    return EXIT_OK


PROFILES = {
    # quick: every code path once in about a minute on a laptop; full: the tables committed under results/
    "quick": {"systems": "henon,lorenz63,random_rnn", "batch": "1,256", "dims": "64", "k": "all"},
    "full": {"systems": "henon,lorenz63,random_rnn,gaussian_products", "batch": "1,16,256,4096",
             "dims": "16,64,256", "k": "all,1"},
}


def _throughput_loop(args, tp, grid, dtypes, device, journal, rows, n_old, out, stem, t_start) -> None:
    """Measure every case (replayed from the journal where it holds it), rewriting the tables after each."""
    from suite.grid.journal import key_of
    for dtype in dtypes:
        for case in grid:
            def measure_case(case=case, dtype=dtype):
                return tp.run_case(case, device, dtype, min_seconds=args.min_seconds, repeats=args.repeats)
            row = measure_case() if journal is None else journal.cached(
                key_of([case, str(device), str(dtype), args.min_seconds, args.repeats]), measure_case)
            rows.append(row)
            if not args.no_write:
                write_csv(rows, out / f"{stem}.csv", tp.COLUMNS)
                atomic_write(out / f"{stem}.md", f"# Throughput on {row['device_name'] or device}\n\n"
                             + tp.README + markdown(rows, tp.DISPLAY))
            if not args.quiet:
                done = len(rows) - n_old
                left = (time.perf_counter() - t_start) / done * (len(grid) * len(dtypes) - done)
                rate = f"{row['traj_steps_per_s']:.3g} traj-steps/s" if row["status"] == "ok" else row["status"]
                print(f"[{done}/{len(grid) * len(dtypes)}] {row['system']} x {row['estimator']} B={row['batch']} "
                      f"k={row['k']} {row['dtype']}: {rate} (~{left:.0f} s left)", file=sys.stderr, flush=True)


def cmd_throughput(args) -> int:
    from suite.core.devices import resolve_device, resolve_dtype
    from suite.studies import throughput as tp
    _set_threads(args.threads)
    prof = PROFILES[args.profile]
    device = resolve_device(args.device)
    dtypes = [resolve_dtype(d) for d in split_list(args.dtype)]
    ints = {}
    for key in ("batch", "dims"):
        try:
            ints[key] = [int(v) for v in split_list(getattr(args, key) or prof[key])]
        except ValueError:
            raise InvalidArgumentError(f"--{key}", getattr(args, key), "comma-separated integers >= 1") from None
        if min(ints[key]) < 1:
            raise InvalidArgumentError(f"--{key}", getattr(args, key), "comma-separated integers >= 1")
    try:
        ks = [None if v == "all" else int(v) for v in split_list(args.k or prof["k"])]
    except ValueError:
        raise InvalidArgumentError("--k", args.k, "comma-separated integers >= 1 or 'all'") from None
    est_names = split_list(args.estimators) or ["qr", "jvp_qr"]
    for name in est_names:
        estimators.from_spec(name)
    systems = split_list(args.systems or ("" if args.tasks else prof["systems"])) or []
    for spec in systems:  # fail fast on unknown names
        rs.get(parse_spec(spec, "--systems")[0]) if "(" not in spec else None
    if args.tasks:
        import tasks
        systems += ["task:" + t for t in tasks.select(split_list(args.tasks))]
    grid = tp.cases(systems, est_names, ints["batch"], ints["dims"], ks)
    out = Path(args.output_dir)
    stem = f"throughput_{tp.slug(device)}" + ("" if args.profile == "full" else f"_{args.profile}")
    rows = []
    if args.append:  # several grids into one table
        rows = _existing_rows(out / f"{stem}.csv")
    n_old = len(rows)
    t_start = time.perf_counter()
    journal = _journal(args, stem)
    try:
        _throughput_loop(args, tp, grid, dtypes, device, journal, rows, n_old, out, stem, t_start)
    except KeyboardInterrupt as exc:
        from suite.core.errors import GridInterrupted
        raise GridInterrupted.after(len(rows) - n_old, len(grid) * len(dtypes), "cases",
                                    [] if args.no_write else [out / f"{stem}.csv", out / f"{stem}.md"],
                                    journal) from exc
    print(text_table(rows[n_old:], tp.DISPLAY))
    if not args.no_write:
        from suite.reporting.plots import throughput_figure
        throughput_figure(rows, out / f"{stem}.png", f"lyapbench throughput on {rows[0]['device_name'] if rows else device}"
                          f" at {rows[0]['git_sha'] if rows else ''}")
        print(f"wrote {out / (stem + '.csv')}, {out / (stem + '.md')} and {out / (stem + '.png')}")
    bad = [r for r in rows if r["status"] == "error"]
    for r in bad:
        print(f"ERROR {r['system']} x {r['estimator']} B={r['batch']}: {r['message']}", file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK


def cmd_race(args) -> int:
    from suite.studies import race as rc
    _set_threads(args.threads)
    names = split_list(args.contenders) or list(rc.CONTENDERS)
    for n in names:
        if n not in rc.CONTENDERS:
            from suite.core.errors import UnknownNameError
            raise UnknownNameError("contender", n, rc.CONTENDERS)
    if not args.eps > 0:
        raise InvalidArgumentError("--eps", args.eps, "a number > 0")
    if args.repeats < 1:
        raise InvalidArgumentError("--repeats", args.repeats, "an integer >= 1")
    out = Path(args.output_dir)
    rows: list = []

    def keep(row):
        rows.append(row)
        if not args.no_write:
            write_csv(rows, out / "race_lorenz63.csv", rc.COLUMNS)
        if not args.quiet:
            shown = "" if row["wall_seconds"] is None else (f"T={row['T']:g} B={row['batch']}: {row['wall_seconds']:.2f} s, "
                                                           f"worst |err|+2se = {row['worst_error_plus_2se']:.2g}, ")
            print(f"{row['contender']}: {shown}reached {row['reached']}", file=sys.stderr, flush=True)

    rc.race(args.eps, args.budget, args.seed, names, on_row=keep, repeats=args.repeats)
    times, counts = rc.time_to_eps(rows), rc.repeat_counts(rows)
    lines = [f"# Time to worst exponent error <= {args.eps:g} on Lorenz-63 (suite/race.py)\n",
             "Each contender runs T = T0, 2 T0, ... until |error| + 2 stderr <= eps for all three exponents; "
             "its time is that run's wall time (jitcode's compilation added); a contender that ran out of budget "
             "is bounded below by the seconds it spent. Reaching runs of at most "
             f"{rc.REPEAT_LIMIT_S:g} s are then repeated ({args.repeats} runs in all, the contenders taking turns; "
             "`repeat` > 0) and the median taken. Machine: "
             f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; "
             f"git {git_sha()}.\n",
             markdown(rows, rc.DISPLAY),
             "\n| contender | configuration | time to eps (s) | reaching runs (median of) | ratio to lyapbench |",
             "|---|---|---|---|---|"]
    base = times.get("lyapbench")
    for name, t in times.items():
        ratio = (f"{t / base:.1f}x" if t and base else
                 (f"> {sum(r['wall_seconds'] or 0 for r in rows if r['contender'] == name) / base:.1f}x (not reached)"
                  if base else "n/a"))
        lines.append(f"| {name} | {rc.CONTENDERS[name]['config']} | {'not reached' if t is None else f'{t:.2f}'} "
                     f"| {counts.get(name, 0)} | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        atomic_write(out / "race_lorenz63.md", text)
    return EXIT_OK


def cmd_tasks(args) -> int:
    """lyapbench tasks list | reference | score | features."""
    import tasks
    ids = tasks.select(_names(args.tasks))
    out = Path(args.output_dir)
    if args.action == "list":
        rows = []
        for tid in ids:
            row = tasks.get(tid).describe()
            rec = tasks.read(tid)
            row["reference"] = (f"lambda_1 = {rec['values'][0]:.4g} +- {rec['uncertainty'][0]:.2g} "
                                f"({rec['k']} of {rec['dim']}; {rec['created'][:10]})" if rec else "missing")
            rows.append(row)
        print(text_table(rows, ["id", "checkpoint", "params", "reference", "description"]))
        return EXIT_OK
    if args.action == "reference":
        from suite.studies.task_references import compute
        _set_threads(args.threads)
        bad = []
        for n, tid in enumerate(ids, 1):
            system = tasks.build(tid)
            st = system.meta["reference_status"]
            if args.check or (st == "fresh" and not args.force):
                print(f"[{n}/{len(ids)}] {tid}: {st}", file=sys.stderr, flush=True)
                if st != "fresh":
                    bad.append(f"{tid}: {st}")
                continue
            t0 = time.perf_counter()
            try:
                rec = compute(tid, device=args.device)
            except ArithmeticError as exc:  # not confirmed, or a trajectory diverged: reported, nothing written
                bad.append(f"{tid}: {exc}")
                print(f"[{n}/{len(ids)}] {tid}: FAILED {exc}", file=sys.stderr, flush=True)
                continue
            print(f"[{n}/{len(ids)}] {tid}: lambda_1 = {rec['values'][0]:.5g} +- {rec['uncertainty'][0]:.2g}, "
                  f"two-trajectory {rec['confirmation']['lambda1']:.5g} ({time.perf_counter() - t0:.0f} s) "
                  f"-> {tasks.reference_path(tid)}", file=sys.stderr, flush=True)
        for line in bad:
            print(f"NOT FRESH {line}", file=sys.stderr)
        return EXIT_FAIL if bad else EXIT_OK
    if args.action == "score":
        args.systems, args.system_file, args.tasks = None, None, ",".join(ids)
        return cmd_compare(args, stem="tasks_compare", heading="Estimators on the tasks (computed references)")
    from suite.reporting.task_report import FEATURE_COLUMNS, feature_rows, figures
    rows = feature_rows(ids)
    print(text_table(rows, FEATURE_COLUMNS[:-2]))
    if not args.no_write:
        write_csv(rows, out / "tasks_features.csv", FEATURE_COLUMNS)
        paths = figures(rows, out / "figures")
        atomic_write(out / "tasks_features.md", "# Spectrum features of the tasks (from their computed references)\n\n"
                     + markdown(rows, FEATURE_COLUMNS) + "\n" + "".join(f"![{p.stem}](figures/{p.name})\n" for p in paths))
        print(f"wrote {out / 'tasks_features.csv'}, {out / 'tasks_features.md'} and "
              + ", ".join(str(p) for p in paths))
    return EXIT_OK


def cmd_list(args) -> int:
    rows = []
    for system in rs.catalogue():
        ref = system.reference
        rows.append({
            "name": system.name, "kind": system.kind, "dim": system.dim,
            "params": ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in system.params.items() if k != "A"),
            "provenance": ref.provenance if ref else "none",
            "uncertainty": f"±{ref.uncertainty.max():.2g}" if ref else "",
            "reference": (np.array2string(ref.values[:5], precision=5, separator=", ")
                          + (" ..." if len(ref) > 5 else "")) if ref else "",
            "source": ref.source if ref else system.meta.get("note", ""),
        })
    cols = ["name", "kind", "dim", "params", "provenance", "reference", "uncertainty", "source"]
    print(text_table(rows, cols))
    return EXIT_OK


def _grid_run_args(q: argparse.ArgumentParser) -> None:
    """Where a grid's tables go, device, dtype, progress and threads: shared by the grid commands."""
    q.add_argument("--output-dir", default="results", help="where the tables go (default: results)")
    q.add_argument("--no-write", action="store_true", help="print only, write no files")
    q.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    q.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    q.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    q.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice). On a machine shared with other busy "
                        "processes use 1: OpenMP threads waiting on a busy core stall small batched ops")
    q.add_argument("--resume", action="store_true",
                   help="go on with an interrupted grid: cells already in OUTPUT_DIR/.journal are not run again")
    q.add_argument("--executor", choices=["in-process", "dask"], default="in-process",
                   help="where cells run: in this process (default), or as Dask tasks (pip install "
                        "'lyapbench[distributed]')")
    q.add_argument("--workers", type=int, help="--executor dask: start a local cluster of this many worker "
                                               "processes (default 2; plus one per GPU when cells use CUDA)")
    q.add_argument("--scheduler", help="--executor dask: use the cluster at this address (tcp://host:port)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lyapbench", description="Benchmark suite for Lyapunov-exponent estimators.")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="run reference systems through estimators and judge every exponent")
    c = sub.add_parser("compare", help="estimators side by side: errors, honesty of the stderr, time, speed")
    cv = sub.add_parser("convergence", help="error against T from each run's history: bias and noise fit, T_eps")
    for q in (v, c, cv):
        q.add_argument("--quick", action="store_true", help="10x shorter runs (tolerances widen accordingly)")
        q.add_argument("--systems", help="comma-separated system names, each optionally with parameters, "
                                         "e.g. henon,lorenz63(dt=0.04) (default: the whole catalogue in its "
                                         "validation variants)")
        q.add_argument("--estimators", "--estimator", dest="estimators",
                       help="comma-separated estimator names or module:attr (default: qr, two_trajectory)")
        q.add_argument("--system-file", action="append", metavar="FILE|module:attr",
                       help="add a user's systems (a .py file or module:attr); repeatable")
        q.add_argument("--tasks", help="comma-separated task ids, globs ('rnn/*') or tags ('tag:gain-sweep'); "
                                       "without --systems only the tasks are run")
        _grid_run_args(q)
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=cmd_validate)
    c.add_argument("--seeds", help="comma-separated seeds, one cell per seed (default: 0)")
    c.add_argument("--steps", type=int, help="steps per trajectory for every system (default: its validation budget)")
    c.add_argument("--batch", type=int, help="trajectories per cell (default: the system's validation batch)")
    c.add_argument("--k", type=int, help="number of exponents, largest first (default: all); estimators "
                                         "are judged on the exponents they return")
    c.add_argument("--append", action="store_true", help="add the rows to the tables already in OUTPUT_DIR "
                                                          "instead of replacing them (one table from grids with "
                                                          "different settings)")
    c.set_defaults(func=cmd_compare)
    cv.add_argument("--seeds", help="comma-separated seeds, one run per seed (default: 0)")
    cv.add_argument("--steps", type=int, help="steps per trajectory (default: the system's validation budget)")
    cv.add_argument("--batch", type=int, help="trajectories per run (default: the system's validation batch; "
                                               "at least 2 for a running stderr)")
    cv.set_defaults(func=cmd_convergence)

    t = sub.add_parser("throughput", help="steps per second over batch, dimension and k; fraction of peak")
    t.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="grid preset: quick (default, about a minute) or full (the committed tables)")
    t.add_argument("--systems", help="comma-separated systems; those whose factory takes N are run at every --dims")
    t.add_argument("--tasks", help="comma-separated task ids, globs or tag:NAME (at their own size); "
                                   "without --systems only the tasks are measured")
    t.add_argument("--estimators", "--estimator", dest="estimators",
                   help="comma-separated estimators, name or name(param=value) (default: qr,jvp_qr)")
    t.add_argument("--batch", help="comma-separated batch sizes")
    t.add_argument("--dims", help="comma-separated dimensions for systems that scale with N")
    t.add_argument("--k", help="comma-separated numbers of exponents, or 'all'")
    t.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    t.add_argument("--dtype", default="float64", help="float64, float32 or both comma-separated")
    t.add_argument("--min-seconds", type=float, default=0.2, help="target duration of each timed repeat")
    t.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--output-dir", default="results", help="where the tables go (default: results)")
    t.add_argument("--no-write", action="store_true", help="print only, write no files")
    t.add_argument("--append", action="store_true", help="add the rows to an existing table of this device and "
                                                          "profile instead of replacing it")
    t.add_argument("--quiet", action="store_true", help="no per-case progress lines")
    t.add_argument("--resume", action="store_true",
                   help="go on with an interrupted grid: cases already in OUTPUT_DIR/.journal are not run again")
    t.set_defaults(func=cmd_throughput)

    r = sub.add_parser("race", help="time to a given accuracy on Lorenz-63: lyapbench vs jitcode vs lyapynov")
    r.add_argument("--eps", type=float, default=2e-3, help="target worst exponent error (default 2e-3)")
    r.add_argument("--budget", type=float, default=600.0, help="seconds per contender before giving up (default 600)")
    r.add_argument("--contenders", help="comma-separated subset of lyapbench,jitcode,lyapynov")
    r.add_argument("--repeats", type=int, default=3,
                   help="runs of each reaching configuration of <= 60 s, contenders taking turns; the median "
                        "is its time (default 3)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    r.add_argument("--output-dir", default="results", help="where race_lorenz63.{csv,md} go (default: results)")
    r.add_argument("--no-write", action="store_true", help="print only, write no files")
    r.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    r.set_defaults(func=cmd_race)

    tk = sub.add_parser("tasks", help="the task registry: list, compute references, score estimators, features")
    tk.add_argument("action", choices=["list", "reference", "score", "features"],
                    help="list: the tasks and their references; reference: compute missing or stale references "
                         "(--force: all, --check: only report, exit 1 if any is not fresh); score: estimators on "
                         "the tasks (as compare); features: spectrum features against loss, gain, learning rate")
    tk.add_argument("--tasks", help="comma-separated task ids, globs ('rnn/*') or tags ('tag:gain-sweep') "
                                    "(default: all)")
    tk.add_argument("--force", action="store_true", help="reference: recompute even fresh references")
    tk.add_argument("--check", action="store_true", help="reference: compute nothing, report freshness")
    tk.add_argument("--estimators", "--estimator", dest="estimators",
                    help="score: comma-separated estimators (default: qr, two_trajectory)")
    tk.add_argument("--quick", action="store_true", help="score: 10x shorter runs on stationary tasks")
    tk.add_argument("--seeds", help="score: comma-separated seeds (default: 0)")
    for key in ("steps", "batch", "k"):
        tk.add_argument(f"--{key}", type=int, help=f"score: {key} for every task (default: the task's own)")
    _grid_run_args(tk)
    tk.set_defaults(func=cmd_tasks)

    rg = sub.add_parser("regress", help="run the baseline's grid again and compare: accuracy, T_eps, throughput; "
                                         "exit 1 on a regression")
    rg.add_argument("--update-baseline", action="store_true",
                    help="run the grid (the default one, or as given) and write it as the new baseline")
    rg.add_argument("--baseline-dir", default="results/baseline", help="where the baseline lives "
                                                                        "(default: results/baseline)")
    rg.add_argument("--systems", help="override the baseline's systems (comma-separated specs)")
    rg.add_argument("--tasks", help="override the baseline's tasks (ids, globs or tag:NAME)")
    rg.add_argument("--estimators", "--estimator", dest="estimators", help="override the baseline's estimators")
    rg.add_argument("--seed", type=int, help="seed of this run (default: the baseline's)")
    rg.add_argument("--length", choices=["quick", "full"], help="quick: validation budgets / 10 (the default grid); "
                                                                "full: the validation budgets")
    rg.add_argument("--steps", type=int, help="steps per trajectory for every cell")
    rg.add_argument("--batch", type=int, help="trajectories per cell")
    rg.add_argument("--no-throughput", action="store_true", help="do not time the cells (accuracy and T_eps only)")
    rg.add_argument("--min-seconds", type=float, help="duration of each timed repeat (default 0.1)")
    rg.add_argument("--repeats", type=int, help="timed repeats per cell; the median is kept (default 5)")
    _grid_run_args(rg)
    for a in rg._actions:  # device and dtype default to the baseline's
        if a.dest in ("device", "dtype"):
            a.default = None
    rg.set_defaults(func=cmd_regress)

    rp = sub.add_parser("report", help="results/report.md with figures, from the tables already written")
    rp.add_argument("--results-dir", default="results", help="where the tables are (default: results)")
    rp.add_argument("--output", help="the report's path (default: RESULTS_DIR/report.md); figures go to "
                                     "RESULTS_DIR/figures")
    rp.set_defaults(func=cmd_report)

    ls = sub.add_parser("list", help="show the catalogue of reference systems")
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LyapbenchError as exc:
        print(f"lyapbench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"lyapbench {args.command}: {exc or 'interrupted; finished cells are in the output files'}",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
