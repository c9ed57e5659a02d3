"""Deterministic maps with known exponents: logistic, Henon, constant linear."""
from __future__ import annotations

import math

import numpy as np
import torch

from reference_systems._checks import diagonalisable
from suite.core.args import check_number
from reference_systems.reference import Reference
from reference_systems.registry import register
from reference_systems.system import Map
from suite.core.errors import InvalidArgumentError

# ---------------------------------------------------------------------------
# logistic map
# ---------------------------------------------------------------------------
#: Computed exponents of the logistic map at other parameters (docs/design.md §3),
#: each from a long float64 run (+-1e-4).  r = 3.83 lies in the period-3
#: window: the orbit settles on a stable 3-cycle and the exponent is negative.
_LOGISTIC_COMPUTED = {3.9: 0.49604, 3.8: 0.43210, 3.7: 0.35500, 3.83: -0.36967}


def logistic(r: float = 4.0) -> Map:
    """Logistic map x -> r x (1 - x) on (0, 1); exponent per step.

    At r = 4 the map is conjugate to the tent map of slope 2 by
    x = sin^2(pi y / 2), so lambda = ln 2 exactly (Ulam & von Neumann 1947;
    e.g. Ott, "Chaos in Dynamical Systems", 2nd ed., sec. 3.8).
    J(x) = r (1 - 2x).

    Floating point: a float64 orbit that comes within ~4e-9 of x = 1/2 rounds
    to x = 1, then to the fixed point 0, and would then report ln r for
    ever (probability ~5e-9 per step; for float32 ~1e-4 per step, so float32
    orbits collapse within a few thousand steps).  The domain 0 < x < 1 is
    therefore checked and a collapsed trajectory is reported as an error with
    its step, never averaged.
    """
    r = check_number("r", r, low=0.0, high=4.0, low_open=True)
    if r == 4.0:
        ref = Reference.make([math.log(2.0)], [0.0], "exact",
                             "conjugacy to the tent map of slope 2 (Ulam & von Neumann 1947)")
    elif r in _LOGISTIC_COMPUTED:
        ref = Reference.make([_LOGISTIC_COMPUTED[r]], [1e-4], "computed",
                             "long float64 run (docs/design.md §3)")
    else:
        ref = None
    return Map(
        "logistic", step=lambda x: r * x * (1.0 - x), dim=1,
        jacobian=lambda x: (r * (1.0 - 2.0 * x)).unsqueeze(-1),
        reference=ref,
        sample_initial=lambda batch, g: g.uniform(1, low=0.05, high=0.95),
        domain=lambda x: ((x > 0) & (x < 1)).all(dim=1),
        domain_note="0 < x < 1 (an orbit at 0 or 1 has collapsed onto the fixed point 0)",
        params={"r": r},
        note=None if ref is not None else f"no reference exponent is known to lyapbench for r={r}",
    )


register("logistic", logistic, variants=[{"r": 4.0}, {"r": 3.9}, {"r": 3.8}, {"r": 3.7}, {"r": 3.83}])


# ---------------------------------------------------------------------------
# Henon map
# ---------------------------------------------------------------------------
def henon(a: float = 1.4, b: float = 0.3) -> Map:
    """Henon map (x, y) -> (1 - a x^2 + y, b x); exponents per step.

    J = [[-2 a x, 1], [b, 0]], det J = -b, so lambda_1 + lambda_2 = ln|b|
    exactly on every orbit.  At (1.4, 0.3): 0.41922, -1.62319 (Sprott,
    "Chaos and Time-Series Analysis", OUP 2003, table A.1), +-3e-5.
    Other parameters: no reference (the sum rule still holds).
    """
    a, b = check_number("a", a), check_number("b", b)
    if b == 0:
        raise InvalidArgumentError("b", b, "a finite non-zero number (b = 0 makes the map singular)")
    ref = None
    if (a, b) == (1.4, 0.3):
        ref = Reference.make([0.41922, -1.62319], [3e-5, 3e-5], "literature",
                             "Sprott, Chaos and Time-Series Analysis (OUP 2003), table A.1")

    def step(x):
        return torch.stack([1.0 - a * x[:, 0] ** 2 + x[:, 1], b * x[:, 0]], dim=1)

    def jacobian(x):
        J = x.new_zeros(x.shape[0], 2, 2)
        J[:, 0, 0] = -2.0 * a * x[:, 0]
        J[:, 0, 1] = 1.0
        J[:, 1, 0] = b
        return J

    return Map("henon", step, dim=2, jacobian=jacobian, reference=ref,
               sample_initial=lambda batch, g: g.uniform(2, low=-0.1, high=0.1),
               params={"a": a, "b": b}, log_abs_det=math.log(abs(b)))


register("henon", henon)


# ---------------------------------------------------------------------------
# constant linear map
# ---------------------------------------------------------------------------
#: Default matrix: non-normal, a complex pair and two real eigenvalues of
#: distinct moduli: 0.9 +- 0.9i (|mu| = 0.9 sqrt 2), 0.8, -0.5.
_DEFAULT_A = [[0.9, -0.9, 0.6, 0.2],
              [0.9, 0.9, 0.0, 0.5],
              [0.0, 0.0, 0.8, 0.7],
              [0.0, 0.0, 0.0, -0.5]]


def linear_map(A=None) -> Map:
    """Constant linear map x -> A x; exponents per step.

    lambda_i = ln|mu_i| with mu_i the eigenvalues of A, sorted by modulus
    (exact; a complex pair gives a repeated exponent).  The state stays at
    the fixed point 0, where the tangent map is A itself (any state would do;
    the origin keeps it finite).  The Benettin sum's boundary term is bounded
    by ln cond(P), P the eigenvector matrix, which sets ``bias_nats``; for a
    defective A (Jordan block) cond(P) is infinite and the estimate converges
    only like ln T / T, so defective matrices are refused.
    """
    A, mu, log_cond = diagonalisable("A", A, _DEFAULT_A)
    if np.any(mu == 0):
        raise InvalidArgumentError("A", A.tolist(), "a non-singular matrix (a zero eigenvalue has exponent -inf)")
    values = np.sort(np.log(np.abs(mu)))[::-1]
    d = A.shape[0]
    ref = Reference(values, np.full(d, 1e-12), "exact", "ln|eigenvalues of A| (numpy.linalg.eig, rounding ~1e-12)",
                    bias_nats=max(1.0, log_cond))
    At = torch.as_tensor(A)

    def jacobian(x):
        return At.to(x.dtype).to(x.device).expand(x.shape[0], d, d)

    return Map("linear_map", step=lambda x: x @ At.to(x.dtype).to(x.device).T, dim=d, jacobian=jacobian,
               reference=ref, sample_initial=lambda batch, g: torch.zeros(batch, d, dtype=torch.float64,
                                                                          device=g.device),
               params={"A": A.tolist()}, log_abs_det=float(np.log(abs(np.linalg.det(A)))))


register("linear_map", linear_map)


# ---------------------------------------------------------------------------
# piecewise-linear maps of constant slope: tent and Bernoulli shift
# ---------------------------------------------------------------------------
def _digits(mu: int, dtype: torch.dtype) -> int:
    """Base-mu digits a float of ``dtype`` holds exactly on [0, 1): mu^m <= 2^(mantissa bits)."""
    bits = -math.log2(torch.finfo(dtype).eps)  # 52 for float64, 23 for float32
    return int(bits // math.log2(mu))


def _refill_shift(mu: int, fold: bool):
    """Step and noise of an integer-slope shift that brings in a fresh low digit each step.

    x = (n + 1/2) / mu^m with n an integer in [0, mu^m).  The exact map
    shifts the base-mu expansion of x one digit up: the top digit leaves
    and a digit the finite state does not hold enters at the bottom.  For
    a point typical of the invariant (Lebesgue) measure those digits are iid
    uniform, so the entering digit is drawn from the trajectory's random
    stream.  ``fold`` reflects the upper half (tent map): n -> mu^m - 1 - n.
    The step is piecewise constant in x (it goes through floor), so its
    derivative comes from the analytic Jacobian, and the system says
    ``differentiable_step=False`` to estimators that differentiate ``step``.
    """
    def noise(g, x):
        return torch.floor(g.uniform(1, dtype=torch.float64) * mu).to(x.dtype)

    def step(x, digit):
        M = float(mu) ** _digits(mu, x.dtype)
        n = torch.floor(x * M)
        if fold:
            n = torch.where(x < 0.5, n, M - 1.0 - n)
        n_next = torch.remainder(mu * n, M) + digit
        return (n_next + 0.5) / M

    return step, noise


def _slope_reference(mu: float, name: str) -> Reference:
    return Reference.make([math.log(mu)], [0.0], "exact",
                          f"|{name}'(x)| = mu everywhere, so lambda = ln mu on every orbit", bias_nats=0.0)


def tent(mu: float = 2.0) -> Map:
    """Tent map x -> mu min(x, 1 - x) on [0, 1], 1 < mu <= 2; lambda = ln mu exactly (per step).

    |f'(x)| = mu wherever f is differentiable, so every orbit has exponent
    ln mu.  In binary floating point the slope-2 map is a bit shift: each step
    drops one of the 53 mantissa bits and within ~53 steps every orbit lands
    on the fixed point 0 (the exponent stays ln 2, but the orbit is no longer
    a chaotic one, which misleads any estimator that looks at the orbit).
    For mu = 2 the state is therefore kept as 52 exact binary digits and the
    digit entering at the bottom is drawn per trajectory (see
    :func:`_refill_shift`): a typical orbit, never collapsing.  For mu < 2
    the plain floating-point map does not collapse.
    """
    mu = check_number("mu", mu, low=1.0, high=2.0, low_open=True)
    jacobian = lambda x, *_: torch.where(x < 0.5, x.new_full((), mu), x.new_full((), -mu)).unsqueeze(-1)  # noqa: E731
    common = dict(dim=1, reference=_slope_reference(mu, "tent"), params={"mu": mu},
                  sample_initial=lambda batch, g: g.uniform(1),
                  domain=lambda x: ((x >= 0) & (x <= 1)).all(dim=1), domain_note="0 <= x <= 1")
    if mu == 2.0:
        step, noise = _refill_shift(2, fold=True)
        return Map("tent", step, jacobian=jacobian, noise=noise, differentiable_step=False, **common)
    return Map("tent", lambda x: mu * torch.minimum(x, 1.0 - x), jacobian=jacobian, **common)


register("tent", tent, variants=[{"mu": 2.0}, {"mu": 1.7}])


def bernoulli(mu: float = 2.0) -> Map:
    """Bernoulli shift / beta-transformation x -> mu x mod 1, mu > 1; lambda = ln mu exactly.

    |f'| = mu everywhere.  For an integer slope the floating-point map is a
    digit shift that collapses every orbit onto 0 (for mu = 2, 4, 8 ...
    within 53 / log2(mu) steps, exactly as the tent map), so integer slopes
    keep the state as exact base-mu digits and draw each entering digit per
    trajectory (:func:`_refill_shift`).  Non-integer slopes (the
    beta-transformation, Renyi 1957) run as plain floating point.
    """
    mu = check_number("mu", mu, low=1.0, low_open=True, high=1e6)
    common = dict(dim=1, reference=_slope_reference(mu, "bernoulli"), params={"mu": mu},
                  jacobian=lambda x, *_: torch.full_like(x, mu).unsqueeze(-1),
                  sample_initial=lambda batch, g: g.uniform(1),
                  domain=lambda x: ((x >= 0) & (x < 1)).all(dim=1), domain_note="0 <= x < 1")
    if mu == int(mu):
        step, noise = _refill_shift(int(mu), fold=False)
        return Map("bernoulli", step, noise=noise, differentiable_step=False, **common)
    return Map("bernoulli", lambda x: torch.remainder(mu * x, 1.0), **common)


register("bernoulli", bernoulli, variants=[{"mu": 2.0}, {"mu": 3.0}, {"mu": (1 + 5 ** 0.5) / 2}])


# ---------------------------------------------------------------------------
# area-preserving maps of the torus: Arnold's cat map, Chirikov's standard map
# ---------------------------------------------------------------------------
def cat_map() -> Map:
    """Arnold's cat map (x, y) -> (2x + y, x + y) mod 1; exponents per step.

    A hyperbolic toral automorphism with constant Jacobian [[2, 1], [1, 1]]:
    lambda = +-ln((3 + sqrt 5) / 2) = +-0.962424 exactly (Arnold & Avez,
    "Ergodic Problems of Classical Mechanics", 1968).  det = 1: symplectic,
    the exponents pair to zero.
    """
    lam = math.log((3 + math.sqrt(5)) / 2)
    ref = Reference.make([lam, -lam], [0.0, 0.0], "exact",
                         "eigenvalues (3 +- sqrt 5)/2 of [[2, 1], [1, 1]] (Arnold & Avez 1968)")
    A = torch.tensor([[2.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    return Map("cat_map", step=lambda x: torch.remainder(x @ A.to(x).T, 1.0), dim=2,
               jacobian=lambda x: A.to(x).expand(x.shape[0], 2, 2), reference=ref,
               sample_initial=lambda batch, g: g.uniform(2), symplectic=True, log_abs_det=0.0)


register("cat_map", cat_map)


def standard_map(K: float = 10.0) -> Map:
    """Chirikov's standard map on the torus, state (theta, p):

        p' = p + K sin(theta) (mod 2 pi),   theta' = theta + p' (mod 2 pi).

    J = [[1 + K cos theta, 1], [K cos theta, 1]], det J = 1 (symplectic:
    lambda_1 = -lambda_2).  At K = 10 the chaotic sea fills almost the whole
    torus (no accelerator-mode islands: those need K in [2 pi n,
    sqrt((2 pi n)^2 + 16)]), so uniform initial conditions lie in it.
    lambda_1 = 1.620 +- 5e-4, computed (two independent long runs, 1.6197 and
    1.6200 +- 1e-4; docs/design.md §3; cross-checked by a slow test);
    compare Chirikov's large-K estimate ln(K/2) = 1.609.  Other K: no reference.
    """
    K = check_number("K", K)
    ref = None
    if K == 10.0:
        ref = Reference.make([1.620, -1.620], [5e-4, 5e-4], "computed",
                             "two independent long runs, 1.6197 and 1.6200 +- 1e-4 (docs/design.md §3)")
    two_pi = 2 * math.pi

    def step(x):
        p = torch.remainder(x[:, 1] + K * torch.sin(x[:, 0]), two_pi)
        return torch.stack([torch.remainder(x[:, 0] + p, two_pi), p], dim=1)

    def jacobian(x):
        kc = K * torch.cos(x[:, 0])
        one = torch.ones_like(kc)
        return torch.stack([torch.stack([1 + kc, one], 1), torch.stack([kc, one], 1)], 1)

    return Map("standard_map", step, dim=2, jacobian=jacobian, reference=ref,
               sample_initial=lambda batch, g: g.uniform(2, high=two_pi), params={"K": K},
               symplectic=True, log_abs_det=0.0,
               note=None if ref else f"no reference exponent is known to lyapbench for K={K}")


register("standard_map", standard_map)
