"""Boundary control variates (suite/estimators/control_variates.py) against exact properties."""
import math

import numpy as np
import pytest
import torch

import reference_systems as rs
from suite import estimators
from suite.core.errors import InvalidArgumentError
from suite.estimators.numerics.control_variates import cross_fitted, feature_count
from suite.scoring.tolerance import tolerance


@pytest.mark.parametrize("steps,interval,taper", [(100, 1, 0), (100, 10, 0), (1_250, 10, 300), (1_003, 7, 200),
                                                  (50, 3, 25)])
def test_boundary_coefficients_telescope(steps, interval, taper):
    """The coefficient at each observation is w(interval ending there) - w(interval starting there),
    0 outside the run: they sum to 0 (so a constant feature contributes nothing, and a stationary
    one has mean 0), and without a taper only the two ends carry -1 and +1."""
    acc = estimators.GrowthAccumulator(4, 1, steps, interval, 1.0, "cpu", taper=taper, control_variates=True)
    ends = np.unique(np.minimum(np.arange(1, math.ceil(steps / interval) + 1) * interval, steps))
    points = [0, *ends.tolist()]
    c = np.array([acc.boundary_coefficient(s) for s in points])
    assert abs(c.sum()) < 1e-12
    weights = [acc.weight(a, b) for a, b in zip(points[:-1], points[1:])]
    np.testing.assert_allclose(c, np.array([0.0, *weights]) - np.array([*weights, 0.0]), rtol=0, atol=1e-15)
    if taper == 0:
        assert c[0] == -1.0 and c[-1] == 1.0 and not np.any(c[1:-1])
    else:  # the flat middle carries nothing, so features are computed only over the tapers
        middle = [i for i, s in enumerate(points) if taper + interval <= s <= steps - taper - interval]
        assert not np.any(c[middle])
        assert middle or 2 * (taper + interval) > steps  # only a run that is all taper has no middle
    with pytest.raises(ValueError, match="not a renormalisation"):
        acc.boundary_coefficient(ends[0] + 1 if interval > 1 else steps + 1)


def test_cross_fitting_is_unbiased_with_a_calibrated_stderr():
    """y = mu + C beta + noise with zero-mean C: the corrected mean is unbiased, its spread is the
    noise's (times 1 + p / (B / 2) for the fitted beta), and a trajectory's own value never enters its
    correction.  Over 300 synthetic batches (B = 400, p = 5) (mean - mu) / stderr is N(0, 1): its
    mean within 4 / sqrt(300) of 0 (4 sampling sd), its sd within [0.88, 1.12] (3 sampling sd of
    the sd of 300 normal values, 1 / sqrt(600) = 0.041 each); the mean variance ratio within 5% of
    sigma^2 / (sigma^2 + |beta|^2) (1 + p / (B / 2)) (300 ratios, each with a relative sd of
    some sqrt(2 / 400) = 7%: the mean's is 0.4%, the 5% leaves room for the p / n approximation)."""
    gen = np.random.default_rng(3)
    B, p, mu, sigma = 400, 5, 0.7, 0.1
    beta = np.array([0.5, -0.3, 0.2, 0.0, 1.0])
    z, ratios, refusals = [], [], 0
    for _ in range(300):
        C = gen.normal(size=(B, p))
        y = (mu + C @ beta + sigma * gen.normal(size=B))[:, None]
        adj, info = cross_fitted(y, C)
        z.append((adj.mean() - mu) / (adj.std(ddof=1) / math.sqrt(B)))
        ratios.append(info["variance_ratio"][0])
        refusals += not info["applied"][0]
    z = np.asarray(z)
    assert refusals <= 2, refusals  # a refusal has probability REJECT_LEVEL = 1e-3: 0.3 expected, P(> 2) = 4e-3
    assert abs(z.mean()) < 4 / math.sqrt(z.size), z.mean()
    assert 0.88 < z.std() < 1.12, z.std()
    exact = sigma ** 2 / (sigma ** 2 + beta @ beta) * (1 + p / (B / 2))
    assert abs(np.mean(ratios) / exact - 1) < 0.05, (np.mean(ratios), exact)
    # cross-fitting: moving y[0] moves its own corrected value by the same amount and nothing else in
    # its fold (the first half, corrected with beta from the second), and every value of the other fold
    y2 = y.copy()
    y2[0] += 10.0
    adj2, _ = cross_fitted(y2, C)
    delta = adj2 - adj
    assert delta[0, 0] == pytest.approx(10.0, abs=1e-9)
    assert np.allclose(delta[1:B // 2], 0.0, atol=1e-12) and np.all(np.abs(delta[B // 2:]) > 0)


def test_a_correction_whose_features_are_not_zero_mean_is_refused():
    """Features with a mean far from 0 (what an ensemble not yet stationary gives) would bias the corrected
    mean by mean(C) beta: the exponent keeps its plain values, the reason is recorded and a warning raised.
    A correction that only adds the fitted beta's noise (C unrelated to y, p = 40 features on B = 200) is
    refused too, quietly: it would raise the variance (by 1 + p / (B / 2) = 1.4)."""
    gen = np.random.default_rng(5)
    B, p = 400, 5
    C = gen.normal(size=(B, p))
    y = np.stack([0.7 + C @ np.array([0.5, -0.3, 0.2, 0.0, 1.0]) + 0.1 * gen.normal(size=B),
                  -0.2 + 0.8 * C[:, 1] + 0.1 * gen.normal(size=B)], axis=1)
    C_offset = C + np.array([3.0, 0.0, 0.0, 0.0, 0.0])  # feature 1 has mean 3, not 0
    with pytest.warns(RuntimeWarning, match="not zero-mean"):
        adj, info = cross_fitted(y, C_offset)
    assert info["applied"] == [False, True] and "not zero-mean" in info["refused"]["1"]
    assert info["shift_t"][0] > 5 * info["shift_t_critical"] > 5 * info["shift_t"][1]
    np.testing.assert_array_equal(adj[:, 0], y[:, 0])
    noise = gen.normal(size=(200, 40))
    flat = -0.2 + 0.1 * gen.normal(size=(200, 1))
    adj, info = cross_fitted(flat, noise)
    assert info["applied"] == [False] and "did not lower the variance" in info["refused"]["1"]
    assert info["variance_ratio"][0] > 1
    np.testing.assert_array_equal(adj, flat)


def test_control_variates_on_unbounded_states_keep_the_plain_estimate():
    """x' = A x, A non-normal with eigenvalues 0.3, -0.5 +- 2i: the states grow as e^{0.3 t}, so the boundary
    features have no stationary mean. Before the mean test the correction moved lambda_2 and lambda_3 of a run of
    T = 136 from -0.499 and -0.501 to -2.59 and 1.59 (variance ratio 1.4e6); now every exponent keeps the plain
    run's value exactly and says why."""
    Bm = torch.tensor([[0.3, 0, 0], [0, -0.5, 2.0], [0, -2.0, -0.5]], dtype=torch.float64)
    P = torch.tensor([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    A = P @ Bm @ torch.linalg.inv(P)
    flow = rs.Flow("linear_ode_spiral", lambda x: x @ A.to(x).T, 3, 0.01, sample_initial=lambda b, g: g.normal(3))
    run = dict(transient=100, batch=560, seed=1)
    plain = estimators.get("qr").estimate(flow, 300, **run)
    with pytest.warns(RuntimeWarning, match="not zero-mean"):
        cv = estimators.get("qr", control_variates=True).estimate(flow, 300, **run)
    assert cv.meta["control_variates"]["applied"] == [False, False, False]
    np.testing.assert_array_equal(cv.exponents, plain.exponents)
    np.testing.assert_array_equal(cv.stderr, plain.stderr)


def _within_tolerance(system, res):
    ref = system.reference
    tol = tolerance(ref.uncertainty, res.stderr, res.meta["stderr_dof"], res.meta["T"], ref.bias_nats)
    return np.abs(res.exponents - ref.values), tol


def test_control_variates_on_lorenz_cut_the_spread_and_keep_the_reference_and_the_sum_rule():
    """Lorenz-63, 1024 trajectories of T = 12.5 after a 20-unit transient, taper 3 time units.
    The same trajectories with and without control variates: the uncorrected estimate is the plain
    one exactly; the corrected spread is a fraction of it (measured on 4096 trajectories: variance
    ratios 0.12 / 0.060 / 0.29 for lambda_1 / lambda_2 / lambda_3; bounds 1.25x those, 5 sampling
    sd of a variance ratio from 1024 values, sqrt(2 / 1024) = 4.4% each); both agree with the
    reference within its derived tolerance; and the per-trajectory sum lambda_1 + lambda_2 + lambda_3,
    the log-volume growth, the same for any frame (-(sigma + 1 + beta) up to the RK4 map's ln |det|,
    which varies along the orbit: spread 5.9e-6), moves by at most 4 of its standard errors (measured
    1.1) and its spread does not grow by more than the fitted beta's p / (B / 2) = 5.5%, bound 10%
    (measured: it shrinks to 3.4e-6, the correction taking out ln |det|'s own boundary term too)."""
    lorenz = rs.get("lorenz63")
    kw = dict(transient=2_000, batch=1_024, seed=0)
    plain = estimators.get("qr", reorth_every=10, taper=300, align=1_000).estimate(lorenz, 1_250, **kw)
    cv = estimators.get("qr", reorth_every=10, taper=300, align=1_000,
                        control_variates=True).estimate(lorenz, 1_250, **kw)
    info = cv.meta["control_variates"]
    assert info["features"] == feature_count(lorenz, 3) == 28
    np.testing.assert_allclose(info["uncorrected_exponents"], plain.exponents, rtol=0, atol=1e-12)
    np.testing.assert_allclose(info["uncorrected_stderr"], plain.stderr, rtol=1e-12)
    ratio = cv.per_trajectory.var(0) / plain.per_trajectory.var(0)
    np.testing.assert_allclose(ratio, info["variance_ratio"], rtol=1e-9)
    assert np.all(ratio < 1.25 * np.array([0.12, 0.060, 0.29])), ratio
    np.testing.assert_allclose(cv.exponents, cv.per_trajectory.mean(0), rtol=0, atol=1e-12)
    for res in (plain, cv):
        err, tol = _within_tolerance(lorenz, res)
        assert np.all(err <= tol), (err, tol)
    sums, plain_sums = cv.per_trajectory.sum(1), plain.per_trajectory.sum(1)
    assert abs(sums.mean() - plain_sums.mean()) < 4 * plain_sums.std(ddof=1) / math.sqrt(sums.size)
    assert sums.std() < 1.1 * plain_sums.std(), (sums.std(), plain_sums.std())


def test_jvp_qr_takes_control_variates_on_a_map():
    """The option lives in the QR loop, so jvp_qr has it too: on the Henon map (p = 11 features)
    it gives qr's corrected numbers to round-off, and a smaller spread than without."""
    henon = rs.get("henon")
    kw = dict(transient=200, batch=256, seed=1)
    a = estimators.get("qr", taper=20, control_variates=True).estimate(henon, 200, **kw)
    b = estimators.get("jvp_qr", taper=20, control_variates=True).estimate(henon, 200, **kw)
    assert a.meta["control_variates"]["features"] == feature_count(henon, 2) == 11
    np.testing.assert_allclose(b.per_trajectory, a.per_trajectory, rtol=0, atol=1e-10)
    assert np.all(np.asarray(a.meta["control_variates"]["variance_ratio"]) < 1.0)


def test_two_trajectory_takes_control_variates_with_the_separation_as_its_frame():
    """Lorenz-63, 512 trajectories of T = 12.5 after 20 time units, taper 3: the separation's
    direction is the frame (k = 1, 16 features).  lambda_1's spread falls to a fraction of the plain
    one (measured on 4096 trajectories: 0.131; bound 0.18 = 0.131 x (1 + p / (B / 2) = 1.0625 for
    the fitted beta at this batch) x 1.31, 5 sampling sd of a variance ratio from 512 values,
    sqrt(2 / 512) = 6.25% each), the uncorrected value is the plain run's, and both agree with the
    reference within their derived tolerances."""
    lorenz = rs.get("lorenz63")
    kw = dict(transient=2_000, batch=512, seed=0)
    plain = estimators.get("two_trajectory", renorm_every=10, taper=300).estimate(lorenz, 1_250, **kw)
    cv = estimators.get("two_trajectory", renorm_every=10, taper=300,
                        control_variates=True).estimate(lorenz, 1_250, **kw)
    info = cv.meta["control_variates"]
    assert info["features"] == feature_count(lorenz, 1) == 16
    np.testing.assert_allclose(info["uncorrected_exponents"], plain.exponents, rtol=0, atol=1e-12)
    assert info["variance_ratio"][0] < 0.18, info["variance_ratio"]
    ref = lorenz.reference
    for res in (plain, cv):
        tol = tolerance(ref.uncertainty[:1], res.stderr, res.meta["stderr_dof"], res.meta["T"], ref.bias_nats)
        assert abs(res.exponents[0] - ref.values[0]) <= tol[0], (res.exponents, tol)


@pytest.mark.filterwarnings("ignore:control variates refused")  # Lorenz-63 from transient 0: not stationary
def test_bad_control_variates_and_small_batches_are_named_errors():
    with pytest.raises(InvalidArgumentError, match=r"batch.*>= 320"):
        estimators.get("two_trajectory", control_variates=True).estimate(rs.get("lorenz63"), 100, batch=64)
    for name in ("qr", "jvp_qr", "two_trajectory"):
        for bad in (1, "yes", None):
            with pytest.raises(InvalidArgumentError, match="control_variates"):
                estimators.get(name, control_variates=bad)
    est = estimators.get("qr", reorth_every=10, control_variates=True)
    with pytest.raises(InvalidArgumentError, match=r"batch.*>= 560.*28 boundary features"):
        est.estimate(rs.get("lorenz63"), 100, batch=64)
    # k tangent vectors set the count: k = 1 on Lorenz-63, 3 + 2 * 6 + 1 = 16 features
    with pytest.raises(InvalidArgumentError, match=r">= 320"):
        est.estimate(rs.get("lorenz63"), 100, batch=64, k=1)
    assert feature_count(rs.get("lorenz63"), 1) == 16
    res = est.estimate(rs.get("lorenz63"), 100, batch=320, k=1, dtype=torch.float32)
    assert res.exponents.shape == (1,) and np.isfinite(res.exponents).all()


def test_on_gaussian_products_control_variates_find_nothing_and_bias_nothing():
    """Products of i.i.d. Gaussian matrices (Newman's exact spectrum): the law of a step does not
    depend on the state or the frame (rotation invariance), so no feature predicts the growth and
    there is no boundary term to remove.  Over 20 seeds (N = 4, 1100 trajectories, T = 50) the
    corrected (estimate - exact) / stderr is N(0, 1): mean within 4 / sqrt(80) of 0, sd within
    [0.8, 1.25]; and the variance ratio is the price of fitting noise only, between 1 and
    1 + p / (B / 2) = 1.098 (p = 54; measured 1.047: the state features of this stateless
    system are exact zeros)."""
    N, B = 4, 1_100
    system = rs.get("gaussian_products", N=N)
    exact = system.reference.values
    p = feature_count(system, N)
    assert p == 54 and B >= 20 * p
    est = estimators.get("qr", control_variates=True)
    z, ratios = [], []
    for seed in range(20):
        res = est.estimate(system, 50, batch=B, seed=seed)
        z.append((res.exponents - exact) / res.stderr)
        ratios.append(res.meta["control_variates"]["variance_ratio"])
    z = np.concatenate(z)
    assert abs(z.mean()) < 4 / math.sqrt(z.size), z.mean()
    assert 0.8 < z.std() < 1.25, z.std()
    assert np.all((1.0 < np.mean(ratios, axis=0)) & (np.mean(ratios, axis=0) < 1 + p / (B / 2))), np.mean(ratios, 0)


def test_a_plugin_flow_without_rhs_gets_the_other_features():
    """A user's System subclass of kind 'flow' that implements only the step and the tangent (no
    ``rhs``): ln |f(x)| is left out (p = 27 for d = k = 3, not 28) and the estimate runs."""
    lorenz = rs.get("lorenz63")

    class SteppedFlow(rs.System):
        kind = "flow"

        def _step(self, x, generator):
            return lorenz.step(x, generator)

        def _tangent(self, x, V, generator):
            return lorenz.tangent(x, V, generator)

    flow = SteppedFlow("stepped_lorenz", 3, dt=lorenz.dt, sample_initial=lorenz.sample_initial)
    assert not hasattr(flow, "rhs") and feature_count(flow, 3) == 27
    res = estimators.get("qr", reorth_every=10, taper=20, control_variates=True).estimate(
        flow, 100, transient=100, batch=540)
    assert res.meta["control_variates"]["features"] == 27 and np.isfinite(res.exponents).all()
