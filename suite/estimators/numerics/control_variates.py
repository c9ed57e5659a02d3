"""Boundary control variates: the finite-time boundary term of a batch of exponents, regressed out.

Part of a trajectory's log growth is a coboundary, g(z_{n+1}) - g(z_n) for
a function g of the state and the frame z = (x, Q); it sums to a boundary
term (g(z_T) - g(z_0)) / T that dominates the spread of short trajectories.
With the run's weights w_n (1 without a taper), the weighted boundary
functional of a feature phi,

    C_phi = sum_n (w_{(n-1, n]} - w_{(n, n+1]}) phi(z_n) / (dt sum_n w_n s_n),

has mean exactly 0 on a stationary trajectory: a zero-mean control variate
(Glasserman, Monte Carlo Methods in Financial Engineering, Springer 2004,
sec. 4.1; Henderson, PhD thesis, Stanford 1997).  Each exponent's
per-trajectory estimate is corrected, lambda_b' = lambda_b - beta^T C_b,
with beta cross-fitted over two halves of the batch (each half corrected
with the other's fit), so the corrected mean stays unbiased.  Batches below
``MIN_TRAJECTORIES_PER_FEATURE`` x p are refused.

Each exponent's correction is kept only where it holds up on the batch:
its shift (C beta) must have a mean consistent with 0 (Student-t test at
family-wise level ``REJECT_LEVEL`` over the k exponents; a mean far from 0
says the features are not zero-mean: a state ensemble not yet stationary,
or states that grow without bound), and it must lower the variance.  An
exponent that fails either keeps its plain estimate; ``meta`` says which
and why, and a failed mean test warns.

Features phi(x, Q): the state's coordinates, their products x_i x_j
(i <= j), the products q_i q_j of each frame column, and for a flow with an
``rhs`` ln |f(x)|: p = d + (k + 1) d (d + 1) / 2 (+ 1).  The frame is the QR
frame (``qr``, ``jvp_qr``) or the separation's direction (``two_trajectory``).
Units follow the exponents: natural log, per step for maps, per unit time
for flows.  A state ensemble that is not yet stationary biases more than
the boundary: the transient is still needed.  Measured variance reductions
(Lorenz-63): docs/estimators.md.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Tuple

import numpy as np
import torch
from scipy import stats

from reference_systems import System
from suite.core.errors import InvalidArgumentError

MIN_TRAJECTORIES_PER_FEATURE = 20
#: family-wise probability (over an estimate's k exponents) that a correction whose features do have mean 0 is
#: refused by the mean test of :func:`cross_fitted` (a refusal costs variance, never bias)
REJECT_LEVEL = 1e-3


def min_batch(system: System, k: int) -> int:
    """The fewest trajectories control variates accept for ``system`` at k (MIN_TRAJECTORIES_PER_FEATURE per
    feature)."""
    return MIN_TRAJECTORIES_PER_FEATURE * feature_count(system, k)


def check_batch(system: System, k: int, batch: int) -> None:
    """Refuse a batch too small to fit the coefficients (MIN_TRAJECTORIES_PER_FEATURE per feature)."""
    p = feature_count(system, k)
    if batch < min_batch(system, k):
        raise InvalidArgumentError("batch", batch, f">= {MIN_TRAJECTORIES_PER_FEATURE * p} with control_variates="
                                   f"True ({MIN_TRAJECTORIES_PER_FEATURE} trajectories for each of the {p} boundary "
                                   f"features of {system.label!r} at k = {k}), or control_variates=False")


def _has_speed(system: System) -> bool:
    """Whether ln |f(x)| is a feature: a flow that exposes its right-hand side ``rhs``."""
    return system.kind == "flow" and callable(getattr(system, "rhs", None))


def feature_count(system: System, k: int) -> int:
    """p, the number of boundary features for ``system`` with k tangent vectors."""
    d = system.dim
    return d + (k + 1) * d * (d + 1) // 2 + (1 if _has_speed(system) else 0)


def boundary_features(system: System, x: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """phi(x, Q) as a (B, p) tensor: x, x_i x_j, per frame column q_i q_j (i <= j), ln |f(x)| for a flow."""
    B, d = x.shape
    iu = torch.triu_indices(d, d, device=x.device)
    xx = (x[:, :, None] * x[:, None, :])[:, iu[0], iu[1]]
    qq = (Q[:, :, None, :] * Q[:, None, :, :])[:, iu[0], iu[1], :]  # (B, d(d+1)/2, k)
    cols = [x, xx, qq.transpose(1, 2).reshape(B, -1)]
    if _has_speed(system):
        speed = torch.linalg.vector_norm(system.rhs(x), dim=1)
        cols.append(torch.log(speed.clamp_min(torch.finfo(speed.dtype).tiny))[:, None])
    return torch.cat(cols, dim=1)


def cross_fitted(per_trajectory: np.ndarray, C: np.ndarray) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Corrected per-trajectory estimates lambda - C beta, beta fitted on the other half of the batch.

    per_trajectory (B, k), C (B, p): the boundary functionals (mean 0 for a stationary run).
    Returns the corrected (B, k) values and a summary for ``meta['control_variates']``.  An exponent whose
    shift C beta has a mean inconsistent with 0 (two-sided Student-t, B - 1 degrees of freedom, at
    ``REJECT_LEVEL / k``), or whose corrected values spread more than its plain ones, keeps its plain values
    (``applied`` False, ``refused`` the reason)."""
    B, k = per_trajectory.shape
    folds = (np.arange(B // 2), np.arange(B // 2, B))
    corrected = per_trajectory.copy()
    with np.errstate(all="ignore"):
        for fit, apply in ((folds[1], folds[0]), (folds[0], folds[1])):
            Cf = C[fit] - C[fit].mean(axis=0)
            scale = Cf.std(axis=0)
            scale[~(scale > 0) | ~np.isfinite(scale)] = 1.0
            yf = per_trajectory[fit] - per_trajectory[fit].mean(axis=0)
            try:
                beta, *_ = np.linalg.lstsq(Cf / scale, yf, rcond=None)
                corrected[apply] = per_trajectory[apply] - (C[apply] / scale) @ beta
            except np.linalg.LinAlgError:  # non-finite features: nothing to regress on
                corrected[apply] = np.nan
        shift = per_trajectory - corrected
        shift_se = shift.std(axis=0, ddof=1) / np.sqrt(B)
        shift_t = np.where(shift_se > 0, np.abs(shift.mean(axis=0)) / shift_se, 0.0)
        raw_var = per_trajectory.var(axis=0, ddof=1)
        new_var = corrected.var(axis=0, ddof=1)
        ratio = np.where(raw_var > 0, new_var / raw_var, 1.0)
    critical = float(stats.t.ppf(1 - REJECT_LEVEL / (2 * k), B - 1))
    applied, refused = np.ones(k, dtype=bool), {}
    for i in range(k):
        if not np.all(np.isfinite(corrected[:, i])):
            refused[i] = "the boundary features are not finite"
        elif shift_t[i] > critical:
            refused[i] = (f"the correction's mean shift is {shift_t[i]:.3g} standard errors from 0 (> {critical:.3g}): "
                          "the boundary features are not zero-mean (an ensemble not yet stationary, or unbounded "
                          "states)")
        elif not ratio[i] < 1.0:
            refused[i] = f"the correction did not lower the variance (ratio {ratio[i]:.3g})"
        if i in refused:
            applied[i] = False
            corrected[:, i] = per_trajectory[:, i]
    if any(not r.startswith("the correction did not") for r in refused.values()):
        warnings.warn("control variates refused for exponents " + "; ".join(
            f"{i + 1}: {r}" for i, r in refused.items()) + ". Those exponents keep their plain estimates; a "
            "longer transient may be needed", RuntimeWarning, stacklevel=2)
    info = {"features": int(C.shape[1]), "folds": 2,
            "uncorrected_exponents": per_trajectory.mean(axis=0).tolist(),
            "uncorrected_stderr": (np.sqrt(raw_var / B)).tolist(),
            "variance_ratio": [float(r) if np.isfinite(r) else None for r in ratio],
            "shift_t": [float(t) if np.isfinite(t) else None for t in shift_t], "shift_t_critical": critical,
            "applied": applied.tolist(), "refused": {str(i + 1): r for i, r in refused.items()}}
    return corrected, info
