"""The spectrum of one system without a reference, with every check the suite can make on it.

For a user's own model (``lyapbench spectrum``; :func:`tasks.from_module`): the QR spectrum with its
standard errors, optionally lengthened until every exponent's half-width t * stderr is at most ``eps``;
lambda_1 confirmed by the two-trajectory estimate on independent trajectories (agreement within
t * sqrt(s_1^2 + s_2^2) + 2/T, :func:`suite.studies.computed_references.reference_bounds`); where the
whole spectrum is computed, the sum rule against <ln|det J|> on independent trajectories
(:func:`suite.scoring.invariants.invariant_rows`); the Kaplan-Yorke dimension. A disagreement is
reported in ``checks``, never hidden. Units: natural log, per step for maps, per unit time for flows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from reference_systems import System
from suite import estimators
from suite.core.args import check_int, check_positive
from suite.core.result import LyapunovResult
from suite.scoring.invariants import invariant_rows
from suite.scoring.tolerance import t_quantile
from suite.studies.computed_references import reference_bounds
from suite.studies.features import kaplan_yorke

#: the longest run ``eps`` may ask for, in steps per trajectory
MAX_STEPS = 1_000_000


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
        """One row per exponent: index, estimate, stderr, half-width of the 1e-4 interval."""
        r = self.result
        q = t_quantile(r.declared.stderr_dof)
        return [{"index": i + 1, "estimate": float(e), "stderr": float(s), "half_width": float(q * s),
                 "T": r.declared.T, "batch": r.per_trajectory.shape[0]}
                for i, (e, s) in enumerate(zip(r.exponents, r.stderr))]


def measure(system: System, *, k: Optional[int] = None, steps: int = 2_000, transient: int = 500, batch: int = 16,
            eps: Optional[float] = None, seed: int = 0, device="cpu", dtype="float64",
            max_seconds: float = 600.0) -> Spectrum:
    """Estimate, confirm and check the spectrum of ``system``.

    ``eps``: lengthen the run (doubling ``steps``) until every exponent's t * stderr <= eps, or until
    ``max_seconds`` or :data:`MAX_STEPS` would be exceeded (then ``eps_reached`` is False).
    """
    steps, transient, batch = check_int("steps", steps, 1), check_int("transient", transient, 0), \
        check_int("batch", batch, 2, allowed="an integer >= 2 (a standard error across trajectories)")
    eps = check_positive("eps", eps, allow_none=True)
    run = dict(transient=transient, batch=batch, k=k, seed=seed, device=device, dtype=dtype)
    qr = estimators.get("qr")
    t0 = time.perf_counter()
    res = qr.estimate(system, steps, **run)
    reached = None
    if eps is not None:
        while True:
            width = t_quantile(res.declared.stderr_dof) * res.stderr
            reached = bool(np.all(width <= eps))
            spent = time.perf_counter() - t0
            if reached or 2 * steps > MAX_STEPS or spent * 3 > max_seconds:  # the next run costs ~2x all so far
                break
            steps *= 2
            res = qr.estimate(system, steps, **run)
    two = estimators.get("two_trajectory").estimate(system, steps, **dict(run, k=1, seed=seed + 1))
    out = Spectrum(res, two, eps_reached=reached, kaplan_yorke=kaplan_yorke(res.exponents, system.dim))
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
