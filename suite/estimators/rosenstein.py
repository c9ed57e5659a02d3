"""Rosenstein's estimate of the largest exponent from a scalar time series."""
from __future__ import annotations

from typing import Optional

import numpy as np

from reference_systems import System
from suite.core.result import LyapunovResult
from suite.core.args import check_int
from suite.estimators.base import RunConfig
from suite.estimators.delay import DelayEmbeddingEstimator
from suite.estimators.numerics import divergence
from suite.estimators.numerics.embedding import neighbours

N_SHIFTS = 8  # temporally unrelated pairs (i, i + s mod M) for the saturation level


def saturation_level(Y: np.ndarray) -> float:
    """Mean ln |Y_i - Y_{(i+s) mod M}| over all i and 8 shifts s evenly spread in [M/8, 7M/8]."""
    M = Y.shape[0]
    logs = []
    for s in np.unique(np.linspace(M / 8, 7 * M / 8, N_SHIFTS).round().astype(int)):
        d = np.linalg.norm(Y - np.roll(Y, -int(s), axis=0), axis=1)
        logs.append(np.log(d[d > 0]))
    return float(np.concatenate(logs).mean())


class RosensteinEstimator(DelayEmbeddingEstimator):
    """Largest exponent from the mean log divergence of nearest neighbours (a time-series method).

    Method (Rosenstein, Collins & De Luca, Physica D 65, 117 (1993)): pair every
    delay vector Y_i with its nearest neighbour Y_j (Euclidean norm) outside the
    Theiler window, follow both for k samples and average
    y(k) = < ln |Y_{i+k} - Y_{j+k}| >_i, so that y(k) ~ y(0) + lambda_1 k Delta
    between the initial transient and saturation: lambda_1 = slope per sample /
    Delta, Delta = sample_every * dt (natural log; per step for maps, per unit
    time for flows).

    The linear region is chosen by the rule of
    :mod:`suite.estimators.numerics.divergence` (the longest straight, rising
    segment of the batch-mean curve below 90 % of its rise to saturation), and
    ``meta['method_bias']`` bounds the fit's systematic error from the curve
    itself.  Returns one exponent (k must be 1 or None); ``history`` is empty.
    Standard error across series (batch > 1) or from blocks of reference points.

    Parameters
    ----------
    m, lag, theiler, coordinate, sample_every
        Embedding and observation (:mod:`suite.estimators.delay`).
    horizon : int >= 2 or None, default None
        Samples to follow each pair; None: until 90 % of the rise to saturation.
    linearity : float in (0, 0.5], default 0.01
        Largest deviation from a line in the fitted region, as a fraction of the rise.

    See docs/estimators.md.
    """

    name = "rosenstein"
    largest_only = True

    def __init__(self, m: int = 3, lag: Optional[int] = None, theiler: Optional[int] = None,
                 coordinate: int = 0, sample_every: int = 1, horizon: Optional[int] = None,
                 linearity: float = 0.01):
        self._init_embedding(m, lag, theiler, coordinate, sample_every)
        self.horizon = check_int("horizon", horizon, 2, allow_none=True, unit=" (samples)")
        self.linearity = divergence.check_linearity(linearity)

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        x, Y, dt_sample, lag, theiler, emb = self._embedded_series(system, cfg)    # Y: (B, M, m)
        B, M, _ = Y.shape
        series, ref, nbr, y_sat = [], [], [], np.empty(B)
        for b in range(B):
            idx, _ = neighbours(Y[b], 1, theiler, p=2.0)
            i = np.nonzero(idx[:, 0] >= 0)[0]
            series.append(np.full(i.size, b))
            ref.append(i)
            nbr.append(idx[i, 0])
            y_sat[b] = saturation_level(Y[b])
        series, ref, nbr = (np.concatenate(a) for a in (series, ref, nbr))
        flat = Y.reshape(B * M, self.m)
        I, J = series * M + ref, series * M + nbr

        def logdiv(k: int):
            valid = (ref + k < M) & (nbr + k < M)
            d = np.linalg.norm(flat[np.where(valid, I + k, I)] - flat[np.where(valid, J + k, J)], axis=1)
            valid &= d > 0
            return np.log(np.where(valid, d, 1.0)), valid

        sums, counts = divergence.follow(logdiv, series, ref, B, M, y_sat, self.horizon)
        f = divergence.fit(sums, counts, y_sat, self.linearity, dt_sample, M)
        history, times = self._empty_history(1)
        meta = {"embedding": emb, "method_bias": np.array([f.method_bias]), "sampling_interval": dt_sample,
                "fit_rule": f"longest straight segment (deviation <= {self.linearity:g} x rise) below 0.9 of the rise",
                **f.meta(dt_sample)}
        return LyapunovResult(np.array([f.per_series.mean()]), np.array([f.stderr]), f.per_series[:, None],
                              history, times, wall_seconds=0.0, meta=meta)
