"""What the ``lyapbench`` commands share: their common options, the one up-front check, the run helpers.

An ``add_*`` function declares options on a command's subparser with the help text every command shows
(a command passes its own help or default where its meaning is narrower).  :func:`check_up_front` checks
estimator names and hyperparameters, the device and the dtype before any work, for every command.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import pandas as pd
import torch

import reference_systems as rs
from suite import estimators
from suite.core.args import SEED_MAX, check_int, check_int_list, check_seed
from suite.core.devices import resolve_device, resolve_dtype
from suite.core.errors import InvalidArgumentError
from suite.core.specs import split_flag
from suite.grid.cells import Cell, validation_cells
from suite.grid.executors import make_executor
from suite.grid.journal import Journal, journal_for
from suite.grid.selection import build_systems
from suite.reporting.tables import DEFAULT_OUTPUT
from suite.scoring.checks import check_system

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

OUTPUT_HELP = (f"where the tables go (default: {DEFAULT_OUTPUT} in the current directory; --output-dir results "
               "rewrites the committed tables of a lyapbench checkout)")

THREADS_HELP = ("torch CPU threads (default: torch's choice). On a machine shared with other busy "
                "processes use 1: OpenMP threads waiting on a busy core stall small batched ops")
SYSTEMS_HELP = ("comma-separated system names, each optionally with parameters, e.g. henon,lorenz63(dt=0.04), or "
                "shell patterns, e.g. 'dysts/*' (default: the catalogue in its validation variants, without the "
                "families listed on request such as dysts/*)")
TASKS_HELP = "comma-separated task ids, globs ('rnn/*') or tags ('tag:gain-sweep')"


# --- options ---------------------------------------------------------------------------------------

def add_systems(p: argparse.ArgumentParser, help: str = SYSTEMS_HELP) -> None:
    p.add_argument("--systems", help=help)


def add_tasks(p: argparse.ArgumentParser, help: str = TASKS_HELP + "; without --systems only the tasks are run"
              ) -> None:
    p.add_argument("--tasks", help=help)


def add_estimators(p: argparse.ArgumentParser,
                   help: str = "comma-separated estimator names or module:attr (default: qr, two_trajectory)"
                   ) -> None:
    p.add_argument("--estimators", "--estimator", dest="estimators", help=help)


def add_selection(p: argparse.ArgumentParser) -> None:
    """--quick, --systems, --estimators, --system-file, --tasks: which cells a validation-style grid runs."""
    p.add_argument("--quick", action="store_true", help="10x fewer measured steps, the same transient (tolerances "
                                                      "widen accordingly)")
    add_systems(p)
    add_estimators(p)
    p.add_argument("--system-file", action="append", metavar="FILE|module:attr",
                   help="add a user's systems (a .py file or module:attr); repeatable")
    add_tasks(p)


def add_output(p: argparse.ArgumentParser, help: str = OUTPUT_HELP) -> None:
    """--output-dir (default :data:`DEFAULT_OUTPUT`) and --no-write."""
    p.add_argument("--output-dir", default=DEFAULT_OUTPUT, help=help)
    p.add_argument("--no-write", action="store_true", help="print only, write no files")


def add_device(p: argparse.ArgumentParser, default: Optional[str] = "cpu") -> None:
    p.add_argument("--device", default=default, help="cpu, cuda or cuda:N")


def add_dtype(p: argparse.ArgumentParser, default: Optional[str] = "float64", several: bool = False) -> None:
    """--dtype: one of float64 and float32, or with ``several`` a free comma-separated list of them."""
    if several:
        p.add_argument("--dtype", default=default, help="float64, float32 or both comma-separated")
    else:
        p.add_argument("--dtype", default=default, choices=["float64", "float32"])


def add_quiet(p: argparse.ArgumentParser, unit: str = "cell") -> None:
    p.add_argument("--quiet", action="store_true", help=f"no per-{unit} progress lines")


def add_threads(p: argparse.ArgumentParser, help: str = THREADS_HELP) -> None:
    p.add_argument("--threads", type=int, default=None, help=help)


def add_resume(p: argparse.ArgumentParser, units: str = "cells") -> None:
    p.add_argument("--resume", action="store_true",
                   help=f"go on with an interrupted grid: {units} already in OUTPUT_DIR/.journal are not run again")


def add_executor(p: argparse.ArgumentParser) -> None:
    """--executor, --workers, --scheduler: where a grid's cells run."""
    p.add_argument("--executor", choices=["in-process", "dask"], default="in-process",
                   help="where cells run: in this process (default), or as Dask tasks (pip install "
                        "'lyapbench[distributed]')")
    p.add_argument("--workers", type=int, help="--executor dask: start a local cluster of this many worker "
                                               "processes (default 2; plus one per GPU when cells use CUDA)")
    p.add_argument("--scheduler", help="--executor dask: use the cluster at this address (tcp://host:port)")


def add_single_run(p: argparse.ArgumentParser) -> None:
    """Where the tables go, device, dtype and threads: the commands that run one study, not a grid."""
    add_output(p)
    add_device(p)
    add_dtype(p)
    add_threads(p)


def add_run(p: argparse.ArgumentParser, device: Optional[str] = "cpu", dtype: Optional[str] = "float64") -> None:
    """Where a grid's tables go, device, dtype, progress, threads, resume and executor: the grid commands'."""
    add_output(p)
    add_device(p, device)
    add_dtype(p, dtype)
    add_quiet(p)
    add_threads(p)
    add_resume(p)
    add_executor(p)


# --- checks and helpers ----------------------------------------------------------------------------

def check_up_front(est_names: Sequence[str], device, dtypes: Sequence) -> Tuple[torch.device, List[torch.dtype]]:
    """Fail fast, before any work, on unknown estimator names or bad hyperparameters, a device this machine
    lacks or an unknown dtype (in that order); the resolved device and dtypes."""
    for name in est_names:
        try:
            estimators.from_spec(name)
        except InvalidArgumentError as exc:
            if exc.argument != "spec":  # a module:attr that does not import: say which flag named it
                raise
            raise InvalidArgumentError("--estimators", name, exc.allowed) from exc
    return resolve_device(device), [resolve_dtype(d) for d in dtypes]


def set_threads(threads: Optional[int]) -> None:
    if check_int("--threads", threads, 1, allow_none=True, allowed="an integer >= 1") is not None:
        torch.set_num_threads(threads)


def select_systems(args) -> List[rs.System]:
    return build_systems(split_flag(args.systems, "--systems"), args.system_file,
                         split_flag(getattr(args, "tasks", None), "--tasks"))


def seed_list(value: Optional[str], flag: str = "--seeds") -> List[int]:
    """The seeds of ``--seeds 0,1,2``: integers in 0..2**63 - 1 ([0] where the flag is not given)."""
    if value is None:
        return [0]
    return check_int_list(flag, split_flag(value, flag), 0, SEED_MAX,
                          allowed="comma-separated integers in 0..2**63 - 1")


def seed_flag(value: Optional[int], flag: str = "--seed") -> Optional[int]:
    """``--seed``: an integer in 0..2**63 - 1 (None where the flag has no default and was not given)."""
    return None if value is None else check_seed(flag, value)


def prepare(args) -> Tuple[List[rs.System], List[str]]:
    """Shared by validate, compare and convergence: threads, systems, checked estimator names, device, dtype."""
    set_threads(args.threads)
    systems = select_systems(args)
    est_names = split_flag(args.estimators, "--estimators") or estimators.validation_defaults()
    check_up_front(est_names, args.device, [args.dtype])
    warn_unchecked_systems(systems)
    return systems, est_names


def warn_unchecked_systems(systems) -> None:
    """Run :func:`suite.checks.check_system` on the systems of ``--system-file`` (a user's, never checked by
    our tests) and print each failure on stderr: a transposed Jacobian can pass a validation (Henon's
    exponents are those of its transpose), never this check."""
    for system in systems:
        if not system.meta.get("system_file"):
            continue
        report = check_system(system, raise_on_failure=False)
        for name, _, message in report.failed:
            print(f"WARNING: system {system.label!r} ({system.meta['system_file']}) fails check_system's "
                  f"{name!r}: {message}", file=sys.stderr)


def seeded_cells(args, systems, est_names, overrides) -> List[Cell]:
    """The validation grid once per ``--seeds`` value, with the command-line ``overrides`` applied."""
    for key in overrides:
        check_int(f"--{key}", getattr(args, key), 1, allow_none=True, allowed="an integer >= 1")
    k = getattr(args, "k", None) if "k" in overrides else None
    small = [s.label for s in systems if k is not None and k > s.dim]
    if small:
        raise InvalidArgumentError("--k", k, f"an integer in 1..{min(s.dim for s in systems)}: at most the dimension "
                                   f"of every selected system ({', '.join(small)} "
                                   f"{'has' if len(small) == 1 else 'have'} fewer)")
    cells = []
    for seed in seed_list(args.seeds):
        for cell in validation_cells(systems, est_names, quick=args.quick, seed=seed, device=args.device,
                                     dtype=args.dtype):
            for key in overrides:
                if getattr(args, key) is not None:
                    cell.settings[key] = getattr(args, key)
                    cell.settings["k_is_default"] &= key != "k"
            cells.append(cell)
    return cells


def existing_rows(path: Path) -> List[dict]:
    """The rows of a table written earlier (``--append``; empty cells as None), [] if there is none."""
    if not path.is_file():
        return []
    old = pd.read_csv(path)
    return [{c: (None if pd.isna(v) else v) for c, v in r.items()} for r in old.to_dict("records")]


def journal(args, stem: str) -> Optional[Journal]:
    """The grid's journal under --output-dir (None with --no-write, where --resume is refused)."""
    if args.no_write:
        if getattr(args, "resume", False):
            raise InvalidArgumentError("--resume", True, "a run that writes its tables (not with --no-write)")
        return None
    return journal_for(Path(args.output_dir), stem, getattr(args, "resume", False))


@contextlib.contextmanager
def executor(args) -> Iterator:
    """The executor of --executor / --workers / --scheduler (suite.grid.executors), closed afterwards."""
    ex = make_executor(getattr(args, "executor", None), getattr(args, "workers", None),
                       getattr(args, "scheduler", None), threads_per_worker=getattr(args, "threads", None) or 1)
    try:
        yield ex
    finally:
        ex.close()
