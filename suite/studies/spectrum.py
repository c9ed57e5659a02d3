"""The spectrum of one system without a reference, with every check the suite can make on it.

For a user's own model (``lyapbench spectrum``; :func:`tasks.from_module`): the QR spectrum with its
standard errors, or with ``eps`` run to that accuracy (:func:`suite.studies.accuracy.estimate_to_accuracy`:
every exponent within eps of the truth with probability 0.95);
lambda_1 confirmed by the two-trajectory estimate on independent trajectories (agreement within
t * sqrt(s_1^2 + s_2^2) + 2/T, :func:`suite.studies.computed_references.reference_bounds`); where the
whole spectrum is computed, the sum rule against <ln|det J|> on independent trajectories
(:func:`suite.scoring.invariants.invariant_rows`); every exponent above the round-off floor (``resolution``,
``meta['unresolved']``); the run's first half against its second (``stationarity``, the drift test of
:func:`suite.studies.accuracy.drift_test`); the trajectories against each other (``one attractor``, their
spread against their own noise); the Kaplan-Yorke dimension. A disagreement is
reported in ``checks``, never hidden. Units: natural log, per step for maps, per unit time for flows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from scipy import stats

from reference_systems import System
from suite import estimators
from suite.core.args import check_int, check_positive
from suite.core.errors import TrajectoryError
from suite.core.result import LyapunovResult
from suite.scoring.invariants import invariant_rows
from suite.scoring.tolerance import t_quantile
from suite.studies.accuracy import drift_test, estimate_to_accuracy
from suite.studies.computed_references import reference_bounds
from suite.studies.features import kaplan_yorke

@dataclass
class Spectrum:
    """The estimate, its confirmation and the checks (each check: name, status 'pass'/'fail', message)."""
    result: LyapunovResult
    two_trajectory: LyapunovResult
    checks: List[Dict[str, Any]] = field(default_factory=list)
    kaplan_yorke: Optional[float] = None
    eps_reached: Optional[bool] = None

    @property
    def ok(self) -> bool:
        return all(c["status"] == "pass" for c in self.checks) and self.eps_reached is not False

    def rows(self) -> List[Dict[str, Any]]:
        """One row per exponent: index, estimate, stderr, half-width (of the 1e-4 interval, t * stderr, or
        with ``eps`` the accuracy's, which adds the finite-time bias bound)."""
        r = self.result
        q = t_quantile(r.declared.stderr_dof)
        widths = r.meta["accuracy"]["half_width"] if "accuracy" in r.meta else q * r.stderr
        return [{"index": i + 1, "estimate": float(e), "stderr": float(s), "half_width": float(w),
                 "T": r.declared.T, "batch": r.per_trajectory.shape[0]}
                for i, (e, s, w) in enumerate(zip(r.exponents, r.stderr, widths))]


def _resolved_spectrum(spectrum: Callable[[int], LyapunovResult], k: int) -> Tuple[LyapunovResult, str]:
    """``spectrum(k)``, rerun with k = the rank the Jacobian kept where the frame collapsed until it runs (a
    TrajectoryError with ``rank``: the exponents beyond are -inf, e.g. units that are inactive at a step), or
    flagged where a direction sat at the round-off floor (``meta['unresolved']``); and the words for the
    'resolution' check ('' where every exponent asked for was resolved)."""
    notes = []
    while True:  # each rerun asks for fewer exponents than the last, so at most k of them
        try:
            res = spectrum(k)
        except TrajectoryError as exc:
            if exc.rank is None or not 1 <= exc.rank < k:
                raise
            notes.append(f"at step {exc.step} the Jacobian kept at most {exc.rank} of {k} directions")
            k = exc.rank
            continue
        if notes:
            notes.append(f"exponents {k + 1} on are -inf (a singular Jacobian along the orbit); the table shows "
                         f"the {k} leading ones")
        if "unresolved" in res.meta:
            notes.append(res.meta["unresolved"]["message"])
        return res, "; ".join(notes)


def _stationarity(res: LyapunovResult, to_accuracy: bool) -> Dict[str, Any]:
    """The 'stationarity' check: the run's first half against its second (:func:`drift_test`); a drift is
    accounted for in the half-widths of a run to an accuracy, and fails a run of fixed length."""
    test = drift_test(res)
    if test is None:
        return {"check": "stationarity", "status": "pass", "message": "not tested (one trajectory)"}
    d, se, differs = (np.asarray(test[key]) for key in ("difference", "stderr", "differs"))
    if not differs.any():
        return {"check": "stationarity", "status": "pass",
                "message": f"first half minus second half within {test['t_critical']:.3g} standard errors of 0 "
                           f"for every exponent (largest |t| {float(np.max(np.abs(d) / se)):.3g})"}  # se > 0: floored
    which = ", ".join(f"{i + 1}: {d[i]:.3g} +- {se[i]:.2g}" for i in np.flatnonzero(differs)[:6])
    message = (f"the estimate drifts with T: first half minus second half of exponent(s) {which}, beyond "
               f"{test['t_critical']:.3g} standard errors (a transient not over, a slow approach to the attractor, "
               "an error decaying slower than 1/T)")
    if to_accuracy:
        return {"check": "stationarity", "status": "pass", "message": message + "; the half-widths include it"}
    return {"check": "stationarity", "status": "fail",
            "message": message + ": lengthen --transient or --steps, or run with --eps, which bounds a drift"}


#: family-wise level (over the k exponents) of the 'one attractor' check's chi-square test
SPREAD_LEVEL = 1e-3


def _one_attractor(res: LyapunovResult) -> Dict[str, Any]:
    """The 'one attractor' check: the trajectories' estimates spread as their own noise allows (``meta['spread']``,
    :meth:`~suite.estimators.base.GrowthAccumulator.spread`: Q against chi^2(B - 1) at SPREAD_LEVEL / k); a
    spread beyond it (several attractors, a mixed phase space) fails, since one mean then describes none of
    them."""
    spread = res.meta.get("spread")
    if not spread:
        return {"check": "one attractor", "status": "pass", "message": "not tested (one trajectory or few blocks)"}
    Q, dof = np.asarray(spread["Q"]), spread["dof"]
    critical = float(stats.chi2.isf(SPREAD_LEVEL / Q.size, dof))
    wide = np.flatnonzero(Q > critical)
    if wide.size == 0:
        return {"check": "one attractor", "status": "pass",
                "message": f"the {dof + 1} trajectories' estimates spread as their own noise allows (largest Q "
                           f"{float(Q.max()):.3g} on {dof} dof, limit {critical:.3g})"}
    i = int(wide[np.argmax(Q[wide])])
    per = np.sort(res.per_trajectory[:, i])
    return {"check": "one attractor", "status": "fail",
            "message": f"the trajectories do not share one exponent: exponent {i + 1} ranges from {per[0]:.4g} to "
                       f"{per[-1]:.4g} (median {float(np.median(per)):.4g}) across {per.size} trajectories, each "
                       f"known to {spread['within_stderr'][i]:.2g} (Q {float(Q[i]):.3g} on {dof} dof, limit "
                       f"{critical:.3g}): several attractors (fixed points or cycles of a network, regions of a mixed "
                       "phase space) or trajectories still apart; the mean is over the starts sample_initial draws, "
                       "so look at result.per_trajectory"}


def measure(system: System, *, k: Optional[int] = None, steps: int = 2_000, transient: int = 500, batch: int = 16,
            eps: Optional[float] = None, seed: int = 0, device="cpu", dtype="float64",
            max_seconds: float = 600.0) -> Spectrum:
    """Estimate, confirm and check the spectrum of ``system``.

    ``eps``: run to that accuracy instead of ``steps`` x ``batch`` (:func:`estimate_to_accuracy` chooses
    steps, transient and batch within ``max_seconds``; ``eps_reached`` says whether it got there).
    """
    steps, transient, batch = check_int("steps", steps, 1), check_int("transient", transient, 0), \
        check_int("batch", batch, 2, allowed="an integer >= 2 (a standard error across trajectories)")
    eps = check_positive("eps", eps, allow_none=True)
    run = dict(transient=transient, batch=batch, k=k, seed=seed, device=device, dtype=dtype)
    qr = estimators.get("qr")

    def spectrum(k):
        if eps is None:
            return qr.estimate(system, steps, **dict(run, k=k))
        return estimate_to_accuracy(system, eps, estimator="qr", k=k, seed=seed, device=device, dtype=dtype,
                                    max_seconds=max_seconds)  # named plainly: its automatic settings
    res, lost = _resolved_spectrum(spectrum, k if k is not None else system.dim)
    reached = None
    if eps is not None:
        reached = res.meta["accuracy"]["reached"]
        steps, transient, batch = res.meta["steps"], res.meta["transient"], res.meta["batch"]
        run.update(transient=transient, batch=batch)
    two = estimators.get("two_trajectory").estimate(system, steps, **dict(run, k=1, seed=seed + 1))
    out = Spectrum(res, two, eps_reached=reached, kaplan_yorke=kaplan_yorke(res.exponents, system.dim))
    out.checks.append({"check": "resolution", "status": "fail" if "unresolved" in res.meta else "pass",
                       "message": lost or "every exponent above the frame dtype's round-off floor "
                                          "(docs/estimators.md, Singular Jacobians)"})
    out.checks.append(_stationarity(res, eps is not None))
    out.checks.append(_one_attractor(res))
    allowed, _ = reference_bounds(res, two, steps * system.dt)
    diff = abs(res.exponents[0] - two.exponents[0])
    out.checks.append({"check": "lambda_1 by two_trajectory", "status": "pass" if diff <= allowed else "fail",
                       "message": f"QR {res.exponents[0]:.6g} +- {res.stderr[0]:.2g}, two-trajectory "
                                  f"{two.exponents[0]:.6g} +- {two.stderr[0]:.2g}: |difference| {diff:.3g} "
                                  f"{'<=' if diff <= allowed else '>'} {allowed:.3g} (t * joint stderr + 2/T)"})
    settings = dict(steps=steps, transient=transient, batch=batch, seed=seed, device=str(device),
                    dtype=str(dtype).replace("torch.", ""))
    for row in invariant_rows(system, "qr", res, settings):
        out.checks.append({"check": row["quantity"], "status": row["status"],
                           "message": f"{row['message']}: estimate {row['estimate']:.6g} vs {row['reference']:.6g}, "
                                      f"|error| {row['abs_error']:.3g}, tolerance {row['tolerance']:.3g}"})
    return out
