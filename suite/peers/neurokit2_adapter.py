"""NeuroKit2: the largest exponent of a scalar series, ``neurokit2.complexity_lyapunov``."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from suite.core.args import check_int
from suite.core.errors import InvalidArgumentError
from suite.peers.base import SeriesPeer, slope_spread

_METHODS = ("rosenstein1993", "makowski")


class NeuroKit2Lyapunov(SeriesPeer):
    """Largest exponent by ``neurokit2.complexity_lyapunov`` (default: Rosenstein 1993).

    Method: delay embedding (``delay``, ``dimension``), nearest neighbours
    at least ``separation`` samples apart ('auto': the mean period from the
    power spectrum), the mean log divergence of the pairs followed for
    ``len_trajectory`` samples and its least-squares slope ('rosenstein1993';
    'makowski' fits up to the knee of the curve with a KD-tree search).
    NeuroKit2's 'eckmann1986' spectrum is not wrapped (nolds_lyap_e is).

    Units: NeuroKit2 returns the slope per sample (no time scale); the
    adapter divides by the sampling interval ``every * dt``.  For
    'rosenstein1993' the fit-region spread of the slope (:func:`slope_spread`
    on NeuroKit2's divergence curve) is stated as ``meta['method_bias']``.
    k must be 1 or None.
    """

    name = "neurokit2_lyapunov"
    package = "neurokit2"
    largest_only = True

    def __init__(self, delay: int = 1, dimension: int = 2, method: str = "rosenstein1993",
                 separation: Union[str, int] = "auto", len_trajectory: int = 20,
                 coordinate: int = 0, every: Optional[int] = None, max_samples: int = 4000, n_split: int = 4):
        if method not in _METHODS:
            raise InvalidArgumentError("method", method, " or ".join(map(repr, _METHODS)))
        if separation != "auto":
            check_int("separation", separation, 0, allowed="'auto' or an integer >= 0 (samples)")
        self.delay, self.dimension, self.method = delay, dimension, method
        self.separation, self.len_trajectory = separation, len_trajectory
        self._series_params(coordinate, every, max_samples, n_split)

    def fit(self, nk, x: np.ndarray):
        kwargs = {"len_trajectory": self.len_trajectory} if self.method == "rosenstein1993" else {}
        lle, info = nk.complexity_lyapunov(x, delay=self.delay, dimension=self.dimension, method=self.method,
                                           separation=self.separation, **kwargs)
        bias = None
        if self.method == "rosenstein1993":
            curve = np.asarray(info["Divergence_Rate"], dtype=np.float64)
            bias = np.array([slope_spread(np.arange(1, curve.size + 1), curve, float(lle))])
        return np.array([float(lle)]), bias
