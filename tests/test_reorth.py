"""reorth_every='auto': the interval chosen from the measured spread, and the run it gives."""
import math
import warnings

import numpy as np
import pytest
import torch

import reference_systems as rs
from suite import estimators
from suite.core.errors import InvalidArgumentError, TrajectoryError
from suite.estimators.numerics import reorth
from suite.estimators.numerics.linalg import MGS_MAX_DELTA
from suite.scoring.tolerance import tolerance

AUTO = estimators.from_spec("qr(reorth_every='auto')")


def constant_growth(rates, n=128, batch=3):
    return torch.tensor(rates, dtype=torch.float64).expand(n, batch, len(rates)).clone()


def test_window_sums_are_the_growth_of_an_m_step_interval():
    g = torch.randn(50, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = reorth.window_log_growth(reorth.cumulative_log_growth(g), 7)
    assert w.shape == (44, 2, 3)
    torch.testing.assert_close(w[10], g[10:17].sum(0))


@pytest.mark.parametrize("rates,dtype,method,cap,expect,limited_by", [
    # spread 1 nat a step: 1.5 m <= 18.02 (half of float64's 36.04 nats) -> m = 12 (16 would need 24)
    ([0.5, -0.5], torch.float64, "householder", 64, 12, "precision"),
    # mgs in float32 hands on frames beyond MGS_MAX_DELTA / eps = 840 (6.73 nats): 1.5 m <= 6.73 -> 4
    ([0.5, -0.5], torch.float32, "mgs", 64, 4, "qr method's range"),
    # one direction growing 2 nats a step in float32: 1.5 * 2 m <= 44.4 -> m = 12 (16 would need 48)
    ([2.0], torch.float32, "householder", 64, 12, "magnitude"),
    # a slow spread: the cap (e.g. steps // 64) binds
    ([0.01, -0.01], torch.float64, "householder", 20, 20, "cap"),
])
def test_choose_interval_on_known_growth(rates, dtype, method, cap, expect, limited_by):
    m, info = reorth.choose_interval(constant_growth(rates), dtype=dtype, method=method, cap=cap)
    assert m == expect and info["limited_by"] == limited_by
    spread = (max(rates) - min(rates)) * m
    assert info["log_condition"] == pytest.approx(spread)
    assert reorth.SAFETY * info["log_condition"] <= min(info["precision_budget"], info["method_limit"])
    if method == "mgs":
        assert info["method_limit"] == pytest.approx(math.log(MGS_MAX_DELTA / torch.finfo(dtype).eps))


def test_worst_window_not_the_mean_sets_the_interval():
    """One trajectory with a burst of spread in a few steps: the interval fits the burst."""
    g = constant_growth([0.1, -0.1])
    g[60:63, 1] = torch.tensor([3.0, -3.0], dtype=torch.float64)  # 6 nats a step for 3 steps
    m, info = reorth.choose_interval(g, dtype=torch.float64, method="householder", cap=64)
    assert m == 2 and info["log_condition"] == pytest.approx(12.0)  # 1.5 * (18 + 0.2 * 1) > 18.02 at m = 3


def test_interval_cap():
    assert reorth.interval_cap(100_000) == reorth.MAX_INTERVAL
    assert reorth.interval_cap(640) == 10 and reorth.interval_cap(10) == 1
    assert reorth.interval_cap(100_000, taper=300) == 37


def test_warning_when_one_step_already_exceeds_half_the_digits():
    with pytest.warns(RuntimeWarning, match="float32.*float64"):
        m, info = reorth.choose_interval(constant_growth([5.0, -5.0]), dtype=torch.float32, method="householder",
                                         cap=64)
    assert m == 1 and "warning" in info


def test_auto_is_the_fixed_interval_it_chose_when_probing_on_copies():
    """Without a transient the probe runs on copies, so the run is bit for bit qr(reorth_every=m) with
    the m it chose (Henon float64: m = 4, bounded by precision).  With a transient shorter than the
    probe, the transient renormalises every step before the choice: the same up to round-off."""
    hen = rs.get("henon")
    for transient, atol in ((0, 0.0), (100, 1e-13)):
        a = AUTO.estimate(hen, 2_000, transient=transient, batch=8, seed=3)
        info = a.meta["reorth_auto"]
        assert info["interval"] == 4 and info["limited_by"] == "precision" and info["method"] == "mgs"
        b = estimators.get("qr", reorth_every=4).estimate(hen, 2_000, transient=transient, batch=8, seed=3)
        np.testing.assert_allclose(a.per_trajectory, b.per_trajectory, rtol=0, atol=atol)
        np.testing.assert_allclose(a.history, b.history, rtol=0, atol=atol)


def test_probe_on_copies_leaves_a_random_systems_noise_alone():
    """gaussian_products draws fresh matrices every step: the probe on copies must not consume the
    run's random streams (auto picks m = 1 here, spread ~11 nats a step)."""
    gp = rs.get("gaussian_products", N=6)
    a = AUTO.estimate(gp, 300, batch=4, seed=1)
    m = a.meta["reorth_auto"]["interval"]
    b = estimators.get("qr", reorth_every=m).estimate(gp, 300, batch=4, seed=1)
    np.testing.assert_array_equal(a.per_trajectory, b.per_trajectory)


def test_probe_in_place_in_a_long_transient():
    """transient >= PROBE_STEPS: the probe is the first part of the transient; the run differs from the
    fixed interval only in where the transient renormalised (round-off; QR of a product telescopes)."""
    lor = rs.get("lorenz63")
    a = AUTO.estimate(lor, 2_560, transient=400, batch=16, seed=0)
    m = a.meta["reorth_auto"]["interval"]
    assert m == 32 and a.meta["reorth_auto"]["limited_by"] == "precision"
    b = estimators.get("qr", reorth_every=m).estimate(lor, 2_560, transient=400, batch=16, seed=0)
    np.testing.assert_allclose(a.per_trajectory, b.per_trajectory, rtol=0, atol=1e-10)


def test_float32_henon_auto_runs_where_a_fixed_interval_collapses_the_frame():
    hen = rs.get("henon")
    with pytest.raises(TrajectoryError, match="degenerated"):
        estimators.get("qr", reorth_every=10).estimate(hen, 2_000, transient=100, batch=16, seed=0,
                                                       dtype=torch.float32)
    res = AUTO.estimate(hen, 5_000, transient=100, batch=32, seed=0, dtype=torch.float32)
    assert res.meta["reorth_auto"]["interval"] == 1
    ref = hen.reference
    tol = tolerance(ref.uncertainty, res.stderr, res.meta["stderr_dof"], res.meta["T"], ref.bias_nats)
    assert np.all(np.abs(res.exponents - ref.values) <= tol)


def test_auto_lorenz63_reproduces_its_reference_and_the_sum_rule():
    lor = rs.get("lorenz63")
    res = AUTO.estimate(lor, 5_000, transient=1_000, batch=256, seed=11)
    assert res.meta["reorth_auto"]["interval"] == 32
    ref = lor.reference
    tol = tolerance(ref.uncertainty, res.stderr, res.meta["stderr_dof"], res.meta["T"], ref.bias_nats)
    assert np.all(np.abs(res.exponents - ref.values) <= tol)
    # the trace of the Jacobian is -(sigma + 1 + beta) everywhere: the sum is exact per trajectory
    np.testing.assert_allclose(res.per_trajectory.sum(1), -(10 + 1 + 8 / 3), rtol=0, atol=1e-3)


def test_auto_warns_for_a_float32_full_spectrum_it_cannot_hold():
    rnn = rs.get("random_rnn", N=64, g=3.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = AUTO.estimate(rnn, 200, batch=1, seed=0, dtype=torch.float32)
    assert res.meta["reorth_auto"]["interval"] == 1
    assert any("fewer than half the digits" in str(w.message) for w in caught)


@pytest.mark.parametrize("bad", ["automatic", 0, 1.5, True])
def test_bad_reorth_every(bad):
    with pytest.raises(InvalidArgumentError, match="reorth_every.*'auto'"):
        estimators.get("qr", reorth_every=bad)
