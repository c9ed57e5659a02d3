"""The QR estimator against exact values, invariants and its own contract."""
import math

import numpy as np
import pytest
import torch
from scipy.special import polygamma

import reference_systems as rs
from suite import estimators
from suite.core.errors import DeviceError, InvalidArgumentError, TrajectoryError, UnknownNameError
from suite.scoring.tolerance import tolerance

QR = estimators.get("qr")


def within_tolerance(system, res):
    ref = system.reference
    n = len(ref)
    tol = tolerance(ref.uncertainty, res.stderr[:n], res.meta["stderr_dof"], res.meta["T"], ref.bias_nats)
    err = np.abs(res.exponents[:n] - ref.values)
    return err, tol


@pytest.mark.parametrize("name,params,steps,transient,batch", [
    ("logistic", {"r": 4.0}, 5_000, 100, 16),
    ("logistic", {"r": 3.83}, 5_000, 500, 8),
    ("henon", {}, 5_000, 500, 32),
    ("linear_map", {}, 2_000, 200, 4),
    ("gaussian_products", {"N": 2}, 5_000, 0, 16),
    ("gaussian_products", {"N": 8}, 3_000, 0, 16),
    ("lorenz63", {}, 5_000, 1_000, 256),
])
def test_builtin_reproduces_its_reference(name, params, steps, transient, batch):
    system = rs.get(name, **params)
    res = QR.estimate(system, steps, transient=transient, batch=batch, seed=11)
    err, tol = within_tolerance(system, res)
    assert np.all(err <= tol), (err, tol)
    # the tolerance is not vacuous: it is far below the exponents' spacing / scale
    assert np.all(tol < 0.1)


def test_result_contract():
    system = rs.get("henon")
    res = QR.estimate(system, 2_000, transient=100, batch=5, seed=0)
    assert res.exponents.shape == (2,) and res.stderr.shape == (2,) and res.per_trajectory.shape == (5, 2)
    assert res.history.ndim == 2 and res.history.shape[1] == 2 and res.times.shape == res.history.shape[:1]
    assert res.times[-1] == 2_000 and np.all(np.diff(res.times) > 0)
    np.testing.assert_allclose(res.history[-1], res.exponents, rtol=1e-12)
    for a in (res.exponents, res.stderr, res.per_trajectory, res.history, res.times):
        assert isinstance(a, np.ndarray) and a.dtype == np.float64
    assert res.wall_seconds > 0 and res.meta["stderr_dof"] == 4
    assert res.meta["device"] == "cpu" and res.meta["dtype"] == "float64" and "torch" in res.meta["versions"]
    np.testing.assert_allclose(res.stderr, res.per_trajectory.std(0, ddof=1) / math.sqrt(5))


def test_flow_exponents_are_per_unit_time():
    lor = rs.get("lorenz63", dt=0.01)
    res = QR.estimate(lor, 500, transient=500, batch=2, seed=0, k=1)
    assert res.meta["T"] == pytest.approx(5.0) and res.times[-1] == pytest.approx(5.0)


def test_henon_sum_is_ln_b_on_every_trajectory():
    # exact for every interval, so the run's length is immaterial
    res = QR.estimate(rs.get("henon"), 4_000, transient=1_000, batch=8, seed=3)
    np.testing.assert_allclose(res.per_trajectory.sum(1), math.log(0.3), rtol=0, atol=1e-10)


def lorenz_sum_error(dt):
    lor = rs.get("lorenz63", dt=dt)
    steps = round(20 / dt)
    res = QR.estimate(lor, steps, transient=round(2 / dt), batch=4, seed=1)
    return np.abs(res.per_trajectory.sum(1) + 41 / 3).max()


def test_lorenz_sum_is_minus_41_over_3_within_rk4_error():
    """Sum of exponents = <ln det dPhi> / dt = -41/3 + O(dt^4) for the RK4 map.

    The O(dt^4) term is the only error (the QR sum is an identity), so
    halving dt must shrink it ~16x; an Euler tangent would give O(dt).
    """
    e1, e2 = lorenz_sum_error(0.02), lorenz_sum_error(0.01)
    # measured: 1.8e-3 at dt = 0.02, 1.0e-4 at dt = 0.01 (ratio 17); lambda^5 dt^4 / 120
    # with |lambda| ~ 17 predicts 1e-4.  Below the reference's 5e-4 at the catalogue's dt.
    assert e2 < 2e-4
    assert e1 / e2 > 12, (e1, e2)


def test_gaussian_products_stderr_is_calibrated():
    """(estimate - exact) / stderr over 40 independent seeds behaves like N(0, 1).

    The stderr itself matches the exact sqrt(psi'((N-i+1)/2) / (4 T B)).
    """
    N, T, B = 4, 400, 8
    system = rs.get("gaussian_products", N=N)
    exact = system.reference.values
    exact_se = np.sqrt(polygamma(1, (N - np.arange(1, N + 1) + 1) / 2) / (4 * T * B))
    z, se = [], []
    for seed in range(40):
        res = QR.estimate(system, T, batch=B, seed=seed)
        z.append((res.exponents - exact) / res.stderr)
        se.append(res.stderr)
    z = np.concatenate(z)  # 160 values (the 4 exponents of one run are nearly independent)
    assert abs(z.mean()) < 4 / math.sqrt(z.size) + 0.05
    assert 0.8 < z.std() < 1.25
    # mean stderr against the exact one (chi distribution with B-1 dof: E s ~ 0.96 sigma)
    np.testing.assert_allclose(np.mean(se, axis=0), exact_se, rtol=0.08)


@pytest.mark.parametrize("name,params", [("henon", {}), ("gaussian_products", {"N": 3}), ("lorenz63", {})])
def test_batch_equals_single_runs(name, params):
    system = rs.get(name, **params)
    B = 4
    batch = QR.estimate(system, 300, transient=50, batch=B, seed=5)
    for b in range(B):
        single = QR.estimate(system, 300, transient=50, batch=1, seed=(5, b))
        np.testing.assert_allclose(single.per_trajectory[0], batch.per_trajectory[b], rtol=1e-12, atol=1e-14)


def test_same_seed_same_result_different_seed_different():
    system = rs.get("gaussian_products", N=3)
    a = QR.estimate(system, 200, batch=3, seed=1)
    b = QR.estimate(system, 200, batch=3, seed=1)
    c = QR.estimate(system, 200, batch=3, seed=2)
    assert np.array_equal(a.per_trajectory, b.per_trajectory)
    assert not np.any(a.per_trajectory == c.per_trajectory)


def test_user_map_autodiff_agrees_with_analytic():
    from test_systems import lozi_jacobian, lozi_step
    auto = rs.Map("lozi", step=lozi_step, dim=2)
    exact = rs.Map("lozi", step=lozi_step, dim=2, jacobian=lozi_jacobian)
    ra = QR.estimate(auto, 3_000, transient=200, batch=4, seed=0)
    re = QR.estimate(exact, 3_000, transient=200, batch=4, seed=0)
    np.testing.assert_allclose(ra.per_trajectory, re.per_trajectory, rtol=1e-10, atol=1e-12)
    # Lozi (1.7, 0.5): lambda_1 ~ 0.470, and the sum is ln 0.5 exactly (det J = -b)
    np.testing.assert_allclose(ra.per_trajectory.sum(1), math.log(0.5), atol=1e-10)


def test_random_user_map_with_autodiff():
    """A random map given only by its step (noise drawn per trajectory) runs by autodiff."""
    N = 3
    gp = rs.get("gaussian_products", N=N)
    user = rs.Map("my_products", step=lambda x, M: torch.bmm(M, x.unsqueeze(-1)).squeeze(-1), dim=N,
                  noise=lambda g, x: g.normal(N, N, dtype=x.dtype),
                  sample_initial=lambda batch, g: torch.zeros(batch, N, dtype=torch.float64))
    a = QR.estimate(gp, 300, batch=3, seed=4)
    b = QR.estimate(user, 300, batch=3, seed=4)
    np.testing.assert_allclose(a.per_trajectory, b.per_trajectory, rtol=1e-12)


def test_float32_runs_and_accumulates_in_float64():
    res = QR.estimate(rs.get("henon"), 3_000, transient=200, batch=16, seed=0, dtype=torch.float32)
    assert res.exponents.dtype == np.float64 and res.meta["dtype"] == "float32"
    np.testing.assert_allclose(res.exponents, [0.41922, -1.62319], atol=0.02)


def test_batch_one_uses_batch_means():
    res = QR.estimate(rs.get("henon"), 4_000, transient=200, batch=1, seed=0)
    assert res.meta["stderr_method"].startswith("batch means") and res.meta["stderr_dof"] == 19
    assert np.all(res.stderr > 0) and np.all(np.isfinite(res.stderr))


def test_bad_arguments_raise_named_errors():
    hen = rs.get("henon")
    cases = [
        (dict(steps=0), "steps"), (dict(steps=-5), "steps"), (dict(steps=10, transient=-1), "transient"),
        (dict(steps=10, batch=0), "batch"), (dict(steps=10, k=3), r"k=3.*1\.\.2"),
        (dict(steps=10, k=0), "k"), (dict(steps=10, dtype=torch.int32), "dtype"),
        (dict(steps=10, seed="a"), "seed"), (dict(steps=1, batch=1), "batch=1"),
    ]
    for kwargs, pattern in cases:
        steps = kwargs.pop("steps")
        with pytest.raises(InvalidArgumentError, match=pattern):
            QR.estimate(hen, steps, **kwargs)
    with pytest.raises(InvalidArgumentError, match="system"):
        QR.estimate("henon", 10)
    with pytest.raises(InvalidArgumentError, match="reorth_every"):
        estimators.get("qr", reorth_every=0)
    with pytest.raises(UnknownNameError, match="Did you mean 'qr'"):
        estimators.get("qrr")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        QR.estimate(rs.get("henon"), 10, device="cuda")
    with pytest.raises(DeviceError, match="allowed"):
        QR.estimate(rs.get("henon"), 10, device="tpu")


def test_diverging_trajectory_is_reported_with_step_and_trajectory():
    hen = rs.Map("henon_escape", step=rs.get("henon")._f, dim=2,
                 sample_initial=lambda batch, g: torch.tensor([[0.0, 0.0]] * (batch - 1) + [[3.0, 0.0]],
                                                              dtype=torch.float64))
    with pytest.raises(TrajectoryError, match=r"trajectory 2\b.* at step \d+") as info:
        QR.estimate(hen, 1_000, batch=3)
    assert info.value.trajectories == [2] and 1 <= info.value.step < 20
    # with k = 1 the frame stays finite longer: the state's divergence is what is caught
    with pytest.raises(TrajectoryError, match=r"trajectory 2 diverged \(non-finite state\)"):
        QR.estimate(hen, 1_000, batch=3, k=1)


def test_non_finite_jacobian_is_reported():
    bad = rs.Map("bad_jacobian", step=lambda x: 0.5 * x, dim=1,
                 jacobian=lambda x: torch.where(x.abs() < 1e-3, float("nan"), 0.5).to(x.dtype).unsqueeze(-1))
    with pytest.raises(TrajectoryError, match="non-finite") as info:
        QR.estimate(bad, 100, batch=2)
    assert info.value.step is not None


def test_jacobian_of_wrong_shape_or_dtype_is_reported():
    for jac, pattern in [(lambda x: x.unsqueeze(-1).float(), "float32"), (lambda x: x, "shape")]:
        with pytest.raises(InvalidArgumentError, match=pattern):
            QR.estimate(rs.Map("m", step=lambda x: 0.5 * x, dim=1, jacobian=jac), 10, batch=2)


def test_singular_jacobian_is_reported_not_averaged():
    # x -> x^2 from x = 0: J = 0, the frame collapses (ln|R| = -inf)
    sq = rs.Map("square", step=lambda x: x ** 2, dim=1,
                sample_initial=lambda batch, g: torch.zeros(batch, 1, dtype=torch.float64))
    with pytest.raises(TrajectoryError, match="degenerated"):
        QR.estimate(sq, 10, batch=1)
    # a projection: the message counts the directions lost (exactly, or to round-off) and names the k left
    D = torch.tensor([2.0, 0.5, 0.0], dtype=torch.float64)
    proj = rs.Map("proj", step=lambda x: x * D.to(x.dtype), dim=3,
                  jacobian=lambda x: torch.diag(D).to(x.dtype).expand(x.shape[0], 3, 3))
    with pytest.raises(TrajectoryError, match=r"1 of the frame's 3 directions annihilated.*ask for k <= 2") as info:
        QR.estimate(proj, 10, batch=2)
    assert info.value.rank == 2 and "float32" not in str(info.value)
    with pytest.raises(TrajectoryError, match=r"the rank may be float32's: run in float64"):
        QR.estimate(proj, 10, batch=2, dtype=torch.float32)



def _rank_deficient_map():
    """x -> J x with J = O diag(2, 0.5, 0) O^T, O a fixed rotation: exponents ln 2, -ln 2 and -inf, the last a
    direction J annihilates only to round-off (its entries are rounded), as a normalisation layer's."""
    O = torch.linalg.qr(torch.tensor([[1.0, 2.0, 0.5], [-0.3, 1.0, 2.0], [0.7, -1.2, 1.0]],
                                     dtype=torch.float64))[0]
    J = O @ torch.diag(torch.tensor([2.0, 0.5, 0.0], dtype=torch.float64)) @ O.T
    return rs.Map("rank2", step=lambda x: x @ J.T.to(x.dtype), dim=3,
                  jacobian=lambda x: J.to(x.dtype).expand(x.shape[0], 3, 3))


def test_a_direction_at_the_round_off_floor_raises_in_float64_with_the_rank():
    """A singular direction's QR growth lands at the round-off floor (about eps of the largest), not at -inf, so
    a finiteness check alone misses it and its average (-36 a step) passed as an exponent.  In float64 no
    interval of a non-singular frame comes near the floor, so reaching it raises, with the rank; the two
    leading exponents alone are exact."""
    with pytest.raises(TrajectoryError, match=r"at the round-off floor.*ask for k <= 2") as info:
        QR.estimate(_rank_deficient_map(), 400, transient=20, batch=2, seed=0)
    assert info.value.rank == 2
    res = QR.estimate(_rank_deficient_map(), 400, transient=20, batch=2, seed=0, k=2)
    np.testing.assert_allclose(res.exponents, [math.log(2.0), math.log(0.5)], atol=1e-12)
    assert "unresolved" not in res.meta


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_mean_growth_at_the_round_off_floor_is_flagged(dtype):
    """Where only the mean gives it away (float32, whose genuine near-singular steps reach the floor too), an
    exponent whose growth per interval sits more than lost_limit below the leading one's is flagged
    (meta['unresolved'], a warning naming the k that leaves it out); the values are kept."""
    floor = math.log(torch.finfo(dtype).eps)
    acc = estimators.GrowthAccumulator(2, 3, 100, 1, 1.0, "cpu", frame_dtype=dtype)
    for t in range(1, 101):
        acc.add(torch.tensor([[0.69, -0.69, floor]] * 2, dtype=torch.float64), t)
    with pytest.warns(RuntimeWarning, match=r"exponent\(s\) 3 not resolved.*k = 2 exponents"):
        res = acc.result()
    record = res.meta["unresolved"]
    assert record["exponents"] == [3] and record["frame_dtype"] == str(dtype).replace("torch.", "")
    assert record["limit_nats"] == pytest.approx(-math.log(16 * torch.finfo(dtype).eps))
    np.testing.assert_allclose(res.exponents, [0.69, -0.69, floor], atol=1e-12)


def test_the_resolution_limit_is_per_interval_and_per_dtype():
    unresolved = estimators.base.unresolved_exponents
    assert unresolved(np.array([0.5, -0.5, -30.0]), 1.0, torch.float64) is None  # a gap of 30.5 < 33.3
    assert unresolved(np.array([0.5, -0.5, -30.0]), 2.0, torch.float64)["exponents"] == [3]  # 61 per interval
    assert unresolved(np.array([0.5, -14.0]), 1.0, torch.float32)["exponents"] == [2]  # 14.5 > 13.2
    assert unresolved(np.array([0.5]), 1.0, torch.float32) is None  # one exponent: nothing to compare with
    assert "unresolved" not in QR.estimate(rs.get("henon"), 500, batch=2).meta


def test_logistic_collapse_in_float32_is_reported():
    with pytest.raises(TrajectoryError, match="left the domain 0 < x < 1"):
        QR.estimate(rs.get("logistic"), 50_000, batch=16, seed=0, dtype=torch.float32)


# -- the taper (weighted Birkhoff average, GrowthAccumulator) ---------------------------------

def tukey_variance_factor(steps, taper):
    """sum(w^2) steps / sum(w)^2 for unit intervals: the factor a taper puts on the variance of
    an average of independent increments (written out here, apart from the accumulator)."""
    mid = np.arange(steps) + 0.5
    u = np.minimum(mid, steps - mid)
    w = np.where(u < taper, np.sin(0.5 * np.pi * u / taper) ** 2, 1.0)
    return (w ** 2).sum() * steps / w.sum() ** 2


def test_taper_keeps_the_henon_sum_exact_on_every_trajectory():
    """Every interval's ln R_11 + ln R_22 is ln |det J| = ln 0.3, so any correctly normalised
    weighted average keeps the sum exact; a weight left out of the denominator would not."""
    res = estimators.get("qr", taper=700).estimate(rs.get("henon"), 5_000, transient=500, batch=8, seed=3)
    np.testing.assert_allclose(res.per_trajectory.sum(1), math.log(0.3), rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.history[-1], res.exponents, rtol=1e-12)
    assert res.meta["taper_steps"] == 700


def test_taper_on_gaussian_products_is_unbiased_with_the_predicted_stderr():
    """Gaussian products have i.i.d. increments: a taper adds no bias and multiplies the
    variance by exactly tukey_variance_factor.  (estimate - exact) / stderr over 30 seeds is
    N(0, 1), and the mean stderr across trajectories matches the exact
    sqrt(factor psi'((N-i+1)/2) / (4 T B))."""
    N, T, B, taper = 4, 400, 8, 100
    system = rs.get("gaussian_products", N=N)
    exact = system.reference.values
    factor = tukey_variance_factor(T, taper)
    assert 1.1 < factor < 1.3  # the tapers cover half the run: a visible, not a ruinous, price
    exact_se = np.sqrt(factor * polygamma(1, (N - np.arange(1, N + 1) + 1) / 2) / (4 * T * B))
    est = estimators.get("qr", taper=taper)
    z, se = [], []
    for seed in range(30):
        res = est.estimate(system, T, batch=B, seed=seed)
        z.append((res.exponents - exact) / res.stderr)
        se.append(res.stderr)
    z = np.concatenate(z)  # 120 values
    assert abs(z.mean()) < 4 / math.sqrt(z.size) + 0.05
    assert 0.8 < z.std() < 1.25
    np.testing.assert_allclose(np.mean(se, axis=0), exact_se, rtol=0.1)


def test_tapered_batch_means_stderr_is_calibrated():
    """B = 1 with a taper: the weighted batch-means stderr, fed i.i.d. N(mu, 1) increments
    (one per step, so the exact stderr is sqrt(factor / T)), over 400 simulated runs with the
    taper over the whole run: its mean matches the exact value and (estimate - mu) / stderr
    is ~N(0, 1) (t with ~12 dof).  Measured: mean stderr 0.95 of exact (E[s] is 0.98 sigma at
    12 dof; the plain std of the block means, blind to the weights, gives 0.84)."""
    T, taper, runs, mu = 400, 200, 400, 0.3
    gen = np.random.default_rng(11)
    exact_se = math.sqrt(tukey_variance_factor(T, taper) / T)
    z, se = [], []
    for _ in range(runs):
        acc = estimators.GrowthAccumulator(1, 1, T, 1, 1.0, "cpu", taper=taper)
        for s, inc in enumerate(gen.normal(mu, 1.0, T), start=1):
            acc.add(torch.tensor([[inc]], dtype=torch.float64), s)
        res = acc.result()
        z.append((res.exponents[0] - mu) / res.stderr[0])
        se.append(res.stderr[0])
    assert res.meta["stderr_method"].startswith("weighted batch means") and res.meta["stderr_dof"] == 12
    z = np.asarray(z)
    assert abs(z.mean()) < 4 / math.sqrt(runs)
    assert 0.95 < z.std() < 1.25  # t with 12 dof has sd 1.10
    # sampling sd of the mean stderr over 400 runs: ~0.01
    assert 0.91 < np.mean(se) / exact_se < 1.02


def test_taper_removes_the_boundary_term_on_lorenz():
    """A flow's zero exponent is all boundary term: ln |f(x_T)| / |f(x_0)| / T.  Over the same
    256 trajectories (T = 25 after a 20-unit transient) a 6-unit taper must cut lambda_2's spread
    at least in half (measured on 4096 trajectories: var T 0.026 -> 0.008) and not raise
    lambda_1's (0.119 -> 0.069), and both estimates must agree with the reference."""
    lorenz = rs.get("lorenz63")
    plain = estimators.get("qr", reorth_every=10).estimate(lorenz, 2_500, transient=2_000, batch=256, seed=5)
    tapered = estimators.get("qr", reorth_every=10, taper=600).estimate(lorenz, 2_500, transient=2_000,
                                                                     batch=256, seed=5)
    v_plain, v_taper = plain.per_trajectory.var(0), tapered.per_trajectory.var(0)
    assert v_taper[1] < 0.5 * v_plain[1], (v_taper, v_plain)
    assert v_taper[0] < 0.9 * v_plain[0], (v_taper, v_plain)
    for res in (plain, tapered):
        err, tol = within_tolerance(lorenz, res)
        assert np.all(err <= tol), (err, tol)


def test_bad_taper_is_a_named_error():
    for name in ("qr", "jvp_qr", "two_trajectory"):
        for bad in (-1, 1.5, True, "10"):
            with pytest.raises(InvalidArgumentError, match="taper"):
                estimators.get(name, taper=bad)
    with pytest.raises(InvalidArgumentError, match=r"taper.*steps / 2 = 50"):
        estimators.get("qr", taper=60).estimate(rs.get("henon"), 100)


def test_align_advances_the_state_alone_then_the_frame():
    """``align`` = N: the first transient - N steps advance the state only (the same trajectory),
    the last N the frame too.  The frame's i-th direction aligns like exp(-(lambda_i - lambda_{i+1}) t)
    (Lorenz-63: 0.9 per unit time), so the estimates approach the full transient's as N grows, while
    the log-volume growth, lambda_1 + lambda_2 + lambda_3 = ln |det dPhi| summed along the orbit, does
    not depend on the frame at all: equal to round-off for every N, even 0."""
    from unittest import mock
    lorenz = rs.get("lorenz63")
    kw = dict(transient=1_500, batch=32, seed=3)
    full = estimators.get("qr", reorth_every=10).estimate(lorenz, 1_000, **kw)
    more = estimators.get("qr", reorth_every=10, align=5_000).estimate(lorenz, 1_000, **kw)
    assert np.array_equal(more.per_trajectory, full.per_trajectory)  # align >= transient: the default, bit for bit
    mean_diff = []
    for align in (1_000, 500, 0):
        with mock.patch.object(lorenz, "tangent", wraps=lorenz.tangent) as tangent:
            # capture='none': with 'auto', a run predicted to take over 5 s (a loaded machine) records
            # and races the step first, adding calls this count is not about
            res = estimators.get("qr", reorth_every=10, align=align, capture="none").estimate(lorenz, 1_000, **kw)
        assert tangent.call_count == align + 1_000
        np.testing.assert_allclose(res.per_trajectory.sum(1), full.per_trajectory.sum(1), rtol=0, atol=1e-10)
        mean_diff.append(np.abs(res.per_trajectory[:, 0] - full.per_trajectory[:, 0]).mean())
    # 10, 5 and 0 time units of alignment (measured with 64 trajectories: 2.2e-4, 5.2e-3, 0.098 per unit time, T = 10)
    assert mean_diff[0] < 0.2 * mean_diff[1] < 0.2 * mean_diff[2], mean_diff
    assert mean_diff[0] < 1e-3, mean_diff


def test_bad_align_is_a_named_error():
    for name in ("qr", "jvp_qr"):
        for bad in (-1, 1.5, True, "10"):
            with pytest.raises(InvalidArgumentError, match="align"):
                estimators.get(name, align=bad)
