"""Property-based tests of the QR estimator (hypothesis): invariants that hold for any system.

Over randomly drawn matrices, coordinate changes and parameters:
  1. linear maps x -> A x: exponents = ln|eigenvalues of A| (and a Jordan block: ln T / T convergence);
  2. invariance under a linear change of coordinates (linear maps and a conjugated Henon map);
  3. time rescaling by c multiplies a flow's exponents by c (the RK4 map of c f with dt / c is
     the RK4 map of f with dt);
  4. the inverse map has the negated, reversed spectrum (linear maps; Henon's inverse along
     stored orbits on the attractor, which is repelling for the inverse);
  5. the sum rule: sum of exponents = <ln|det J|> (maps) or ln|det DPhi| / dt ~ div f (flows).

How the tolerances are derived (every assertion states its own):

* Linear maps, A = P D P^-1 with D block diagonal and *normal* (real eigenvalues, and 2 x 2
  blocks rho * rotation for complex pairs).  Over steps t0 .. t0+T the Benettin sum of
  exponent i is ln r_ii(A^T Q_t0) = ln vol_i(A^(t0+T) Q0) - ln vol_i(A^t0 Q0) minus the same
  for i - 1 (vol_i = volume spanned by the first i columns).  With W = P^-1 Q0 and
  u_n = wedge^i(D)^n (w_1 ^ ... ^ w_i), vol_i(A^n Q0) = |u_n| * |wedge^i(P) u_n / |u_n||.
  As D is normal, ln|u_N| - ln|u_t0| = T * sum_{j<=i} ln|mu_j| up to the alignment residual
  <= 1/2 ln(1 + K exp(-2 g t0)) (g the smallest gap between distinct ln-moduli, K set by the
  random initial frame).  The second factor is the same at t0 and N when the i-th slot is
  not the first half of a complex pair (u_n keeps its direction), and otherwise moves in a
  2-plane where its max / min ratio is <= sigma_max(P) / sigma_min(P) = cond(P).  Exactly
  one of vol_i, vol_(i-1) can cut a pair, so per exponent
        |lambda_i(T) - ln|mu_i||  <=  (ln cond(P) + ALIGN_NATS) / T  +  round-off,
  with ALIGN_NATS = 1 nat covering the alignment residual: with g >= MIN_GAP and the
  transients below, exp(-2 g t0) <= e^-30, so 1 nat holds unless K > 1e13 (an initial frame
  within 1e-6 of the degenerate set).  The same bound as lyapbench's own (bias_nats =
  ln cond(P), suite/scoring/tolerance.py), made per-trajectory here.
* Round-off, per step: a Householder QR of A Q (Q orthonormal to O(d eps)) is exact for A Q + E
  with |E| <= gamma d eps |A|, which moves each ln R_ii by <= gamma d eps cond(A); gamma = 100
  as in suite.scoring.tolerance.roundoff; plus naive float64 summation over T terms, T eps * scale.
  Exponents are averages of per-step ln R_ii, so this bound is not divided by T.
* Random / chaotic systems (Henon): the library's rule (suite/scoring/tolerance.py): Student-t quantile
  at alpha = 1e-4 times the standard error plus 1 nat / T per Benettin run; two independent
  runs combine as t * sqrt(se_1^2 + se_2^2) (t at the smaller dof: Welch's dof is >= that).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference_systems as rs
from reference_systems import TrajectoryRNG
from suite import estimators
from suite.core.errors import TrajectoryError
from suite.scoring.tolerance import t_quantile, tolerance

QR = estimators.get("qr")
EPS = float(np.finfo(np.float64).eps)
ALIGN_NATS = 1.0        # alignment residual of the initial frame, see the module docstring
GAMMA = 100.0           # backward-error constant of Householder QR (safety margin, as suite.scoring.tolerance)
MIN_GAP = 0.15          # smallest gap between distinct ln-moduli (maps, per step)
HENON_A, HENON_B = 1.4, 0.3


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run this module's tiny (<= 5 x 5) tensor ops on one intra-op thread, then restore.

    Parallelism gains nothing at this size, and with a busy core the OpenMP workers' waits made
    this module 17x slower (8 min instead of 28 s on 2 cores while another test run was going).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def profile(n: int):
    """Deterministic in CI: derandomized, no example database, no deadline (torch warm-up)."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None)


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------
def rotation(theta: float) -> np.ndarray:
    return np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])


def block_diag(blocks) -> np.ndarray:
    d = sum(b.shape[0] for b in blocks)
    D, i = np.zeros((d, d)), 0
    for b in blocks:
        n = b.shape[0]
        D[i:i + n, i:i + n] = b
        i += n
    return D


@st.composite
def slot_levels(draw, dmin, dmax, lo, hi, min_gap, max_gap):
    """d, slot sizes (1 = real eigenvalue, 2 = complex pair) and their distinct levels, descending."""
    d = draw(st.integers(dmin, dmax))
    n_pairs = draw(st.integers(0, d // 2))
    sizes = draw(st.permutations([2] * n_pairs + [1] * (d - 2 * n_pairs)))
    gaps = draw(st.lists(st.floats(min_gap, max_gap), min_size=len(sizes) - 1, max_size=len(sizes) - 1))
    top = draw(st.floats(lo + sum(gaps), hi))
    levels = top - np.concatenate([[0.0], np.cumsum(gaps)])
    return d, list(sizes), levels


@st.composite
def conjugators(draw, d, max_cond):
    """A random invertible P = I + 0.8 M, M uniform in [-1, 1], with cond(P) < max_cond."""
    M = draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-1.0, 1.0), fill=st.nothing()))
    P = np.eye(d) + 0.8 * M
    c = np.linalg.cond(P)
    assume(np.isfinite(c) and c < max_cond)
    return P


@st.composite
def linear_maps(draw, dmin=2, dmax=5, max_cond=30.0):
    """(A, P, expected exponents descending): A = P D P^-1, |ln-moduli| <= 1.5, gaps >= MIN_GAP."""
    d, sizes, levels = draw(slot_levels(dmin, dmax, -1.5, 1.5, MIN_GAP, 0.6))
    blocks, expected = [], []
    for size, level in zip(sizes, levels):
        if size == 1:
            blocks.append(np.array([[draw(st.sampled_from([1.0, -1.0])) * math.exp(level)]]))
        else:
            blocks.append(math.exp(level) * rotation(draw(st.floats(0.2, math.pi - 0.2))))
        expected += [level] * size
    P = draw(conjugators(d, max_cond))
    A = P @ block_diag(blocks) @ np.linalg.inv(P)
    return A, P, np.array(expected)


@st.composite
def linear_flows(draw, dmin=2, dmax=4, max_cond=10.0):
    """(A, P, eigenvalues mu in slot order): Re mu in [-1.2, 0.6] with gaps >= 0.3, |Im mu| <= 1.5."""
    d, sizes, levels = draw(slot_levels(dmin, dmax, -1.2, 0.6, 0.3, 0.45))
    blocks, mu = [], []
    for size, level in zip(sizes, levels):
        if size == 1:
            blocks.append(np.array([[level]]))
            mu.append(complex(level))
        else:
            w = draw(st.floats(0.2, 1.5))
            blocks.append(np.array([[level, -w], [w, level]]))
            mu += [complex(level, w), complex(level, -w)]
    P = draw(conjugators(d, max_cond))
    return P @ block_diag(blocks) @ np.linalg.inv(P), P, np.array(mu)


seeds = st.integers(0, 2 ** 20)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def zeros_sampler(d):
    return lambda batch, g: torch.zeros(batch, d, dtype=torch.float64)


def linear_user_map(A, name="user_linear"):
    """x -> A x as a user Map, tangents by autodiff; the state stays at the fixed point 0."""
    At = torch.as_tensor(A, dtype=torch.float64)
    return rs.Map(name, lambda x: x @ At.to(x).T, A.shape[0], sample_initial=zeros_sampler(A.shape[0]))


def linear_roundoff(A, T, scale):
    """Per-step round-off bound of the module docstring: gamma d eps cond(A) + T eps scale."""
    d = A.shape[0]
    return GAMMA * d * EPS * np.linalg.cond(A) + T * EPS * scale


def linear_bias(P, T):
    """Per-exponent Benettin bias bound for A = P D P^-1, D normal: (ln cond P + ALIGN_NATS) / T."""
    return (math.log(np.linalg.cond(P)) + ALIGN_NATS) / T


def henon_step(x):
    return torch.stack([1.0 - HENON_A * x[:, 0] ** 2 + x[:, 1], HENON_B * x[:, 0]], dim=1)


def henon_inverse_step(z):
    """f^-1(X, Y) = (Y / b, X - 1 + a (Y / b)^2): solves X = 1 - a x^2 + y, Y = b x for (x, y)."""
    x = z[:, 1] / HENON_B
    return torch.stack([x, z[:, 0] - 1.0 + HENON_A * x ** 2], dim=1)


def henon_inverse_jacobian(z):
    """D f^-1 = [[0, 1/b], [1, 2 a Y / b^2]] (det = -1/b)."""
    J = z.new_zeros(z.shape[0], 2, 2)
    J[:, 0, 1] = 1.0 / HENON_B
    J[:, 1, 0] = 1.0
    J[:, 1, 1] = 2.0 * HENON_A * z[:, 1] / HENON_B ** 2
    return J


def combined(res_1, res_2):
    """t * sqrt(se_1^2 + se_2^2) for the difference of two independent estimates."""
    dof = min(res_1.meta["stderr_dof"], res_2.meta["stderr_dof"])
    return t_quantile(dof) * np.sqrt(res_1.stderr ** 2 + res_2.stderr ** 2)


# ---------------------------------------------------------------------------------------------
# 1. linear maps: exponents = ln|eigenvalues|
# ---------------------------------------------------------------------------------------------
@profile(12)
@given(case=linear_maps(), seed=seeds, data=st.data())
def test_linear_map_exponents_are_log_moduli(case, seed, data):
    A, P, expected = case
    T, t0 = 400, 100  # exp(-2 * MIN_GAP * t0) = e^-30: the alignment residual is within ALIGN_NATS
    tol = linear_bias(P, T) + linear_roundoff(A, T, np.abs(expected).max())

    system = rs.get("linear_map", A=A)  # catalogue system, explicit Jacobian, all d exponents
    # its reference (numpy eig of A) agrees with the construction; eig's error ~ eps cond(P) |A| / |mu|
    np.testing.assert_allclose(system.reference.values, expected, atol=1e-9)
    res = QR.estimate(system, T, transient=t0, batch=2, seed=seed)
    assert np.all(np.diff(res.exponents) <= tol)  # sorted descending (pairs equal within tol)
    err = np.abs(res.per_trajectory - expected).max()
    assert err <= tol, (err, tol, expected, res.per_trajectory)

    # the same map defined by a user, tangents by autodiff, only the k leading exponents
    k = data.draw(st.integers(1, A.shape[0]), label="k")
    res_k = QR.estimate(linear_user_map(A), T, transient=t0, batch=2, seed=seed, k=k)
    err_k = np.abs(res_k.per_trajectory - expected[:k]).max()
    assert err_k <= tol, (err_k, tol, k)


@profile(6)
@given(log_mu=st.floats(-1.0, 1.0), sign=st.sampled_from([1.0, -1.0]), shear=st.floats(0.5, 2.0),
       seed=seeds)
def test_jordan_block_converges_like_log_T_over_T(log_mu, sign, shear, seed):
    # A = [[mu, s], [0, mu]], s = shear |mu|: both exponents ln|mu|.  From the random unit vector
    # q (first column of the initial frame) A^n q = mu^n (q1 + n s q2 / mu, q2), so with no
    # transient lambda_1(T) - ln|mu| = ln|v_T| / T with |q2| <= |v_T| <= 1 + T shear: the bias is
    # within [ln|q2|, ln(1 + T shear)] / T, i.e. ln T / T, not 1 / T.  |q2| < 1e-3 has probability
    # 2 asin(1e-3) / pi = 6e-4 for a uniform direction: bound ln(1e3).  lambda_2 = 2 ln|mu| -
    # lambda_1 exactly (vol_2 = |det A|^T), so it obeys the same bound.  Plus round-off.
    mu = sign * math.exp(log_mu)
    A = np.array([[mu, shear * abs(mu)], [0.0, mu]])
    T = 2_000
    res = QR.estimate(linear_user_map(A, "jordan"), T, transient=0, batch=2, seed=seed)
    tol = max(math.log(1.0 + T * shear), math.log(1e3)) / T + linear_roundoff(A, T, 1.0 + abs(log_mu))
    err = np.abs(res.per_trajectory - log_mu).max()
    assert err <= tol, (err, tol)


# ---------------------------------------------------------------------------------------------
# 2. invariance under a linear change of coordinates
# ---------------------------------------------------------------------------------------------
@profile(8)
@given(case=linear_maps(dmax=4), seed=seeds, data=st.data())
def test_linear_conjugation_leaves_exponents_unchanged(case, seed, data):
    A, P_A, expected = case
    C = data.draw(conjugators(A.shape[0], 10.0), label="C")
    B = C @ A @ np.linalg.inv(C)  # = (C P_A) D (C P_A)^-1: the bound applies with C P_A
    T, t0 = 400, 100
    scale = np.abs(expected).max()
    res_a = QR.estimate(rs.get("linear_map", A=A), T, transient=t0, batch=2, seed=seed)
    res_b = QR.estimate(rs.get("linear_map", A=B), T, transient=t0, batch=2, seed=seed)
    # each run is within its own bias bound of ln|mu|, so they differ by at most the sum
    tol = (linear_bias(P_A, T) + linear_bias(C @ P_A, T)
           + linear_roundoff(A, T, scale) + linear_roundoff(B, T, scale))
    err = np.abs(res_b.per_trajectory - res_a.per_trajectory).max()
    assert err <= tol, (err, tol)


@profile(3)
@given(C=conjugators(2, 10.0), seed=seeds)
def test_conjugated_henon_has_henon_spectrum(C, seed):
    # G(y) = C f(C^-1 y), tangents by autodiff; initial states C x0 with x0 Henon's own.
    # Floating-point orbits of the two maps separate after ~ 36 / 0.42 ~ 90 steps (< transient),
    # so the two estimates are independent: |diff| <= t * sqrt(se_f^2 + se_G^2) + bias, where
    # each Benettin run has a <= 1 nat boundary term (library default) and G's sum carries
    # ln cond(C) more (|C u| / |C v| for unit u, v).
    Ct = torch.as_tensor(C)
    Ci = torch.as_tensor(np.linalg.inv(C))
    henon = rs.get("henon", a=HENON_A, b=HENON_B)
    conj = rs.Map("conjugated_henon", lambda y: henon_step(y @ Ci.T) @ Ct.T, 2,
                  sample_initial=lambda batch, g: henon.sample_initial(batch, g) @ Ct.T)
    T, t0, B = 1_500, 200, 12
    res_f = QR.estimate(henon, T, transient=t0, batch=B, seed=seed)
    res_g = QR.estimate(conj, T, transient=t0, batch=B, seed=seed)
    tol = combined(res_f, res_g) + (2 * 1.0 + math.log(np.linalg.cond(C))) / T
    err = np.abs(res_g.exponents - res_f.exponents)
    assert np.all(err <= tol), (err, tol, res_f.exponents, res_g.exponents)
    # sum rule, exact per trajectory: det(C J C^-1) = det J = -b, up to round-off
    # (cond(C J C^-1) <= cond(C)^2 cond(J), cond(J) <= (2 a |x| + 1)^2 / b < 70 on the attractor)
    s = res_g.per_trajectory.sum(axis=1)
    assert np.abs(s - math.log(HENON_B)).max() <= GAMMA * 2 * EPS * np.linalg.cond(C) ** 2 * 70 + T * EPS * 3


# ---------------------------------------------------------------------------------------------
# 3. time rescaling
# ---------------------------------------------------------------------------------------------
def rk4_matrix(A, h):
    """p4(A h) = sum_{n<=4} (A h)^n / n!: the exact one-step map of RK4 on x' = A x."""
    Z = A * h
    return np.eye(A.shape[0]) + Z + Z @ Z / 2 + Z @ Z @ Z / 6 + Z @ Z @ Z @ Z / 24


def rk4_exponents(mu, h):
    z = mu * h
    return np.log(np.abs(1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24)) / h


@profile(5)
@given(case=linear_flows(), c=st.floats(0.25, 4.0), seed=seeds)
def test_time_rescaling_multiplies_flow_exponents(case, c, seed):
    A, P, mu = case
    d, dt, steps, t0 = A.shape[0], 0.2, 500, 150
    # alignment: t0 dt = 30 time units at gaps >= 0.3: exp(-2 * 0.3 * 30) = e^-18, so the residual
    # 1/2 ln(1 + K e^-18) is within ALIGN_NATS unless K > 4e8
    flow = rs.get("linear_ode", A=A, dt=dt)
    cAt = torch.as_tensor(c * A)
    rescaled = rs.Flow("rescaled_linear_ode", lambda x: x @ cAt.to(x).T, d, dt / c,
                       sample_initial=zeros_sampler(d))  # autodiff tangents

    # exact-map identity: RK4 on c f with step dt / c is RK4 on f with step dt (= p4(A dt)),
    # up to the rounding of c A and dt / c (a few eps per stage product)
    M = rk4_matrix(A, dt)
    x0 = torch.zeros(1, d, dtype=torch.float64)
    tol_map = GAMMA * d * EPS * np.abs(M).max()
    assert np.abs(flow.jacobian(x0)[0].numpy() - M).max() <= tol_map
    assert np.abs(rescaled.jacobian(x0)[0].numpy() - M).max() <= tol_map

    res_1 = QR.estimate(flow, steps, transient=t0, batch=2, seed=seed)
    res_c = QR.estimate(rescaled, steps, transient=t0, batch=2, seed=seed)
    # same discrete map, same seed (same frame): the same per-step ln R_ii up to round-off;
    # divided by dt / c instead of dt.  Round-off per step (nats): gamma d eps cond(M) + summation,
    # per unit time divided by dt / c.
    scale = np.abs(rk4_exponents(mu, dt)).max()
    r_c = (c / dt) * (GAMMA * d * EPS * np.linalg.cond(M) + steps * EPS * scale * dt)
    diff = np.abs(res_c.per_trajectory - c * res_1.per_trajectory).max()
    assert diff <= r_c, (diff, r_c)

    # against the exact exponents of the RK4 map, c ln|p4(mu dt)| / dt, and against c Re(mu):
    # Benettin bias (ln cond P + ALIGN_NATS) nats over the time T_c = steps dt / c, plus the
    # RK4 map's known O(dt^4) deviation from Re(mu), times c (computed, and small: < 2e-3 c)
    order = np.argsort(-mu.real)
    exact_rk4 = c * rk4_exponents(mu, dt)[order]
    deviation = c * np.abs(rk4_exponents(mu, dt) - mu.real)[order]
    assert np.all(deviation < 2e-3 * c)
    T_c = steps * dt / c
    tol = linear_bias(P, T_c) + r_c
    err = np.abs(res_c.per_trajectory - exact_rk4).max(axis=0)
    assert np.all(err <= tol), (err, tol)
    err_re = np.abs(res_c.per_trajectory - c * mu.real[order]).max(axis=0)
    assert np.all(err_re <= tol + deviation), (err_re, tol + deviation)


# ---------------------------------------------------------------------------------------------
# 4. the inverse map negates and reverses the spectrum
# ---------------------------------------------------------------------------------------------
@profile(8)
@given(case=linear_maps(dmax=4), seed=seeds)
def test_inverse_linear_map_negates_reversed_spectrum(case, seed):
    A, P, expected = case
    Ainv = np.linalg.inv(A)  # = P D^-1 P^-1, D^-1 normal with the same gaps: same bias bound
    T, t0 = 400, 100
    scale = np.abs(expected).max()
    res = QR.estimate(rs.get("linear_map", A=A), T, transient=t0, batch=2, seed=seed)
    res_inv = QR.estimate(rs.get("linear_map", A=Ainv), T, transient=t0, batch=2, seed=seed)
    tol = linear_bias(P, T) + linear_roundoff(Ainv, T, scale)
    err = np.abs(res_inv.per_trajectory - (-expected[::-1])).max()
    assert err <= tol, (err, tol)
    tol_2 = tol + linear_bias(P, T) + linear_roundoff(A, T, scale)  # run against run
    err_2 = np.abs(res_inv.exponents + res.exponents[::-1]).max()
    assert err_2 <= tol_2, (err_2, tol_2)


def henon_orbits(seed, batch, length, burn):
    """Forward Henon orbits (batch, length, 2), after ``burn`` steps from Henon's initial states."""
    x = rs.get("henon").sample_initial(batch, TrajectoryRNG(seed, batch))
    for _ in range(burn):
        x = henon_step(x)
    out = [x]
    for _ in range(length - 1):
        out.append(henon_step(out[-1]))
    return torch.stack(out, dim=1)


def playback_inverse_henon(orbits):
    """Henon's inverse run backwards along stored forward orbits on the attractor.

    The attractor is repelling for f^-1 (f^-1 expands areas by 1/b and Henon's stable direction,
    lambda_2 = -1.62, becomes unstable), so f^-1 iterated in floating point leaves it within
    ~ 36 / 1.62 ~ 22 steps and escapes to infinity (test below).  This Map's step returns the
    stored predecessor of a stored orbit point, which is f^-1 of it up to O(eps) (checked), and
    its Jacobian is D f^-1 there: the tangent cocycle of f^-1 along an attractor orbit.
    """
    pts = orbits.numpy()
    pred = {tuple(p): q for p, q in zip(pts[:, 1:].reshape(-1, 2).tolist(), pts[:, :-1].reshape(-1, 2).tolist())}

    def step(z):
        return torch.tensor([pred[tuple(r)] for r in z.tolist()], dtype=z.dtype)

    def start(batch, g):
        assert batch == orbits.shape[0]
        return orbits[:, -1].clone()

    return rs.Map("henon_inverse_playback", step, 2, jacobian=henon_inverse_jacobian, sample_initial=start)


@profile(3)
@given(seed=seeds)
def test_henon_inverse_along_attractor_orbit_negates_reversed_spectrum(seed):
    T, t0_f, t0_b, B = 1_500, 200, 100, 12
    henon = rs.get("henon", a=HENON_A, b=HENON_B)
    res_f = QR.estimate(henon, T, transient=t0_f, batch=B, seed=seed)
    # the estimator's own orbits (same seed, same step function: bit for bit), extended by t0_b
    # steps so that the backward transient ends where the forward window ends
    orbits = henon_orbits(seed, B, t0_f + T + t0_b + 1, burn=0)
    assert torch.allclose(henon.step(orbits[:, 7]), orbits[:, 8], rtol=0, atol=0)
    # the stored predecessor is f^-1 of the point up to round-off (|D f^-1| < 13 on the attractor: |Y| < 0.4)
    back = henon_inverse_step(orbits[:, 1:].reshape(-1, 2)).reshape(B, -1, 2)
    assert (back - orbits[:, :-1]).abs().max() <= 1e-13
    res_b = QR.estimate(playback_inverse_henon(orbits), T, transient=t0_b, batch=B, seed=seed)

    # statistical rule (suite/scoring/tolerance.py) for the two runs; conservative here, since both see the
    # same orbit segment and their errors are positively correlated
    tol = combined(res_f, res_b) + 2 * 1.0 / T
    err = np.abs(res_b.exponents + res_f.exponents[::-1])
    assert np.all(err <= tol), (err, tol, res_f.exponents, res_b.exponents)
    # against the literature values negated and reversed (Sprott, +-3e-5), the library's rule
    ref = henon.reference
    tol_ref = tolerance(ref.uncertainty[::-1], res_b.stderr, res_b.meta["stderr_dof"], T, 1.0)
    err_ref = np.abs(res_b.exponents + ref.values[::-1])
    assert np.all(err_ref <= tol_ref), (err_ref, tol_ref)
    # sum rule, exact per trajectory: det D f^-1 = -1/b; cond(D f^-1) = cond(D f) < 70
    s = res_b.per_trajectory.sum(axis=1)
    assert np.abs(s + math.log(HENON_B)).max() <= GAMMA * 2 * EPS * 70 + T * EPS * 3


def test_henon_inverse_iterated_directly_escapes():
    """Why the test above plays stored orbits back: f^-1 repels from the attractor and diverges."""
    orbits = henon_orbits(0, 4, 1, burn=500)
    inverse = rs.Map("henon_inverse", henon_inverse_step, 2, jacobian=henon_inverse_jacobian,
                     sample_initial=lambda batch, g: orbits[:batch, 0].clone())
    with pytest.raises(TrajectoryError):
        QR.estimate(inverse, 300, batch=4, seed=0)


# ---------------------------------------------------------------------------------------------
# 5. the sum rule
# ---------------------------------------------------------------------------------------------
@profile(10)
@given(case=linear_maps(), seed=seeds)
def test_linear_map_sum_rule(case, seed):
    # sum_i ln R_ii = ln|det(A Q)| = ln|det A| at every step: no boundary term at all, so even a
    # short run with no transient holds it to round-off (d exponents, each within linear_roundoff)
    A, P, expected = case
    T = 50
    res = QR.estimate(rs.get("linear_map", A=A), T, transient=0, batch=3, seed=seed)
    d = A.shape[0]
    tol = d * linear_roundoff(A, T, np.abs(expected).max())
    log_det = math.log(abs(np.linalg.det(A)))
    assert abs(log_det - expected.sum()) <= 1e-9  # det A = prod mu (construction check)
    err = np.abs(res.per_trajectory.sum(axis=1) - log_det).max()
    assert err <= tol, (err, tol)


@profile(4)
@given(case=linear_flows(), seed=seeds)
def test_linear_flow_sum_rule_is_rk4_divergence(case, seed):
    # the RK4 map's exponents sum to ln|det p4(A dt)| / dt exactly (per step, round-off divided
    # by dt); that differs from div f = tr A by the computed sum of the RK4 deviations
    A, P, mu = case
    d, dt, steps = A.shape[0], 0.2, 50
    res = QR.estimate(rs.get("linear_ode", A=A, dt=dt), steps, transient=0, batch=2, seed=seed)
    M = rk4_matrix(A, dt)
    exact = math.log(abs(np.linalg.det(M))) / dt
    tol = d * (GAMMA * d * EPS * np.linalg.cond(M) + steps * EPS) / dt
    err = np.abs(res.per_trajectory.sum(axis=1) - exact).max()
    assert err <= tol, (err, tol)
    deviation = abs(rk4_exponents(mu, dt).sum() - np.trace(A))
    assert deviation < 2e-3 * d
    assert np.abs(res.per_trajectory.sum(axis=1) - np.trace(A)).max() <= tol + deviation


@profile(5)
@given(d=st.integers(2, 5), g=st.floats(0.8, 3.0), seed=seeds, data=st.data())
def test_tanh_map_sum_rule_along_its_trajectory(d, g, seed, data):
    # x -> tanh(W x + b): J = diag(1 - h^2) W, ln|det J| = sum ln(1 - h_i^2) + ln|det W|.
    # Per step sum_i ln R_ii = ln|det(J Q)| = ln|det J|, so per trajectory the sum of the exponents
    # equals the average of ln|det J| over the *same* post-transient steps (replayed: same seed,
    # same sample_initial, same step function, bit for bit) up to round-off, gamma d eps cond(J_t)
    # per step (averaged along the orbit) + T eps * scale.  Any orbit: fixed point, cycle or chaos.
    U = data.draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-1.0, 1.0), fill=st.nothing()), label="U")
    W = g * math.sqrt(3.0 / d) * U  # entries of variance g^2 / d
    assume(np.linalg.cond(W) < 1e3)  # invertible, so ln|det J| is finite
    bias = data.draw(hnp.arrays(np.float64, (d,), elements=st.floats(-0.5, 0.5)), label="b")
    Wt, bt = torch.as_tensor(W), torch.as_tensor(bias)
    system = rs.Map("tanh_map", lambda x: torch.tanh(x @ Wt.to(x).T + bt.to(x)), d)  # autodiff tangents
    T, t0, B = 300, 50, 3
    res = QR.estimate(system, T, transient=t0, batch=B, seed=seed)

    x = system.sample_initial(B, TrajectoryRNG(seed, B))
    for _ in range(t0):
        x = system.step(x)
    log_det, conds = torch.zeros(B, dtype=torch.float64), []
    for _ in range(T):
        h = system.step(x)
        log_det += torch.log(1.0 - h * h).sum(dim=1)   # autograd's tanh derivative is 1 - h*h
        conds.append(np.linalg.cond(system.jacobian(x).numpy()))
        x = h
    mean_log_det = log_det.numpy() / T + math.log(abs(np.linalg.det(W)))
    cond = np.mean(conds, axis=0)  # (B,)
    tol = GAMMA * d * EPS * cond + T * EPS * (np.abs(mean_log_det) + 1.0)
    err = np.abs(res.per_trajectory.sum(axis=1) - mean_log_det)
    assert np.all(err <= tol), (err, tol)
