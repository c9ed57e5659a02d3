"""Reference Lyapunov spectra with their provenance."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

PROVENANCES = ("exact", "literature", "computed", "mean-field")


@dataclass(frozen=True)
class Reference:
    """Known Lyapunov exponents of a system.

    Attributes
    ----------
    values : (n,) float64 array
        The leading ``n`` exponents, largest first, in natural log; per step for
        maps, per unit time for flows.  ``n`` may be smaller than the dimension
        (e.g. only the five leading exponents of Lorenz-96).
    uncertainty : (n,) float64 array
        Absolute uncertainty of each value (0 for exact values).
    provenance : one of ``exact``, ``literature``, ``computed``, ``mean-field``.
    source : str
        Citation or derivation, enough for a reader to check the value.
    bias_nats : float
        Bound on the finite-time boundary term of a Benettin sum for this
        system, in nats: an estimate over time T may be biased by up to
        ``bias_nats / T`` (see ``suite.scoring.tolerance``).  1 nat by default;
        0 where the estimator is exactly unbiased (Gaussian products),
        ln cond(eigenvectors) for linear maps.
    note : str
        Anything a user should know (finite-size bias, regime of validity).
    """

    values: np.ndarray
    uncertainty: np.ndarray
    provenance: str
    source: str
    bias_nats: float = 1.0
    note: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        v = np.atleast_1d(np.asarray(self.values, dtype=np.float64))
        u = np.asarray(self.uncertainty, dtype=np.float64)
        u = np.broadcast_to(u, v.shape).copy() if u.ndim == 0 else np.atleast_1d(u)
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"Reference values must be a non-empty 1-D sequence, got {self.values!r}")
        if u.shape != v.shape:
            raise ValueError(f"Reference uncertainty has shape {u.shape}, values have {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"Reference values must be finite, got {v}")
        if not np.all(np.isfinite(u)) or np.any(u < 0):
            raise ValueError(f"Reference uncertainty must be finite and >= 0, got {u}")
        # scoring compares the i-th estimate (largest first) with the i-th value; two near-equal computed values
        # may come out in either order within their uncertainty
        if np.any(np.diff(v) > u[:-1] + u[1:]):
            raise ValueError(f"Reference values must be largest first (estimators return them so and are "
                             f"compared index by index), got {v} with uncertainty {u}")
        if self.provenance not in PROVENANCES:
            raise ValueError(f"Reference provenance {self.provenance!r} not one of {PROVENANCES}")
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError("Reference source must name where the values come from")
        if not (np.isfinite(self.bias_nats) and self.bias_nats >= 0):
            raise ValueError(f"Reference bias_nats must be finite and >= 0, got {self.bias_nats}")
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "uncertainty", u)

    def __len__(self) -> int:
        return self.values.size

    @classmethod
    def make(cls, values: Sequence[float], uncertainty, provenance: str, source: str, **kw):
        return cls(np.asarray(values, dtype=np.float64), np.asarray(uncertainty, dtype=np.float64),
                   provenance, source, **kw)
