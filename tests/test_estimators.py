"""The built-in estimators agree with each other where their methods overlap."""
import math

import numpy as np
import pytest

import reference_systems as rs
from suite import estimators
from suite.core.errors import InvalidArgumentError, NotApplicableError
from suite.scoring.tolerance import t_quantile

QR, JVP, TWO = estimators.get("qr"), estimators.get("jvp_qr"), estimators.get("two_trajectory")


def test_registry_lists_builtins_and_validation_defaults():
    assert {"qr", "jvp_qr", "two_trajectory"} <= set(estimators.names())
    assert estimators.validation_defaults() == ["qr", "two_trajectory"]


@pytest.mark.parametrize("system", rs.catalogue(), ids=lambda s: s.label)
def test_jvp_qr_equals_qr_on_every_catalogue_system(system):
    """Same method, tangent by JVP of the step instead of the system's Jacobian: equal to round-off."""
    reason = JVP.not_applicable(system)
    if reason:
        assert system.meta.get("differentiable_step") is False
        with pytest.raises(NotApplicableError):
            JVP.estimate(system, 10)
        return
    k = min(system.dim, 8)
    a = QR.estimate(system, 60, transient=20, batch=2, seed=3, k=k)
    b = JVP.estimate(system, 60, transient=20, batch=2, seed=3, k=k)
    np.testing.assert_allclose(b.per_trajectory, a.per_trajectory, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name,params,steps,batch", [
    ("henon", {}, 4_000, 32), ("logistic", {"r": 3.9}, 4_000, 32), ("standard_map", {}, 2_000, 32),
    ("lorenz63", {}, 3_000, 64), ("gaussian_products", {"N": 4}, 2_000, 16),
])
def test_two_trajectory_agrees_with_qr_lambda_1(name, params, steps, batch):
    system = rs.get(name, **params)
    transient = 500
    a = QR.estimate(system, steps, transient=transient, batch=batch, seed=1)
    b = TWO.estimate(system, steps, transient=transient, batch=batch, seed=2)
    T = steps * system.dt
    # independent runs (different seeds): joint stderr, plus each method's boundary term (1 nat / T)
    # and the finite separation's O(d0) ~ 1e-8 bias
    tol = t_quantile(batch - 1) * math.hypot(a.stderr[0], b.stderr[0]) + 2 / T + 1e-6
    assert abs(a.exponents[0] - b.exponents[0]) <= tol, (a, b, tol)


@pytest.mark.parametrize("taper", [0, 1_000])
def test_two_trajectory_on_same_trajectories_matches_qr_closely(taper):
    """Same seed: same initial states; the neighbour's direction aligns with the QR frame's first
    vector, so the two methods' per-step growths agree, and so do their tapered averages."""
    hen = rs.get("henon")
    a = estimators.get("qr", taper=taper).estimate(hen, 3_000, transient=300, batch=4, seed=0, k=1)
    b = estimators.get("two_trajectory", taper=taper).estimate(hen, 3_000, transient=300, batch=4, seed=0)
    np.testing.assert_allclose(a.per_trajectory, b.per_trajectory, atol=1e-6)
    if taper:
        plain = QR.estimate(hen, 3_000, transient=300, batch=4, seed=0, k=1)
        assert np.abs(a.per_trajectory - plain.per_trajectory).max() > 1e-4  # the taper did change the average


def test_two_trajectory_contract_and_errors():
    res = TWO.estimate(rs.get("logistic"), 2_000, transient=100, batch=16, seed=0)
    assert res.exponents.shape == (1,) and res.per_trajectory.shape == (16, 1)
    assert abs(res.exponents[0] - math.log(2)) < 1e-3
    with pytest.raises(InvalidArgumentError, match="largest exponent"):
        TWO.estimate(rs.get("lorenz63"), 100, k=2)
    with pytest.raises(InvalidArgumentError, match="d0"):
        estimators.get("two_trajectory", d0=-1.0)
    with pytest.raises(InvalidArgumentError, match="renorm_every"):
        estimators.get("two_trajectory", renorm_every=0)


@pytest.mark.parametrize("name,params", [("henon", {}), ("lorenz63", {}), ("gaussian_products", {"N": 6}),
                                         ("lorenz96", {})])
def test_qr_householder_mgs_and_cholqr_agree(name, params):
    system = rs.get(name, **params)
    a = estimators.get("qr", method="householder").estimate(system, 300, transient=50, batch=3, seed=2)
    for method in ("mgs", "cholqr", "cholqr2"):
        b = estimators.get("qr", method=method).estimate(system, 300, transient=50, batch=3, seed=2)
        np.testing.assert_allclose(b.per_trajectory, a.per_trajectory, rtol=1e-9, atol=1e-9)


def test_reorth_every_changes_nothing_when_no_direction_is_lost():
    """Renormalising every 5 steps instead of every step: the same sums (QR of a product telescopes)."""
    hen = rs.get("henon")
    a = estimators.get("qr", reorth_every=1).estimate(hen, 1_000, transient=100, batch=3, seed=0)
    b = estimators.get("qr", reorth_every=5).estimate(hen, 1_000, transient=100, batch=3, seed=0)
    np.testing.assert_allclose(b.per_trajectory, a.per_trajectory, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name", ["two_trajectory", "rosenstein", "kantz"])
def test_largest_only_estimators_refuse_k_above_1_and_report_the_k_they_return(name):
    """k = dim was taken and one exponent returned with meta['k'] = dim (a black-box test, Henon, k = 2)."""
    henon = rs.get("henon")
    est = estimators.get(name)
    with pytest.raises(InvalidArgumentError, match=r"invalid k=2: allowed 1 or None"):
        est.estimate(henon, 500, batch=2, k=2)
    for k in (None, 1):
        res = est.estimate(henon, 500, batch=2, k=k)
        assert res.exponents.shape == (1,) and res.meta["k"] == 1


def test_a_spread_of_zero_becomes_the_round_off_floor_and_says_so():
    """x -> A x with A upper triangular: after the transient every trajectory's and every block's estimate is
    the same to the last bit, so the spread is 0; the stderr is then the accumulation's round-off bound
    eps (|lambda| + 1/T) sqrt(renormalisations), > 0, and meta names the exponents it was applied to."""
    import torch
    A = torch.tensor([[0.9, 5.0], [0.0, 0.5]], dtype=torch.float64)
    lin = rs.Map("upper_triangular", lambda x: x @ A.to(x).T, 2, sample_initial=lambda b, g: g.normal(2))
    for batch, k in ((4, None), (1, 1)):
        res = estimators.get("qr").estimate(lin, 2000, transient=100, batch=batch, k=k)
        floor = np.finfo(np.float64).eps * (np.abs(res.exponents) + 1 / 2000) * math.sqrt(2000)
        np.testing.assert_allclose(res.stderr, floor, rtol=1e-12)
        assert res.meta["stderr_floor"]["exponents"] == list(range(1, res.exponents.size + 1))
        np.testing.assert_allclose(res.exponents, np.log([0.9, 0.5])[:res.exponents.size], atol=1e-12)


def test_two_trajectory_says_the_neighbour_met_the_state_when_the_separation_is_lost():
    """x -> 3 x: the state grows to 7e8 while d0 stays sqrt(eps) (1 + |x_0|), so the neighbour rounds onto the
    state; the error said 'the Jacobian is singular', now what happened and what to do."""
    from suite.core.errors import TrajectoryError
    grow = rs.Map("grow", lambda x: 3 * x, 1, sample_initial=lambda b, g: 1 + g.uniform(1))
    with pytest.raises(TrajectoryError, match="the neighbour and the state became equal.*give d0, or use qr"):
        estimators.get("two_trajectory").estimate(grow, 2000, batch=2)
