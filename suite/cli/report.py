"""``lyapbench report``: report.md with figures, from the tables already written (default: lyapbench-results/)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.cli.options import DEFAULT_OUTPUT, EXIT_OK
from suite.core.errors import InvalidArgumentError
from suite.reporting.report import build


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="report.md with figures, from the tables already written")
    p.add_argument("--results-dir", default=DEFAULT_OUTPUT,
                   help=f"where the tables are, and where the report goes (default: {DEFAULT_OUTPUT}, what the "
                        "other commands write by default; --results-dir results: the committed tables)")
    p.add_argument("--output", help="the report's path (default: RESULTS_DIR/report.md); figures go to "
                                    "RESULTS_DIR/figures")
    return p


def run(args) -> int:
    results = Path(args.results_dir)
    if not results.is_dir():
        raise InvalidArgumentError("--results-dir", str(results), "an existing folder of lyapbench tables (the "
                                   f"other commands write {DEFAULT_OUTPUT}/ by default; the committed tables "
                                   "are in results/ of a lyapbench checkout)")
    out = build(results, Path(args.output) if args.output else None)
    print(f"wrote {out['report']} and {len(out['figures'])} figures: "
          + ", ".join(str(p) for p in out["figures"]))
    for name in out["missing"]:
        print(f"note: {name} is missing; its section says which command writes it", file=sys.stderr)
    return EXIT_OK
