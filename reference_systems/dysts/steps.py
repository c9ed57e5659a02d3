"""Each dysts flow's default RK4 step, chosen by a scan and written to ``steps.json``.

    python -m reference_systems.dysts.steps [--flows Lorenz,Rossler] [--jobs 2]     # all: ~5 min on two cores

A flow's default ``dt`` is its dominant period / n, with n a rung of :data:`LADDER` at which :data:`SCAN_BATCH`
trajectories from the flow's initial states (:mod:`.build`), stepped for :data:`SCAN_PERIODS` periods,

1. stay finite (a trajectory escaping to infinity fails the next test long before it overflows; flows on a torus,
   e.g. ArnoldBeltramiChildress, drift without bound and are fine), and
2. have a mean local error per step, estimated by step doubling (one step of dt against two of dt / 2, times
   16 / 15, in units of the attractor's standard deviation per variable, largest variable), of at most
   :data:`LOCAL_ERROR`.

n is the first rung if it passes; else the first rung that passes at or above the one the first rung's local
error predicts by RK4's order (:func:`choose`; every rung in turn where the first diverged).  A flow that passes
no rung gets the last one, flagged.  The rule only picks a step that is cheap and stable: the
references (:mod:`suite.studies.dysts_references`) test each flow's step again against twice and half of it.
The scan is deterministic (fixed seed, float64) and needs torch only, not dysts.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import math
import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from reference_systems.dysts import written
from reference_systems.dysts.build import STEPS_PATH as PATH, build, row, steps_table
from reference_systems.noise import TrajectoryRNG

#: RK4 steps per dominant period tried, coarsest first
LADDER = (100, 200, 500, 1000, 2000)
#: trajectories and periods of each rung's run
SCAN_BATCH, SCAN_PERIODS = 8, 10
#: the largest mean local error per step allowed, in attractor standard deviations (Lorenz: 2e-6 at 100 steps a
#: period, 6e-8 at 200); the references check the step's effect on the exponents directly
LOCAL_ERROR = 1e-6
#: a local error above this (attractor standard deviations) means the trajectories left the attractor: no
#: prediction from that rung (RK4's order holds only where the step resolves the flow)
DIVERGED = 1.0
#: the scan's seed
SEED = 20261205


def scan_rung(name: str, n: int) -> Dict[str, object]:
    """One rung: ``{'n', 'finite', 'local_error'}`` for dysts's flow ``name`` at period / n."""
    entry = row(name)
    period = float(entry["period"])
    coarse, fine = build(name, dt=period / n), build(name, dt=period / (2 * n))
    d = int(entry["dim"])
    std = torch.tensor([s if s and math.isfinite(s) and s > 0 else 1.0 for s in entry["std"]], dtype=torch.float64)
    x = coarse.sample_initial(SCAN_BATCH, TrajectoryRNG(SEED, SCAN_BATCH)).to(torch.float64)
    total, count = 0.0, 0
    with torch.no_grad():
        for _ in range(SCAN_PERIODS * n):
            y = coarse.step(x)
            z = fine.step(fine.step(x))
            if not bool(torch.isfinite(y[:, :d]).all() and torch.isfinite(z[:, :d]).all()):
                return {"n": n, "finite": False, "local_error": math.inf}
            err = ((y[:, :d] - z[:, :d]).abs() / std).amax(dim=1) * 16 / 15
            total, count = total + float(err.sum()), count + SCAN_BATCH
            x = y
    return {"n": n, "finite": True, "local_error": total / count}


def choose(name: str) -> Dict[str, object]:
    """The first rung of :data:`LADDER` that passes, with the rungs scanned: the first, then (where it fails but
    stays finite) the rung its local error predicts by RK4's order (local error ~ dt^5), then each finer one."""
    rungs = [scan_rung(name, LADDER[0])]
    first = rungs[0]["local_error"]
    predicted = LADDER[0] * (first / LOCAL_ERROR) ** (1 / 5) if first <= DIVERGED else 0  # else: every rung

    def passed(rung):
        return rung["finite"] and rung["local_error"] <= LOCAL_ERROR
    for n in LADDER[1:]:
        if passed(rungs[-1]):
            break
        if n >= predicted or n == LADDER[-1]:
            rungs.append(scan_rung(name, n))
    ok = passed(rungs[-1])
    return {"steps_per_period": rungs[-1]["n"] if ok else LADDER[-1], "passed": ok, "rungs": rungs}


def each_flow(fn: Callable[[str], dict], argv: Optional[List[str]], description: str) -> Iterator[Tuple[str, dict]]:
    """``(name, fn(name))`` for the flows of the command line (``--flows``, default all; ``--jobs`` processes of
    one torch thread each), as they finish: the table writers' loop (this module's and :mod:`.starts`)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--flows", help="comma-separated dysts class names (default: all; others keep their rows)")
    p.add_argument("--jobs", type=int, default=1, help="processes at once (default 1)")
    args = p.parse_args(argv)
    names = args.flows.split(",") if args.flows else written()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max(1, args.jobs), mp_context=context,
                                                initializer=torch.set_num_threads, initargs=(1,)) as pool:
        futures = {pool.submit(fn, name): name for name in names}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


def main(argv: Optional[List[str]] = None) -> None:
    flows = dict(steps_table())
    for name, chosen in each_flow(choose, argv, __doc__.split("\n")[0]):
        _write(flows, name, chosen)


def _write(flows: Dict[str, dict], name: str, chosen: dict) -> None:
    """Add a flow's row and rewrite the table at once (an interrupted scan keeps what it found)."""
    flows[name] = chosen
    print(f"{name}: {chosen['steps_per_period']}" + ("" if chosen["passed"] else " (no rung passed)"), flush=True)
    rule = {"ladder": list(LADDER), "batch": SCAN_BATCH, "periods": SCAN_PERIODS, "local_error": LOCAL_ERROR,
            "seed": SEED}
    with open(PATH + ".tmp", "w") as handle:
        json.dump({"rule": rule, "flows": dict(sorted(flows.items()))}, handle, indent=1)
        handle.write("\n")
    os.replace(PATH + ".tmp", PATH)


if __name__ == "__main__":
    main()
