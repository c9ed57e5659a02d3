"""Runs to a requested accuracy: :func:`estimate_to_accuracy`.

    res = suite.estimate_to_accuracy(system, 1e-3)   # every exponent within 1e-3 of the truth, in >= 95 % of seeds
    res.meta["accuracy"]                            # what it ran: attempts, batch, steps, half-widths, seconds

Method.  Attempt 0 runs a default size; each *attempt* j = 1, 2, ... is a fresh, independent run (its
own seed) sized from what the previous one measured so that every exponent's half-width

    h_i = t(1 - a_j / (2 k), B - 1) * stderr_i + b / T + method_bias_i,      a_j = alpha * 2^-(j+1),

falls below ``eps``, and the first attempt whose half-widths all do is returned.  b / T is the tolerance
rule's finite-time bias bound (:mod:`suite.scoring.tolerance`; b = the system reference's ``bias_nats``,
1 nat where it states none; 0 for a fixed-horizon task, whose reference is the finite-time exponent of its
horizon), the Student-t quantile is Bonferroni-corrected over the k exponents, and the error probability
spent on attempt j is a_j, so sum_j a_j <= alpha.  Why this covers although the stopping is data-dependent:
each attempt's intervals hold every exponent's truth with probability >= 1 - a_j whatever was decided
before it (its data are new), so the probability that the returned attempt misses by more than its
half-width (<= eps) is at most sum_j a_j <= alpha.

Sizing, for e = PLAN_MARGIN eps.  T = b / (BIAS_SHARE e) (the bias bound takes a third; a fixed horizon
keeps its own), then B = (t sigma / ((1 - BIAS_SHARE) e))^2 / T from the variance per trajectory and unit
time measured so far,
sigma^2 = stderr^2 B T (the largest over the exponents), between MIN_BATCH and ``max_batch``; beyond
``max_batch`` T grows instead.  Each attempt runs at least GROWTH times the previous one's
trajectory-steps.
With ``max_seconds``, an attempt predicted not to fit the time left is not started (the cost per
step is a + b B, :class:`StepCost`, fitted to the attempts and to one timed short run of
COST_PROBE_BATCH trajectories after attempt 0, of at most a tenth of attempt 0's
trajectory-steps): the best attempt so far is returned with ``meta['accuracy']['reached'] = False``
and a warning, never silently.  Exponents in natural log, per step for maps, per unit time for flows.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

import reference_systems as rs
from reference_systems import System
from suite import estimators
from suite.core.args import check_int, check_number, check_positive, check_seed
from suite.core.errors import InvalidArgumentError
from suite.core.result import LyapunovResult
from suite.estimators.base import Estimator
from suite.estimators.numerics import reorth
from suite.scoring.tolerance import DEFAULT_BIAS_NATS, derive, t_quantile

#: the share of eps given to the finite-time bias bound b / T (the rest to the statistical term)
BIAS_SHARE = 1.0 / 3.0
#: fewest trajectories of an attempt (a Student-t quantile on fewer degrees of freedom costs more than it saves)
MIN_BATCH = 8
#: trajectories of attempt 0
PILOT_BATCH = 16
#: each attempt runs at least this many times the previous one's trajectory-steps
GROWTH = 2.0
#: attempts are planned for this fraction of eps (a run that lands a little above plan need not be redone)
PLAN_MARGIN = 0.8
#: attempts at most (alpha * 2^-j is spent on attempt j)
MAX_ATTEMPTS = 12
#: automatic settings of the estimators named plainly (``estimator="qr"``): the re-orthonormalisation interval
#: chosen from the system's measured spectrum (suite.estimators.numerics.reorth) wherever a run is long enough
#: for an interval above 1; the exponents are the same products' (ln R telescopes), at a fraction of the QRs
AUTOMATIC = {"qr": {"reorth_every": "auto"}, "jvp_qr": {"reorth_every": "auto"}}
#: steps and trajectories of the timing probe that gives the cost model its second batch size
COST_PROBE_STEPS, COST_PROBE_BATCH = 50, 256


class StepCost:
    """Seconds per step of a run of B trajectories, a + b B, fitted (least squares, a, b >= 0) to timed runs.

    Batched steps cost far less than B single ones (a is the per-step overhead), so a model linear in B
    alone would refuse affordable attempts under ``max_seconds``."""

    def __init__(self):
        self.points: List[tuple] = []

    def add(self, batch: int, seconds: float, steps: int) -> None:
        self.points.append((float(batch), seconds / max(steps, 1)))

    def seconds(self, batch: int, steps: int) -> float:
        B, p = (np.array(v) for v in zip(*self.points))
        if np.ptp(B) == 0:
            return float(np.mean(p)) / float(np.mean(B)) * batch * steps  # one batch size: linear in B
        b, a = np.polyfit(B, p, 1)
        b = max(float(b), 0.0)
        a = max(float(np.mean(p - b * B)), 0.0)
        return (a + b * batch) * steps


class AccuracyWarning(UserWarning):
    """A run to an accuracy stopped before reaching it (``meta['accuracy']['reached']`` is False)."""


def _attempt_seed(seed: int, attempt: int) -> int:
    """An independent seed for attempt ``attempt`` of a run seeded ``seed`` (no overlap between seeds)."""
    digest = hashlib.sha256(f"estimate_to_accuracy:{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _bias_nats(system: System) -> float:
    if system.capabilities.fixed_horizon:
        return 0.0
    ref = system.reference
    return float(getattr(ref, "bias_nats", DEFAULT_BIAS_NATS)) if ref is not None else DEFAULT_BIAS_NATS


def half_widths(res: LyapunovResult, alpha: float, bias_nats: float) -> np.ndarray:
    """h_i = t(1 - alpha / (2 k), dof) stderr_i + bias_nats / T + method_bias_i for a result (k,): the
    tolerance rule (:func:`suite.scoring.tolerance.derive`) with no reference uncertainty, at alpha / k."""
    declared = res.declared
    return derive(stderr=res.stderr, dof=declared.stderr_dof, T=float(res.meta.get("T", declared.T)),
                  bias_nats=bias_nats, method_bias=declared.method_bias, alpha=alpha / res.exponents.size).total


def _sigma2(res: LyapunovResult) -> float:
    """The largest variance of an exponent's estimate per trajectory and unit time, stderr^2 B T."""
    return float(np.max(res.stderr ** 2)) * res.meta["batch"] * float(res.meta["T"])


def _plan(sigma2: float, q: float, eps: float, bias_nats: float, dt: float, fixed_steps: Optional[int],
          min_cost: float, max_batch: int):
    """(batch, steps) for the next attempt: the bias bound within BIAS_SHARE eps, the statistical term within
    the rest, at least ``min_cost`` trajectory-steps."""
    if fixed_steps is not None:
        steps = fixed_steps
    else:
        steps = max(1, math.ceil(bias_nats / (BIAS_SHARE * eps) / dt)) if bias_nats else 1
    stat = (1.0 - BIAS_SHARE) * eps if bias_nats else eps
    need = q * q * sigma2 / (stat * stat)          # B * T needed, in trajectory-time units
    batch = math.ceil(need / (steps * dt))
    if fixed_steps is None and batch > max_batch:  # too wide: lengthen instead
        steps = math.ceil(need / (max_batch * dt))
        batch = max_batch
    batch = min(max(batch, MIN_BATCH), max_batch)
    if batch * steps < min_cost:                    # grow at least GROWTH-fold
        factor = min_cost / (batch * steps)
        if fixed_steps is None and batch >= max_batch:
            steps = math.ceil(steps * factor)
        else:
            batch = min(max_batch, math.ceil(batch * factor))
            if fixed_steps is None and batch * steps < min_cost:
                steps = math.ceil(min_cost / batch)
    return batch, steps


def estimate_to_accuracy(system: System, eps: float, *, estimator: Union[str, Estimator] = "qr",
                         k: Optional[int] = None, seed: int = 0, device="cpu", dtype=torch.float64,
                         max_seconds: Optional[float] = None, alpha: float = 0.05,
                         max_batch: int = 4096) -> LyapunovResult:
    """Estimate until every requested exponent is within ``eps`` of the truth with probability >= 1 - alpha.

    Parameters
    ----------
    system : any System (its reference, if any, states the finite-time bias bound; none is needed).
    eps : the accuracy, nats (per step for maps, per unit time for flows).
    estimator : a name or spec for :func:`suite.estimators.from_spec` (default ``'qr'``: with its
        re-orthonormalisation interval chosen automatically, :data:`AUTOMATIC`) or an Estimator instance
        (used as it is).
    k : exponents, largest first (the estimator's default when None).
    seed : the run's seed; its attempts use independent seeds derived from it.
    max_seconds : wall-clock budget (None: none); what it could not reach is flagged, never hidden.
    alpha : the error probability over all the exponents and attempts (default 0.05: 95 % coverage).
    max_batch : most trajectories of one run (wider runs lengthen instead).

    Returns the last attempt's LyapunovResult; ``meta['accuracy']`` records eps, alpha, whether it was
    reached, the half-widths, the bias bound, and every attempt (batch, steps, transient, seed, error
    probability spent, seconds, largest half-width); an unreached accuracy also warns (AccuracyWarning).
    Method and why it covers: the module docstring.
    """
    if not isinstance(system, System):
        raise InvalidArgumentError("system", type(system).__name__, "a reference_systems System")
    check_positive("eps", eps)
    check_number("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True, allowed="a number in (0, 1)")
    check_number("max_seconds", max_seconds, low=0.0, low_open=True, allow_none=True)
    check_int("max_batch", max_batch, MIN_BATCH)
    check_seed("seed", seed)
    automatic = AUTOMATIC.get(estimator, {}) if isinstance(estimator, str) else {}
    est = estimators.from_spec(estimator) if isinstance(estimator, str) else estimator
    if not isinstance(est, Estimator):
        raise InvalidArgumentError("estimator", type(estimator).__name__, "an estimator name or an Estimator")
    t0 = time.perf_counter()
    bias = _bias_nats(system)
    validation = system.capabilities.validation or {}
    fixed = system.capabilities.fixed_horizon
    fixed_steps = int(validation["steps"]) if fixed else None
    dt = system.dt
    runs: List[Dict[str, Any]] = []

    def transient_for(steps: int) -> int:
        if fixed:
            return int(validation.get("transient", 0))
        return max(int(validation.get("transient", 0)), min(steps // 10, 10_000), 100)

    def run(batch: int, steps: int, run_seed: int, spent: float, label: str) -> LyapunovResult:
        transient = transient_for(steps)
        auto = automatic if reorth.interval_cap(steps) > 1 else {}
        attempt_est = estimators.get(estimator, **auto) if auto else est
        res = attempt_est.estimate(system, steps, transient=transient, batch=batch, k=k, seed=run_seed,
                                   device=device, dtype=dtype)
        h = half_widths(res, spent, bias)
        runs.append({"run": label, "batch": batch, "steps": steps, "transient": transient, "T": steps * dt,
                     "seed": run_seed, "alpha": spent, "seconds": round(res.wall_seconds, 3),
                     "max_half_width": float(np.max(h)), "settings": dict(auto),
                     "reorth_every": (res.meta.get("reorth_auto") or {}).get("interval", 1) if auto
                     else getattr(attempt_est, "reorth_every", None)})
        return res

    # attempt 0 is sized by default (the system's validation run, or 200 steps / 10 time units); each later
    # one by what the previous measured
    batch, steps = PILOT_BATCH, fixed_steps or int(validation.get("steps", 0)) or max(200, math.ceil(10.0 / dt))
    best: Optional[LyapunovResult] = None
    best_h: Optional[np.ndarray] = None
    reached, reason, sigma2, cost, step_cost = False, "", 0.0, 0, StepCost()
    for j in range(MAX_ATTEMPTS):
        spent = alpha * 2.0 ** -(j + 1)
        if j:
            n_exp = best.exponents.size
            for dof in (MIN_BATCH - 1, None):  # plan with a conservative quantile, then with the planned batch's
                q = t_quantile(dof if dof is not None else batch - 1, spent / n_exp)
                batch, steps = _plan(sigma2, q, PLAN_MARGIN * eps, bias, dt, fixed_steps, GROWTH * cost, max_batch)
            if fixed and batch * steps <= cost:
                reason = f"a fixed-horizon system needs more than max_batch = {max_batch} trajectories"
                break
        predicted = step_cost.seconds(batch, steps + transient_for(steps)) if step_cost.points else None
        if max_seconds is not None and predicted is not None and time.perf_counter() - t0 + predicted > max_seconds:
            reason = (f"attempt {j} ({batch} trajectories x {steps} steps, about {predicted:.3g} s predicted) "
                      f"would not fit max_seconds = {max_seconds:g}")
            break
        res = run(batch, steps, _attempt_seed(seed, j), spent, f"attempt {j}")
        h = half_widths(res, spent, bias)
        step_cost.add(batch, res.wall_seconds, steps + runs[-1]["transient"])
        sigma2, cost = _sigma2(res), batch * steps
        if best is None or np.max(h) <= np.max(best_h):
            best, best_h = res, h
        if np.all(h <= eps):
            best, best_h, reached = res, h, True
            break
        if j == 0 and max_seconds is not None and batch < max_batch:  # the cost model's second batch size
            wide = min(max_batch, COST_PROBE_BATCH)
            # at most a tenth of attempt 0's time by the (pessimistic) linear model, at least 5 steps, or none
            probe_steps = min(COST_PROBE_STEPS, int(0.1 * batch / wide * (steps + runs[-1]["transient"])))
            if probe_steps >= 5:
                probe = est.estimate(system, probe_steps, batch=wide, k=k, seed=_attempt_seed(seed, MAX_ATTEMPTS),
                                     device=device, dtype=dtype)
                step_cost.add(wide, probe.wall_seconds, probe_steps)
    else:
        reason = f"{MAX_ATTEMPTS} attempts did not reach eps"
    best.meta["accuracy"] = {
        "eps": float(eps), "alpha": float(alpha), "reached": bool(reached), "reason": reason,
        "half_width": best_h.tolist(), "bias_nats": bias, "bias_share": BIAS_SHARE,
        "rule": "h_i = t(1 - a_j/(2k), B - 1) stderr_i + bias_nats / T + method_bias_i, a_j = alpha 2^-(j+1)",
        "runs": runs, "seconds": round(time.perf_counter() - t0, 3),
        "estimator": est.name, "max_batch": max_batch, "max_seconds": max_seconds,
        "step_cost_points": [[int(b), p] for b, p in step_cost.points]}
    if not reached:
        warnings.warn(f"estimate_to_accuracy({system.label}, eps={eps:g}): not reached ({reason}); the returned "
                      f"estimate's largest half-width is {float(np.max(best_h)):.3g}", AccuracyWarning,
                      stacklevel=2)
    return best


def coverage(system: System, eps: float, seeds, **kwargs) -> Dict[str, Any]:
    """How often :func:`estimate_to_accuracy` keeps its promise on a system with a reference: over ``seeds``,
    the fraction whose every exponent lies within ``eps`` of ``system.reference`` (``coverage``), the 95th
    percentile of worst error / eps, the mean attempts and seconds per call, and whether every call
    reached eps.  ``kwargs`` go to :func:`estimate_to_accuracy`."""
    if system.reference is None:
        raise InvalidArgumentError("system", system.label, "a system with a reference (coverage needs the truth)")
    ratios, attempts, seconds, reached = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccuracyWarning)  # counted in 'all_reached'
        for seed in seeds:
            res = estimate_to_accuracy(system, eps, seed=seed, **kwargs)
            acc = res.meta["accuracy"]
            ratios.append(float(np.max(np.abs(res.exponents - system.reference.values[:res.exponents.size]))) / eps)
            attempts.append(len(acc["runs"]))
            seconds.append(acc["seconds"])
            reached.append(acc["reached"])
    ratios = np.asarray(ratios)
    return {"system": system.label, "eps": eps, "seeds": len(ratios), "coverage": float(np.mean(ratios <= 1.0)),
            "p95_error_over_eps": float(np.quantile(ratios, 0.95)), "attempts": float(np.mean(attempts)),
            "seconds": float(np.mean(seconds)), "all_reached": bool(all(reached))}


#: the systems, parameters and eps of the measured coverage table (docs/accuracy.md) and its slow test
COVERAGE_CASES = (("gaussian_products", {"N": 3}, 0.02), ("linear_map", {"A": [[0.9, 0.5], [0.0, -0.6]]}, 0.01),
                  ("logistic", {"r": 4.0}, 0.01), ("henon", {}, 0.02), ("lorenz63", {}, 0.05))


def main() -> int:
    """``python -m suite.studies.accuracy``: the coverage table of docs/accuracy.md (seeds 100-199, one thread)."""
    torch.set_num_threads(1)
    print("| system | eps | coverage | 95th pct of error / eps | attempts | seconds |\n|---|---|---|---|---|---|")
    for name, params, eps in COVERAGE_CASES:
        c = coverage(rs.get(name, **params), eps, range(100, 200))
        print(f"| {c['system']} | {eps:g} | {c['coverage']:.2f} | {c['p95_error_over_eps']:.2f} | "
              f"{c['attempts']:.1f} | {c['seconds']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
