"""Conformance checks for any estimator, after scikit-learn's ``check_estimator``.

    from suite.scoring.checks import check_estimator
    check_estimator(MyEstimator())          # raises AssertionError listing what failed

Runs the estimator through the public contract only (docs/design.md §2), on small
problems (about a minute on a laptop CPU):

* ``contract``: ``estimate`` returns a LyapunovResult with float64 arrays of
  the documented shapes, finite exponents and a positive, finite stderr;
* ``batch``: trajectory 0 of a batch of 4 equals a batch of 1 with the same
  seed (trajectories must not interact), and, where the estimator accepts
  ``seed=(seed, b)``, every trajectory b equals its single run;
* ``reproducible``: the same seed gives identical results, another seed
  different ones;
* ``linear_map``: the exact ln|eig A| of the default ``linear_map``;
* ``logistic``: ln 2 at r = 4;
* ``gaussian_products``: Newman's exact spectrum, and (estimate - exact) /
  stderr over 24 seeds has mean ~0 and spread ~1 (the stderr is honest);
* ``flow tangent``: ``rotating_axes`` (dt = 0.1), whose Jacobian turns within
  each step: catches Euler or frozen-Jacobian tangents beside RK4 (and J^T);
* ``non-normal network``: lambda_1 of ``random_rnn(N=50, g=2)`` against its
  computed reference (~1e-3): catches J^T.  A 0.02-nat bias fails ``linear_map``.

``checks=`` runs only the named ones (``CHECKS`` lists them all), e.g.
``check_estimator(est, checks=["batch"])`` while working on one property.

Every comparison with an exact value uses :mod:`suite.scoring.tolerance`.  A check
on a system the estimator declares not applicable (``NotApplicableError``)
is skipped, not failed.  Estimators returning fewer exponents than the
dimension are compared on those they return.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Optional

import numpy as np

import reference_systems as rs
from suite import estimators
from suite.core.errors import InvalidArgumentError, NotApplicableError
from suite.core.result import LyapunovResult
from suite.scoring.rows import score


@dataclass
class CheckReport:
    """Outcome of :func:`check_estimator`: one (check, status, message) per check."""
    estimator: str
    results: List[tuple] = field(default_factory=list)

    @property
    def failed(self) -> List[tuple]:
        return [r for r in self.results if r[1] == "fail"]

    def __str__(self) -> str:
        return "\n".join(f"{status:8s} {name}: {msg}" for name, status, msg in self.results)


def _assert_contract(res: Any, batch: int) -> None:
    assert isinstance(res, LyapunovResult), f"estimate returned {type(res).__name__}, not a LyapunovResult"
    k = res.exponents.shape[0]
    assert res.exponents.shape == (k,) and res.stderr.shape == (k,), "exponents and stderr must be (k,)"
    assert res.per_trajectory.shape == (batch, k), \
        f"per_trajectory has shape {res.per_trajectory.shape}, expected ({batch}, {k})"
    assert res.history.ndim == 2 and res.history.shape[1] == k and res.times.shape == res.history.shape[:1], \
        f"history {res.history.shape} / times {res.times.shape} are not (n, {k}) / (n,)"
    for name in ("exponents", "stderr", "per_trajectory", "history", "times"):
        assert getattr(res, name).dtype == np.float64, f"{name} is {getattr(res, name).dtype}, not float64"
    assert np.all(np.isfinite(res.exponents)), f"non-finite exponents {res.exponents}"
    assert np.all(np.isfinite(res.stderr)) and np.all(res.stderr > 0), \
        f"stderr must be finite and > 0 (never a silent 0 or NaN), got {res.stderr}"
    assert isinstance(res.meta, dict), "meta must be a dict"


def _compare_exact(system, res: LyapunovResult) -> None:
    """Judge ``res`` against the system's exact values exactly as ``validate`` does (suite.scoring.rows)."""
    bad = [r for r in score(system, "checked", res) if r["status"] == "fail"]
    assert not bad, (f"{system.label}: exponent(s) {[r['index'] for r in bad]} off: estimate "
                     f"{[r['estimate'] for r in bad]} vs exact {[r['reference'] for r in bad]} (|error| "
                     f"{[r['abs_error'] for r in bad]} > tolerance {[r['tolerance'] for r in bad]}, "
                     f"T = {res.meta.get('T', res.times[-1] if res.times.size else np.nan):g})")


#: every check, in the order they run
CHECKS = ("contract", "batch", "reproducible", "linear_map", "logistic", "gaussian_products",
          "gaussian_products stderr", "flow tangent", "non-normal network")


def check_estimator(estimator: Any, *, raise_on_failure: bool = True,
                    checks: Optional[Iterable[str]] = None) -> CheckReport:
    """Run the conformance checks on ``estimator`` (an object with ``estimate``): all of
    them, or those named in ``checks`` (a subset of ``CHECKS``)."""
    if isinstance(checks, str):
        checks = [checks]
    selected = set(CHECKS) if checks is None else set(checks)
    if not selected or not selected <= set(CHECKS):
        raise InvalidArgumentError("checks", checks, f"None or a non-empty subset of {CHECKS}")
    if isinstance(estimator, str):  # a name or spec, as the command line takes it
        estimator = estimators.from_spec(estimator)
    if not callable(getattr(estimator, "estimate", None)):
        raise InvalidArgumentError("estimator", type(estimator).__name__, "an estimator: an object with an "
                                   "estimate(system, steps, ...) method, or a name such as 'qr' or 'module:attr'")
    name = getattr(estimator, "name", type(estimator).__name__)
    report = CheckReport(name)
    est = estimator.estimate

    def run(check: str, fn: Callable[[], str]) -> None:
        if check not in selected:
            return
        try:
            msg = fn()
            report.results.append((check, "pass", msg or "ok"))
        except NotApplicableError as exc:
            report.results.append((check, "skipped", f"not applicable: {exc}"))
        except AssertionError as exc:
            report.results.append((check, "fail", str(exc)))
        except Exception as exc:  # noqa: BLE001 - an estimator that raises fails the check
            report.results.append((check, "fail", f"raised {type(exc).__name__}: {exc}"))

    henon = rs.get("henon")

    def contract():
        res = est(henon, 500, transient=50, batch=3, seed=0)
        _assert_contract(res, 3)
        res1 = est(henon, 500, transient=50, batch=1, seed=0)
        _assert_contract(res1, 1)
        return f"shapes, dtypes and finite stderr for batch 3 and 1 (k = {res.exponents.size})"

    def batch():
        B = 4
        many = est(henon, 300, transient=20, batch=B, seed=7)
        one = est(henon, 300, transient=20, batch=1, seed=7)
        np.testing.assert_allclose(one.per_trajectory[0], many.per_trajectory[0], rtol=1e-10, atol=1e-12,
                                   err_msg="trajectory 0 depends on the other trajectories in the batch")
        try:
            singles = [est(henon, 300, transient=20, batch=1, seed=(7, b)) for b in range(B)]
        except Exception:  # noqa: BLE001 - tuple seeds are optional
            return "trajectory 0 independent of its batch (seed=(seed, b) not supported)"
        for b, single in enumerate(singles):
            np.testing.assert_allclose(single.per_trajectory[0], many.per_trajectory[b], rtol=1e-10, atol=1e-12,
                                       err_msg=f"trajectory {b} differs from its single run seed=(7, {b})")
        return f"a batch of {B} equals {B} single runs"

    def reproducible():
        a = est(henon, 300, transient=20, batch=2, seed=3)
        b = est(henon, 300, transient=20, batch=2, seed=3)
        c = est(henon, 300, transient=20, batch=2, seed=4)
        assert np.array_equal(a.per_trajectory, b.per_trajectory), "the same seed gave different results"
        assert not np.array_equal(a.per_trajectory, c.per_trajectory), "different seeds gave identical results"
        return "same seed identical, different seed different"

    def exact(system, steps, transient, batch_size, k=None):
        def fn():
            if system.reference is None:
                raise NotApplicableError(f"{system.label} has no fresh reference "
                                         f"({system.meta.get('reference_status', 'none')}): lyapbench references")
            res = est(system, steps, transient=transient, batch=batch_size, seed=11,
                      **({} if k is None else {"k": k}))
            _compare_exact(system, res)
            return f"{system.label}: within the derived tolerance"
        return fn

    def calibrated():
        gp = rs.get("gaussian_products", N=3)
        exact_values = gp.reference.values
        zs = []
        for seed in range(24):
            res = est(gp, 300, batch=8, seed=100 + seed)
            n = min(res.exponents.size, exact_values.size)
            with np.errstate(divide="ignore", invalid="ignore"):
                zs.append((res.exponents[:n] - exact_values[:n]) / res.stderr[:n])
        z = np.concatenate(zs)
        assert np.all(np.isfinite(z)), "stderr is zero or non-finite, so (estimate - exact)/stderr is not finite"
        # z ~ t(7): sd 1.18, mean 0 (se 1.18 / sqrt(n)); the spread is checked first, since an
        # overconfident stderr inflates both
        assert 0.7 < z.std() < 1.8, (f"stderr not calibrated: sd of (estimate - exact)/stderr = {z.std():.3f} "
                                     f"over {z.size} estimates (expected ~1.18 for 8 trajectories)")
        se_mean = 1.18 / math.sqrt(z.size)
        assert abs(z.mean()) < 4.5 * se_mean + 0.05, f"biased: mean z = {z.mean():.3f} over {z.size} estimates"
        return f"mean z = {z.mean():.3f}, sd z = {z.std():.3f} over {z.size} estimates"

    run("contract", contract)
    run("batch", batch)
    run("reproducible", reproducible)
    run("linear_map", exact(rs.get("linear_map"), 2_000, 200, 4))
    run("logistic", exact(rs.get("logistic", r=4.0), 5_000, 100, 16))
    run("gaussian_products", exact(rs.get("gaussian_products", N=4), 3_000, 0, 16))
    run("gaussian_products stderr", calibrated)
    run("flow tangent", exact(rs.get("rotating_axes", dt=0.1), 1_000, 200, 2))
    run("non-normal network", exact(rs.get("random_rnn", N=50, g=2.0), 4_000, 200, 16, k=1))

    if raise_on_failure and report.failed:
        raise AssertionError(f"estimator {name!r} failed {len(report.failed)} conformance check(s):\n{report}")
    return report


__all__ = ["check_estimator", "CheckReport", "CHECKS"]
