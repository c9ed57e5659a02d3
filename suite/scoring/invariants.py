"""Invariant checks that hold for any system, reported beside the reference rows.

* **sum rule**: sum_i lambda_i = < ln|det DF(x)| > / dt, the mean rate of
  phase-space volume change along the dynamics (for a flow advanced by RK4,
  DF is the RK4 step's Jacobian, so the identity is exact for the map the
  estimator sees; it equals <div f> up to O(dt^4)).  The right-hand side is
  exact where the system states a constant ``log_abs_det`` (maps, e.g.
  Henon ln b), otherwise it is measured on independent trajectories
  (seed + 1) and carries its own standard error.  Needs the full spectrum.
  An estimator that integrates the flow itself (``meta['integrates'] ==
  'flow'``, e.g. jitcode's adaptive solver) is compared with the flow's
  constant divergence where the system states one, and not checked otherwise.
* **zero exponent**: an autonomous flow off a fixed point has an exponent 0
  (the direction along the flow).  The exponent closest to 0 is compared
  with 0.  Its boundary term is known: the flow direction grows by exactly
  ln(|f(x_T)| / |f(x_0)|) over a run, so its bias bound is b plus the mean of
  that log speed ratio over the volume run's trajectories (same transient and
  steps; near 0 where independent trajectories sample the attractor, not where
  they share a periodic orbit's phase: dysts's KawczynskiStrizhak, --quick,
  2.3 nats over T = 44, its zero exponent estimated at 0.062).  Skipped
  where the system states ``zero_exponent=False`` or where the independent
  trajectories sit on or converge to a fixed point (at the end
  |f(x)| < 1e-6 (1 + |x|) on all of them, or every one's speed |f| fell
  1000-fold since its initial state; an attractor with motion does not shrink
  every trajectory's speed that much).
* **symplectic pairing**: for a map declared ``symplectic=True``,
  lambda_i + lambda_{d+1-i} = 0 for i = 1..d/2.  Needs the full spectrum.

Each check is a row with the same columns as an exponent row and is judged
by the same tolerance rule (suite.scoring.tolerance), with the bias term of the
quantity (0 for the sum: the sum of ln R_ii over a full frame is ln|det| of
the product exactly, with no boundary term; 2 b / T for a pair) plus a
floating-point round-off term.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from reference_systems import System, TrajectoryRNG
from suite.core.devices import resolve_device, resolve_dtype
from suite.core.result import LyapunovResult
from suite.scoring.rows import base_row, judge
from suite.scoring.tolerance import DEFAULT_BIAS_NATS, derive, t_quantile

FIXED_POINT_RTOL = 1e-6   # |f(x)| / (1 + |x|) below this: at rest
FIXED_POINT_DECAY = 1e-3  # or every trajectory's speed fell 1000-fold since its start: converging to rest


@dataclass
class VolumeRate:
    """<ln|det DF|>/dt on independent trajectories: mean, stderr, dof; end states' speed; for a flow the mean over
    the trajectories of ln(|f(x_end)| / |f(x_start)|) over the measured steps (0 for a map)."""
    mean: float
    stderr: float
    dof: int
    at_fixed_point: bool
    log_speed_ratio: float = 0.0


@torch.no_grad()
def volume_rate(system: System, steps: int, *, transient: int = 0, batch: int = 8, seed: int = 1,
                device="cpu", dtype=torch.float64) -> VolumeRate:
    """Mean of (1/(steps dt)) sum_t ln|det DF(x_t)| over ``batch`` independent trajectories."""
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    rng = TrajectoryRNG(seed, batch, device=device)
    x = system.sample_initial(batch, rng).to(device, dtype)
    speed0 = system.rhs(x).norm(dim=1) if system.kind == "flow" else None
    for _ in range(transient):
        x = system.step(x, rng)
    start = system.rhs(x).norm(dim=1) if system.kind == "flow" else None
    eye = torch.eye(system.dim, dtype=dtype, device=device).expand(batch, -1, -1).contiguous()
    total = torch.zeros(batch, dtype=torch.float64, device=device)
    for _ in range(steps):
        x, J = system.tangent(x, eye, rng)
        total += torch.linalg.slogdet(J.to(torch.float64)).logabsdet
    rates = (total / (steps * system.dt)).cpu().numpy()
    if not np.all(np.isfinite(rates)):
        gone = int((~torch.isfinite(x).all(dim=1)).sum())
        raise ArithmeticError(
            f"ln|det DF| is not finite along the trajectories of {system.label!r}" + (
                f": {gone} of the sum rule's {batch} trajectories (seed {seed}) diverged (a non-finite state), so "
                "sample_initial draws states outside the attractor's basin (give the system a domain, or a "
                "sample_initial on the attractor)" if gone else ": the Jacobian is singular along them"))
    at_fp, ratio = False, 0.0
    if system.kind == "flow":
        speed = system.rhs(x).norm(dim=1)
        at_fp = bool((speed / (1 + x.norm(dim=1)) < FIXED_POINT_RTOL).all()
                     or (speed < FIXED_POINT_DECAY * speed0).all())
        if not at_fp:
            ratio = float(torch.log(speed / start).mean())
    stderr = float(rates.std(ddof=1) / math.sqrt(batch)) if batch > 1 else 0.0
    return VolumeRate(float(rates.mean()), stderr, batch - 1, at_fp, ratio)


_VOLUME_CACHE: Dict[tuple, VolumeRate] = {}


def _cached_volume_rate(system: System, settings: Dict[str, Any]) -> VolumeRate:
    """The volume-rate run for a cell, shared by every estimator run on the same system and settings.

    After the cell's transient, up to 64 trajectories, seed + 1: a map's over steps / 8 steps (at least 100), a
    flow's over the cell's steps (its divergence follows the orbit's phase, which trajectories started near one
    initial state share for a while: dysts's AtmosphericRegime, whose --quick run is half a period, had a mean
    ln|det| rate of +0.15 over the first eighth of it against -0.95 over the run).
    """
    steps = settings["steps"] if system.kind == "flow" else max(100, settings["steps"] // 8)
    kw = dict(steps=steps, transient=settings.get("transient", 0),
              batch=max(2, min(settings.get("batch", 8), 64)), seed=int(settings.get("seed", 0)) + 1,
              device=str(settings.get("device", "cpu")), dtype=str(settings.get("dtype", "float64")))
    key = (id(system), system.label) + tuple(sorted(kw.items()))
    if key not in _VOLUME_CACHE:
        if len(_VOLUME_CACHE) > 256:
            _VOLUME_CACHE.clear()
        _VOLUME_CACHE[key] = volume_rate(system, **kw)
    return _VOLUME_CACHE[key]


def zero_exponent_index(exponents) -> int:
    """The index of a flow's zero exponent: the exponent closest to 0 (an autonomous flow off its fixed points
    has one, along the flow; which one it is is not known in advance)."""
    return int(np.argmin(np.abs(np.asarray(exponents, dtype=float))))


def _spread(values: np.ndarray, fallback: float) -> float:
    """Standard error of the mean of per-trajectory values (fallback for one trajectory)."""
    return float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else fallback


def invariant_rows(system: System, estimator: str, result: LyapunovResult,
                   settings: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Rows for every invariant that applies to ``system`` and ``result``."""
    per = result.per_trajectory
    k, d = result.k, system.dim
    declared = result.declared
    steps = settings["steps"] if declared.steps is None else declared.steps
    T = steps * system.dt
    dof = declared.stderr_dof
    dtype = declared.dtype or settings.get("dtype", "float64")
    base = base_row(system, estimator, result.meta)
    base.update(wall_seconds=result.wall_seconds, stderr_dof=dof)
    scale = float(np.abs(result.exponents).sum()) + 1.0
    rows = []
    bias = system.reference.bias_nats if system.reference is not None else DEFAULT_BIAS_NATS

    vol: Optional[VolumeRate] = None
    caps = system.capabilities
    if k == d and (caps.log_abs_det is None or system.kind == "flow"):
        vol = _cached_volume_rate(system, settings)

    # an estimator that integrates the flow itself (a peer library's adaptive ODE solver) is held
    # to the flow's divergence, not to that of the RK4 map the built-in estimators follow
    of_flow = system.kind == "flow" and declared.integrates == "flow"
    if k == d and not (of_flow and caps.divergence is None):
        sums = per.sum(axis=1)
        est, se = float(sums.mean()), _spread(sums, float(result.stderr.sum()))
        if of_flow:
            ref, u_ref, how = caps.divergence, 0.0, "div f of the flow (exact constant)"
        elif caps.log_abs_det is not None:
            ref, u_ref, how = caps.log_abs_det / system.dt, 0.0, "ln|det DF| (exact constant)"
        else:
            ref, u_ref = vol.mean, t_quantile(vol.dof) * vol.stderr
            how = f"<ln|det DF|>/dt on {vol.dof + 1} independent trajectories: {vol.mean:.6g} ± {vol.stderr:.2g}"
        # an estimator's stated systematic bound on each exponent bounds the sum by their sum
        method_bias = float(np.sum(declared.method_bias))
        if of_flow and declared.rtol:
            # an adaptive solver's local error control (relative rtol per accepted step on the state
            # and each tangent vector) lets ln|det| of the frame drift by <= d * rtol per step; at
            # most 1e3 accepted steps per unit time on the catalogue's flows (dopri5, rtol 1e-10)
            method_bias += d * declared.rtol * 1e3
        # the sum of ln R_ii over a full frame is ln|det| of the product exactly: no boundary term
        tol = derive(uncertainty=u_ref, stderr=se, dof=dof, bias_nats=0.0, method_bias=method_bias,
                     exact_scale=scale, n=d, dtype=dtype, dt=system.dt, steps=steps).total
        rows.append(judge(dict(base, quantity="sum rule", index=0, message=f"sum of exponents vs {how}"),
                          ref, u_ref, est, se, tol))

    zero_declared = caps.zero_exponent
    # with k < d the zero exponent may not be among those estimated: only full spectra are checked
    if system.kind == "flow" and k == d and zero_declared is not False and (zero_declared or not vol.at_fixed_point):
        # the reference's zero exponent where it gives the whole spectrum: picking the estimate closest to 0 lets a
        # spectrum that misplaces it pass (HyperLu's [0.97, 0.05, -0.6, -18.4] against [0.97, 0.32, -0.007, -19.0])
        by_reference = system.reference is not None and len(system.reference.values) == k
        i = zero_exponent_index(system.reference.values if by_reference else result.exponents)
        est, se = float(result.exponents[i]), float(result.stderr[i])
        tol = derive(stderr=se, dof=dof, T=T, bias_nats=bias + abs(vol.log_speed_ratio), exact_scale=scale, n=1,
                     dtype=dtype, dt=system.dt, steps=steps).total
        rows.append(judge(dict(base, quantity="zero exponent", index=i + 1,
                               message="autonomous flow off a fixed point: the exponent closest to 0 in the "
                                       f"{'reference' if by_reference else 'estimate'} (bias bound {bias:.3g} + "
                                       f"the mean log speed ratio {vol.log_speed_ratio:.3g} nats)"),
                          0.0, 0.0, est, se, tol))

    if caps.symplectic and k == d and d % 2 == 0:
        for i in range(d // 2):
            pair = per[:, i] + per[:, d - 1 - i]
            est, se = float(pair.mean()), _spread(pair, float(result.stderr[i] + result.stderr[d - 1 - i]))
            tol = derive(stderr=se, dof=dof, T=T, bias_nats=2 * bias, exact_scale=scale, n=2, dtype=dtype,
                         dt=system.dt, steps=steps).total
            rows.append(judge(dict(base, quantity="symplectic pair", index=i + 1,
                                   message=f"lambda_{i + 1} + lambda_{d - i} = 0 (symplectic map)"),
                              0.0, 0.0, est, se, tol))
    return rows
