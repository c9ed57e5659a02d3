"""``lyapbench list``: the catalogue of reference systems and their references."""
from __future__ import annotations

import argparse

import numpy as np

import reference_systems as rs
from suite.cli.options import EXIT_OK, add_systems, split_flag
from suite.grid.selection import build_systems
from suite.reporting.tables import text_table

COLUMNS = ["name", "kind", "dim", "params", "provenance", "reference", "uncertainty", "source"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("list", help="show the catalogue of reference systems")
    add_systems(p, help="comma-separated names or shell patterns (default: the catalogue without the families "
                        "listed on request; 'dysts/*': the dysts flows; '*': everything)")
    return p


def _row(system: rs.System) -> dict:
    ref = system.reference
    return {
        "name": system.name, "kind": system.kind, "dim": system.dim,
        "params": ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in system.params.items() if k != "A"),
        "provenance": ref.provenance if ref else "none",
        "uncertainty": f"±{ref.uncertainty.max():.2g}" if ref else "",
        "reference": (np.array2string(ref.values[:5], precision=5, separator=", ")
                      + (" ..." if len(ref) > 5 else "")) if ref else "",
        "source": ref.source if ref else system.meta.get("note", ""),
    }


def run(args) -> int:
    systems = build_systems(split_flag(args.systems, "--systems")) if args.systems else rs.catalogue()
    print(text_table([_row(system) for system in systems], COLUMNS))
    return EXIT_OK
