"""Deterministic maps with known exponents: logistic, Henon, constant linear."""
from __future__ import annotations

import math

import numpy as np
import torch

from suite.errors import InvalidArgumentError
from . import register
from ._checks import finite
from .reference import Reference
from .system import Map

# ---------------------------------------------------------------------------
# logistic map
# ---------------------------------------------------------------------------
#: Computed exponents of the logistic map at other parameters (DESIGN.md §3),
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
    r = finite("r", r, low=0.0, high=4.0, low_open=True)
    if r == 4.0:
        ref = Reference.make([math.log(2.0)], [0.0], "exact",
                             "conjugacy to the tent map of slope 2 (Ulam & von Neumann 1947)")
    elif r in _LOGISTIC_COMPUTED:
        ref = Reference.make([_LOGISTIC_COMPUTED[r]], [1e-4], "computed",
                             "long float64 run (lyapbench DESIGN.md §3)")
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
    a, b = finite("a", a), finite("b", b)
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
    A = np.asarray(_DEFAULT_A if A is None else A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1 or not np.all(np.isfinite(A)):
        raise InvalidArgumentError("A", A.tolist() if A.ndim <= 2 else A.shape,
                                   "a finite square matrix (nested list or array)")
    mu, P = np.linalg.eig(A)
    if np.any(mu == 0):
        raise InvalidArgumentError("A", A.tolist(), "a non-singular matrix (a zero eigenvalue has exponent -inf)")
    cond = np.linalg.cond(P)
    if not np.isfinite(cond) or cond > 1e8:
        raise InvalidArgumentError("A", A.tolist(), "a diagonalisable matrix (eigenvector condition "
                                   f"number {cond:.3g} > 1e8: Jordan blocks converge only like ln T / T)")
    values = np.sort(np.log(np.abs(mu)))[::-1]
    d = A.shape[0]
    ref = Reference(values, np.full(d, 1e-12), "exact", "ln|eigenvalues of A| (numpy.linalg.eig, rounding ~1e-12)",
                    bias_nats=max(1.0, float(np.log(cond))))
    At = torch.as_tensor(A)

    def jacobian(x):
        return At.to(x.dtype).to(x.device).expand(x.shape[0], d, d)

    return Map("linear_map", step=lambda x: x @ At.to(x.dtype).to(x.device).T, dim=d, jacobian=jacobian,
               reference=ref, sample_initial=lambda batch, g: torch.zeros(batch, d, dtype=torch.float64,
                                                                          device=g.device),
               params={"A": A.tolist()}, log_abs_det=float(np.log(abs(np.linalg.det(A)))))


register("linear_map", linear_map)
