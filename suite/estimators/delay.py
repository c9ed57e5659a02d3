"""What the delay-embedding (time-series) estimators share: hyperparameters, data, units.

A time-series estimator sees only a scalar series observed from the system
(:func:`suite.estimators.series.observe`): coordinate ``coordinate`` of the
state every ``sample_every`` steps after the transient.  ``steps`` is the
number of samples of each series, so T = steps * sample_every * dt
(``meta['T']``); per-sample slopes are divided by Delta = sample_every * dt
(exponents in natural log, per step for maps, per unit time for flows).
``batch`` is the number of independent series (stderr across them, or from
blocks of one series for batch = 1); ``device`` / ``dtype`` say where the
series is generated, the analysis runs on the CPU in numpy float64.

Shared hyperparameters (validated in the constructor)
------------------------------------------------------
m : int >= 1, default 3
    Embedding dimension (Takens' sufficient condition: m > 2 D_box).
lag : int >= 1 or None, default None
    Delay in samples; None: the first lag at which the autocorrelation falls
    below 1 - 1/e (Rosenstein et al. 1993).
theiler : int >= 0 or None, default None
    Theiler window in samples (neighbours need |i - j| > theiler); None: the
    mean period of the series from its power spectrum.
coordinate : int >= 0, default 0
    Which state coordinate is observed.
sample_every : int >= 1, default 1
    Steps of the system between samples.

The lag and Theiler window used are in ``meta['embedding']``.  See
docs/estimators.md.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import torch

from reference_systems import System
from suite.core.args import check_int
from suite.core.errors import InvalidArgumentError
from suite.core.result import LyapunovResult
from suite.estimators.base import Estimator, RunConfig, Seed
from suite.estimators.numerics.embedding import check_series, default_lag, default_theiler, delay_embed
from suite.estimators.series import check_coordinate, observe


class DelayEmbeddingEstimator(Estimator):
    """Base of the time-series estimators (Rosenstein, Kantz, Eckmann)."""

    requires = "series"
    in_default_validation = False

    def _init_embedding(self, m, lag, theiler, coordinate, sample_every) -> None:
        self.m = check_int("m", m, 1)
        self.lag = check_int("lag", lag, 1, allow_none=True, unit=" (samples)")
        self.theiler = check_int("theiler", theiler, 0, allow_none=True, unit=" (samples)")
        self.coordinate = check_int("coordinate", coordinate, 0)
        self.sample_every = check_int("sample_every", sample_every, 1, unit=" (steps between samples)")

    def not_applicable(self, system: System) -> Optional[str]:
        if not callable(getattr(system, "step", None)):
            return f"{self.name} observes a series generated with the system's step map, which it lacks"
        return None

    def estimate(self, system: System, steps: int, *, transient: int = 0, batch: int = 1,
                 k: Optional[int] = None, seed: Seed = 0, device="cpu", dtype=torch.float64) -> LyapunovResult:
        res = super().estimate(system, steps, transient=transient, batch=batch, k=k, seed=seed,
                               device=device, dtype=dtype)
        # a series of `steps` samples spans steps * sample_every steps of the system
        res.meta["T"] = res.meta["steps"] * self.sample_every * system.dt
        res.meta["series_length"] = res.meta["steps"]
        return res

    def run_settings(self, system: System, quick: bool = False) -> Dict[str, int]:
        """Steps (samples), transient and batch for validate/compare grids.

        The runner's defaults suit tangent methods (many short trajectories);
        a delay embedding needs few long series whose neighbours have had time
        to separate: maps 5,000 samples x 8 series, flows T = 200 time units
        x 16 series (``quick``: 4 and 8 series, the same length, since a
        shorter series has no linear region to fit).
        """
        if system.kind == "flow":
            out = {"steps": round(200 / (system.dt * self.sample_every)), "transient": round(20 / system.dt),
                   "batch": 16}
        else:
            out = {"steps": 5_000, "transient": 500, "batch": 8}
        if quick:
            out["batch"] //= 2
        return out

    def _series(self, system: System, cfg: RunConfig) -> Tuple[np.ndarray, float]:
        """The run's (B, n) series (checked: finite, not constant) and the sampling interval Delta."""
        check_coordinate(system, self.coordinate)
        x, dt_sample = observe(system, cfg, cfg.steps, coordinate=self.coordinate, every=self.sample_every)
        return check_series(x), float(dt_sample)

    def _embedded_series(self, system: System, cfg: RunConfig):
        """The run's series x (B, n), its delay vectors Y (B, M, m), Delta, lag, theiler and their meta."""
        x, dt_sample = self._series(system, cfg)
        lag, theiler, emb = self._embedding(x)
        return x, delay_embed(x, self.m, lag), dt_sample, lag, theiler, emb

    def _embedding(self, x: np.ndarray) -> Tuple[int, int, dict]:
        """(lag, theiler, meta): given, or automatic from the batch (module docstring)."""
        lag = self.lag if self.lag is not None else default_lag(x)
        theiler = self.theiler if self.theiler is not None else default_theiler(x)
        n = x.shape[1]
        M = n - (self.m - 1) * lag
        if M < 2 * theiler + 8:
            raise InvalidArgumentError(
                "steps", n, f">= {(self.m - 1) * lag + 2 * theiler + 8} samples for m={self.m}, lag={lag}, "
                f"theiler={theiler}: a delay vector needs neighbours outside its Theiler window")
        meta = {"m": self.m, "lag": lag, "lag_auto": self.lag is None, "theiler": theiler,
                "theiler_auto": self.theiler is None, "coordinate": self.coordinate,
                "sample_every": self.sample_every, "embedded_points": M}
        return lag, theiler, meta

    @staticmethod
    def _empty_history(k: int):
        return np.zeros((0, k)), np.zeros(0)
