"""Divergence curves of neighbouring delay vectors and their automatic linear fit.

Shared by the Rosenstein and Kantz estimators.  A divergence curve is
y(k) = < ln D_i(k) >_i, k = 0..K samples after the neighbour pairing, with
D_i(k) how far the neighbours of reference point i have moved apart (the
estimator defines it).  Where separations are small y(k) ~ y(0) + lambda_1
k Delta; where they reach the attractor's size y saturates at y_sat.
lambda_1 is the slope of the linear part over the sampling interval Delta
(natural log; per step for maps, per unit time for flows).

Automatic horizon: with ``horizon=None`` the curve is followed until the
batch-mean curve reaches y(0) + 0.9 (y_sat - y(0)) (``STOP_FRACTION``), or
half the embedded series.

The rule (the fitted region): on the batch-mean curve Y with rise R =
Y_sat - Y(0), the LONGEST segment [lo, hi] that lies below saturation (hi
<= the first k with Y(k) >= Y(0) + 0.9 R), is straight (largest deviation
from its least-squares line <= ``linearity`` R, default 0.01) and rises
(Y(hi) - Y(lo) >= 0.25 R, at least 3 samples); ties go to the straighter,
then the earlier.  Every series is fitted over the same region; a curve
with no admissible segment raises SeriesError.

Method bias (``meta['method_bias']``, added to the tolerance):

    max( |s_first_half - s_second_half|, |s(delta/2) - s|, |s(2 delta) - s| ) / Delta

Standard error: across the per-series slopes (B > 1), or from n_b =
min(20, M // K) contiguous blocks of reference points of one series.
Derivation and examples: docs/estimators.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from suite.core.args import check_number
from suite.core.errors import InvalidArgumentError, SeriesError

STOP_FRACTION = 0.9   # the curve is followed, and searched for its linear region, up to this share of its rise
MIN_RISE = 0.25       # an admissible segment rises by at least this share of the rise
MAX_GRID = 200        # endpoints searched on at most this many samples
FINE_BLOCKS = 20      # reference-point blocks accumulated (merged for the batch-means stderr)
MIN_POINTS = 3


def check_linearity(value) -> float:
    """delta / R: a number in (0, 0.5], else InvalidArgumentError naming ``linearity``."""
    return check_number("linearity", value, low=0.0, high=0.5, low_open=True,
                        allowed="a number in (0, 0.5]: the largest deviation from a straight line allowed in "
                                "the fit region, as a fraction of the curve's rise")


def _rise(curve: np.ndarray, y_sat: float) -> float:
    y0 = float(curve[0])
    rise = y_sat - y0
    if not (math.isfinite(rise) and rise > 1e-6):
        raise SeriesError(f"the divergence curve has no room to rise: its initial level {y0:.4g} is not below "
                          f"the saturation level {y_sat:.4g} of unrelated points (neighbours are as far apart "
                          "as random points: a periodic or regular series, too few samples, or noise)")
    return rise


def _top(curve: np.ndarray, rise: float) -> int:
    above = np.nonzero(curve >= curve[0] + STOP_FRACTION * rise)[0]
    return int(above[0]) if above.size else curve.size - 1


def segment_fit(curve: np.ndarray, lo: int, hi: int) -> Tuple[float, float]:
    """(least-squares slope per sample, largest |deviation| from the line) of curve[lo..hi]."""
    k = np.arange(lo, hi + 1, dtype=np.float64)
    kc = k - k.mean()
    y = curve[lo:hi + 1]
    slope = float((y * kc).sum() / (kc * kc).sum())
    return slope, float(np.abs(y - y.mean() - slope * kc).max())


def linear_region(curve: np.ndarray, y_sat: float, linearity: float = 0.01) -> Optional[Tuple[int, int]]:
    """The rule of the module docstring: the longest straight, rising segment below saturation.

    Returns (lo, hi) inclusive, or None if no segment is admissible.
    Raises SeriesError if the curve has no room to rise (y_sat <= curve[0]).
    """
    curve = np.asarray(curve, dtype=np.float64)
    rise = _rise(curve, y_sat)
    k_top = _top(curve, rise)
    grid = np.unique(np.linspace(0, k_top, min(k_top + 1, MAX_GRID)).round().astype(int))
    delta = linearity * rise
    best, best_dev = None, math.inf
    for a in grid:
        for b in grid[::-1]:
            if b - a + 1 < MIN_POINTS or (best is not None and b - a < best[1] - best[0]):
                break
            if curve[b] - curve[a] < MIN_RISE * rise:
                continue
            _, dev = segment_fit(curve, int(a), int(b))
            if dev <= delta:
                if best is None or b - a > best[1] - best[0] or dev < best_dev:
                    best, best_dev = (int(a), int(b)), dev
                break
    return best


def ols_slope(curve: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Least-squares slope of curve[..., lo:hi+1] against k (per sample); works on stacked curves."""
    k = np.arange(lo, hi + 1, dtype=np.float64)
    kc = k - k.mean()
    y = curve[..., lo:hi + 1]
    return (y * kc).sum(axis=-1) / (kc * kc).sum()


def bias_from_alternatives(alternatives: List[Dict[str, object]]) -> float:
    """max(|s_first_half - s_second_half|, |s_delta/2 - s|, |s_2delta - s|) (module docstring), per sample."""
    slope = {a["region"]: a["slope_per_sample"] for a in alternatives}
    s = slope["chosen"]
    terms = [abs(slope[w] - s) for w in ("linearity / 2", "2 linearity") if w in slope]
    if "first half" in slope and "second half" in slope:
        terms.append(abs(slope["first half"] - slope["second half"]))
    return float(max(terms)) if terms else 0.0


def region_alternatives(curve: np.ndarray, y_sat: float, linearity: float,
                        region: Tuple[int, int]) -> List[Dict[str, object]]:
    """The documented alternative admissible regions and their slopes (per sample)."""
    lo, hi = region
    mid = (lo + hi) // 2
    cands = [("chosen", region), ("linearity / 2", linear_region(curve, y_sat, linearity / 2)),
             ("2 linearity", linear_region(curve, y_sat, min(0.5, 2 * linearity))),
             ("first half", (lo, mid)), ("second half", (mid, hi))]
    out = []
    for what, reg in cands:
        if reg is not None and reg[1] - reg[0] + 1 >= MIN_POINTS:
            out.append({"region": what, "lo": int(reg[0]), "hi": int(reg[1]),
                        "slope_per_sample": float(ols_slope(curve, reg[0], reg[1]))})
    return out


@dataclass
class DivergenceFit:
    """What the fit of one run's curves produced (slopes per unit of the suite: divided by Delta)."""
    per_series: np.ndarray          # (B,) slope / Delta of every series
    stderr: float
    dof: int
    stderr_method: str
    method_bias: float
    region: Tuple[int, int]         # samples after pairing, inclusive
    curve: np.ndarray               # batch-mean curve (K+1,)
    y_sat: float
    alternatives: List[Dict[str, float]] = field(default_factory=list)

    def meta(self, dt_sample: float) -> Dict[str, object]:
        lo, hi = self.region
        return {
            "fit_region_samples": [lo, hi], "fit_region_time": [lo * dt_sample, hi * dt_sample],
            "fit_region_levels": [float(self.curve[lo]), float(self.curve[hi])],
            "curve_initial": float(self.curve[0]), "curve_saturation": self.y_sat,
            "horizon_followed": int(self.curve.size - 1),
            "method_bias_alternatives": [dict(a, slope=a["slope_per_sample"] / dt_sample)
                                         for a in self.alternatives],
            "stderr_method": self.stderr_method, "stderr_dof": self.dof,
        }


def follow(logdiv: Callable[[int], Tuple[np.ndarray, np.ndarray]], series: np.ndarray, ref: np.ndarray,
           B: int, M: int, y_sat: np.ndarray, horizon: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Accumulate the curves: sums and counts of shape (K+1, B, FINE_BLOCKS).

    ``logdiv(k)`` returns (values, valid) for every pair of the run (flattened
    over series); ``series`` and ``ref`` give each pair's series and reference
    index (for the blocks).  ``horizon`` None: the automatic horizon above.
    """
    group = series * FINE_BLOCKS + np.minimum(ref * FINE_BLOCKS // M, FINE_BLOCKS - 1)
    G = B * FINE_BLOCKS
    K_max = horizon if horizon is not None else max(2, M // 2)
    target = None
    sums, counts = [], []
    for k in range(K_max + 1):
        vals, valid = logdiv(k)
        s = np.bincount(group[valid], weights=vals[valid], minlength=G).reshape(B, FINE_BLOCKS)
        c = np.bincount(group[valid], minlength=G).reshape(B, FINE_BLOCKS).astype(np.float64)
        n_series = c.sum(axis=1)
        if np.any(n_series == 0):
            if k == 0:
                raise SeriesError("no reference point has a neighbour at a positive distance outside the "
                                  "Theiler window (the series is too short for the window, or repeats exactly)")
            break
        sums.append(s)
        counts.append(c)
        if horizon is None:
            level = float(np.mean(s.sum(axis=1) / n_series))
            if k == 0:
                target = level + STOP_FRACTION * (float(np.mean(y_sat)) - level)
            elif level >= target:
                break
    return np.stack(sums), np.stack(counts)


def fit(sums: np.ndarray, counts: np.ndarray, y_sat: np.ndarray, linearity: float,
        dt_sample: float, M: int) -> DivergenceFit:
    """Apply the linear-region rule, the method bias and the standard error (module docstring)."""
    K1, B, F = sums.shape
    per_series = sums.sum(axis=2) / counts.sum(axis=2)           # (K+1, B)
    curve = per_series.mean(axis=1)
    ysat = float(np.mean(y_sat))
    region = linear_region(curve, ysat, linearity)
    if region is None:
        rise = _rise(curve, ysat)
        raise SeriesError(
            f"the divergence curve (initial level {curve[0]:.4g}, saturation {ysat:.4g}, followed for "
            f"{K1 - 1} samples, reaching {curve.max():.4g}) has no straight segment that rises by "
            f">= {MIN_RISE:g} of the way to saturation within {linearity:g} x the rise ({linearity * rise:.3g} "
            "nats): no positive exponent to measure (a regular or stable series), the curve saturates within "
            "a few samples (sample more often), or too few samples for a smooth curve")
    lo, hi = region
    slopes = ols_slope(per_series.T, lo, hi) / dt_sample         # (B,)
    alternatives = region_alternatives(curve, ysat, linearity, region)
    method_bias = bias_from_alternatives(alternatives) / dt_sample

    if B > 1:
        stderr = float(slopes.std(ddof=1) / math.sqrt(B))
        dof, how = B - 1, f"across {B} series"
    else:
        K = K1 - 1
        n_blocks = min(F, M // max(K, 1))
        if n_blocks < 2:
            raise InvalidArgumentError(
                "steps", M, f"a longer series when batch=1: a standard error from blocks of reference points "
                f"needs at least 2 blocks of >= {K} (the horizon followed) delay vectors, i.e. >= {2 * K} "
                f"embedded points (or use batch > 1)")
        merge = np.arange(F) * n_blocks // F
        bs = np.zeros((K1, n_blocks))
        bc = np.zeros((K1, n_blocks))
        np.add.at(bs.T, merge, sums[:, 0, :].T)
        np.add.at(bc.T, merge, counts[:, 0, :].T)
        if np.any(bc[lo:hi + 1] == 0):
            raise InvalidArgumentError("steps", M, "a longer series when batch=1 (a block of reference points "
                                       "has no pair left in the fit region)")
        block_slopes = ols_slope((bs / bc).T, lo, hi) / dt_sample
        stderr = float(block_slopes.std(ddof=1) / math.sqrt(n_blocks))
        dof, how = n_blocks - 1, f"batch means over {n_blocks} blocks of reference points"
    if not stderr > 0:
        raise SeriesError("the fitted slopes of all series/blocks are identical: no spread to give a standard "
                          "error (a degenerate series)")
    return DivergenceFit(slopes, stderr, dof, how, method_bias, (lo, hi), curve, ysat, alternatives)
