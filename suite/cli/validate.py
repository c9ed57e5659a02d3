"""``lyapbench validate``: reference systems through estimators, every exponent judged against its tolerance."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.cli.options import EXIT_FAIL, EXIT_OK, add_run, add_selection, executor, journal, prepare, seed_flag
from suite.grid.cells import validation_cells
from suite.grid.runner import DISPLAY, DISPLAY_HEADERS, run_grid, with_display
from suite.reporting.tables import text_table
from suite.scoring.rows import failed, first_line, summary
from suite.scoring.tolerance import RULE


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("validate", help="run reference systems through estimators and judge every exponent")
    add_selection(p)
    add_run(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the run, 0..2**63 - 1 (default 0)")
    return p


def run(args) -> int:
    seed_flag(args.seed)
    systems, est_names = prepare(args)
    cells = validation_cells(systems, est_names, quick=args.quick, seed=args.seed,
                             device=args.device, dtype=args.dtype)
    out = Path(args.output_dir)
    title = ("# Validation: reference systems x estimators\n\n"
             f"Tolerance rule: `{RULE}`. Exponents in natural log, per step (maps) or per unit time (flows).\n\n")
    with executor(args) as ex:
        rows = run_grid(cells, csv_path=None if args.no_write else out / "validation.csv",
                        md_path=None if args.no_write else out / "validation.md", title=title,
                        progress=None if args.quiet else sys.stderr, journal=journal(args, "validation"),
                        executor=ex)
    print(text_table(with_display(rows), DISPLAY, DISPLAY_HEADERS))
    counts = summary(rows)
    print("summary: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if not args.no_write:
        print(f"wrote {out / 'validation.csv'} and {out / 'validation.md'}")
    bad = failed(rows)
    for r in bad:
        print(f"FAILED {r['system']} x {r['estimator']} #{r['index']}: {r['status']}"
              + (f" {first_line(r['message'])}" if r.get("message") else
                 f" |error| {r['abs_error']:.3g} > tolerance {r['tolerance']:.3g}"), file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK
