"""suite.scoring.checks.check_estimator: passes for the built-ins, fails with a useful message for broken ones."""
import math

import numpy as np
import pytest

from suite import estimators
from suite.scoring.checks import CHECKS, check_estimator
from wrong_estimators import Biased, EulerTangent, FrozenJacobian, PlainQR, Transposed
from suite.core.errors import InvalidArgumentError
from suite.estimators import QREstimator


# jvp_qr is slow here (torch.func per call, 23 s) and equals qr to 1e-12 on every catalogue system
# (tests/test_estimators.py), so its full conformance run is in the slow set
@pytest.mark.parametrize("name", ["qr", "two_trajectory", pytest.param("jvp_qr", marks=pytest.mark.slow)])
def test_builtins_pass(name):
    report = check_estimator(estimators.get(name))
    assert not report.failed
    assert [r[0] for r in report.results] == list(CHECKS)
    assert all(r[1] == "pass" for r in report.results), str(report)


class Bits(QREstimator):
    """Reports log2 instead of natural log."""
    name = "bits"

    def _estimate(self, system, cfg):
        res = super()._estimate(system, cfg)
        for a in ("exponents", "stderr", "per_trajectory", "history"):
            setattr(res, a, getattr(res, a) / math.log(2))
        return res


class Overconfident(QREstimator):
    name = "overconfident"

    def _estimate(self, system, cfg):
        res = super()._estimate(system, cfg)
        res.stderr = res.stderr / 10
        return res


class CrossTalk(QREstimator):
    """Every trajectory reports the batch mean: trajectories are not independent."""
    name = "crosstalk"

    def _estimate(self, system, cfg):
        res = super()._estimate(system, cfg)
        res.per_trajectory = np.repeat(res.per_trajectory.mean(0, keepdims=True), res.per_trajectory.shape[0], 0)
        return res


class ZeroStderr(QREstimator):
    name = "zero_stderr"

    def _estimate(self, system, cfg):
        res = super()._estimate(system, cfg)
        res.stderr = np.zeros_like(res.stderr)
        return res


@pytest.mark.parametrize("broken,check,words", [
    (Bits(), "logistic", "off"),
    # the known traps (tests/wrong_estimators.py), each on the check that shows it
    (Transposed(), "non-normal network", "off"),
    (Transposed(), "flow tangent", "off"),
    (FrozenJacobian(), "flow tangent", "off"),
    (EulerTangent(), "flow tangent", "off"),
    (Biased(), "linear_map", "off"),
    (Overconfident(), "gaussian_products stderr", "not calibrated"),
    (CrossTalk(), "batch", "depends on the other trajectories"),
    (ZeroStderr(), "contract", "never a silent 0"),
])
def test_broken_estimators_fail_with_a_message(broken, check, words):
    report = check_estimator(broken, raise_on_failure=False, checks=[check])
    assert [r[0] for r in report.results] == [check]
    failed = {name: msg for name, status, msg in report.results if status == "fail"}
    assert check in failed and words in failed[check], str(report)


def test_checks_selects_a_subset_and_refuses_unknown_names():
    report = check_estimator(estimators.get("qr"), checks="reproducible")
    assert report.results == [("reproducible", "pass", "same seed identical, different seed different")]
    for bad in (["reproducable"], [], ["batch", "speed"]):
        with pytest.raises(InvalidArgumentError, match="checks"):
            check_estimator(estimators.get("qr"), checks=bad)


class Raises(QREstimator):
    """Fails every check at once (each failing check is exercised above; this keeps the raise path cheap)."""
    name = "raises"

    def _estimate(self, system, cfg):
        raise RuntimeError("broken on purpose")


def test_a_failing_check_raises_by_default():
    with pytest.raises(AssertionError, match=r"raises.*failed 9 conformance check") as exc:
        check_estimator(Raises())
    assert "raised RuntimeError: broken on purpose" in str(exc.value)


def test_clear_errors_for_names_and_non_estimators():
    """A black-box test's cases: check_estimator on a name builds it, on an object without estimate() names
    what is allowed (it raised AttributeError); a name differing in case gets 'did you mean'; a system given
    by name says how to build it."""
    from suite.core.errors import InvalidArgumentError, UnknownNameError
    report = check_estimator("qr", checks=["contract"])
    assert report.results[0][1] == "pass"
    with pytest.raises(InvalidArgumentError, match="an object with an estimate"):
        check_estimator(object())
    with pytest.raises(UnknownNameError, match="Did you mean 'qr'"):
        estimators.get("QR")
    with pytest.raises(InvalidArgumentError, match=r"system='henon'.*reference_systems.get\('henon'\)"):
        estimators.get("qr").estimate("henon", 10)


def test_check_system_passes_the_catalogue_and_catches_a_transposed_jacobian():
    """Every catalogue system, task and every 4th dysts flow pass; a user's Henon with its Jacobian transposed
    and one whose step returns the wrong shape fail, each by name; a user flow's field Jacobian, which the
    suite turns into the exact RK4 tangent, passes."""
    import torch
    import reference_systems as rs
    import tasks
    from suite.checks import check_system
    for system in ([rs.get(n) for n in rs.names()] + [tasks.build(t) for t in tasks.names()]
                   + [rs.get(n) for n in rs.names("dysts/*")[::4]]):
        report = check_system(system, raise_on_failure=False)
        assert not report.failed, (system.label, report.failed)

    def henon(x):
        return torch.stack([1 - 1.4 * x[:, 0] ** 2 + x[:, 1], 0.3 * x[:, 0]], 1)

    def jac(x):
        J = torch.zeros(x.shape[0], 2, 2, dtype=x.dtype)
        J[:, 0, 0], J[:, 0, 1], J[:, 1, 0] = -2.8 * x[:, 0], 1.0, 0.3
        return J
    start = dict(sample_initial=lambda b, g: 0.1 * g.normal(2))
    check_system(rs.Map("henon_mine", henon, 2, jacobian=jac, **start))
    with pytest.raises(AssertionError, match="tangent frame: tangent's frame differs"):
        check_system(rs.Map("henon_transposed", henon, 2, jacobian=lambda x: jac(x).transpose(1, 2), **start))
    report = check_system(rs.Map("henon_short", lambda x: henon(x)[:, :1], 2, **start), raise_on_failure=False)
    assert [r[0] for r in report.failed] == ["step"] and "shape (4, 1)" in report.failed[0][2]
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
    euler = rs.Flow("spiral_euler", lambda x: x @ A.T, 2, 0.1, jacobian=lambda x: A.expand(x.shape[0], 2, 2))
    check_system(euler)  # the Jacobian of the field is right: the RK4 tangent is built from it


def test_an_estimator_on_torchs_global_stream_and_an_inconsistent_result_fail():
    """A black-box test's cases: an initial frame from torch.randn passed 'reproducible' (the transient aligned
    it before anything was measured; now the check runs without one and moves torch's stream between calls), and
    exponents that are not the mean of per_trajectory passed 'contract'."""
    report = check_estimator(PlainQR(frame_from_torch=True), checks=["reproducible"], raise_on_failure=False)
    assert report.failed and "torch's global random state" in report.failed[0][2]
    report = check_estimator(PlainQR(shift=0.01), checks=["contract"], raise_on_failure=False)
    assert report.failed and "not the mean of per_trajectory" in report.failed[0][2]
