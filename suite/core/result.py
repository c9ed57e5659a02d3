"""The result every estimator returns, and what it declares that scoring reads."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from suite.core.args import check_number

@dataclass(frozen=True)
class Declared:
    """What a result declares in ``meta`` that scoring reads, typed and with its defaults.

    Attributes
    ----------
    stderr_dof : degrees of freedom of ``stderr`` (default B - 1: a standard error across B trajectories).
    method_bias : (k,) the estimator's stated systematic bound per exponent, nats (default 0).
    integrates : 'flow' for an estimator that integrates a flow itself (a peer's adaptive
        solver): it is held to the flow's divergence, not to the RK4 map's; anything else
        ('map', the default; 'rk4_map') follows the system's step.
    rtol : that solver's relative tolerance (None: not stated).
    steps, transient : the run's steps after the transient, and the transient (None: not stated).
    T : the run's duration (default: the last history time).
    dtype : 'float64' or 'float32' (None: not stated).
    """
    stderr_dof: Any
    method_bias: np.ndarray
    integrates: str = "map"
    rtol: Optional[float] = None
    steps: Optional[int] = None
    transient: Optional[int] = None
    T: float = math.nan
    dtype: Optional[str] = None


@dataclass
class LyapunovResult:
    """Lyapunov exponents estimated from a batch of trajectories.

    All arrays are float64 numpy arrays; exponents in natural log, per step
    for maps and per unit time for flows.

    Attributes
    ----------
    exponents : (k,) mean over trajectories, largest first.
    stderr : (k,) standard error of ``exponents``: across trajectories when
        batch > 1, from batch means along the trajectory when batch = 1.
        ``meta['stderr_dof']`` gives its degrees of freedom.
    per_trajectory : (B, k) the estimate of every trajectory.
    history : (n, k) running estimate (mean over trajectories) after
        ``times[j]`` time units, on a logarithmic grid: convergence in T
        from one run.
    times : (n,) time (steps * dt) of each history row.
    wall_seconds : wall-clock time of the whole call (device synchronised).
    meta : estimator name and hyperparameters, system, steps, transient,
        batch, k, seed, device, dtype, library versions, stderr method.
    """

    exponents: np.ndarray
    stderr: np.ndarray
    per_trajectory: np.ndarray
    history: np.ndarray
    times: np.ndarray
    wall_seconds: float
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("exponents", "stderr", "per_trajectory", "history", "times"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        k = self.exponents.shape
        if self.exponents.ndim != 1 or self.stderr.shape != k:
            raise ValueError(f"exponents and stderr must both have shape (k,), got {k} and {self.stderr.shape}")
        if self.per_trajectory.ndim != 2 or self.per_trajectory.shape[1] != k[0]:
            raise ValueError(f"per_trajectory must have shape (B, {k[0]}), got {self.per_trajectory.shape}")
        if self.history.ndim != 2 or self.history.shape[1] != k[0] or self.times.shape != self.history.shape[:1]:
            raise ValueError(f"history must be (n, {k[0]}) and times (n,), got {self.history.shape}, "
                             f"{self.times.shape}")
        if not (np.all(np.isfinite(self.exponents)) and np.all(np.isfinite(self.stderr))):
            raise ValueError(f"a LyapunovResult holds finite exponents and standard errors only; got "
                             f"{self.exponents} +- {self.stderr}")

    @property
    def k(self) -> int:
        return self.exponents.size

    @property
    def declared(self) -> Declared:
        """The typed view of what ``meta`` declares for scoring (:class:`Declared`); a wrong type
        raises an error naming the ``meta`` key."""
        m = self.meta
        dof = m.get("stderr_dof", self.per_trajectory.shape[0] - 1)
        check_number("meta['stderr_dof']", dof, low=0.0, finite=False)  # kept as given (an int stays an int)
        mb = np.broadcast_to(np.asarray(m.get("method_bias", 0.0), dtype=np.float64), self.exponents.shape).copy()
        if not np.all(np.isfinite(mb)) or np.any(mb < 0):
            raise ValueError(f"meta['method_bias'] must be finite and >= 0 per exponent, got {mb}")
        T = m.get("T", self.times[-1] if self.times.size else math.nan)
        return Declared(stderr_dof=dof, method_bias=mb,
                        integrates=str(m.get("integrates", "map")),
                        rtol=check_number("meta['rtol']", m.get("rtol"), low=0.0, allow_none=True),
                        steps=m.get("steps"), transient=m.get("transient"), T=float(T),
                        dtype=None if m.get("dtype") is None else str(m["dtype"]).replace("torch.", ""))

    def __repr__(self) -> str:
        pairs = ", ".join(f"{e:.5g}±{s:.2g}" for e, s in zip(self.exponents[:6], self.stderr[:6]))
        more = ", ..." if self.k > 6 else ""
        return (f"LyapunovResult([{pairs}{more}], batch={self.per_trajectory.shape[0]}, "
                f"T={self.times[-1] if self.times.size else 0:g}, {self.wall_seconds:.3g} s)")
