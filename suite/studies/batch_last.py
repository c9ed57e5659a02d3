"""Compiled large units side by side in one process: with and without the batch-last rewrite, or in shards and whole.

    python -m suite.studies.batch_last [--compare layout|shards] [--batch 4096] [--threads 2] [--rounds 10]

For each estimator, two runs each compile the first interval unit (``units.intervals``) of a Lorenz-63 run
(float64), one with each choice of ``--compare``:

* ``layout``: from the rewritten graph (:mod:`suite.estimators.numerics.batch_last`) and from the recording as it
  is (``batch_of`` replaced by one that asks for the rewrite, or for none), both whole;
* ``shards``: split in shards, one per thread (:mod:`suite.estimators.numerics.shards`), and whole (``planned``
  replaced by one that refuses), both rewritten where ``batch_of`` says so.

Then the two compiled units are called in turns, ``rounds`` rounds of 20 calls each on the unit's first inputs,
and the medians are printed: ms a call and the ratio second / first (above 1: the first choice is faster).
Measured on the 2-core CPU (docs/performance.md).  ``two_trajectory`` has no frames, so :func:`batch_of` leaves
its units as recorded in normal runs; ``layout`` forces the rewrite on it to show why.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch

import reference_systems as rs
from suite import estimators
from suite.core.specs import parse_spec, split_list
from suite.estimators.numerics import batch_last, capture, shards

CONTENDERS = ["qr", "qr(reorth_every=32)", "jvp_qr", "two_trajectory"]
#: the two choices each comparison times, first against second
CHOICES = {"layout": ("rewritten", "recorded"), "shards": ("sharded", "whole")}


def _compiled_unit(spec: str, batch: int, choice: str) -> Callable[[], None]:
    """A call of the first interval unit a run of ``spec`` compiles with ``choice`` (one of :data:`CHOICES`)."""
    found: List = []
    compile_recorded, batch_of, planned = capture.compile_recorded, batch_last.batch_of, shards.planned

    def spy(recorded, args, rng=None, identity=None, fn=None):
        out = compile_recorded(recorded, args, rng, identity, fn)
        if not found and "intervals" in str(identity) and out[0] is not None:
            found.append(lambda: out[0](args, rng))
        return out
    capture.compile_recorded = spy
    if choice in CHOICES["layout"]:
        batch_last.batch_of = lambda inputs: inputs[0].shape[0] if choice == "rewritten" else 0
        shards.planned = lambda inputs, device, threads=None: (None, "not sharded: the study compares layouts")
    elif choice == "whole":
        shards.planned = lambda inputs, device, threads=None: (None, "not sharded: the study's whole unit")
    try:
        name, params = parse_spec(spec, "estimators")
        estimator = estimators.get(name, **dict(params or {}, capture="compile"))
        estimator.estimate(rs.get("lorenz63"), 2000, transient=0, batch=batch, seed=0)
    finally:
        capture.compile_recorded, batch_last.batch_of, shards.planned = compile_recorded, batch_of, planned
    if not found:
        raise RuntimeError(f"{spec}: no interval unit was compiled (is compiling turned off? LYAPBENCH_COMPILE)")
    return found[0]


def side_by_side(spec: str, batch: int, rounds: int = 10, calls: int = 20, compare: str = "layout"
                 ) -> Dict[str, float]:
    """Median ms a call of the unit compiled with each choice of ``compare``, calls taking turns, and the ratio
    second / first."""
    first, second = CHOICES[compare]
    units = {choice: _compiled_unit(spec, batch, choice) for choice in (first, second)}
    times: Dict[str, List[float]] = {name: [] for name in units}
    for _ in range(rounds):
        for name, call in units.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    row = {name: statistics.median(t) for name, t in times.items()}
    row["ratio"] = row[second] / row[first]
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=sorted(CHOICES), default="layout")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--estimators", default=",".join(CONTENDERS), help="comma-separated estimator specs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    first, second = CHOICES[args.compare]
    print(f"| estimator | B | threads | {first} ms | {second} ms | {second} / {first} |\n|---|---|---|---|---|---|")
    for spec in split_list(args.estimators):
        row = side_by_side(spec, args.batch, args.rounds, compare=args.compare)
        print(f"| `{spec}` | {args.batch} | {args.threads} | {row[first]:.3f} | {row[second]:.3f} | "
              f"{row['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
