"""Kantz's estimate of the largest exponent from a scalar time series."""
from __future__ import annotations

from typing import Optional

import numpy as np

from reference_systems import System
from suite.core.args import check_int, check_positive
from suite.core.errors import SeriesError
from suite.core.result import LyapunovResult
from suite.estimators.base import RunConfig
from suite.estimators.delay import DelayEmbeddingEstimator
from suite.estimators.numerics import divergence
from suite.estimators.numerics.embedding import neighbours


def mean_abs_difference(v: np.ndarray) -> np.ndarray:
    """For every v_i, the mean over all j of |v_i - v_j| (exact, O(n log n) by sorting)."""
    n = v.size
    order = np.argsort(v, kind="stable")
    s = v[order]
    below = np.cumsum(s) - s                      # sum of the values sorted before each one
    rank = np.arange(n)
    total = s.sum()
    sums = s * rank - below + (total - below - s) - s * (n - 1 - rank)
    out = np.empty(n)
    out[order] = sums / n
    return out


class KantzEstimator(DelayEmbeddingEstimator):
    """Largest exponent from the divergence of eps-neighbourhoods (a time-series method).

    Method (Kantz, Phys. Lett. A 185, 77 (1994); Kantz & Schreiber, "Nonlinear
    Time Series Analysis", 2nd ed., CUP 2004, sec. 5.3): for every embedded
    reference point i, average over its neighbourhood U_i (maximum norm, Theiler
    window excluded) the distance after k samples of the newest delay
    coordinates, S(k) = < ln( mean_{j in U_i} |x_{i+(m-1)L+k} - x_{j+(m-1)L+k}| ) >_i.
    Between transient and saturation S(k) ~ S(0) + lambda_1 k Delta, so
    lambda_1 = slope per sample / Delta, Delta = sample_every * dt: natural log,
    per step for maps, per unit time for flows.  The linear region is chosen by
    the rule of :mod:`suite.estimators.numerics.divergence`.  Returns one
    exponent (k must be 1 or None); ``history`` is empty.

    ``meta['method_bias']``: the larger of the region term of the rule and
    Kantz's consistency criterion |slope(n_neighbors) - slope(1 neighbour)|
    (the slope grows with the neighbourhood).

    Parameters
    ----------
    m, lag, theiler, coordinate, sample_every
        Embedding and observation (:mod:`suite.estimators.delay`).
    n_neighbors : int >= 1, default 2
        The n nearest points (a fixed-mass neighbourhood), or with ``eps`` at
        most n within the radius; small because the bias grows with it.
    eps : float > 0 or None, default None
        Neighbourhood radius as a fraction of the series' standard deviation.
    horizon, linearity
        As for :class:`~suite.estimators.rosenstein.RosensteinEstimator`.

    Measured biases (Henon, Lorenz-63): docs/estimators.md.
    """

    name = "kantz"
    largest_only = True

    def __init__(self, m: int = 3, lag: Optional[int] = None, theiler: Optional[int] = None,
                 coordinate: int = 0, sample_every: int = 1, n_neighbors: int = 2,
                 eps: Optional[float] = None, horizon: Optional[int] = None,
                 linearity: float = 0.01):
        self._init_embedding(m, lag, theiler, coordinate, sample_every)
        self.n_neighbors = check_int("n_neighbors", n_neighbors, 1)
        self.eps = check_positive("eps", eps, allow_none=True)
        self.horizon = check_int("horizon", horizon, 2, allow_none=True, unit=" (samples)")
        self.linearity = divergence.check_linearity(linearity)

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        x, Y, dt_sample, lag, theiler, emb = self._embedded_series(system, cfg)    # Y: (B, M, m)
        B, M, _ = Y.shape
        n = self.n_neighbors
        series, ref, nbrs, y_sat = [], [], [], np.empty(B)
        skipped = 0
        for b in range(B):
            radius = None if self.eps is None else self.eps * float(x[b].std())
            idx, _ = neighbours(Y[b], n, theiler, p=np.inf, radius=radius)
            i = np.nonzero(idx[:, 0] >= 0)[0]
            skipped += M - i.size
            series.append(np.full(i.size, b))
            ref.append(i)
            nbrs.append(idx[i])
            newest = Y[b, :, -1]
            y_sat[b] = float(np.mean(np.log(mean_abs_difference(newest))))
        series, ref, nbrs = np.concatenate(series), np.concatenate(ref), np.concatenate(nbrs)
        if ref.size == 0:
            raise SeriesError("no reference point has a neighbour at a positive distance outside the Theiler "
                              "window" + (f" within eps={self.eps} standard deviations: increase eps"
                                          if self.eps is not None else ""))
        newest = Y[:, :, -1].reshape(B * M)
        I, J = series * M + ref, series[:, None] * M + nbrs

        def curve_of(width: int):
            def logdiv(k: int):
                nb, jj = nbrs[:, :width], J[:, :width]
                ok = (nb >= 0) & (nb + k < M) & (ref[:, None] + k < M)
                diff = np.abs(newest[np.where(ok, jj + k, jj)] - newest[np.minimum(I + k, B * M - 1)][:, None])
                cnt = ok.sum(axis=1)
                mean = np.where(ok, diff, 0.0).sum(axis=1) / np.maximum(cnt, 1)
                valid = (cnt > 0) & (mean > 0)
                return np.log(np.where(valid, mean, 1.0)), valid
            sums, counts = divergence.follow(logdiv, series, ref, B, M, y_sat, self.horizon)
            return divergence.fit(sums, counts, y_sat, self.linearity, dt_sample, M)

        f = curve_of(n)
        # Kantz's consistency criterion: the slope must not depend on the neighbourhood; the single
        # nearest neighbour (no average inside the logarithm) is the smallest neighbourhood the data offer
        single = curve_of(1) if n > 1 else f
        slope_n, slope_1 = float(f.per_series.mean()), float(single.per_series.mean())
        method_bias = max(f.method_bias, abs(slope_n - slope_1))
        history, times = self._empty_history(1)
        meta = {"embedding": emb, "method_bias": np.array([method_bias]), "sampling_interval": dt_sample,
                "method_bias_region": f.method_bias, "slope_single_neighbour": slope_1,
                "neighbourhood": (f"{n} nearest (max norm)" if self.eps is None else
                                  f"up to {n} nearest within eps={self.eps} std (max norm)"),
                "reference_points_without_neighbours": int(skipped),
                "fit_rule": f"longest straight segment (deviation <= {self.linearity:g} x rise) below 0.9 of the rise",
                **f.meta(dt_sample)}
        return LyapunovResult(np.array([f.per_series.mean()]), np.array([f.stderr]), f.per_series[:, None],
                              history, times, wall_seconds=0.0, meta=meta)
