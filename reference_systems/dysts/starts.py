"""Each dysts flow's orbit, stored so that trajectories start at spread phases: written to ``starts.json``.

    python -m reference_systems.dysts.starts [--flows Lorenz,Rossler] [--jobs 2]     # all: 20 min on two cores

A flow's orbit from dysts's initial condition (exactly, float64), stepped by RK4 at dominant period /
:data:`~.build.ORBIT_STEPS_PER_PERIOD` for :data:`~.build.START_PERIODS` periods, stored
:data:`~.build.STATES_PER_PERIOD` times a period.  :func:`.build.along_orbit` starts each trajectory at its own
uniform random time along it.  Trajectories started around a single point decorrelate in amplitude over the
transient but, on a phase-coherent flow, not in phase: docs/dysts.md, "Phase-coherent trajectories".  An orbit
that leaves the finite numbers is stored up to its last finite state (none has).  Deterministic; needs torch only.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional

import torch

from reference_systems.dysts.build import (ORBIT_STEPS_PER_PERIOD, PERTURBATION, START_PERIODS, STARTS_PATH as PATH,
                                           STATES_PER_PERIOD, attractor_scale, build, initial_condition, row,
                                           spread_starts, starts_table)
from reference_systems.noise import TrajectoryRNG
from reference_systems.dysts.steps import each_flow

#: each flow's perturbation (attractor standard deviations) is :data:`~.build.PERTURBATION` divided by 10 until
#: none of ESCAPE_BATCH starts leaves the finite numbers within ESCAPE_PERIODS periods at the flow's default dt
#: (at most down to SMALLEST): at 1e-3, 7 of SprottJerk's 256 escaped within 5 periods, all from starts 5.6 to 6.7
#: periods along its orbit, where its basin's boundary passes near; at 1e-4 none did in 50 periods
ESCAPE_BATCH, ESCAPE_PERIODS, ESCAPE_SEED, SMALLEST = 256, 10, 20261205, 1e-6
#: how the orbit is computed (the table's rule)
RULE_FROM = "dysts's initial condition"
#: significant digits stored: the starts are perturbed by 1e-3 attractor standard deviations at once
DIGITS = 12


@torch.no_grad()
def orbit(name: str) -> Dict[str, object]:
    """Flow ``name``'s orbit: ``{'spacing': time between stored states, 'every': RK4 steps between them,
    'states': [...]}``."""
    flow = build(name, dt=float(row(name)["period"]) / ORBIT_STEPS_PER_PERIOD)
    every = ORBIT_STEPS_PER_PERIOD // STATES_PER_PERIOD
    x = initial_condition(name, flow.dim).unsqueeze(0)
    states = []
    for _ in range(START_PERIODS * STATES_PER_PERIOD):
        if not bool(torch.isfinite(x).all()):
            break
        states.append([float(f"{v:.{DIGITS}g}") for v in x[0].tolist()])
        for _ in range(every):
            x = flow.step(x)
    spacing = every * flow.dt
    return {"spacing": spacing, "every": every, "perturbation": perturbation(name, states, spacing), "states": states}


@torch.no_grad()
def perturbation(name: str, states: List[List[float]], spacing: float) -> float:
    """The largest of PERTURBATION, PERTURBATION / 10, ... (at least SMALLEST) whose starts along ``states`` all
    stay finite for ESCAPE_PERIODS periods at the flow's default dt (:data:`ESCAPE_BATCH` of them)."""
    flow, orbit = build(name), torch.tensor(states, dtype=torch.float64)
    scale = attractor_scale(name, flow.dim)
    size = PERTURBATION
    while size > SMALLEST * 1.5:
        x = spread_starts(flow.rhs, orbit, spacing, flow.dt, scale, size, TrajectoryRNG(ESCAPE_SEED, ESCAPE_BATCH))
        for _ in range(math.ceil(ESCAPE_PERIODS * float(row(name)["period"]) / flow.dt)):
            x = flow.step(x)
        if bool(torch.isfinite(x).all()):
            return size
        size /= 10
    return SMALLEST


def main(argv: Optional[List[str]] = None) -> None:
    flows = dict(starts_table())
    for name, stored in each_flow(orbit, argv, __doc__.split("\n")[0]):
        flows[name] = stored
        print(f"{name}: {len(stored['states'])} states, perturbation {stored['perturbation']:g}", flush=True)
    write(flows)


def write(flows: Dict[str, dict]) -> None:
    """The table, a line per flow (readable diffs), with the module's rule."""
    rule = {"periods": START_PERIODS, "states_per_period": STATES_PER_PERIOD,
            "steps_per_period": ORBIT_STEPS_PER_PERIOD, "digits": DIGITS, "from": RULE_FROM,
            "escape": {"batch": ESCAPE_BATCH, "periods": ESCAPE_PERIODS, "seed": ESCAPE_SEED, "smallest": SMALLEST}}
    with open(PATH + ".tmp", "w") as handle:
        handle.write('{"rule": ' + json.dumps(rule) + ',\n "flows": {\n')  # a line per flow, for readable diffs
        handle.write(",\n".join(f"  {json.dumps(n)}: {json.dumps(flows[n], separators=(',', ':'))}"
                                 for n in sorted(flows)) + "\n }\n}\n")
    os.replace(PATH + ".tmp", PATH)


if __name__ == "__main__":
    main()
