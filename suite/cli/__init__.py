"""The ``lyapbench`` command line: one module per command, the options they share in ``options.py``.

    lyapbench validate [--quick] [--systems a,b] [--estimators qr] [--system-file F]
    lyapbench compare  [--estimators qr,pkg.mod:Mine] [--systems a,b] [--seeds 0,1] [--steps N]
    lyapbench estimate --systems a,b --eps 1e-3 [--max-seconds S]
    lyapbench convergence | throughput | race | tasks ...
    lyapbench regress  [--update-baseline] [--baseline-dir results/baseline] [--seed N]
    lyapbench report   [--results-dir lyapbench-results]
    lyapbench list

Each command module declares its subcommand (``add_parser(subparsers)``) and runs it (``run(args) -> int``);
Tables go to ``--output-dir``, by default ``lyapbench-results/`` in the current directory (never the committed
``results/`` unless named).  :func:`main` parses, runs and turns a :class:`~suite.core.errors.LyapbenchError`
into exit status 2.  The package may import anything in ``suite`` (it is the top layer); nothing in ``suite``
imports it.  Exit status: 0 when every row passes, 1 when a row fails or a cell errors, 2 for bad usage (unknown
names, bad arguments).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from suite.cli import (catalogue, compare, convergence, dysts, estimate, race, references, regress, report, spectrum,
                       tasks, throughput, validate)
from suite.cli.options import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from suite.cli.throughput import PROFILES
from suite.core.errors import LyapbenchError

__all__ = ["main", "build_parser", "COMMANDS", "PROFILES", "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE"]

#: in the order ``lyapbench --help`` lists them
COMMANDS = (validate, compare, convergence, estimate, throughput, race, tasks, references, dysts, spectrum, regress,
            report, catalogue)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lyapbench", description="Benchmark suite for Lyapunov-exponent estimators.")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return p


def search_current_directory() -> None:
    """Let ``module:attr`` name a module in the current directory, as ``python -m`` does: the ``lyapbench``
    console script puts its own folder on ``sys.path``, not the current one.  Appended, so the current
    directory is searched after ``PYTHONPATH`` and the installed packages and never shadows them."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    search_current_directory()
    try:
        return args.func(args)
    except LyapbenchError as exc:
        print(f"lyapbench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"lyapbench {args.command}: {exc or 'interrupted; finished cells are in the output files'}",
              file=sys.stderr)
        return 130
