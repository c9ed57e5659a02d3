"""Parameter checks shared by the built-in system factories."""
from __future__ import annotations

import math

import numpy as np

from suite.core.errors import InvalidArgumentError


def finite(name: str, value, *, low: float = -math.inf, high: float = math.inf,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, checked to be finite and inside [low, high]."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    allowed = f"a finite number in {lo}{low:g}, {high:g}{hi}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(name, value, allowed) from None
    if isinstance(value, bool) or not math.isfinite(v) or v < low or v > high \
            or (low_open and v == low) or (high_open and v == high):
        raise InvalidArgumentError(name, value, allowed)
    return v


def positive_int(name: str, value, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgumentError(name, value, f"an integer >= {low}")
    return value


def diagonalisable(name: str, A, default) -> tuple:
    """``A`` (or ``default``) as a finite square float64 matrix with its eigen-decomposition.

    Returns (A, eigenvalues mu, ln cond(P)) with P the eigenvector matrix.
    Defective matrices (cond(P) > 1e8) are refused: with a Jordan block the
    Benettin estimate converges only like ln T / T, beyond the 1/T bias
    bound.  ln cond(P) bounds the boundary term of the Benettin sum.
    """
    A = np.asarray(default if A is None else A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1 or not np.all(np.isfinite(A)):
        raise InvalidArgumentError(name, A.tolist() if A.ndim <= 2 else A.shape,
                                   "a finite square matrix (nested list or array)")
    mu, P = np.linalg.eig(A)
    cond = np.linalg.cond(P)
    if not np.isfinite(cond) or cond > 1e8:
        raise InvalidArgumentError(name, A.tolist(), f"a diagonalisable matrix (eigenvector condition number "
                                   f"{cond:.3g} > 1e8: Jordan blocks converge only like ln T / T)")
    return A, mu, float(np.log(cond))
