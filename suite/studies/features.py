"""Features of a Lyapunov spectrum that RNN studies relate to task performance.

After Vogt et al. (2022) and Engelken, Wolf & Abbott (2020): the largest
exponent lambda_1, the mean exponent (sum / d: the mean rate of phase-space
contraction, only from a full spectrum), the number of positive exponents,
and the Kaplan-Yorke (Lyapunov) dimension

    D_KY = j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|,

j the largest index with lambda_1 + ... + lambda_j >= 0 (D_KY = 0 when
lambda_1 < 0).  A feature that a partial spectrum (the leading k of d) does
not determine is None, never a guess.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np


def kaplan_yorke(values: Sequence[float], dim: Optional[int] = None) -> Optional[float]:
    """D_KY of a spectrum sorted descending; None if the leading ``len(values)`` of ``dim`` do not fix it."""
    lam = np.asarray(values, dtype=np.float64)
    dim = lam.size if dim is None else dim
    c = np.cumsum(lam)
    if lam[0] < 0:
        return 0.0
    neg = np.nonzero(c < 0)[0]
    if neg.size == 0:
        return float(dim) if lam.size == dim else None
    j = int(neg[0])  # c[j-1] >= 0 > c[j]
    return float(j + c[j - 1] / abs(lam[j]))


def spectrum_features(values: Sequence[float], dim: int) -> Dict[str, Optional[float]]:
    """lambda_1, mean exponent, number of positive exponents and D_KY (None where undetermined)."""
    lam = np.asarray(values, dtype=np.float64)
    full = lam.size == dim
    n_pos = int((lam > 0).sum())
    return {"lambda1": float(lam[0]),
            "mean_exponent": float(lam.mean()) if full else None,
            "n_positive": n_pos if full or lam[-1] <= 0 else None,
            "kaplan_yorke": kaplan_yorke(lam, dim)}
