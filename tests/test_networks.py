"""Random neural networks: mean-field values, exact regimes, sum rules, the QR estimator."""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

import reference_systems as rs
import reference_systems.networks as nw  # registers the systems (until __init__ imports it)
from reference_systems.random_products import newman_spectrum
from suite import estimators
from suite.core.errors import InvalidArgumentError
from suite.scoring.tolerance import tolerance

QR = estimators.get("qr")


def within_tolerance(system, res):
    ref = system.reference
    n = min(len(ref), res.exponents.size)
    tol = tolerance(ref.uncertainty[:n], res.stderr[:n], res.meta["stderr_dof"], res.meta["T"], ref.bias_nats)
    err = np.abs(res.exponents[:n] - ref.values[:n])
    return err, tol


def run_validation(system, **override):
    v = dict(system.meta["validation"], **override)
    return QR.estimate(system, v["steps"], transient=v["transient"], batch=v["batch"], seed=v.get("seed", 0),
                       k=v.get("k"))


# ---------------------------------------------------------------------------
# mean-field theory
# ---------------------------------------------------------------------------
def test_mean_field_reproduces_design_values():
    # docs/design.md section 3: g = 1.5 / 2 / 3 -> 0.06522 / 0.15472 / 0.3102 (sigma_b = 0)
    for g, lam, digits in [(1.5, 0.06522, 5), (2.0, 0.15472, 5), (3.0, 0.3102, 4)]:
        assert nw.mean_field(g)["lam"] == pytest.approx(lam, abs=0.5 * 10 ** -digits)
    # the same numbers from an independent evaluation (adaptive quadrature, brentq for q*)
    from scipy.optimize import brentq

    def E(f, q):
        s = math.sqrt(q)
        return quad(lambda z: f(s * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -12, 12,
                    points=[0.0], epsabs=1e-15, epsrel=1e-13, limit=500)[0]
    for g, sb in [(1.5, 0.0), (2.0, 0.0), (3.0, 0.0), (2.0, 0.5)]:
        q = brentq(lambda q: g * g * E(lambda u: math.tanh(u) ** 2, q) + sb * sb - q, 1e-3, g * g + sb * sb)
        lam = 0.5 * math.log(g * g * E(lambda u: 1 / math.cosh(min(abs(u), 150.0)) ** 4, q))
        mf = nw.mean_field(g, sb)
        assert mf["q"] == pytest.approx(q, rel=1e-9) and mf["lam"] == pytest.approx(lam, abs=1e-10)


def test_gauss_hermite_quadrature_resolves_large_q():
    for q in (0.3, 2.1, 6.3, 12.5, 50.0, 400.0):
        s = math.sqrt(q)
        exact = quad(lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / math.cosh(min(s * abs(z), 150.0)) ** 4,
                     -12, 12, points=[0.0], epsabs=1e-15, epsrel=1e-13, limit=500)[0]
        assert nw.gauss_expect(nw._sech4, q) == pytest.approx(exact, rel=1e-9, abs=1e-14)


def test_mean_field_ordered_and_biased_branches():
    # sigma_b = 0, g <= 1: q* = 0 and chi = g^2 exactly
    mf = nw.mean_field(0.8)
    assert mf["q"] == 0.0 and mf["chi"] == pytest.approx(0.64, rel=1e-15) and mf["lam"] == math.log(0.8)
    # a bias makes q* > 0 and, at g = 1.2, sigma_b = 0.5, moves the network to the ordered side (chi < 1)
    mf = nw.mean_field(1.2, 0.5)
    assert mf["q"] > 0.25 and mf["chi"] < 1.0
    with pytest.raises(InvalidArgumentError, match="g"):
        nw.mean_field(0.0)


# ---------------------------------------------------------------------------
# random_rnn
# ---------------------------------------------------------------------------
def test_rnn_tangent_is_diag_times_w_and_matches_autodiff():
    system = rs.get("random_rnn", N=7, g=2.0, sigma_b=0.3, seed=4)
    W, b = system.W64, system.b64
    auto = rs.Map("rnn_auto", step=lambda x: torch.tanh(x @ W.T + b), dim=7)
    x = system.sample_initial(3, rs.TrajectoryRNG(0, 3))
    V = torch.randn(3, 7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x1, V1 = system.tangent(x, V)
    xa, Va = auto.tangent(x, V)
    torch.testing.assert_close(x1, xa, rtol=0, atol=0)
    torch.testing.assert_close(V1, Va, rtol=1e-12, atol=1e-14)
    h = torch.tanh(x @ W.T + b)
    J = torch.diag_embed(1 - h ** 2) @ W  # standard orientation: row i = d h'_i / d h
    torch.testing.assert_close(system.jacobian(x), J, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(rs.System.jacobian(system, x), J, rtol=1e-13, atol=1e-15)
    assert not torch.allclose(J, torch.diag_embed(1 - h ** 2) @ W.T)
    assert torch.equal(system.step(x), x1)
    # float32 states: W and b are cast per call
    x32, V32 = system.tangent(x.float(), V.float())
    assert x32.dtype == V32.dtype == torch.float32
    torch.testing.assert_close(V32.double(), V1, rtol=1e-4, atol=1e-5)


def test_rnn_realisation_is_fixed_by_seed():
    a, b, c = (rs.get("random_rnn", N=10, g=2.0, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.W64, b.W64) and not torch.equal(a.W64, c.W64)
    # W_ij ~ N(0, g^2 / N): the sample variance of a large realisation
    big = rs.get("random_rnn", N=400, g=2.0, seed=0)
    assert float(big.W64.var() * 400) == pytest.approx(4.0, rel=0.02)
    assert big.meta["log_abs_det_W"] == pytest.approx(float(torch.linalg.slogdet(big.W64)[1]), abs=1e-8)


def test_rnn_ordered_regime_is_exactly_ln_abs_eig_w():
    system = rs.get("random_rnn", N=64, g=0.8)
    ref = system.reference
    assert ref.provenance == "exact" and len(ref) == 64
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(system.W64.numpy()))))[::-1]
    np.testing.assert_allclose(ref.values, expected, rtol=0, atol=1e-12)
    assert np.all(ref.uncertainty < 1e-8) and ref.extra["spectral_radius"] < 1
    # the exact value needs the trajectories at h = 0: from h ~ N(0, 1) they get there
    x = system.sample_initial(64, rs.TrajectoryRNG(9, 64))
    for _ in range(system.meta["validation"]["transient"]):
        x = system.step(x)
    assert float(x.abs().max()) < 1e-8
    res = run_validation(system, steps=2_000)
    err, tol = within_tolerance(system, res)
    assert np.all(err <= tol), (err.max(), tol.min())
    assert np.all(tol < 0.01)  # ~30x below the spacing of the leading moduli


def limit(system):
    """The mean-field (N -> infinity) reference: ``meta['limit_reference']`` where a computed one replaced it."""
    return system.meta.get("limit_reference") or system.reference


def test_rnn_chaotic_top_exponent_against_mean_field():
    for g, N, lam in [(3.0, 100, 0.3102493), (3.0, 200, 0.3102493), (2.0, 200, 0.1547242)]:
        system = rs.get("random_rnn", N=N, g=g)
        ref = limit(system)
        system.reference = ref  # judged here against the limit with its finite-N uncertainty
        assert ref.provenance == "mean-field" and ref.values[0] == pytest.approx(lam, abs=1e-6)
        res = QR.estimate(system, 3_000, transient=500, batch=8, seed=1, k=1)
        err, tol = within_tolerance(system, res)
        assert err[0] <= tol[0], (g, N, err, tol)
        # the tolerance is not vacuous: well below lambda itself (at g = 1.5 it is not below N ~ 800)
        assert tol[0] < 0.5 * ref.values[0]
    # and the derived uncertainty shrinks with N and is not claimed below the smallest N measured
    u = [limit(rs.get("random_rnn", N=N, g=2.0)).uncertainty[0] for N in (100, 200, 400, 800, 3200)]
    assert all(a > b for a, b in zip(u, u[1:]))
    below = rs.get("random_rnn", N=50, g=2.0)  # below the measured sizes: no mean-field claim, a computed value
    assert below.meta["limit_reference"] is None and below.reference.provenance == "computed"


def test_rnn_uncertainty_formula_covers_every_measured_realisation():
    """The tabulated measurements themselves: every realisation lies within u(N) of lambda_MF,
    and the Reference carries exactly that formula."""
    assert sorted(nw._RNN_FINITE_N) == [1.5, 2.0, 3.0]
    for g, entry in nw._RNN_FINITE_N.items():
        for N, worst in zip(entry["N"], entry["worst"]):
            u = nw.finite_n_uncertainty(entry, N, quenched=True)
            assert worst < u, (g, N, worst, u)
            assert limit(rs.get("random_rnn", N=N, g=g)).uncertainty[0] == pytest.approx(u, rel=1e-12)
        # below the measured sizes: no claim
        assert nw.finite_n_uncertainty(entry, entry["N"][0] - 1, quenched=True) is None
    # the 1/N law: u(N) N stays bounded beyond the measured range (at most the 1/sqrt(N) spread term grows)
    e = nw._RNN_FINITE_N[3.0]
    assert nw.finite_n_uncertainty(e, 10_000, True) < nw.finite_n_uncertainty(e, 800, True) / 3


def test_rnn_sum_rule_on_the_same_trajectory():
    """sum_i lambda_i = < sum_i ln(1 - h_i^2) > + ln|det W| along each trajectory, to rounding."""
    system = rs.get("random_rnn", N=12, g=2.0, seed=3)
    steps, transient, B, seed = 2_000, 100, 3, 5
    res = QR.estimate(system, steps, transient=transient, batch=B, seed=seed)
    # replay exactly what the estimator did: sample_initial draws first (the frame draw that
    # follows does not touch the state), then the deterministic steps
    x = system.sample_initial(B, rs.TrajectoryRNG(seed, B))
    for _ in range(transient):
        x = system.step(x)
    acc = torch.zeros(B, dtype=torch.float64)
    for _ in range(steps):
        acc += system.log_abs_det_jacobian(x)
        x = system.step(x)
    np.testing.assert_allclose(res.per_trajectory.sum(1), (acc / steps).numpy(), rtol=0, atol=1e-8)
    assert res.exponents[0] > 0  # chaotic at this size and seed: the rule is not trivially 0 = 0


def test_rnn_regimes_without_reference_say_why():
    for params, pattern in [({"g": 1.0}, "critical"), ({"g": 0.8, "sigma_b": 0.3}, "fixed point"),
                            ({"g": 2.0, "sigma_b": 0.3}, "sigma_b = 0"), ({"g": 5.0}, "measured only")]:
        system = rs.get("random_rnn", N=128, **params)
        assert system.reference is None and pattern in system.meta["note"], (params, system.meta["note"])
    # a small realisation with rho(W) >= 1 although g < 1
    for seed in range(200):
        system = rs.get("random_rnn", N=3, g=0.9, seed=seed)
        if np.abs(np.linalg.eigvals(system.W64.numpy())).max() >= 1:
            assert system.reference is None and "spectral radius" in system.meta["note"]
            break
    else:
        pytest.fail("no realisation with rho(W) >= 1 found")


# ---------------------------------------------------------------------------
# rate_network
# ---------------------------------------------------------------------------
def test_rate_network_jacobian_and_efficient_tangent_agree():
    system = rs.get("rate_network", N=6, g=2.0, seed=2)
    J = system.J64
    assert torch.all(torch.diagonal(J) == 0)
    x = system.sample_initial(3, rs.TrajectoryRNG(0, 3))
    V = torch.randn(3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    A = system._rhs_jacobian(x)
    expected = (J * (1 - torch.tanh(x) ** 2).unsqueeze(1) - torch.eye(6, dtype=torch.float64)) / system.tau
    torch.testing.assert_close(A, expected, rtol=0, atol=0)
    torch.testing.assert_close(system._jvp(x, V), A @ V, rtol=1e-13, atol=1e-14)
    # trace of the rhs Jacobian is -N/tau at every state (zero diagonal)
    torch.testing.assert_close(torch.diagonal(A, dim1=1, dim2=2).sum(1), torch.full((3,), -6.0, dtype=torch.float64))
    auto = rs.Flow("rate_auto", system.rhs, dim=6, dt=system.dt)
    _, Va = auto.tangent(x, V)
    _, Ve = system.tangent(x, V)
    torch.testing.assert_close(Ve, Va, rtol=1e-12, atol=1e-13)


def rate_sum_error(dt, N=16):
    system = rs.get("rate_network", N=N, g=2.0, dt=dt)
    assert system.meta["divergence"] == -N
    res = QR.estimate(system, round(40 / dt), transient=round(10 / dt), batch=2, seed=1)
    return np.abs(res.per_trajectory.sum(1) + N).max()


def test_rate_network_sum_is_minus_n_over_tau_within_rk4_error():
    """Sum of exponents = <ln det dPhi>/dt = -N/tau + O(dt^4) for the RK4 map.

    Measured (N = 16, g = 2): 7.0e-5 at dt = 0.1, 4.0e-6 at dt = 0.05,
    2.4e-7 at dt = 0.025 (ratios 17.5, 16.7: fourth order); the linear part
    alone gives N dt^4 / 120 = 8e-6 at dt = 0.05.
    """
    e1, e2 = rate_sum_error(0.1), rate_sum_error(0.05)
    assert e2 < 1e-5
    assert 12 < e1 / e2 < 22, (e1, e2)


def test_rate_network_tau_rescales_time():
    a = rs.get("rate_network", N=8, g=2.0, tau=1.0, dt=0.05)
    b = rs.get("rate_network", N=8, g=2.0, tau=2.0, dt=0.1)
    ra = QR.estimate(a, 400, transient=40, batch=2, seed=0)
    rb = QR.estimate(b, 400, transient=40, batch=2, seed=0)
    # the same RK4 map (dt / tau equal), time measured in units twice as long
    np.testing.assert_allclose(rb.per_trajectory, ra.per_trajectory / 2, rtol=1e-10)
    assert b.meta["divergence"] == -4.0


def test_rate_network_ordered_regime_is_exact():
    system = rs.get("rate_network", N=16, g=0.5, dt=0.1)
    ref = system.reference
    A = (system.J64.numpy() - np.eye(16)) / system.tau
    np.testing.assert_allclose(ref.values, np.sort(np.linalg.eigvals(A).real)[::-1], atol=1e-12)
    assert ref.provenance == "exact" and np.all(ref.uncertainty < 1e-4)
    assert system.meta["zero_exponent"] is False  # at a fixed point: no zero exponent
    x = system.sample_initial(16, rs.TrajectoryRNG(9, 16))
    for _ in range(system.meta["validation"]["transient"]):
        x = system.step(x)
    assert float(x.abs().max()) < 1e-8
    res = run_validation(system)
    err, tol = within_tolerance(system, res)
    assert np.all(err <= tol), (err, tol)
    # not vacuous: far below the spacing (~0.05-0.2) except for the complex pairs, whose two
    # exponents oscillate against each other (a stderr, not a bias)
    assert np.median(tol) < 0.02 and np.all(tol < 0.1)
    # g > 1: no closed form; the catalogue's realisation has a computed reference, any other none, and
    # the note says why and how to compute one
    assert rs.get("rate_network", N=32, g=2.0).reference.provenance == "computed"
    other = rs.get("rate_network", N=24, g=2.0)
    assert other.reference is None and "-N/tau" in other.meta["note"] and "lyapbench references" in other.meta["note"]


# ---------------------------------------------------------------------------
# deep_random_net
# ---------------------------------------------------------------------------
def test_deep_net_tangent_matches_autodiff_and_step():
    system = rs.get("deep_random_net", N=5, sigma_w=1.5, sigma_b=0.2)
    auto = rs.Map("deep_auto", step=system._f, dim=5, noise=system._noise)
    x = system.sample_initial(3, rs.TrajectoryRNG(0, 3))
    V = torch.randn(3, 5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x1, V1 = system.tangent(x, V, rs.TrajectoryRNG(7, 3))
    xa, Va = auto.tangent(x, V, rs.TrajectoryRNG(7, 3))
    assert torch.equal(x1, xa) and torch.equal(system.step(x, rs.TrajectoryRNG(7, 3)), x1)
    torch.testing.assert_close(V1, Va, rtol=1e-12, atol=1e-14)
    # fresh weights: the next step draws different ones
    g = rs.TrajectoryRNG(7, 3)
    W1, _ = system._draw(g, x)
    W2, _ = system._draw(g, x)
    assert not torch.equal(W1, W2)


def test_deep_net_batch_equals_single_runs():
    system = rs.get("deep_random_net", N=6, sigma_w=2.0)
    batch = QR.estimate(system, 200, transient=20, batch=3, seed=5)
    for b in range(3):
        single = QR.estimate(system, 200, transient=20, batch=1, seed=(5, b))
        np.testing.assert_allclose(single.per_trajectory[0], batch.per_trajectory[b], rtol=1e-12, atol=1e-14)


def test_deep_net_ordered_regime_is_newman():
    system = rs.get("deep_random_net", N=16, sigma_w=0.8)
    ref = system.reference
    assert ref.provenance == "exact"
    np.testing.assert_allclose(ref.values, newman_spectrum(16, 0.8 / 4), rtol=0, atol=0)
    assert ref.bias_nats == pytest.approx(nw.ordered_bias_bound(16, 0.8))
    res = run_validation(system)
    err, tol = within_tolerance(system, res)
    assert np.all(err <= tol), (err, tol)
    assert np.all(tol[:4] < 0.3 * 0.034)  # well below the spacing of the leading exponents


def test_ordered_bias_bound_is_an_upper_bound():
    """phi, psi concave (the bound uses Jensen), and the measured bias from x ~ N(0, 1) lies below it."""
    qs = np.linspace(0.0, 4.0, 81)
    for f in (nw._phi_lncosh, nw._tanh2):
        vals = np.array([nw.gauss_expect(f, q) for q in qs])
        assert np.all(np.diff(vals) > 0) and np.all(np.diff(vals, 2) < 1e-12)
    N, sigma_w, T, B = 8, 0.8, 60, 256
    system = rs.get("deep_random_net", N=N, sigma_w=sigma_w)
    res = QR.estimate(system, T, transient=0, batch=B, seed=2)
    bias_nats = np.abs(res.exponents - system.reference.values) * T
    slack = 4.5 * res.stderr * T
    bound = nw.ordered_bias_bound(N, sigma_w)
    assert np.all(bias_nats <= bound + slack), (bias_nats, bound)
    # the total bias (sum rule): sum_t sum_j ln(1 - x_j^2) is what the bound controls
    assert abs(res.exponents.sum() - system.reference.values.sum()) * T < bound + slack.sum()


def test_deep_net_uncertainty_formula_covers_the_measurements():
    assert sorted(nw._DEEP_FINITE_N) == [1.5, 2.0, 3.0]
    for sigma_w, entry in nw._DEEP_FINITE_N.items():
        for N, dev, se in zip(entry["N"], entry["dev"], entry["se"]):
            u = nw.finite_n_uncertainty(entry, N, quenched=False)
            assert abs(dev) + 2 * se <= u + 1e-15
            assert limit(rs.get("deep_random_net", N=N, sigma_w=sigma_w)).uncertainty[0] == pytest.approx(u)
        assert dev < 0  # finite networks lie below the mean-field value
    assert rs.get("deep_random_net", N=8, sigma_w=2.0).reference is None


def test_finite_size_study_reproduces_its_table_entry():
    """The tabulated deep-net measurement at N = 16 comes from this code (same seeds, same settings)."""
    r = nw.finite_size_study("deep_random_net", [16], realisations=2, batch=16, steps=4000, transient=500,
                             verbose=False, sigma_w=2.0)
    row, entry = r["rows"][0], nw._DEEP_FINITE_N[2.0]
    assert abs(row["dev"] - entry["dev"][0]) < 4 * entry["se"][0]
    assert row["se"] == pytest.approx(entry["se"][0], rel=0.2)


@pytest.mark.slow
def test_finite_size_study_reproduces_the_rnn_entry():
    """~30 s: the g = 3, N = 100 row of the RNN table (12 realisations)."""
    r = nw.finite_size_study("random_rnn", [100], realisations=12, batch=16, steps=5000, transient=1000,
                             verbose=False, g=3.0)
    row, entry = r["rows"][0], nw._RNN_FINITE_N[3.0]
    assert abs(row["dev"] - entry["dev"][0]) < 4 * entry["se"][0]
    assert row["spread_ucb"] == pytest.approx(entry["spread_ucb"][0], rel=0.2)


def test_deep_net_chaotic_top_exponent_against_mean_field():
    system = rs.get("deep_random_net", N=32, sigma_w=2.0)
    ref = system.reference = limit(system)
    assert ref.provenance == "mean-field" and ref.values[0] == pytest.approx(0.1547242, abs=1e-6)
    res = QR.estimate(system, 3_000, transient=300, batch=8, seed=3, k=1)
    err, tol = within_tolerance(system, res)
    assert err[0] <= tol[0], (err, tol)
    assert tol[0] < 0.5 * ref.values[0]
    for params, pattern in [({"sigma_w": 1.0}, "edge of chaos"), ({"sigma_w": 0.8, "sigma_b": 0.3}, "sigma_b > 0"),
                            ({"sigma_w": 2.0, "sigma_b": 0.3}, "sigma_b = 0"), ({"sigma_w": 6.0}, "measured only")]:
        s = rs.get("deep_random_net", N=32, **params)
        assert s.reference is None and pattern in s.meta["note"], (params, s.meta["note"])


# ---------------------------------------------------------------------------
# registry, parameters
# ---------------------------------------------------------------------------
def test_registered_with_variants():
    for name in ("random_rnn", "rate_network", "deep_random_net"):
        assert name in rs.names()
        for params in rs.variants(name):
            system = rs.get(name, **params)
            assert system.name == name and "validation" in system.meta
    rnn = [rs.get("random_rnn", **p).reference for p in rs.variants("random_rnn")]
    assert {r.provenance for r in rnn} == {"exact", "computed"}
    deep = [rs.get("deep_random_net", **p) for p in rs.variants("deep_random_net")]
    assert {s.reference.provenance for s in deep} == {"exact", "computed"}
    assert {limit(s).provenance for s in deep} == {"exact", "mean-field"}
    assert min(s.params["sigma_w"] for s in deep) < 1 < max(s.params["sigma_w"] for s in deep)


@pytest.mark.parametrize("name,params,pattern", [
    ("random_rnn", {"N": 0}, "N"), ("random_rnn", {"N": 2.5}, "N"), ("random_rnn", {"g": 0.0}, "g"),
    ("random_rnn", {"g": -1.0}, "g"), ("random_rnn", {"g": float("nan")}, "g"),
    ("random_rnn", {"sigma_b": -0.1}, "sigma_b"), ("random_rnn", {"seed": -1}, "seed"),
    ("random_rnn", {"seed": 1.5}, "seed"),
    ("rate_network", {"N": 0}, "N"), ("rate_network", {"g": 0}, "g"), ("rate_network", {"tau": 0.0}, "tau"),
    ("rate_network", {"tau": -1.0}, "tau"), ("rate_network", {"dt": 0.0}, "dt"),
    ("rate_network", {"dt": float("inf")}, "dt"), ("rate_network", {"seed": -2}, "seed"),
    ("deep_random_net", {"N": -3}, "N"), ("deep_random_net", {"sigma_w": 0.0}, "sigma_w"),
    ("deep_random_net", {"sigma_w": "a"}, "sigma_w"), ("deep_random_net", {"sigma_b": -1.0}, "sigma_b"),
    ("deep_random_net", {"gain": 1.0}, "gain"),
])
def test_bad_parameters_raise_named_errors(name, params, pattern):
    with pytest.raises(InvalidArgumentError, match=pattern):
        rs.get(name, **params)
