"""Convergence in T from one run's running history: bias and noise terms, and T_eps.

A Benettin-type estimate over time T of an exponent lambda behaves as

    lambda(T) - lambda = a / T + (noise of standard deviation c / sqrt(T)),

a finite-time boundary term of O(1) nats plus the fluctuation of a time
average (c^2 the integrated autocorrelation of the local growth rates; for
N x N Gaussian products c^2 = psi'((N - i + 1) / 2) / 4, Newman 1986).  With B
trajectories the mean's noise is c / sqrt(B T).  From a result's ``history``
and ``meta['history_stderr']`` (recorded when B > 1):

* :func:`fit_bias_noise` fits c by least squares of stderr on 1/sqrt(T), and a
  by generalised least squares on 1/T with the covariance of a running mean,
  c^2 / max(T_i, T_j); under it the estimate of a reduces to T_1 e(T_1), the
  earliest history point (the derivation is in docs/design.md, "Convergence");
* :func:`t_epsilon` is the smallest history time from which on
  |error| + 2 stderr < eps holds at every later history time (None: not reached).

Units: natural log; T in steps for maps, time units for flows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from suite.core.errors import InvalidArgumentError
from suite.core.provenance import PROVENANCE_COLUMNS, row_provenance


@dataclass(frozen=True)
class BiasNoiseFit:
    """error(T) ~ bias / T + noise / sqrt(T): the fitted terms and their standard errors."""
    bias: float
    bias_stderr: float
    noise: float
    noise_stderr: float
    n_points: int


def _curve(times, errors, stderrs):
    T = np.asarray(times, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    s = np.asarray(stderrs, dtype=np.float64)
    if T.ndim != 1 or e.shape != T.shape or s.shape != T.shape:
        raise InvalidArgumentError("times, errors, stderrs", (T.shape, e.shape, s.shape), "three 1-D arrays of one length")
    if T.size == 0 or np.any(~np.isfinite(T)) or np.any(T <= 0) or np.any(np.diff(T) <= 0):
        raise InvalidArgumentError("times", T.tolist()[:5], "finite, positive and increasing history times")
    if np.any(~np.isfinite(e)) or np.any(~np.isfinite(s)) or np.any(s < 0):
        raise InvalidArgumentError("errors/stderrs", (e.tolist()[:5], s.tolist()[:5]),
                                   "finite errors and finite stderrs >= 0")
    return T, e, s


def fit_bias_noise(times: Sequence[float], errors: Sequence[float], stderrs: Sequence[float]) -> BiasNoiseFit:
    """Fit stderr(T) = noise / sqrt(T) (least squares), then error(T) = bias / T (generalised least squares)."""
    T, e, s = _curve(times, errors, stderrs)
    if T.size < 3:
        raise InvalidArgumentError("times", T.tolist(), "at least 3 history points to fit two terms")
    y = 1.0 / np.sqrt(T)
    noise = float(np.sum(y * s) / np.sum(y * y))
    resid = s - noise * y
    noise_se = float(math.sqrt(np.sum(resid ** 2) / max(T.size - 1, 1) / np.sum(y * y)))
    # bias by generalised least squares: the running errors of one run share their noise, a running
    # mean of (nearly) uncorrelated increments has Cov(e(T_i), e(T_j)) = noise^2 / max(T_i, T_j)
    x = 1.0 / T
    cov = max(noise, 1e-300) ** 2 / np.maximum.outer(T, T)
    cov[np.diag_indices_from(cov)] *= 1.0 + 1e-9  # keeps it positive definite for equal-noise neighbours
    cx = np.linalg.solve(cov, x)
    info = float(x @ cx)
    bias = float(cx @ e / info)
    bias_se = float(math.sqrt(1.0 / info))
    return BiasNoiseFit(bias, bias_se, noise, noise_se, int(T.size))


def t_epsilon(times: Sequence[float], errors: Sequence[float], stderrs: Sequence[float],
              eps: float) -> Optional[float]:
    """Smallest history T from which |error| + 2 stderr < eps at every later history time, else None."""
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise InvalidArgumentError("eps", eps, "a finite number > 0")
    T, e, s = _curve(times, errors, stderrs)
    bad = np.nonzero(np.abs(e) + 2.0 * s >= eps)[0]
    if bad.size == 0:
        return float(T[0])
    if bad[-1] + 1 >= T.size:
        return None
    return float(T[bad[-1] + 1])


EPSILONS = (1e-1, 1e-2, 1e-3)
CURVE_COLUMNS = ["system", "estimator", "seed", "index", "T", "estimate", "reference", "error", "stderr",
                 *PROVENANCE_COLUMNS]
SUMMARY_DISPLAY = ["system", "estimator", "seed", "index", "reference", "ref_uncertainty", "T_max", "batch",
                   "bias", "bias_stderr", "noise", "noise_stderr", "T_1e-1", "T_1e-2", "T_1e-3", "status"]
SUMMARY_COLUMNS = SUMMARY_DISPLAY + ["message", *PROVENANCE_COLUMNS]


def convergence_rows(system, estimator: str, seed: int, result, max_index: int = 3):
    """(curve rows, summary rows) of one result against ``system.reference``, exponents 1..max_index.

    Summary status: ``ok``, or ``no reference`` / ``no stderr history`` (batch 1: the running
    stderr is not recorded) with nothing fitted.
    """
    curves, summaries = [], []
    ref = system.reference
    se_hist = (result.meta or {}).get("history_stderr")
    n = min(result.exponents.size, max_index)
    for i in range(n):
        base = {"system": system.label, "estimator": estimator, "seed": seed, "index": i + 1,
                **row_provenance(result.meta)}
        summary = dict.fromkeys(SUMMARY_COLUMNS)
        summary.update(base, T_max=float(result.times[-1]) if result.times.size else None,
                       batch=int(result.per_trajectory.shape[0]))
        if ref is None or i >= len(ref):
            summary.update(status="no reference", message="the system states no reference for this exponent")
        elif se_hist is None or result.times.size < 3:
            summary.update(reference=float(ref.values[i]), ref_uncertainty=float(ref.uncertainty[i]),
                           status="no stderr history",
                           message="the run recorded no running stderr (batch 1, or an estimator without history)")
        else:
            err = result.history[:, i] - ref.values[i]
            se = np.asarray(se_hist)[:, i]
            curves += [dict(base, T=float(t), estimate=float(h), reference=float(ref.values[i]), error=float(e),
                            stderr=float(s)) for t, h, e, s in zip(result.times, result.history[:, i], err, se)]
            fit = fit_bias_noise(result.times, err, se)
            summary.update(reference=float(ref.values[i]), ref_uncertainty=float(ref.uncertainty[i]),
                           bias=fit.bias, bias_stderr=fit.bias_stderr, noise=fit.noise,
                           noise_stderr=fit.noise_stderr, status="ok")
            for eps in EPSILONS:
                t = t_epsilon(result.times, err, se, eps)
                summary[f"T_{eps:.0e}".replace("e-0", "e-")] = t if t is not None else "not reached"
        summaries.append(summary)
    return curves, summaries
