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
import torch

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
    assert np.allclose(res.exponents, res.per_trajectory.mean(axis=0), rtol=1e-10, atol=1e-12), \
        f"exponents {res.exponents} are not the mean of per_trajectory {res.per_trajectory.mean(axis=0)}"
    assert res.times.size < 2 or np.all(np.diff(res.times) > 0), "times must increase"
    assert res.wall_seconds >= 0, f"wall_seconds must be >= 0, got {res.wall_seconds}"


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
        with torch.random.fork_rng():  # torch's global stream moved between the calls: the seed alone must decide
            torch.manual_seed(1)
            a = est(henon, 300, transient=0, batch=2, seed=3)
            torch.manual_seed(2)
            b = est(henon, 300, transient=0, batch=2, seed=3)
        c = est(henon, 300, transient=0, batch=2, seed=4)
        assert np.array_equal(a.per_trajectory, b.per_trajectory), (
            "the same seed gave different results (with torch's global random state moved between the calls: "
            "draw from the TrajectoryRNG the seed gives, not torch.randn)")
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


def _jvp_columns(system, stream, x, V):
    """The derivative of ``system.step`` at x along each column of V, by forward-mode autodiff."""
    return [torch.func.jvp(lambda z: system.step(z, stream()), (x,), (V[:, :, j],))[1] for j in range(V.shape[2])]


def _difference_columns(system, stream, x, V):
    """The same by central differences, h = eps^(1/3) (1 + max |x_i|) per state (for a step autodiff cannot
    follow: integer arithmetic, a detached part)."""
    h = torch.finfo(x.dtype).eps ** (1 / 3) * (1 + x.abs().max(dim=1, keepdim=True).values)
    return [(system.step(x + h * V[:, :, j], stream()) - system.step(x - h * V[:, :, j], stream())) / (2 * h)
            for j in range(V.shape[2])]


#: the checks of :func:`check_system`, in order
SYSTEM_CHECKS = ("sample_initial", "step", "tangent state", "tangent frame")


def check_system(system: Any, *, batch: int = 4, seed: int = 0, dtype=None, raise_on_failure: bool = True,
                 rtol: float = 1e-7) -> CheckReport:
    """Conformance checks of a System, the counterpart of :func:`check_estimator` for a user's own system.

    On ``batch`` states from ``system.sample_initial`` (seed ``seed``; float64 unless ``dtype``), the same
    random stream for every call of a random system:

    * ``sample_initial``: a finite (B, d) tensor;
    * ``step``: a finite (B, d) tensor of the states' dtype;
    * ``tangent state``: ``tangent(x, V)``'s state equals ``step(x)``;
    * ``tangent frame``: ``tangent(x, V)``'s frame equals the derivative of ``step`` along each column of V
      by one of two routes: forward-mode autodiff (``torch.func.jvp``) of ``step``, within ``rtol`` of the
      frame's scale, or central differences with h = eps^(1/3) (1 + |x|), within 1e3 ``rtol`` (a step that
      autodiff cannot follow, e.g. in integer arithmetic; differences can fail across a discontinuity).
      A hand-written Jacobian that is transposed, of another scheme than the step (an Euler tangent beside
      RK4) or for other parameters fails here.

    Returns a CheckReport; raises AssertionError listing the failures where ``raise_on_failure``."""
    if not isinstance(system, rs.System):
        raise InvalidArgumentError("system", type(system).__name__, "a reference_systems System (Map, Flow, "
                                   "rs.get(...), tasks.build(...), tasks.from_module(...))")
    dtype = torch.float64 if dtype is None else dtype
    report = CheckReport(system.label)
    rng = rs.TrajectoryRNG(seed, batch)
    state: dict = {}

    def stream():
        """The same noise for every call: a copy of the stream at the counter the states were drawn to."""
        g = rs.TrajectoryRNG.from_keys(rng.keys)
        g.counter = state["counter"]
        return g

    def run(check, fn):
        if "failed" in state:
            report.results.append((check, "skipped", f"after {state['failed']} failed"))
            return
        try:
            report.results.append((check, "pass", fn() or "ok"))
        except AssertionError as exc:
            report.results.append((check, "fail", str(exc)))
            state["failed"] = check
        except Exception as exc:  # noqa: BLE001 - a system that raises fails the check
            report.results.append((check, "fail", f"raised {type(exc).__name__}: {exc}"))
            state["failed"] = check

    def sample():
        x = system.sample_initial(batch, rng)
        assert isinstance(x, torch.Tensor) and x.shape == (batch, system.dim), \
            f"sample_initial returned {type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}"
        assert torch.isfinite(x).all(), "sample_initial returned non-finite states"
        state["x"], state["counter"] = x.to(dtype), rng.counter

    def step():
        y = system.step(state["x"], stream())
        assert isinstance(y, torch.Tensor), f"step returned {type(y).__name__}, not a torch.Tensor"
        assert y.shape == state["x"].shape, f"step returned shape {tuple(y.shape)}, not {tuple(state['x'].shape)}"
        assert y.dtype == dtype, f"step returned {y.dtype} for {dtype} states"
        assert torch.isfinite(y).all(), "step returned non-finite states from sample_initial's"
        state["y"] = y

    def tangent_state():
        k = min(system.dim, 3)
        V = torch.linalg.qr(rs.TrajectoryRNG(seed + 1, batch).normal(system.dim, k, dtype=dtype))[0]
        y, W = system.tangent(state["x"], V, stream())
        assert torch.equal(y, state["y"]) or torch.allclose(y, state["y"], rtol=1e-12, atol=0), \
            f"tangent's state differs from step's by up to {float((y - state['y']).abs().max()):.3g}"
        assert isinstance(W, torch.Tensor) and W.shape == V.shape, \
            f"tangent's frame has shape {tuple(getattr(W, 'shape', ()))}, not {tuple(V.shape)}"
        state["V"], state["W"] = V, W

    def tangent_frame():
        x, V, W = state["x"], state["V"], state["W"]
        found = []
        for how, tol, derivative in (("autodiff (torch.func.jvp of step)", rtol, _jvp_columns),
                                     ("central differences of step", 1e3 * rtol, _difference_columns)):
            try:
                expected = torch.stack(derivative(system, stream, x, V), dim=2)
            except Exception as exc:  # noqa: BLE001 - a step this route cannot follow: the other route
                found.append(f"{how} failed ({type(exc).__name__})")
                continue
            scale = float(expected.abs().max()) + 1.0
            worst = float((W - expected).abs().max())
            if worst <= tol * scale:
                return f"within {worst:.2g} of {how}"
            found.append(f"{worst:.3g} from {how} (allowed {tol * scale:.3g})")
        raise AssertionError("tangent's frame differs from the derivative of step: " + "; ".join(found) + ". A "
                             "transposed Jacobian, a tangent of another scheme than the step, or a Jacobian for "
                             "other parameters")

    run("sample_initial", sample)
    run("step", step)
    run("tangent state", tangent_state)
    run("tangent frame", tangent_frame)
    if raise_on_failure and report.failed:
        raise AssertionError(f"system {system.label!r} failed {len(report.failed)} check(s):\n{report}")
    return report


__all__ = ["check_estimator", "check_system", "CheckReport", "CHECKS", "SYSTEM_CHECKS"]
