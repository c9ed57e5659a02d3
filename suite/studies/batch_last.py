"""Compiled units with and without the batch-last rewrite, side by side in one process.

    python -m suite.studies.batch_last [--batch 4096] [--threads 2] [--rounds 10]

For each estimator, one run compiles its unit from the rewritten graph
(:mod:`suite.estimators.numerics.batch_last`) and one from the recording as it is (its ``batch_of`` replaced
by one that asks for the rewrite, or for none); then the two compiled units are called in turns, ``rounds``
rounds of 20 calls each on the unit's first inputs, and the medians are printed: ms a call and the ratio
recorded / rewritten (above 1: the rewrite is faster).  Lorenz-63, float64; the units are those of a run's
intervals (``units.intervals``).  Measured on the 2-core CPU (docs/performance.md).  ``two_trajectory`` has no
frames, so :func:`batch_of` leaves its units as recorded in normal runs; the study forces the rewrite on it to
show why.
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
from suite.estimators.numerics import batch_last, capture

CONTENDERS = ["qr", "qr(reorth_every=32)", "jvp_qr", "two_trajectory"]


def _compiled_unit(spec: str, batch: int, rewrite: bool) -> Callable[[], None]:
    """A call of the first interval unit a run of ``spec`` compiles, with or without the rewrite."""
    found: List = []
    compile_recorded, batch_of = capture.compile_recorded, batch_last.batch_of

    def spy(recorded, args, rng=None, identity=None):
        out = compile_recorded(recorded, args, rng, identity)
        if not found and "intervals" in str(identity) and out[0] is not None:
            found.append(lambda: out[0](args, rng))
        return out
    capture.compile_recorded = spy
    batch_last.batch_of = lambda inputs: inputs[0].shape[0] if rewrite else 0
    try:
        name, params = parse_spec(spec, "estimators")
        estimator = estimators.get(name, **dict(params or {}, capture="compile"))
        estimator.estimate(rs.get("lorenz63"), 2000, transient=0, batch=batch, seed=0)
    finally:
        capture.compile_recorded, batch_last.batch_of = compile_recorded, batch_of
    if not found:
        raise RuntimeError(f"{spec}: no interval unit was compiled (is compiling turned off? LYAPBENCH_COMPILE)")
    return found[0]


def side_by_side(spec: str, batch: int, rounds: int = 10, calls: int = 20) -> Dict[str, float]:
    """Median ms a call of the rewritten and the recorded unit, calls taking turns, and their ratio."""
    units = {"rewritten": _compiled_unit(spec, batch, True), "recorded": _compiled_unit(spec, batch, False)}
    times: Dict[str, List[float]] = {name: [] for name in units}
    for _ in range(rounds):
        for name, call in units.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    row = {name: statistics.median(t) for name, t in times.items()}
    row["ratio"] = row["recorded"] / row["rewritten"]
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--estimators", default=",".join(CONTENDERS), help="comma-separated estimator specs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| estimator | B | threads | rewritten ms | recorded ms | recorded / rewritten |\n|---|---|---|---|---|---|")
    for spec in split_list(args.estimators):
        row = side_by_side(spec, args.batch, args.rounds)
        print(f"| `{spec}` | {args.batch} | {args.threads} | {row['rewritten']:.3f} | {row['recorded']:.3f} | "
              f"{row['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
