"""The reference catalogue: exact values, invariants and independent cross-checks."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

import reference_systems as rs
from suite import estimators
from test_qr_estimator import within_tolerance

QR = estimators.get("qr")


def kaplan_yorke(spectrum):
    s = np.sort(np.asarray(spectrum))[::-1]
    c = np.cumsum(s)
    j = int(np.max(np.nonzero(c >= 0)[0])) + 1
    return j + c[j - 1] / abs(s[j])


def test_every_system_states_a_reference_or_why_not():
    for system in rs.catalogue():
        assert system.reference is not None or system.meta.get("note"), system.label


@pytest.mark.parametrize("name,params", [("tent", {"mu": 2.0}), ("tent", {"mu": 1.7}), ("bernoulli", {"mu": 2.0}),
                                         ("bernoulli", {"mu": 3.0}), ("bernoulli", {"mu": (1 + 5 ** 0.5) / 2})])
def test_constant_slope_maps_give_ln_mu_on_every_orbit(name, params):
    system = rs.get(name, **params)
    res = QR.estimate(system, 2_000, transient=100, batch=8, seed=0)
    np.testing.assert_allclose(res.per_trajectory[:, 0], math.log(params["mu"]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["tent", "bernoulli"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_slope_two_orbits_do_not_collapse_and_stay_uniform(name, dtype):
    """A plain float slope-2 map reaches 0 within ~53 steps; ours keeps a uniform orbit."""
    system = rs.get(name, mu=2.0)
    g = rs.TrajectoryRNG(0, 256)
    x = system.sample_initial(256, g).to(dtype)
    for _ in range(500):
        x = system.step(x, g)
    assert (x > 0).all() and (x < 1).all()
    assert stats.kstest(x.double().flatten().numpy(), "uniform").pvalue > 1e-3
    # the naive map does collapse: the reason for the construction
    y = torch.rand(256, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for _ in range(80):
        y = torch.remainder(2 * y, 1.0) if name == "bernoulli" else 2 * torch.minimum(y, 1 - y)
    assert (y == 0).all()


def test_cat_map_exact_and_paired():
    system = rs.get("cat_map")
    res = QR.estimate(system, 1_000, transient=50, batch=4, seed=0)
    lam = math.log((3 + math.sqrt(5)) / 2)
    np.testing.assert_allclose(res.per_trajectory, [[lam, -lam]] * 4, atol=1e-12)


def test_standard_map_symplectic_and_near_reference():
    system = rs.get("standard_map")
    res = QR.estimate(system, 2_000, transient=200, batch=256, seed=2)
    # det J = 1 at every step: lambda_1 + lambda_2 = 0 on every trajectory up to round-off
    np.testing.assert_allclose(res.per_trajectory.sum(1), 0.0, atol=1e-12)
    err, tol = within_tolerance(system, res)
    assert np.all(err <= tol) and tol[0] < 0.02


@pytest.mark.slow
def test_standard_map_reference_by_a_long_run():
    """Independent long run: 2048 trajectories x 20,000 steps (about 2 minutes)."""
    system = rs.get("standard_map")
    res = QR.estimate(system, 20_000, transient=1_000, batch=2048, seed=12345)
    # stderr ~ 1e-4; the reference's +-5e-4 plus 4 stderr plus the bias bound 1/T
    assert abs(res.exponents[0] - 1.620) <= 5e-4 + 4 * res.stderr[0] + 1 / 20_000


@pytest.mark.slow
@pytest.mark.parametrize("r", [3.9, 3.8, 3.7, 3.83])
def test_logistic_computed_references_by_a_long_run(r):
    system = rs.get("logistic", r=r)
    res = QR.estimate(system, 100_000, transient=1_000, batch=1024, seed=777)
    ref = system.reference
    assert abs(res.exponents[0] - ref.values[0]) <= ref.uncertainty[0] + 4 * res.stderr[0] + 1e-5


def test_rossler_reference_satisfies_the_sum_rule():
    """lambda_1 + lambda_2 + lambda_3 = <div f> = a - c + <x>, with <x> measured independently
    (on phase-random initial states: see the rossler docstring)."""
    system = rs.get("rossler")
    B = 256
    g = rs.TrajectoryRNG(99, B)
    x = system.sample_initial(B, g)
    with torch.no_grad():
        for _ in range(5_000):
            x = system.step(x)
        acc = torch.zeros(B, dtype=torch.float64)
        n = 10_000  # 200 time units
        for _ in range(n):
            x = system.step(x)
            acc += x[:, 0]
    mean_x = acc / n
    div = 0.2 - 5.7 + float(mean_x.mean())
    se = float(mean_x.std() / math.sqrt(B))
    ref = system.reference
    assert abs(ref.values.sum() - div) <= ref.uncertainty.sum() + 4.5 * se
    assert se < 2e-3  # the check has teeth: a lambda_3 off by 0.01 would fail it


def test_linear_ode_exact_and_no_zero_exponent():
    system = rs.get("linear_ode")
    res = QR.estimate(system, 2_000, transient=400, batch=4, seed=0)
    err, tol = within_tolerance(system, res)
    assert np.all(err <= tol)
    assert np.all(err < 1e-4)


def test_lorenz96_sum_positive_count_and_dimension():
    system = rs.get("lorenz96")
    res = QR.estimate(system, 3_000, transient=1_000, batch=8, seed=0)
    # div f = -N: the sum is -40 on every trajectory up to RK4's O(dt^4)
    np.testing.assert_allclose(res.per_trajectory.sum(1), -40.0, atol=2e-4)
    assert (res.exponents > 0).sum() == system.reference.extra["n_positive"]
    # stderr of D_KY from the per-trajectory spread: ~0.1 at T = 30
    dky = [kaplan_yorke(p) for p in res.per_trajectory]
    assert abs(np.mean(dky) - 27.07) < 0.1 + 4 * np.std(dky, ddof=1) / math.sqrt(len(dky))
    err, tol = within_tolerance(system, res)
    assert np.all(err <= tol)


@pytest.mark.slow
def test_lorenz96_reference_by_a_long_run():
    system = rs.get("lorenz96")
    res = QR.estimate(system, 30_000, transient=2_000, batch=16, seed=4242)
    err, tol = within_tolerance(system, res)
    assert np.all(err <= tol)
    # the run resolves the reference's own +-0.01 (measured: errors <= 0.005, stderr ~0.008)
    assert np.all(res.stderr[:5] < 0.01)
    dky = [kaplan_yorke(p) for p in res.per_trajectory]
    assert abs(np.mean(dky) - 27.07) < 0.1 + 4 * np.std(dky, ddof=1) / math.sqrt(len(dky))


def test_parameters_override_and_reference_follows():
    assert rs.get("logistic", r=3.5).reference is None
    assert rs.get("henon", a=1.2).reference is None
    assert rs.get("lorenz63", rho=35.0).reference is None
    assert rs.get("lorenz96", N=36).reference is None and rs.get("lorenz96", N=36).dim == 36
    assert rs.get("tent", mu=1.5).reference.values[0] == pytest.approx(math.log(1.5))
    np.testing.assert_allclose(rs.get("linear_ode", A=[[-1.0, 0.0], [0.0, -2.0]]).reference.values, [-1, -2])
