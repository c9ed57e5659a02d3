"""``lyapbench tasks``: the task registry: list, compute references, score estimators (as compare), features."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

import tasks
from suite.cli import compare
from suite.cli.references import refresh
from suite.cli.options import EXIT_FAIL, EXIT_OK, TASKS_HELP, add_estimators, add_run, add_tasks, set_threads
from suite.core.errors import LyapbenchError
from suite.core.specs import split_flag
from suite.reporting.tables import atomic_write, markdown, text_table, write_csv
from suite.reporting.task_report import FEATURE_COLUMNS, feature_rows, figures
from suite.studies.task_references import compute


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tasks", help="the task registry: list, compute references, score estimators, "
                                            "features")
    p.add_argument("action", choices=["list", "reference", "score", "features"],
                   help="list: the tasks and their references; reference: compute missing or stale references "
                        "(--force: all, --check: only report, exit 1 if any is not fresh); score: estimators on "
                        "the tasks (as compare); features: spectrum features against loss, gain, learning rate")
    add_tasks(p, TASKS_HELP + " (default: all)")
    p.add_argument("--force", action="store_true", help="reference: recompute even fresh references")
    p.add_argument("--check", action="store_true", help="reference: compute nothing, report freshness")
    add_estimators(p, "score: comma-separated estimators (default: qr, two_trajectory)")
    p.add_argument("--quick", action="store_true",
                   help="score: 10x fewer measured steps on stationary tasks, the same transient")
    p.add_argument("--seeds", help="score: comma-separated seeds (default: 0)")
    for key in ("steps", "batch", "k"):
        p.add_argument(f"--{key}", type=int, help=f"score: {key} for every task (default: the task's own)")
    add_run(p)
    return p


def _list(ids: List[str]) -> int:
    rows, failed = [], False
    for tid in ids:
        try:
            row = tasks.get(tid).describe()
        except LyapbenchError as exc:  # a third party's broken entry point: a row, the others still listed
            rows.append({"id": tid, "reference": "-", "description": f"cannot be loaded: {exc}"})
            failed = True
            continue
        rec = tasks.read(tid)
        row["reference"] = (f"lambda_1 = {rec['values'][0]:.4g} +- {rec['uncertainty'][0]:.2g} "
                            f"({rec['k']} of {rec['dim']}; {rec['created'][:10]})" if rec else "missing")
        rows.append(row)
    print(text_table(rows, ["id", "checkpoint", "params", "reference", "description"]))
    return EXIT_FAIL if failed else EXIT_OK


def _reference(args, ids: List[str]) -> int:
    set_threads(args.threads)

    def entry(tid):
        status = tasks.build(tid).meta["reference_status"]
        return status, lambda: (compute(tid, device=args.device), tasks.reference_path(tid))
    return refresh(ids, entry, check=args.check, force=args.force)


def _features(args, ids: List[str]) -> int:
    out = Path(args.output_dir)
    rows = feature_rows(ids)
    print(text_table(rows, FEATURE_COLUMNS[:-2]))
    if not args.no_write:
        write_csv(rows, out / "tasks_features.csv", FEATURE_COLUMNS)
        paths = figures(rows, out / "figures")
        atomic_write(out / "tasks_features.md", "# Spectrum features of the tasks (from their computed references)\n\n"
                     + markdown(rows, FEATURE_COLUMNS) + "\n"
                     + "".join(f"![{p.stem}](figures/{p.name})\n" for p in paths))
        print(f"wrote {out / 'tasks_features.csv'}, {out / 'tasks_features.md'} and "
              + ", ".join(str(p) for p in paths))
    return EXIT_OK


def run(args) -> int:
    """lyapbench tasks list | reference | score | features."""
    ids = tasks.select(split_flag(args.tasks, "--tasks"))
    if args.action == "list":
        return _list(ids)
    if args.action == "reference":
        return _reference(args, ids)
    if args.action == "score":
        args.systems, args.system_file, args.tasks = None, None, ",".join(ids)
        return compare.run(args, stem="tasks_compare", heading="Estimators on the tasks (computed references)")
    return _features(args, ids)
