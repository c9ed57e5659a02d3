"""``lyapbench estimate``: exponents to a requested accuracy (:func:`suite.studies.accuracy.estimate_to_accuracy`).

    lyapbench estimate --systems henon,lorenz63 --eps 1e-3 [--estimators qr] [--k K] [--max-seconds S]
                       [--system-file F] [--tasks T]

For each system and estimator: every exponent within ``--eps`` of the truth with probability 1 - alpha
(0.95 by default), its half-width (Student-t multiple of the standard error plus the finite-time bias
bound) and what was run (attempts, trajectories, steps, seconds).  A system with a reference also gets
the error against it.  A run that fails (a diverging trajectory, an estimator not applicable, a plug-in's
exception) becomes one row with its ``error`` and the others go on.  Writes ``estimate.csv`` /
``estimate.md``.  Exit 0 when every run reached ``--eps``, 1 when one did not (within ``--max-seconds``)
or failed, 2 for bad usage.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List

from suite import estimators
from suite.cli.options import (EXIT_FAIL, EXIT_OK, add_single_run, add_systems, add_tasks, check_up_front,
                               select_systems, set_threads)
from suite.core.args import check_int, check_number, check_positive, check_seed
from suite.core.errors import InvalidArgumentError
from suite.core.specs import split_flag
from suite.reporting.tables import atomic_write, markdown, text_table, write_csv
from suite.studies.accuracy import AccuracyWarning, estimate_to_accuracy

COLUMNS = ["system", "estimator", "index", "estimate", "half_width", "stderr", "reference", "abs_error",
           "reached", "batch", "steps", "T", "attempts", "seconds", "error"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("estimate", help="exponents to a requested accuracy: every one within --eps of the "
                                               "truth with probability 0.95 (batch and length chosen for you)")
    add_systems(p, "comma-separated system names, each optionally with parameters, e.g. henon,lorenz63(dt=0.04) "
                   "(a bare name runs its validation variants)")
    p.add_argument("--system-file", action="append", metavar="FILE|module:attr",
                   help="add a user's systems (a .py file or module:attr); repeatable")
    add_tasks(p, "comma-separated task ids, globs ('rnn/*') or tags")
    p.add_argument("--eps", type=float, required=True, help="the accuracy, nats (per step for maps, per unit time "
                                                             "for flows)")
    p.add_argument("--estimators", "--estimator", dest="estimators", help="comma-separated estimators (default: qr)")
    p.add_argument("--k", type=int, help="number of exponents, largest first (default: the estimator's)")
    p.add_argument("--max-seconds", type=float, help="wall-clock budget per system and estimator (default: none)")
    p.add_argument("--alpha", type=float, default=0.05, help="error probability over the exponents (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    add_single_run(p)
    return p


def rows_of(system, name: str, res) -> List[Dict[str, Any]]:
    acc = res.meta["accuracy"]
    ref = system.reference
    out = []
    for i, (e, s, h) in enumerate(zip(res.exponents, res.stderr, acc["half_width"])):
        r = float(ref.values[i]) if ref is not None and i < ref.values.size else None
        out.append({"system": system.label, "estimator": name, "index": i + 1, "estimate": float(e),
                    "half_width": float(h), "stderr": float(s), "reference": r,
                    "abs_error": None if r is None else abs(float(e) - r), "reached": acc["reached"],
                    "batch": res.meta["batch"], "steps": res.meta["steps"], "T": res.meta["T"],
                    "attempts": len(acc["runs"]), "seconds": acc["seconds"]})
    return out


def run(args) -> int:
    set_threads(args.threads)
    if not (args.systems or args.system_file or args.tasks):
        raise InvalidArgumentError("--systems", None, "one or more system names (comma-separated), or "
                                   "--system-file / --tasks")
    eps = check_positive("--eps", args.eps, allowed="a number > 0")
    check_number("--alpha", args.alpha, low=0.0, high=1.0, low_open=True, high_open=True,
                 allowed="a number in (0, 1)")
    check_number("--max-seconds", args.max_seconds, low=0.0, low_open=True, allow_none=True,
                 allowed="a finite number > 0 (seconds), or left out (no limit)")
    k = check_int("--k", args.k, 1, allow_none=True)
    seed = check_seed("--seed", args.seed)
    names = split_flag(args.estimators, "--estimators") or ["qr"]
    device, (dtype,) = check_up_front(names, args.device, [args.dtype])
    systems = select_systems(args)
    rows: List[Dict[str, Any]] = []
    for system in systems:
        for name in names:
            estimators.from_spec(name)  # an unknown name or a bad spec is a usage error before anything runs
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", AccuracyWarning)  # printed below, with the reason
                    # the name itself: a plain "qr" gets the automatic settings and the measured bias bound
                    res = estimate_to_accuracy(system, eps, estimator=name, k=k, seed=seed, device=device,
                                               dtype=dtype, max_seconds=args.max_seconds, alpha=args.alpha)
            except Exception as exc:  # noqa: BLE001 - one failing run is a row; the others go on
                message = f"{type(exc).__name__}: {exc}"
                rows.append({"system": system.label, "estimator": name, "reached": False, "error": message})
                print(f"{system.label} / {name}: FAILED: {message}", file=sys.stderr)
                continue
            new = rows_of(system, name, res)
            rows += new
            acc = res.meta["accuracy"]
            print(f"{system.label} / {name}: {'reached' if acc['reached'] else 'NOT reached'} eps = {eps:g} "
                  f"in {acc['seconds']:.2f} s ({len(acc['runs'])} run{'s' if len(acc['runs']) > 1 else ''}; the last "
                  f"{res.meta['batch']} "
                  f"trajectories x {res.meta['steps']} steps){'' if acc['reached'] else ': ' + acc['reason']}")
            print(text_table(new, ["index", "estimate", "half_width", "reference", "abs_error"]))
    if not args.no_write:
        folder = Path(args.output_dir)
        write_csv(rows, folder / "estimate.csv", COLUMNS)
        atomic_write(folder / "estimate.md", f"# Exponents to eps = {eps:g} (alpha = {args.alpha:g})\n\n"
                     "Every exponent within eps of the truth with probability 1 - alpha "
                     "(suite.studies.accuracy.estimate_to_accuracy); half_width = t * stderr + bias_nats / T.\n\n"
                     + markdown(rows, COLUMNS) + "\n")
        print(f"wrote {folder / 'estimate.csv'} and {folder / 'estimate.md'}")
    return EXIT_OK if all(r["reached"] for r in rows) else EXIT_FAIL  # reached: every half-width <= eps, no error
