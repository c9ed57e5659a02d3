"""``lyapbench references``: compute or check the computed references of catalogue systems.

A catalogue system that declares ``reference_run`` (the chaotic random networks: no closed form for
the finite system) gets its reference from a long float64 QR run confirmed by two-trajectory
lambda_1 and autodiff tangents (:mod:`suite.studies.computed_references`), cached under
``results/references/systems__*.json`` with the probe that detects a stale one.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import List

import reference_systems as rs
from reference_systems import System, computed
from suite.cli.options import EXIT_FAIL, EXIT_OK, set_threads
from suite.core.errors import InvalidArgumentError
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


def run(args) -> int:
    set_threads(args.threads)
    systems = computed_systems(args.systems)
    bad = []
    for n, system in enumerate(systems, 1):
        st = system.meta.get("reference_status", "missing")
        where = f"[{n}/{len(systems)}] {system.label}"
        if args.check or (st == "fresh" and not args.force):
            print(f"{where}: {st}", file=sys.stderr, flush=True)
            if st != "fresh":
                bad.append(f"{system.label}: {st}")
            continue
        t0 = time.perf_counter()
        try:
            rec = compute_system(system, device=args.device)
        except ArithmeticError as exc:  # not confirmed, or a trajectory diverged: reported, nothing written
            bad.append(f"{system.label}: {exc}")
            print(f"{where}: FAILED {exc}", file=sys.stderr, flush=True)
            continue
        print(f"{where}: lambda_1 = {rec['values'][0]:.5g} +- {rec['uncertainty'][0]:.2g}, two-trajectory "
              f"{rec['routes']['two_trajectory']['lambda1']:.5g}"
              + (f", autodiff within {rec['routes']['autodiff']['max_abs_difference']:.1g}"
                 if "autodiff" in rec["routes"] else "")
              + f" ({time.perf_counter() - t0:.0f} s) -> {computed.reference_path(rec['key'])}",
              file=sys.stderr, flush=True)
    for line in bad:
        print(f"NOT FRESH {line}", file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK
