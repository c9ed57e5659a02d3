"""``lyapbench compare``: estimators side by side, one summary row per cell (``tasks score`` reuses :func:`run`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.cli.options import (EXIT_FAIL, EXIT_OK, add_run, add_selection, executor, existing_rows, journal,
                               prepare, seeded_cells)
from suite.grid.runner import run_grid
from suite.reporting.tables import atomic_write, markdown, text_table, write_csv
from suite.scoring.compare import COMPARE_COLUMNS, COMPARE_DISPLAY, summarise
from suite.scoring.rows import first_line


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compare", help="estimators side by side: errors, honesty of the stderr, time, speed")
    add_selection(p)
    add_run(p)
    p.add_argument("--seeds", help="comma-separated seeds, one cell per seed (default: 0)")
    p.add_argument("--steps", type=int, help="steps per trajectory for every system (default: its validation budget)")
    p.add_argument("--batch", type=int, help="trajectories per cell (default: the system's validation batch)")
    p.add_argument("--k", type=int, help="number of exponents, largest first (default: all); estimators "
                                         "are judged on the exponents they return")
    p.add_argument("--append", action="store_true", help="add the rows to the tables already in OUTPUT_DIR "
                                                          "instead of replacing them (one table from grids with "
                                                          "different settings)")
    return p


def run(args, stem: str = "compare", heading: str = "Estimator comparison") -> int:
    systems, est_names = prepare(args)
    cells = seeded_cells(args, systems, est_names, ("steps", "batch", "k"))
    out = Path(args.output_dir)
    append = getattr(args, "append", False) and not args.no_write
    summaries = existing_rows(out / f"{stem}.csv") if append else []
    n_old = len(summaries)

    def keep_summary(cell, rows, result):  # every finished cell is kept
        summaries.append(summarise(cell.system, rows, result))
        if not args.no_write:
            write_csv(summaries, out / f"{stem}.csv", COMPARE_COLUMNS)
            atomic_write(out / f"{stem}.md", f"# {heading}\n\n" + markdown(summaries, COMPARE_DISPLAY))

    with executor(args) as ex:
        run_grid(cells, csv_path=None if args.no_write else out / f"{stem}_rows.csv",
                 progress=None if args.quiet else sys.stderr, on_cell=keep_summary, journal=journal(args, stem),
                 executor=ex, initial_rows=existing_rows(out / f"{stem}_rows.csv") if append else ())
    print(text_table(summaries[n_old:], COMPARE_DISPLAY))
    bad = [s_ for s_ in summaries[n_old:] if s_["status"] in ("fail", "error")]
    for s_ in bad:
        print(f"FAILED {s_['system']} x {s_['estimator']} (seed {s_['seed']}): {s_['status']} "
              f"{first_line(s_['message'])}", file=sys.stderr)
    if not args.no_write:
        print(f"wrote {out / (stem + '.csv')}, {out / (stem + '.md')} and {out / (stem + '_rows.csv')}")
    return EXIT_FAIL if bad else EXIT_OK
