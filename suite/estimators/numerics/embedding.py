"""Delay embedding and neighbour search, shared by the time-series estimators.

A scalar series x_0 .. x_{n-1} (sampling interval Delta) is embedded in
dimension m with lag L (both in samples) as the delay vectors

    Y_i = (x_i, x_{i+L}, ..., x_{i+(m-1)L}),   i = 0 .. M-1,   M = n - (m-1) L

(Takens 1981; Packard et al. 1980).  Neighbours of Y_i are searched with
``scipy.spatial.cKDTree`` among the delay vectors Y_j with |i - j| > w, the
Theiler window w (Theiler, Phys. Rev. A 34, 2427 (1986)): points closer in
time than w samples lie on the same stretch of trajectory and would measure
the flow's own continuity, not the divergence of nearby orbits.

Data-driven defaults (Rosenstein, Collins & De Luca, Physica D 65, 117 (1993)),
used by the estimators when ``lag`` or ``theiler`` is None:

* lag: the first lag at which the autocorrelation function of the series
  falls below 1 - 1/e of its value at 0 (at least 1 sample);
* Theiler window: the mean period, 1 / (mean frequency of the power
  spectrum), rounded up, in samples.

For a batch of series (B, n) both are computed from the batch-mean
autocorrelation and the pooled power spectrum, so every series of one run
is embedded alike.  Everything here is CPU numpy float64.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
from scipy.spatial import cKDTree

from suite.core.args import check_int
from suite.core.errors import InvalidArgumentError, SeriesError


def check_series(x: np.ndarray) -> np.ndarray:
    """A (B, n) finite float64 array whose every row varies; else SeriesError naming the row."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    bad = np.nonzero(~np.isfinite(x).all(axis=1))[0]
    if bad.size:
        raise SeriesError(f"observed series {bad[:8].tolist()} contain non-finite values")
    spread = x.max(axis=1) - x.min(axis=1)
    flat = np.nonzero(spread <= 1e-12 * (1.0 + np.abs(x).max(axis=1)))[0]
    if flat.size:
        raise SeriesError(f"observed series {flat[:8].tolist()} are constant (max - min = "
                          f"{spread[flat[0]]:.3g}): a constant signal has no neighbours at a positive distance "
                          "and no divergence to measure (observe another coordinate, or the system sits "
                          "on a fixed point)")
    return x


def delay_embed(x: np.ndarray, m: int, lag: int) -> np.ndarray:
    """Delay vectors of one series (n,) or a batch (B, n): shape (M, m) or (B, M, m), M = n - (m-1) lag.

    Y[..., i, c] = x[..., i + c lag].  Raises InvalidArgumentError if the
    series is too short for one vector.
    """
    x = np.asarray(x, dtype=np.float64)
    m = check_int("m", m, 1)
    lag = check_int("lag", lag, 1)
    n = x.shape[-1]
    M = n - (m - 1) * lag
    if M < 1:
        raise InvalidArgumentError("steps", n, f"at least (m - 1) * lag + 1 = {(m - 1) * lag + 1} samples "
                                   f"for an embedding with m={m}, lag={lag}")
    return np.stack([x[..., c * lag: c * lag + M] for c in range(m)], axis=-1)


def autocorrelation(x: np.ndarray, max_lag: Optional[int] = None) -> np.ndarray:
    """Batch-mean autocorrelation of (B, n) series at lags 0 .. max_lag (FFT, biased estimator)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = x.shape[1]
    z = x - x.mean(axis=1, keepdims=True)
    f = np.fft.rfft(z, 2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n]
    acf = (acov / acov[:, :1]).mean(axis=0)
    return acf if max_lag is None else acf[:max_lag + 1]


def default_lag(x: np.ndarray) -> int:
    """First lag at which the autocorrelation drops below 1 - 1/e (Rosenstein et al. 1993); >= 1."""
    acf = autocorrelation(x)
    below = np.nonzero(acf[1:] < 1.0 - 1.0 / math.e)[0]
    return int(below[0] + 1) if below.size else max(1, acf.size // 10)


def mean_period(x: np.ndarray) -> float:
    """1 / (mean frequency of the pooled power spectrum), in samples (Rosenstein et al. 1993)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    z = x - x.mean(axis=1, keepdims=True)
    power = (np.abs(np.fft.rfft(z, axis=1)) ** 2).sum(axis=0)
    freq = np.fft.rfftfreq(x.shape[1])
    mean_freq = float((freq * power).sum() / power.sum())
    return 1.0 / mean_freq


def default_theiler(x: np.ndarray) -> int:
    """Theiler window: the mean period rounded up, in samples."""
    return int(math.ceil(mean_period(x)))


def neighbours(points: np.ndarray, k: int, theiler: int, *, candidates: Optional[int] = None,
               p: float = 2.0, radius: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of every point outside its Theiler window.

    ``points`` (N, m) are delay vectors in time order; neighbour j of point i
    must satisfy |i - j| > ``theiler``, 0 < distance (a neighbour at distance 0
    carries no divergence information), j < ``candidates`` (default N: e.g. a
    neighbour needs a future of a given length), and distance <= ``radius``
    when given.  Distances in the Minkowski ``p``-norm (2 Euclidean, inf max).

    Returns ``idx`` (N, k) int and ``dist`` (N, k) float64, nearest first;
    where fewer than k neighbours qualify the row is padded with -1 and inf.

    Search: a cKDTree query for k + 1 + extra nearest points, repeated with a
    doubled count for the rows that did not yet find k admissible ones; at
    most 2 w + 1 points are excluded by the window, so a query of
    k + 2 w + 1 points suffices unless points repeat exactly (distance 0),
    in which case the search goes on up to all candidates.
    """
    points = np.asarray(points, dtype=np.float64)
    N = points.shape[0]
    ncand = N if candidates is None else int(candidates)
    if ncand < 1:
        raise InvalidArgumentError("steps", N, "a series long enough to leave candidate neighbours")
    tree = cKDTree(points[:ncand])
    ub = np.inf if radius is None else float(radius) * (1 + 1e-12)
    idx = np.full((N, k), -1, dtype=np.int64)
    dist = np.full((N, k), np.inf)
    pending = np.arange(N)
    enough = min(ncand, k + 2 * theiler + 1)
    q = min(enough, k + 1 + min(2 * theiler + 1, 8))
    while pending.size:
        d, j = tree.query(points[pending], k=q, p=p, distance_upper_bound=ub)
        d, j = d.reshape(pending.size, q), j.reshape(pending.size, q)
        ok = (j < ncand) & (np.abs(j - pending[:, None]) > theiler) & (d > 0) & np.isfinite(d)
        n_ok = ok.sum(axis=1)
        zeros = ((d == 0) & (j < ncand)).any(axis=1)
        # finished: k found, every candidate seen, the radius cut the query short, or the query passed the
        # window (2 w + 1 points) with no point at distance 0 in it (duplicates, e.g. of a periodic orbit,
        # are skipped like window points, so rows with some search on)
        done = (n_ok >= k) | (q >= ncand) | ~np.isfinite(d[:, -1]) | ((q >= enough) & ~zeros)
        if done.any():
            rows = np.nonzero(done)[0]
            order = np.argsort(~ok[rows], axis=1, kind="stable")[:, :k]  # admissible ones first, nearest first
            take_ok = np.take_along_axis(ok[rows], order, axis=1)
            sel_j = np.take_along_axis(j[rows], order, axis=1)
            sel_d = np.take_along_axis(d[rows], order, axis=1)
            width = min(k, q)
            idx[pending[rows], :width] = np.where(take_ok, sel_j, -1)
            dist[pending[rows], :width] = np.where(take_ok, sel_d, np.inf)
        pending = pending[~done]
        q = min(ncand, 2 * q)
    return idx, dist
