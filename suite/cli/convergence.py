"""``lyapbench convergence``: error against T from each run's history, the bias and noise fits and T_eps."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.cli.options import EXIT_OK, add_run, add_selection, executor, journal, prepare, seeded_cells
from suite.core.provenance import row_provenance
from suite.grid.runner import run_grid
from suite.reporting.plots import convergence_figure
from suite.reporting.tables import atomic_write, markdown, text_table, write_csv
from suite.scoring.convergence import CURVE_COLUMNS, SUMMARY_COLUMNS, SUMMARY_DISPLAY, convergence_rows

README = ("# Convergence in T\n\nbias: fitted a in error = a/T (nats); noise: fitted c in stderr = c/sqrt(T) for "
          "the batch mean; T_eps: smallest history T from which |error| + 2 stderr < eps (suite/scoring/convergence.py).\n\n")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("convergence", help="error against T from each run's history: bias and noise fit, "
                                                  "T_eps")
    add_selection(p)
    add_run(p)
    p.add_argument("--seeds", help="comma-separated seeds, one run per seed (default: 0)")
    p.add_argument("--steps", type=int, help="steps per trajectory (default: the system's validation budget)")
    p.add_argument("--batch", type=int, help="trajectories per run (default: the system's validation batch; "
                                              "at least 2 for a running stderr)")
    return p


def _rows_of(cell, rows, result):
    """The curve rows and summary rows of one finished cell (one summary row with its status if it failed)."""
    if result is not None:
        return convergence_rows(cell.system, cell.estimator_name, cell.settings.get("seed", 0), result)
    return [], [{**dict.fromkeys(SUMMARY_COLUMNS), "system": cell.system.label, "estimator": cell.estimator_name,
                 "seed": cell.settings.get("seed", 0), "status": rows[0]["status"],
                 "message": rows[0].get("message"), **row_provenance(cell.settings)}]


def run(args) -> int:
    systems, est_names = prepare(args)
    cells = seeded_cells(args, systems, est_names, ("steps", "batch"))
    out = Path(args.output_dir)
    curves, summaries = [], []

    def keep(cell, rows, result):
        c, s_ = _rows_of(cell, rows, result)
        curves.extend(c)
        summaries.extend(s_)
        if not args.no_write:
            write_csv(curves, out / "convergence.csv", CURVE_COLUMNS)
            write_csv(summaries, out / "convergence_summary.csv", SUMMARY_COLUMNS)
            atomic_write(out / "convergence.md", README + markdown(summaries, SUMMARY_DISPLAY))

    with executor(args) as ex:
        run_grid(cells, progress=None if args.quiet else sys.stderr, on_cell=keep,
                 journal=journal(args, "convergence"), executor=ex)
    print(text_table(summaries, SUMMARY_DISPLAY))
    if not args.no_write:
        for label in dict.fromkeys(r["system"] for r in curves):
            slug = "".join(ch if ch.isalnum() else "_" for ch in label).strip("_")
            convergence_figure([r for r in curves if r["system"] == label],
                               [r for r in summaries if r["system"] == label],
                               out / "figures" / f"convergence_{slug}.png", f"convergence in T: {label}")
        print(f"wrote {out / 'convergence.csv'}, {out / 'convergence_summary.csv'}, {out / 'convergence.md'} "
              f"and {out / 'figures'}/convergence_*.png")
    return EXIT_OK
