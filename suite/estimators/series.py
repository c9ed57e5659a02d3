"""Scalar time series observed from a system, for the time-series estimators.

The suite generates the data itself: ``observe`` draws ``batch`` initial
states exactly as every other estimator does (``system.sample_initial``
seeded from the run's seed), runs the transient with ``system.step`` and then
records one coordinate of the state every ``every`` steps.  The series are
float64 numpy arrays of shape (B, n); their sampling interval is
``every * system.dt`` (steps for maps, time units for flows), so exponents
fitted per sample are divided by it to give the suite's units.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from reference_systems import System
from suite.core.args import check_int
from suite.estimators.base import check_finite


def check_coordinate(system: System, coordinate) -> int:
    return check_int("coordinate", coordinate, 0, system.dim - 1,
                     allowed=f"an integer in 0..{system.dim - 1} (a coordinate of {system.name!r})")


@torch.no_grad()
def run_transient(system: System, x: torch.Tensor, rng, cfg) -> torch.Tensor:
    """Advance ``x`` by ``cfg.transient`` steps of ``system.step``, checking it every 100 steps.

    A trajectory that diverges or leaves the domain raises
    :class:`~suite.core.errors.TrajectoryError` naming the step and the trajectory.
    """

    check_finite(system, x, None, 0, 0, cfg)
    last = 0
    for t in range(1, cfg.transient + 1):
        x = system.step(x, rng)
        if t % 100 == 0 or t == cfg.transient:
            check_finite(system, x, None, t, last, cfg)
            last = t
    return x


@torch.no_grad()
def observe(system: System, cfg, n: int, *, coordinate: int = 0, every: int = 1) -> Tuple[np.ndarray, float]:
    """``n`` samples of ``x[:, coordinate]`` after ``cfg.transient`` steps, every ``every`` steps.

    ``cfg`` is the run's :class:`~suite.estimators.base.RunConfig` (batch,
    seed, device, dtype).  Returns the (B, n) float64 series and the sampling
    interval ``every * dt``.  A trajectory that diverges or leaves the
    system's domain raises :class:`~suite.core.errors.TrajectoryError` naming the
    step and the trajectory.
    """

    coordinate = check_coordinate(system, coordinate)
    every = check_int("every", every, 1, unit=" (steps between samples)")
    rng = cfg.rng()
    x = run_transient(system, system.sample_initial(cfg.batch, rng).to(cfg.device, cfg.dtype), rng, cfg)
    last = cfg.transient
    out = torch.empty(cfg.batch, n, dtype=cfg.dtype, device=cfg.device)
    t = cfg.transient
    for i in range(n):
        for _ in range(every):
            x = system.step(x, rng)
            t += 1
        out[:, i] = x[:, coordinate]
        if (i + 1) % 100 == 0 or i == n - 1:
            check_finite(system, x, None, t, last, cfg)
            last = t
    return out.cpu().to(torch.float64).numpy(), every * system.dt
