"""The matrix check shared by the linear systems (numbers and integers: suite.core.args)."""
from __future__ import annotations

import numpy as np

from suite.core.errors import InvalidArgumentError


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
