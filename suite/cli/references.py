"""``lyapbench references``: compute or check the computed references of catalogue systems.

A catalogue system that declares ``reference_run`` (the chaotic random networks: no closed form for
the finite system) gets its reference from a long float64 QR run confirmed by two-trajectory
lambda_1 and autodiff tangents (:mod:`suite.studies.computed_references`), cached under
``results/references/systems__*.json`` with the probe that detects a stale one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List, Tuple

import reference_systems as rs
from reference_systems import System, computed
from suite.cli.options import EXIT_FAIL, EXIT_OK, set_threads
from suite.core.errors import InvalidArgumentError, exception_line
from suite.grid.executors import InProcess
from suite.core.specs import split_flag
from suite.grid.selection import build_systems
from suite.studies.computed_references import compute_system


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("references", help="compute or check the computed references of catalogue systems "
                                                 "(the chaotic random networks)")
    p.add_argument("--systems", help="comma-separated system specs (default: every catalogue variant that "
                                     "declares a reference run)")
    p.add_argument("--force", action="store_true", help="recompute even fresh references")
    p.add_argument("--check", action="store_true", help="compute nothing, report freshness; exit 1 if any is "
                                                        "not fresh")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p


def computed_systems(specs) -> List[System]:
    """The systems named (or every catalogue variant with a reference run), each checked to declare one."""
    names = split_flag(specs, "--systems")
    systems = build_systems(names) if names else rs.catalogue()
    chosen = [s for s in systems if s.capabilities.reference_run is not None]
    if names and len(chosen) < len(systems):
        missing = [s.label for s in systems if s.capabilities.reference_run is None]
        raise InvalidArgumentError("--systems", ", ".join(missing), "systems that declare a reference run "
                                   "(their reference is computed; the others have closed forms or none)")
    return chosen


def confirmed_summary(rec: dict) -> str:
    """A computed reference's line: lambda_1, the two-trajectory confirmation, the autodiff check."""
    routes = rec["routes"]
    auto = f", autodiff within {routes['autodiff']['max_abs_difference']:.1g}" if "autodiff" in routes else ""
    return (f"lambda_1 = {rec['values'][0]:.5g} +- {rec['uncertainty'][0]:.2g}, two-trajectory "
            f"{routes['two_trajectory']['lambda1']:.5g}{auto}")


def refresh(labels: List[str], entry: Callable[[str], Tuple[str, Callable[[], Tuple[dict, Path]]]], *,
            check: bool, force: bool, summary: Callable[[dict], str] = confirmed_summary, executor=None) -> int:
    """Compute the missing or stale references (all with ``force``; none with ``check``), reporting each on
    stderr (``summary(record)``).  ``entry(label)`` gives the status and a function computing (record, path);
    ``executor`` (:mod:`suite.grid.executors`; default: in this process) runs those functions, which must then
    pickle.  Each record is written as it is computed, so a run that stops resumes where it stopped; one that
    fails (not confirmed, a trajectory diverged, any error) is reported and the others go on.  Exit 1 if any is
    not fresh at the end (shared with ``lyapbench references`` and ``lyapbench dysts references``)."""
    bad, todo = [], []
    for n, label in enumerate(labels, 1):
        st, compute = entry(label)
        if check or (st == "fresh" and not force):
            print(f"[{n}/{len(labels)}] {label}: {st}", file=sys.stderr, flush=True)
            if st != "fresh":
                bad.append(f"{label}: {st}")
        else:
            todo.append((n, label, compute))
    for i, value, exc, seconds in (executor or InProcess()).run_calls([c for _, _, c in todo]):
        n, label, _ = todo[i]
        where = f"[{n}/{len(labels)}] {label}"
        if exc is not None:
            bad.append(f"{label}: {exception_line(exc)}")
            print(f"{where}: FAILED {exception_line(exc)}", file=sys.stderr, flush=True)
            continue
        rec, path = value
        print(f"{where}: {summary(rec)} ({seconds:.0f} s) -> {path}", file=sys.stderr, flush=True)
    for line in bad:
        print(f"NOT FRESH {line}", file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK


def run(args) -> int:
    set_threads(args.threads)
    systems = {s.label: s for s in computed_systems(args.systems)}

    def entry(label):
        system = systems[label]

        def compute():
            rec = compute_system(system, device=args.device)
            return rec, computed.reference_path(rec["key"])
        return system.meta.get("reference_status", "missing"), compute
    return refresh(list(systems), entry, check=args.check, force=args.force)
