"""nolds (Schölzel): Rosenstein's and Eckmann's exponents from a scalar series.

Pinned to nolds 0.6.2 in the ``peers`` extra: nolds 0.6.3 fails to import on
Python 3.11 ("'nolds.datasets' is not a package"); the adapter reports such a
failure as ``not installed`` with the cause.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from suite.core.args import check_int
from suite.core.errors import InvalidArgumentError
from suite.peers.base import SeriesPeer, slope_spread, sorted_desc


class NoldsLyapR(SeriesPeer):
    """Largest exponent by Rosenstein's method, ``nolds.lyap_r``.

    Method (Rosenstein, Collins & De Luca, Physica D 65, 117 (1993)): delay
    embedding (``emb_dim``, ``lag``; lag=None: where the autocorrelation
    falls to 1 - 1/e), nearest neighbours at least ``min_tsep`` samples apart
    (None: the mean period from the spectrum), the mean log distance of the
    pairs followed for ``trajectory_len`` samples, and a line fit (``fit``:
    'RANSAC' or 'poly') to it from ``fit_offset``.

    Units: nolds returns the slope per sample divided by its ``tau``; the
    adapter passes tau=1 (per sample) and divides by the sampling interval
    ``every * dt`` itself, giving per step (maps) or per unit time (flows).
    RANSAC draws from numpy's global RNG: it is seeded from the run's seed
    and trajectory (and restored afterwards), so results are reproducible.

    Bias: the slope depends on the fit region; the adapter states
    ``meta['method_bias']``, the largest move of the slope when the region is
    cut to its first or last three quarters (:func:`slope_spread`), which
    joins the scoring tolerance.  k must be 1 or None.
    """

    name = "nolds_lyap_r"
    package = "nolds"
    largest_only = True

    def __init__(self, emb_dim: int = 10, lag: Optional[int] = None, min_tsep: Optional[int] = None,
                 min_neighbors: int = 20, trajectory_len: int = 20, fit: str = "RANSAC", fit_offset: int = 0,
                 coordinate: int = 0, every: Optional[int] = None, max_samples: int = 4000, n_split: int = 4):
        if fit not in ("RANSAC", "poly"):
            raise InvalidArgumentError("fit", fit, "'RANSAC' or 'poly'")
        self.emb_dim, self.lag, self.min_tsep = emb_dim, lag, min_tsep
        self.min_neighbors, self.trajectory_len, self.fit_method, self.fit_offset = \
            min_neighbors, trajectory_len, fit, fit_offset
        self._series_params(coordinate, every, max_samples, n_split)

    def get_params(self):
        p = super().get_params()
        p["fit"] = self.fit_method
        return p

    def fit(self, nolds, x: np.ndarray):
        le, (ks, div, _poly) = nolds.lyap_r(
            x, emb_dim=self.emb_dim, lag=self.lag, min_tsep=self.min_tsep, tau=1,
            min_neighbors=self.min_neighbors, trajectory_len=self.trajectory_len, fit=self.fit_method,
            debug_data=True, fit_offset=self.fit_offset)
        o = self.fit_offset
        return np.array([le], dtype=np.float64), np.array([slope_spread(ks[o:], div[o:], le)])


class NoldsLyapE(SeriesPeer):
    """Lyapunov spectrum by Eckmann's method, ``nolds.lyap_e``.

    Method (Eckmann, Kamphorst, Ruelle & Ciliberto, Phys. Rev. A 34, 4971
    (1986)): delay embedding in ``emb_dim``, local linear maps of size
    ``matrix_dim`` fitted by least squares on the ``min_nb`` nearest
    neighbours (at least ``min_tsep`` samples apart), and a QR product along
    the series.  nolds returns ``matrix_dim`` exponents per sample (already
    divided by its internal stride m = (emb_dim - 1) / (matrix_dim - 1)) and
    its ``tau``; the adapter passes tau=1 and divides by ``every * dt``.

    The exponents are sorted largest first and the first k reported (k <=
    matrix_dim; k=None: min(dimension, matrix_dim)).  Exponents of the
    reconstruction beyond the system's own dimension are spurious.  No
    systematic bound is stated (no fit region to vary).
    """

    name = "nolds_lyap_e"
    package = "nolds"

    def __init__(self, emb_dim: int = 10, matrix_dim: int = 4, min_nb: Optional[int] = None, min_tsep: int = 0,
                 coordinate: int = 0, every: Optional[int] = None, max_samples: int = 4000, n_split: int = 4):
        check_int("matrix_dim", matrix_dim, 2)
        if (check_int("emb_dim", emb_dim) - 1) % (matrix_dim - 1):
            raise InvalidArgumentError("emb_dim", emb_dim, f"an integer with emb_dim - 1 divisible by "
                                       f"matrix_dim - 1 = {matrix_dim - 1}")
        self.emb_dim, self.matrix_dim, self.min_nb, self.min_tsep = emb_dim, matrix_dim, min_nb, min_tsep
        self._series_params(coordinate, every, max_samples, n_split)

    def max_k(self) -> int:
        return self.matrix_dim

    def k_out(self, system, cfg) -> int:
        # k=None (all): as many as the reconstruction gives, at most the system's dimension
        return min(cfg.k, self.matrix_dim) if cfg.k == system.dim else cfg.k

    def fit(self, nolds, x: np.ndarray):
        return sorted_desc(nolds.lyap_e(x, emb_dim=self.emb_dim, matrix_dim=self.matrix_dim, min_nb=self.min_nb,
                                        min_tsep=self.min_tsep, tau=1)), None
