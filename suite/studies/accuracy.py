"""Runs to a requested accuracy: :func:`estimate_to_accuracy`.

    res = suite.estimate_to_accuracy(system, 1e-3)   # every exponent within 1e-3 of the truth, in >= 95 % of seeds
    res.meta["accuracy"]                            # what it ran: attempts, batch, steps, half-widths, seconds

Method.  Attempt 0 runs a default size; each *attempt* j = 1, 2, ... is a fresh, independent run (its
own seed) sized from what the previous one measured so that every exponent's half-width

    h_i = t(1 - a_j / (2 k), B - 1) * stderr_i + b / T + method_bias_i,      a_j = alpha * spending(j),

falls below ``eps``, and the first attempt whose half-widths all do is returned.  b / T is the tolerance
rule's finite-time bias bound (:mod:`suite.scoring.tolerance`): the system reference's ``bias_nats`` (1 nat
where it states none; 0 for a fixed-horizon task, whose reference is the finite-time exponent of its
horizon), or, for ``qr`` / ``jvp_qr`` named plainly, the smaller bound measured on the system for a frame
aligned over the transient (:mod:`suite.estimators.numerics.alignment`).  The Student-t quantile is
Bonferroni-corrected over the k exponents and the error probability spent on attempt j is a_j (20 % of
alpha on the pilot, 60 % on the first planned attempt, then halving), so sum_j a_j <= alpha.  Why this
covers although the stopping is data-dependent: each attempt's intervals hold every exponent's truth with
probability >= 1 - a_j whatever was decided before it (its data are new), so the probability that the
returned attempt misses by more than its half-width (<= eps) is at most sum_j a_j <= alpha.

Drift.  b / T assumes the finite-time error is a boundary term.  Each attempt (not of a fixed horizon) tests
that: the first half of its run's estimate minus the second half's (``meta['drift']``) has mean 0 on a
stationary run; where it differs from 0 (Student-t, DRIFT_LEVEL / k) the error decays otherwise (a Jordan
block's ln T / T, an ensemble not yet stationary) and b is raised to T (DRIFT_FACTOR |D| + t se(D)) for that
attempt and every later one.  DRIFT_FACTOR is measured: on a 2 x 2 Jordan block the error was at most 2.3
times |D| (T = 200 steps with the automatic taper; 0.7-1.2 times from 3,200 on).

Settings.  ``qr``, ``jvp_qr`` and ``two_trajectory`` named plainly get :func:`automatic_settings` per attempt
(interval, taper, control variates); a spec or an Estimator instance is run as given.

Sizing, for e = PLAN_MARGIN eps: for each trajectory length T on a log grid the statistical term gets what
the bias bound leaves, B = (t sigma / (e - b / T))^2 / T, sigma^2 = stderr^2 B T the largest variance per
trajectory and unit time measured so far, and the (B, T) of least cost, transient included, is run
(:func:`_plan`; a step of B trajectories costs B + PLAN_OVERHEAD_TRAJECTORIES trajectory-steps, a constant,
so the result depends on the seed alone).  B lies between MIN_BATCH (the control variates' minimum once
they are on) and ``max_batch``; each attempt runs at least GROWTH times the previous one's
trajectory-steps.  With ``max_seconds``, an attempt predicted not to fit the time left is not started (the
timed cost per step a + b B, :class:`StepCost`, fitted to the alignment probe, the attempts, and where they
give one batch size a short run of COST_PROBE_BATCH trajectories): the best attempt so far is returned with
``meta['accuracy']['reached'] = False`` and a warning, never silently.  Exponents in natural log, per step
for maps, per unit time for flows.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import torch

import reference_systems as rs
from reference_systems import System
from suite import estimators
from suite.core.args import check_int, check_number, check_positive, check_seed
from suite.core.errors import InvalidArgumentError
from suite.core.result import LyapunovResult
from suite.estimators.base import Estimator, check_system_argument
from suite.estimators.numerics import control_variates, reorth
from suite.grid.cells import fill_meta
from suite.scoring.tolerance import DEFAULT_BIAS_NATS, derive, t_quantile

#: fewest trajectories of an attempt (a Student-t quantile on fewer degrees of freedom costs more than it saves)
MIN_BATCH = 8
#: trajectories of attempt 0 (widened to the control variates' minimum batch where that is at most PILOT_MAX_BATCH)
PILOT_BATCH, PILOT_MAX_BATCH = 16, 1024
#: each attempt runs at least this many times the previous one's trajectory-steps
GROWTH = 2.0
#: attempts are planned for this fraction of eps (a run that lands a little above plan need not be redone)
PLAN_MARGIN = 0.8
#: attempts at most
MAX_ATTEMPTS = 12
#: family-wise level (over the k exponents) of the drift test of an attempt (a false alarm costs a longer run,
#: never coverage), and the multiple of the measured drift |D| that bounds the finite-time error when it fires
DRIFT_LEVEL = 1e-3
DRIFT_FACTOR = 3.0
#: shares of alpha spent on attempt 0 (the pilot, sized blind, rarely enough) and attempt 1 (the first planned
#: one); attempt j >= 2 spends the rest halved again and again, LATER_SHARE 2^-(j-1): the shares sum to 1
PILOT_SHARE, PLANNED_SHARE = 0.2, 0.6
LATER_SHARE = 1.0 - PILOT_SHARE - PLANNED_SHARE
#: estimators whose settings are chosen automatically when named plainly (``estimator="qr"``): automatic_settings
AUTOMATIC = ("qr", "jvp_qr", "two_trajectory")
#: the automatic taper: this fraction of the run at each end, for runs of at least MIN_TAPER_STEPS steps
TAPER_FRACTION, MIN_TAPER_STEPS = 0.25, 64
#: steps and trajectories of the timing probe that gives the cost model a second batch size where it has one
COST_PROBE_STEPS, COST_PROBE_BATCH = 50, 256
#: trajectory lengths the planner considers: log-spaced, PLAN_GRID per decade, from PLAN_MIN_STEPS
PLAN_GRID, PLAN_MIN_STEPS, PLAN_MAX_STEPS = 16, 16, 10 ** 9
#: the planner's cost of a step of B trajectories, in trajectory-steps: B + PLAN_OVERHEAD_TRAJECTORIES (a fixed
#: constant, not the timed cost, so that the plan and so the result depend on the seed alone, never on the
#: machine's load; measured on the CPU, eager, Lorenz-63: a step's fixed cost is that of 1,600-1,800 trajectories)
PLAN_OVERHEAD_TRAJECTORIES = 1024


def spending(j: int) -> float:
    """The share of alpha spent on attempt j (:data:`PILOT_SHARE`, :data:`PLANNED_SHARE`, then halving)."""
    return PILOT_SHARE if j == 0 else PLANNED_SHARE if j == 1 else LATER_SHARE * 2.0 ** -(j - 1)


def automatic_settings(system: System, steps: int, batch: int, k: Optional[int],
                       estimator: str = "qr") -> Dict[str, Any]:
    """The settings :func:`estimate_to_accuracy` gives ``estimator`` (one of :data:`AUTOMATIC`) for a run of
    ``batch`` x ``steps``.

    Rules (measured effects: docs/accuracy.md):
    * ``qr`` / ``jvp_qr``: ``reorth_every='auto'`` where the run allows an interval above 1 (the same
      products, fewer QRs);
    * on a stationary system (not a fixed-horizon task, whose reference is the plain average over its
      horizon): ``taper`` = TAPER_FRACTION of the steps at each end (a weighted mean of stationary
      increments, unbiased, which damps the boundary term) for runs of at least MIN_TAPER_STEPS steps,
      and ``control_variates`` where the batch is wide enough to fit them (zero-mean boundary
      functionals regressed out, cross-fitted: unbiased; 5-12x less variance on Lorenz-63).
    """
    settings: Dict[str, Any] = {}
    taper = int(steps * TAPER_FRACTION) if steps >= MIN_TAPER_STEPS else 0
    stationary = not system.capabilities.fixed_horizon
    if estimator != "two_trajectory" and reorth.interval_cap(steps, taper if stationary else 0) > 1:
        settings["reorth_every"] = "auto"
    if stationary and taper:
        settings["taper"] = taper
    if stationary and batch >= control_variates.min_batch(system, _frame_columns(system, k, estimator)):
        settings["control_variates"] = True
    return settings


def _frame_columns(system: System, k: Optional[int], estimator: str) -> int:
    """Tangent directions the estimator carries (two_trajectory: one separation)."""
    return 1 if estimator == "two_trajectory" else (system.dim if k is None else k)


class StepCost:
    """Seconds per step of a run of B trajectories, a + b B, fitted (least squares, a, b >= 0) to timed runs.

    Batched steps cost far less than B single ones (a is the per-step overhead), so a model linear in B
    alone would refuse affordable attempts under ``max_seconds``."""

    def __init__(self):
        self.points: List[tuple] = []

    def add(self, batch: int, seconds: float, steps: int) -> None:
        self.points.append((float(batch), seconds / max(steps, 1)))

    def batch_sizes(self) -> int:
        return len({b for b, _ in self.points})

    def seconds(self, batch: int, steps: int) -> float:
        """Predicted seconds of ``steps`` steps of ``batch`` trajectories."""
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


def drift_test(res: LyapunovResult) -> Optional[Dict[str, Any]]:
    """The drift test of a run (module docstring, Drift): its first half's estimate minus its second half's
    (``meta['drift']``), the Student-t critical value at DRIFT_LEVEL / k and which exponents differ from 0
    beyond it; None where the run has no drift record (one trajectory, a fixed horizon, another estimator)."""
    drift = res.meta.get("drift")
    if not drift:
        return None
    d, se = np.abs(np.asarray(drift["difference"])), np.asarray(drift["stderr"])
    q = t_quantile(drift["dof"], DRIFT_LEVEL / d.size)
    return {"difference": drift["difference"], "stderr": drift["stderr"], "t_critical": q,
            "differs": (d > q * se).tolist()}


def _bias_with_drift(res: LyapunovResult, bias: float, record: Dict[str, Any]) -> float:
    """The bias bound (nats) after an attempt's drift test (:func:`drift_test`): ``bias`` where its first and
    second halves agree, else at least T (DRIFT_FACTOR |D| + t se(D)) over the exponents that differ; the
    test is recorded in the attempt's ``record``."""
    test = drift_test(res)
    if test is None:
        return bias
    record["drift"] = test
    differs = np.asarray(test["differs"])
    if not differs.any():
        return bias
    d, se, q = np.abs(np.asarray(test["difference"])), np.asarray(test["stderr"]), test["t_critical"]
    raised = float(np.max((DRIFT_FACTOR * d + q * se)[differs])) * float(res.meta["T"])
    record["drift"]["bias_nats"] = raised
    return max(bias, raised)


def _sigma2(res: LyapunovResult) -> float:
    """The largest variance of an exponent's estimate per trajectory and unit time, stderr^2 B T."""
    return float(np.max(res.stderr ** 2)) * res.meta["batch"] * float(res.meta["T"])


def _plan(sigma2: float, q: float, eps: float, bias_nats: float, dt: float, fixed_steps: Optional[int],
          min_cost: float, min_batch: int, max_batch: int, cost_of: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """(batch, steps) of the cheapest run predicted to bring every half-width below ``eps``.

    For each trajectory length T on a log grid (or the fixed horizon) the statistical term gets what the bias
    bound leaves, eps - b / T, so B = (q sigma)^2 / ((eps - b / T)^2 T) trajectories; ``cost_of(B, steps)``
    (transient included; any positive units) ranks the lengths whose B fits ``max_batch``.  At least
    ``min_batch`` trajectories and ``min_cost`` trajectory-steps (GROWTH-fold over the previous attempt)."""
    if fixed_steps is not None:
        steps = np.array([fixed_steps])
    else:
        low = max(PLAN_MIN_STEPS, math.ceil(bias_nats / eps / dt)) if bias_nats else PLAN_MIN_STEPS
        count = int(PLAN_GRID * math.log10(max(PLAN_MAX_STEPS / low, 10.0))) + 1
        steps = np.unique(np.ceil(np.geomspace(low, max(PLAN_MAX_STEPS, 10 * low), count)).astype(np.int64))
    T = steps * dt
    stat = eps - bias_nats / T
    with np.errstate(divide="ignore", invalid="ignore"):
        batch = np.ceil(q * q * sigma2 / np.where(stat > 0, stat, np.nan) ** 2 / T)
    batch = np.maximum(np.nan_to_num(batch, nan=np.inf), min_batch)
    short = batch * steps < min_cost                 # grow at least GROWTH-fold: wider, else longer
    batch = np.where(short, np.ceil(min_cost / steps), batch)
    fits = batch <= max_batch
    if not fits.any():  # nothing fits max_batch on the grid: the longest length at max_batch
        return max_batch, int(max(steps[-1], math.ceil(min_cost / max_batch)))
    cost = np.where(fits, cost_of(np.minimum(batch, max_batch), steps), np.inf)
    best = int(np.argmin(cost))
    return int(batch[best]), int(steps[best])


def estimate_to_accuracy(system: System, eps: float, *, estimator: Union[str, Estimator] = "qr",
                         k: Optional[int] = None, seed: int = 0, device="cpu", dtype=torch.float64,
                         max_seconds: Optional[float] = None, alpha: float = 0.05,
                         max_batch: int = 4096) -> LyapunovResult:
    """Estimate until every requested exponent is within ``eps`` of the truth with probability >= 1 - alpha.

    Parameters
    ----------
    system : any System (its reference, if any, states the finite-time bias bound; none is needed).
    eps : the accuracy, nats (per step for maps, per unit time for flows).
    estimator : a name or spec for :func:`suite.estimators.from_spec` (default ``'qr'``; a name in
        :data:`AUTOMATIC` gets :func:`automatic_settings` per attempt and, for ``qr`` / ``jvp_qr``, the bias
        bound measured for its aligned frame) or an Estimator instance (used as it is).
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
    check_system_argument(system)
    check_positive("eps", eps)
    check_number("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True, allowed="a number in (0, 1)")
    check_number("max_seconds", max_seconds, low=0.0, low_open=True, allow_none=True,
                 allowed="a finite number > 0, or None (no limit)")
    check_int("max_batch", max_batch, MIN_BATCH)
    check_seed("seed", seed)
    est = estimators.from_spec(estimator) if isinstance(estimator, str) else estimator
    if not callable(getattr(est, "estimate", None)):
        raise InvalidArgumentError("estimator", estimator, "an estimator name or spec ('qr', 'module:attr', "
                                   "'qr(reorth_every=10)') or an object with an estimate(system, steps, ...) method")
    t0 = time.perf_counter()
    automatic = isinstance(estimator, str) and estimator in AUTOMATIC
    reference_bias = bias = _bias_nats(system)
    validation = system.capabilities.validation or {}
    fixed = system.capabilities.fixed_horizon
    fixed_steps = int(validation["steps"]) if fixed else None
    dt = system.dt
    runs: List[Dict[str, Any]] = []
    step_cost = StepCost()

    def transient_for(steps):
        if fixed:
            return int(validation.get("transient", 0))
        return max(int(validation.get("transient", 0)), min(steps // 10, 10_000), 100)

    def run(batch: int, steps: int, run_seed: int, spent: float, label: str) -> LyapunovResult:
        transient = transient_for(steps)
        settings = automatic_settings(system, steps, batch, k, estimator) if automatic else {}
        attempt_est = estimators.get(estimator, **settings) if settings else est
        t_run = time.perf_counter()
        with warnings.catch_warnings():  # a refusal is recorded in the attempt's record below, not warned per attempt
            warnings.filterwarnings("ignore", message="control variates refused", category=RuntimeWarning)
            res = attempt_est.estimate(system, steps, transient=transient, batch=batch, k=k, seed=run_seed,
                                       device=device, dtype=dtype)
        if not isinstance(res, LyapunovResult):
            raise InvalidArgumentError("estimator", estimator, f"an estimator whose estimate returns a "
                                       f"LyapunovResult (it returned {type(res).__name__})")
        if not res.wall_seconds:  # a plug-in that does not time itself: the call's time
            res.wall_seconds = time.perf_counter() - t_run
        fill_meta(res, system, {"steps": steps, "transient": transient, "batch": batch, "seed": run_seed},
                  device, dtype)
        step_cost.add(batch, res.wall_seconds, steps + transient)
        runs.append({"run": label, "batch": batch, "steps": steps, "transient": transient, "T": steps * dt,
                     "seed": run_seed, "alpha": spent, "seconds": round(res.wall_seconds, 3),
                     "max_half_width": None, "settings": dict(settings),  # set after the drift test
                     "control_variates_refused": (res.meta.get("control_variates") or {}).get("refused") or None,
                     "reorth_every": (res.meta.get("reorth_auto") or {}).get("interval", 1)
                     if settings.get("reorth_every") == "auto" else getattr(attempt_est, "reorth_every", None)})
        return res

    # attempt 0 is sized by default (10 time units or 200 steps; a fixed horizon's own length), as wide as the
    # control variates need where that is at most PILOT_MAX_BATCH; each later one by what the previous measured
    steps = fixed_steps or max(200, math.ceil(10.0 / dt))
    batch = PILOT_BATCH
    cv_batch = control_variates.min_batch(system, _frame_columns(system, k, estimator if automatic else "qr"))
    if automatic and not fixed and cv_batch <= min(PILOT_MAX_BATCH, max_batch):
        batch = max(batch, cv_batch)
    alignment = None
    if automatic and bias > 0 and getattr(est, "align", 0) is None and hasattr(est, "alignment_bound"):
        # the frame is aligned over every attempt's whole transient (>= transient_for(steps)): measure what
        # that leaves instead of assuming the reference's bound (suite.estimators.numerics.alignment)
        alignment = est.alignment_bound(system, transient_for(steps), k=k, seed=_attempt_seed(seed, -1),
                                        device=device, dtype=dtype)
        step_cost.add(2 * alignment["trajectories"], alignment["seconds"], alignment["probe_steps"])
        bias = min(bias, alignment["bias_nats"])
    best: Optional[LyapunovResult] = None
    best_h: Optional[np.ndarray] = None
    reached, reason, sigma2, cost, method_bias = False, "", 0.0, 0, 0.0
    for j in range(MAX_ATTEMPTS):
        spent = alpha * spending(j)
        if j:
            n_exp = best.exponents.size
            floor = max(MIN_BATCH, cv_batch if runs[-1]["settings"].get("control_variates") else 0)
            floor = min(floor, max_batch)
            for dof in (MIN_BATCH - 1, None):  # plan with a conservative quantile, then with the planned batch's
                q = t_quantile(dof if dof is not None else batch - 1, spent / n_exp)
                # the statistical and finite-T terms share what the stated method bias leaves of eps
                batch, steps = _plan(sigma2, q, PLAN_MARGIN * (eps - method_bias), bias, dt, fixed_steps,
                                     GROWTH * cost, floor, max_batch, lambda B, n: (B + PLAN_OVERHEAD_TRAJECTORIES)
                                     * (n + np.vectorize(transient_for)(n)))
            if fixed and batch * steps <= cost:
                reason = f"a fixed-horizon system needs more than max_batch = {max_batch} trajectories"
                break
        predicted = step_cost.seconds(batch, steps + transient_for(steps)) if j else None  # attempt 0 always runs
        if max_seconds is not None and predicted is not None and time.perf_counter() - t0 + predicted > max_seconds:
            reason = (f"attempt {j} ({batch} trajectories x {steps} steps, about {predicted:.3g} s predicted) "
                      f"would not fit max_seconds = {max_seconds:g}")
            break
        res = run(batch, steps, _attempt_seed(seed, j), spent, f"attempt {j}")
        if not fixed:
            bias = _bias_with_drift(res, bias, runs[-1])
        h = half_widths(res, spent, bias)
        runs[-1]["max_half_width"] = float(np.max(h))
        sigma2, cost = _sigma2(res), batch * steps
        if best is None or np.max(h) <= np.max(best_h):
            best, best_h = res, h
        if np.all(h <= eps):
            best, best_h, reached = res, h, True
            break
        method_bias = float(np.max(res.declared.method_bias))
        if method_bias >= eps:  # no batch or length shrinks the estimator's own stated bias
            worst = int(np.argmax(res.declared.method_bias))
            reason = (f"the estimator states a method bias of {method_bias:.3g} for exponent {worst + 1}, not "
                      f"below eps: no longer or wider run reaches eps")
            break
        if j == 0 and max_seconds is not None and step_cost.batch_sizes() < 2 and batch < max_batch:
            # the budget's cost model needs a second batch size
            wide = min(max_batch, COST_PROBE_BATCH if batch < COST_PROBE_BATCH else 4 * batch)
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
        "half_width": best_h.tolist(), "bias_nats": bias, "reference_bias_nats": reference_bias,
        "alignment": alignment,
        "rule": "h_i = t(1 - a_j/(2k), B - 1) stderr_i + bias_nats / T + method_bias_i, a_j = alpha spending(j)",
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
                  ("logistic", {"r": 4.0}, 0.01), ("henon", {}, 0.02), ("lorenz63", {}, 0.005),
                  ("rossler", {}, 0.01))


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
