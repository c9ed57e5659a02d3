"""What every estimator shares: argument checks, seeding, accumulation.

Conventions (after scikit-learn): a constructor only stores its
hyperparameters; :meth:`Estimator.get_params` returns them; all work happens
in :meth:`Estimator.estimate`.  An estimator declares what it needs from a
system in ``requires`` ('tangent', 'step' or 'series') and
:meth:`Estimator.not_applicable` says why it cannot run on a given system.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from reference_systems import System, TrajectoryRNG
from suite.core.args import SEED_MAX, check_int
from suite.core.devices import resolve_device, resolve_dtype, synchronize
from suite.core.errors import InvalidArgumentError, NotApplicableError, TrajectoryError
from suite.core.provenance import versions
from suite.core.result import LyapunovResult
from suite.estimators.numerics.control_variates import cross_fitted

Seed = Union[int, Tuple[int, int]]


@dataclass(frozen=True)
class RunConfig:
    """Checked arguments of one ``estimate`` call."""
    steps: int
    transient: int
    batch: int
    k: int
    seed: int
    first: int
    device: torch.device
    dtype: torch.dtype

    def rng(self) -> TrajectoryRNG:
        return TrajectoryRNG(self.seed, self.batch, first=self.first, device=self.device)


def check_system_argument(system) -> None:
    """Raise InvalidArgumentError naming ``system`` unless it is a System (a name gets the call that builds it)."""
    if not isinstance(system, System):
        raise InvalidArgumentError("system", system if isinstance(system, str) else type(system).__name__,
                                   "a reference_systems.System (Map, Flow, or from rs.get / tasks.build)"
                                   + (f": reference_systems.get({system!r})" if isinstance(system, str) else ""))


def check_run(system: System, steps, transient, batch, k, seed, device, dtype) -> RunConfig:
    """Check the arguments of ``estimate`` and return them normalised."""
    check_system_argument(system)
    steps = check_int("steps", steps, 1)
    transient = check_int("transient", transient, 0)
    batch = check_int("batch", batch, 1)
    k = check_int("k", system.dim if k is None else k, 1, system.dim,
                  allowed=f"None (all exponents) or an integer in 1..{system.dim} (the dimension of {system.name!r})")
    if isinstance(seed, tuple) and len(seed) == 2:
        seed, first = seed
    else:
        first = 0
    seed = check_int("seed", seed, 0, SEED_MAX, allowed="an integer in 0..2**63 - 1, or (seed, first_trajectory)")
    first = check_int("seed[1] (first trajectory)", first, 0)
    return RunConfig(steps, transient, batch, int(k), int(seed), first,
                     resolve_device(device), resolve_dtype(dtype))


class Estimator:
    """Base class of the built-in estimators (third-party ones need only ``estimate``)."""

    name: str = "estimator"
    requires: str = "tangent"
    in_default_validation: bool = True
    #: True for an estimator of the largest exponent alone: k must be 1 or None (k = dim was taken, and one
    #: exponent returned, before)
    largest_only: bool = False

    def get_params(self) -> Dict[str, Any]:
        """Hyperparameters, read back from the constructor's signature."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self" and hasattr(self, p)}

    def not_applicable(self, system: System) -> Optional[str]:
        """None if the estimator can run on ``system``, else the reason it cannot."""
        if self.requires == "tangent" and not callable(getattr(system, "tangent", None)):
            return f"{self.name} needs the tangent map, which {system.name!r} does not provide"
        return None

    def estimate(self, system: System, steps: int, *, transient: int = 0, batch: int = 1,
                 k: Optional[int] = None, seed: Seed = 0, device="cpu",
                 dtype=torch.float64) -> LyapunovResult:
        cfg = check_run(system, steps, transient, batch, k, seed, device, dtype)
        if self.largest_only:
            if k is not None and cfg.k != 1:
                raise InvalidArgumentError("k", k, f"1 or None: {self.name} estimates the largest exponent only")
            cfg = dataclasses.replace(cfg, k=1)
        reason = self.not_applicable(system)
        if reason:
            raise NotApplicableError(reason)
        t0 = time.perf_counter()
        res = self._estimate(system, cfg)
        synchronize(cfg.device)
        res.wall_seconds = time.perf_counter() - t0
        res.meta.update({
            "estimator": self.name, "estimator_params": self.get_params(), "system": system.label,
            "kind": system.kind, "dt": system.dt, "steps": cfg.steps, "transient": cfg.transient,
            "T": cfg.steps * system.dt, "batch": cfg.batch, "k": int(np.size(res.exponents)), "seed": cfg.seed,
            "first_trajectory": cfg.first, "device": str(cfg.device), "dtype": str(cfg.dtype).replace("torch.", ""),
            "versions": versions(),
        })
        return res

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


def check_taper(taper) -> int:
    """The ``taper`` hyperparameter (steps at each end of a run, see :class:`GrowthAccumulator`)."""
    return check_int("taper", taper, 0, unit=" (steps at each end of the run)")


class GrowthAccumulator:
    """Sums of log growth factors -> exponents, standard errors, history.

    Feed it ``add(log_growth, steps_done)`` after every renormalisation, with
    ``log_growth`` (B, k) the ln of each direction's growth since the previous
    call and ``steps_done`` the steps after the transient so far.  The exponent
    of trajectory b is sum(log_growth) / (steps * dt): natural log, per step for
    maps, per unit time for flows.

    Standard error: across trajectories (std / sqrt(B), B - 1 degrees of
    freedom) when B > 1; for B = 1 from ``n_blocks`` consecutive batch means
    along the trajectory (n_blocks - 1 degrees of freedom; with a taper,
    weighted batch means on Kish's effective number of blocks).  History at up
    to ``n_history`` renormalisations on a log grid of steps; with B > 1
    ``meta['history_stderr']`` holds the running estimate's standard error.

    Taper: with ``taper`` = tau > 0 steps, the growth of an interval whose
    midpoint lies u steps from the nearer end gets the weight sin^2(pi u /
    (2 tau)) if u < tau, else 1, and lambda = sum_n w_n ln R_n / (dt sum_n w_n
    s_n), a weighted Birkhoff average (Das & Yorke, Nonlinearity 31, 491
    (2018)) that turns the finite-time boundary term into an average which
    mixing shrinks.  The history uses the rising taper only, so its last entry
    is the estimate.

    Control variates: with ``control_variates=True`` the caller also hands over
    the state and frame at the start and at every renormalisation
    (:meth:`observe`), and the boundary term is regressed out of the
    per-trajectory estimates (:mod:`suite.estimators.numerics.control_variates`);
    ``meta['control_variates']`` keeps the uncorrected values, the history
    stays uncorrected.  Formulas and measured variances: docs/estimators.md.

    Resolution: given the frame's ``frame_dtype``, exponents whose mean growth per interval lies below the
    leading one's by the dtype's resolution are flagged in ``meta['unresolved']`` with a warning
    (:func:`unresolved_exponents`).
    """

    def __init__(self, batch: int, k: int, steps: int, interval: int, dt: float, device,
                 n_history: int = 64, n_blocks: int = 20, taper: int = 0, control_variates: bool = False,
                 frame_dtype: Optional[torch.dtype] = None):
        taper = check_taper(taper)
        self.frame_dtype = frame_dtype  # the tangent frame's dtype, for the resolution check (result's meta)
        if 2 * taper > steps:
            raise InvalidArgumentError("taper", taper, f"at most steps / 2 = {steps // 2} (a taper at each end "
                                       f"of a run of {steps} steps)")
        self.steps, self.dt, self.taper = steps, dt, taper
        ends = np.unique(np.minimum(np.arange(1, math.ceil(steps / interval) + 1) * interval, steps))
        if batch == 1 and ends.size < 2:
            raise InvalidArgumentError(
                "steps", steps, f">= {2 * interval} when batch=1 (a standard error from batch means "
                "along one trajectory needs at least two renormalisation intervals)")
        grid = np.unique(np.geomspace(ends[0], steps, n_history).round())
        self._history_at = set(int(ends[np.searchsorted(ends, g)]) for g in grid if g <= steps)
        self.n_blocks = min(n_blocks, ends.size)
        self._n_ends, self._calls = ends.size, 0
        self.sums = torch.zeros(batch, k, dtype=torch.float64, device=device)
        self.blocks = torch.zeros(batch, self.n_blocks, k, dtype=torch.float64, device=device)
        self.block_steps = np.zeros(self.n_blocks)  # weighted: sum of w_n s_n per block
        self.weighted_steps = 0.0  # sum of w_n s_n so far (= steps done, exactly, without a taper)
        self._last = 0
        self._history, self._times, self._history_se = [], [], []
        self._ends = ends
        self.control_variates = bool(control_variates)
        self._boundary: Optional[torch.Tensor] = None  # (B, p): sum of coefficient * features
        self._observed = 0

    def snapshot(self) -> Dict[str, Any]:
        """Everything :meth:`add` and :meth:`observe` change, copied (for :meth:`restore`)."""
        def copied(v):
            if isinstance(v, torch.Tensor):
                return v.clone()
            if isinstance(v, np.ndarray):
                return v.copy()
            return list(v) if isinstance(v, list) else v
        return {k: copied(v) for k, v in vars(self).items()}

    def restore(self, snapshot: Dict[str, Any]) -> None:
        """Back to the state of a :meth:`snapshot` (a run that redoes some renormalisations)."""
        vars(self).update(snapshot)

    def weight(self, start: int, end: int) -> float:
        """The taper's weight of the interval of steps (start, end] (1 without a taper)."""
        if not self.taper:
            return 1.0
        u = min(0.5 * (start + end), self.steps - 0.5 * (start + end))
        return 1.0 if u >= self.taper else math.sin(0.5 * math.pi * u / self.taper) ** 2

    def boundary_coefficient(self, steps_done: int) -> float:
        """w of the interval ending at ``steps_done`` minus w of the one starting there (0 outside the run)."""
        i = int(np.searchsorted(self._ends, steps_done))
        if steps_done != 0 and (i >= self._ends.size or self._ends[i] != steps_done):
            raise ValueError(f"step {steps_done} is not a renormalisation of this run")
        before = 0.0 if steps_done == 0 else self.weight(int(self._ends[i - 1]) if i > 0 else 0, steps_done)
        j = i if steps_done == 0 else i + 1
        after = self.weight(steps_done, int(self._ends[j])) if j < self._ends.size else 0.0
        return before - after

    def observe(self, steps_done: int, features: Callable[[], torch.Tensor]) -> None:
        """Add the boundary functional's term at ``steps_done`` (0, then after every :meth:`add`).

        ``features()`` gives phi (B, p) of the current state and frame; it is called only where
        the coefficient is not 0 (the ends of the run, and the tapered stretches)."""
        c = self.boundary_coefficient(steps_done)
        self._observed += 1
        if c == 0.0:
            return
        phi = features().to(torch.float64)
        if self._boundary is None:
            self._boundary = torch.zeros(phi.shape, dtype=torch.float64, device=phi.device)
        self._boundary = self._boundary + c * phi  # a unit's operations (suite.estimators.numerics.units)

    def add(self, log_growth: torch.Tensor, steps_done: int) -> None:
        w = self.weight(self._last, steps_done)
        if w != 1.0:
            log_growth = log_growth * w
        self.sums += log_growth
        block = self._block(self._calls)
        self._calls += 1
        self.blocks[:, block] += log_growth
        weighted = w * (steps_done - self._last)
        self.block_steps[block] += weighted
        self.weighted_steps += weighted
        self._last = steps_done
        self._record_history(steps_done)

    def _block(self, call: int) -> int:
        """The block of the renormalisation counted ``call`` (from 0): blocks by renormalisation count, so that
        none is empty whatever steps and interval are."""
        return call * self.n_blocks // self._n_ends

    def foldable(self, ends: Sequence[int]) -> bool:
        """Whether the renormalisations at ``ends`` (steps done, consecutive, next after the last
        :meth:`add`) can be accumulated by one call of a unit (:mod:`suite.estimators.numerics.units`) and
        handed over by :meth:`fold`: they are in the run and span at most two blocks."""
        first, last = self._calls, self._calls + len(ends) - 1
        return last < self._n_ends and self._block(last) - self._block(first) <= 1

    def fold_inputs(self, ends: Sequence[int]) -> Dict[str, torch.Tensor]:
        """What a unit accumulating the renormalisations at ``ends`` starts from (see
        :func:`suite.estimators.numerics.units.intervals`): ``sums``, ``block`` and ``next_block`` (B, k),
        ``weights`` (r,) float64 (what :meth:`add` would apply), ``in_block`` (r,) bool, and with control
        variates ``boundary`` (B, p) (None before the first observation) and ``coefficients`` (r,)."""
        r, device = len(ends), self.sums.device
        block = self._block(self._calls)
        switch = next((i for i in range(r) if self._block(self._calls + i) != block), r)
        if self.taper:
            weights = torch.tensor([self.weight(a, b) for a, b in zip([self._last] + list(ends[:-1]), ends)],
                                   dtype=torch.float64, device=device)
        else:  # all 1: one tensor for the run (a unit only reads it)
            weights = self._constant(("ones", r), lambda: torch.ones(r, dtype=torch.float64, device=device))
        in_block = self._constant(("in_block", r, switch), lambda: torch.arange(r, device=device) < switch)
        following = self.blocks[:, block + 1] if switch < r else self._constant(("zeros",), lambda: torch.zeros_like(
            self.sums))
        # contiguous copies: a slice of one trajectory's blocks keeps a stride that would key a second recording
        inputs = {"sums": self.sums, "block": self.blocks[:, block].clone(memory_format=torch.contiguous_format),
                  "next_block": following.clone(memory_format=torch.contiguous_format),
                  "weights": weights, "in_block": in_block}
        if self.control_variates:
            inputs.update(boundary=self._boundary, coefficients=torch.tensor(
                [self.boundary_coefficient(e) for e in ends], dtype=torch.float64, device=device))
        return inputs

    def _constant(self, key, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A tensor made once per accumulator (inputs of units that never change them)."""
        cache = self.__dict__.setdefault("_constants", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def fold(self, ends: Sequence[int], sums: torch.Tensor, block: torch.Tensor, next_block: torch.Tensor,
             running: torch.Tensor, boundary: Optional[torch.Tensor] = None) -> None:
        """Take over what a unit accumulated from :meth:`fold_inputs` over the renormalisations at ``ends``
        (the order and the values of :meth:`add` and :meth:`observe` called at each: the same numbers);
        ``running`` (r, B, k): the sums after each, for the history; ``boundary``: the boundary term if the
        unit added to it."""
        first = self._block(self._calls)
        self.sums = sums
        self.blocks[:, first] = block
        b, block_steps = first, float(self.block_steps[first])  # sequential float sums, as add()'s
        for i, e in enumerate(ends):
            if self._block(self._calls) != b:
                self.block_steps[b] = block_steps
                b = b + 1
                block_steps = float(self.block_steps[b])
                self.blocks[:, b] = next_block
            weighted = self.weight(self._last, e) * (e - self._last)
            block_steps += weighted
            self.weighted_steps += weighted
            self._last = e
            self._calls += 1
            if e in self._history_at:
                self._record_history(e, running[i])
        self.block_steps[b] = block_steps
        if self.control_variates:
            self._observed += len(ends)
            if boundary is not None:
                self._boundary = boundary

    def _record_history(self, steps_done: int, sums: Optional[torch.Tensor] = None) -> None:
        if steps_done in self._history_at:
            running = (self.sums if sums is None else sums) / (self.weighted_steps * self.dt)
            self._history.append(running.mean(0))
            if running.shape[0] > 1:  # the running estimate's stderr across trajectories, for convergence in T
                self._history_se.append(running.std(0) / math.sqrt(running.shape[0]))
            self._times.append(steps_done * self.dt)

    def result(self) -> LyapunovResult:
        per_traj = (self.sums / (self.weighted_steps * self.dt)).cpu().numpy()
        B = per_traj.shape[0]
        unresolved = None if self.frame_dtype is None else unresolved_exponents(
            per_traj.mean(axis=0), self.steps / self._n_ends * self.dt, self.frame_dtype)
        cv_info = None
        if self.control_variates:
            if self._observed != self._n_ends + 1 or self._boundary is None or B < 4:
                raise RuntimeError("control variates need observe() at the start and after every add(), "
                                   f"and a batch of 4 or more (got {self._observed} of {self._n_ends + 1} "
                                   f"observations, batch {B})")
            C = (self._boundary / (self.weighted_steps * self.dt)).cpu().numpy()
            per_traj, cv_info = cross_fitted(per_traj, C)
        if B > 1:
            stderr = per_traj.std(axis=0, ddof=1) / math.sqrt(B)
            method, dof = "across trajectories", B - 1
        elif not self.taper:
            means = self.blocks[0].cpu().numpy() / (self.block_steps[:, None] * self.dt)
            stderr = means.std(axis=0, ddof=1) / math.sqrt(self.n_blocks)
            method, dof = f"batch means ({self.n_blocks} blocks)", self.n_blocks - 1
        else:
            n, W = self.n_blocks, self.block_steps
            means = self.blocks[0].cpu().numpy() / (W[:, None] * self.dt)
            dev = W[:, None] * (means - per_traj[0])
            n_eff = W.sum() ** 2 / (W ** 2).sum()
            stderr = np.sqrt(n_eff / (n_eff - 1) * (dev ** 2).sum(axis=0)) / W.sum()
            method, dof = f"weighted batch means ({n} blocks, {n_eff:.1f} effective)", max(1, int(n_eff) - 1)
        history = torch.stack(self._history).cpu().numpy() if self._history else np.zeros((0, per_traj.shape[1]))
        meta = {"stderr_method": method, "stderr_dof": dof}
        # trajectories (or blocks) that agree to the last bit (a linear map) leave a spread of 0: the standard
        # error is then the accumulation's round-off, eps (|lambda| + 1 / T) per renormalisation, summed as a
        # random walk, never a silent 0
        floor = self._roundoff(np.abs(per_traj.mean(axis=0)) + 1.0 / (self.steps * self.dt))
        low = ~(stderr >= floor)
        if low.any():
            stderr = np.where(low, floor, stderr)
            meta["stderr_floor"] = {"exponents": [int(i) + 1 for i in np.flatnonzero(low)],
                                    "why": "the spread was below round-off (identical trajectories or blocks): "
                                           "stderr = eps (|lambda| + 1/T) sqrt(renormalisations)"}
        if self.taper:
            meta["taper_steps"] = self.taper
        if unresolved is not None:
            meta["unresolved"] = unresolved
            warnings.warn(unresolved["message"], RuntimeWarning, stacklevel=3)
        drift = self.drift()
        if drift is not None:
            meta["drift"] = drift
        spread = self.spread()
        if spread is not None:
            meta["spread"] = spread
        if cv_info is not None:
            meta["control_variates"] = cv_info
        if self._history_se:
            meta["history_stderr"] = torch.stack(self._history_se).cpu().numpy()
        return LyapunovResult(per_traj.mean(axis=0), stderr, per_traj, history, np.asarray(self._times),
                              wall_seconds=0.0, meta=meta)

    def _roundoff(self, magnitude: np.ndarray) -> np.ndarray:
        """The accumulation's round-off in an estimate of this ``magnitude`` (per unit time): eps per
        renormalisation, summed as a random walk, eps magnitude sqrt(renormalisations)."""
        return np.finfo(np.float64).eps * magnitude * math.sqrt(self._n_ends)

    def spread(self) -> Optional[Dict[str, Any]]:
        """Whether the trajectories share one exponent: their estimates' spread against each one's own noise.

        Per exponent, Q = sum_b (lambda_b - mean)^2 / (s_w^2 + (1 / T)^2), s_w^2 the pooled within-trajectory
        variance of an estimate (each trajectory's batch means: (var of its block rates) / blocks, averaged
        over the trajectories) and 1 / T a nat of boundary term; Q ~ chi^2(B - 1) where every trajectory
        estimates the same exponent, larger where they settle on different attractors (several fixed points
        of a network, regions of a mixed phase space) or still drift apart.  None for one trajectory or fewer
        than 4 blocks (with a taper, the blocks' weighted rates: its light end blocks are noisier, which only
        widens s_w)."""
        B, n = self.blocks.shape[:2]
        if B < 2 or n < 4 or not np.all(self.block_steps > 0):
            return None
        T = self.steps * self.dt  # on the accumulator's device; (k,) vectors come back
        W = torch.as_tensor(self.block_steps, dtype=torch.float64, device=self.blocks.device)
        rates = self.blocks / (W[None, :, None] * self.dt)                                 # (B, n, k)
        per = self.sums / (self.weighted_steps * self.dt)                                  # (B, k)
        within = (rates.var(dim=1) / n).mean(dim=0)                                        # (k,)
        Q = ((per - per.mean(dim=0)) ** 2).sum(dim=0) / (within + 1.0 / T ** 2)
        return {"Q": Q.tolist(), "dof": B - 1, "within_stderr": within.sqrt().tolist(),
                "range": [per.amin(dim=0).tolist(), per.amax(dim=0).tolist()]}

    def drift(self) -> Optional[Dict[str, Any]]:
        """The first half of the run's (weighted) estimate minus the second half's, per exponent: its mean over
        the trajectories, the stderr of that mean and its degrees of freedom (None for one trajectory or one
        block).  On a stationary run its mean is 0 (the halves' boundary terms telescope to g's mean, which
        cancels); a systematic difference says the finite-time error is not a boundary term O(1/T) (a Jordan
        block's ln T / T, an ensemble not yet stationary).  Uncorrected by control variates; the stderr is
        at least the halves' round-off, eps (|first| + |second| + 4 / T) sqrt(renormalisations)."""
        B, n = self.blocks.shape[:2]
        if B < 2 or n < 2:
            return None
        half, W = n // 2, self.block_steps
        if not (W[:half].sum() > 0 and W[half:].sum() > 0):
            return None
        blocks = self.blocks.cpu().numpy()
        first, second = blocks[:, :half].sum(1) / (W[:half].sum() * self.dt), blocks[:, half:].sum(1) / (
            W[half:].sum() * self.dt)
        d = first - second
        # trajectories that agree to the last bit (a linear map) leave a spread of 0: floored, as result()'s
        # stderr, at the halves' accumulated round-off
        floor = self._roundoff(np.abs(first).mean(0) + np.abs(second).mean(0) + 4.0 / (self.steps * self.dt))
        stderr = np.maximum(d.std(0, ddof=1) / math.sqrt(B), floor)
        return {"difference": d.mean(0).tolist(), "stderr": stderr.tolist(), "dof": B - 1}


#: a direction whose growth over an interval is below LOST_FACTOR eps of the leading direction's carries no
#: correct digit (a QR's R_jj has an absolute error of a few eps ||V||; for an exactly rank-deficient V it lands
#: at 0.5-2 eps ||V|| in the median, measured in docs/estimators.md, "Singular Jacobians")
LOST_FACTOR = 16.0


def lost_limit(dtype: torch.dtype) -> float:
    """ln(1 / (LOST_FACTOR eps)): how far (nats) below the leading direction's growth over an interval a
    direction's lies at the round-off floor of a ``dtype`` frame (33.3 float64, 13.2 float32)."""
    return math.log(1.0 / (LOST_FACTOR * torch.finfo(dtype).eps))


def unresolved_exponents(means: np.ndarray, interval_time: float, dtype: torch.dtype) -> Optional[Dict[str, Any]]:
    """The exponents whose mean growth per renormalisation interval (``interval_time``: steps x dt) lies more than
    :func:`lost_limit` below the leading exponent's (33.3 nats in float64, 13.2 in float32), as a record
    with a message; None where every exponent is resolved.  Such a direction sits at the QR's round-off floor in
    a typical interval: the Jacobian is singular along the orbit (a normalisation's invariant direction, units
    that are always inactive: the true exponent is -inf), or contracts it beyond the dtype's resolution within
    one interval; either way its value is round-off, not dynamics."""
    means = np.asarray(means, dtype=np.float64)
    if means.size < 2:
        return None
    limit = lost_limit(dtype)
    gap = (means.max() - means) * interval_time
    lost = np.flatnonzero(gap > limit)
    if lost.size == 0:
        return None
    names = ", ".join(str(int(i) + 1) for i in lost)
    name = str(dtype).replace("torch.", "")
    return {"exponents": [int(i) + 1 for i in lost], "gap_per_interval_nats": [float(gap[i]) for i in lost],
            "limit_nats": limit, "frame_dtype": name,
            "message": (f"exponent(s) {names} not resolved: their growth per renormalisation interval is "
                        f"{float(gap[lost].min()):.1f} nats or more below the leading exponent's, beyond {name}'s "
                        f"resolution ({limit:.1f} nats): the Jacobian is singular along the orbit (a normalisation's "
                        "invariant direction, units that never activate: the true exponent is -inf) or contracts "
                        "these directions beyond round-off within one interval; their values are round-off. Ask "
                        f"for k = {int(lost.min())} exponents, or renormalise more often / run in float64")}


def finite_growth(log_growth: torch.Tensor, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """(B,) bool: which trajectories' log growth (B, k) is finite, and for a float64 frame of k >= 2 directions
    also above the round-off floor (every direction within :func:`lost_limit` of the interval's largest): a
    frame that did not degenerate.  For a random 4 x 4 Gaussian matrix min R_ii / max R_ii < x with probability
    1.8 x (measured from x = 1e-3 to 2e-6 over 10^7 of them): 6e-15 at float64's 16 eps, so an interval that
    reaches the floor lost a direction (a Jacobian singular at that step, a unit inactive then: the exponents
    beyond its rank are -inf; or an interval too long); 3e-6 at float32's, which a large run meets, so only
    the mean growth is judged there (:func:`unresolved_exponents`).  ``dtype`` None: finiteness alone."""
    finite = torch.isfinite(log_growth).all(dim=1)
    if dtype != torch.float64 or log_growth.shape[1] < 2:
        return finite
    spread = log_growth.amax(dim=1) - log_growth.amin(dim=1)
    return finite & (spread < lost_limit(dtype))


def trajectories_ok(system: System, x: torch.Tensor, log_growth: torch.Tensor) -> torch.Tensor:
    """0-dim bool on x's device: every state in the domain and every log growth finite (above the floor in
    float64, :func:`finite_growth`), the condition :func:`check_finite` raises on, without reading it on the
    host."""
    return (system.in_domain(x) & finite_growth(log_growth, x.dtype)).all()


def check_finite(system: System, x: torch.Tensor, log_growth: Optional[torch.Tensor],
                 step: int, since: int, cfg: RunConfig, growth_of: str = "the tangent frame",
                 degenerate: Optional[str] = None) -> None:
    """Raise :class:`TrajectoryError` if a state left the domain or a frame degenerated.

    ``step`` counts from the start of the run (transient included); the
    problem happened after step ``since`` and by step ``step``.  ``degenerate``: what a growth factor of 0
    means for this estimator (the tangent frame's default: a singular Jacobian or under/overflow).
    """
    bad_state = ~system.in_domain(x)
    bad = bad_state if log_growth is None else bad_state | ~finite_growth(log_growth, x.dtype)
    if not bool(bad.any()):
        return
    idx = torch.nonzero(bad).flatten().tolist()
    traj = [cfg.first + i for i in idx]
    where = f"at step {step}" if step - since <= 1 else f"between steps {since + 1} and {step}"
    shown = ", ".join(map(str, traj[:8])) + (", ..." if len(traj) > 8 else "")
    rank = None
    if bool(bad_state.any()):
        i = int(torch.nonzero(bad_state).flatten()[0])
        finite = bool(torch.isfinite(x[i]).all())
        what = (f"left the domain {system.capabilities.domain_note}".rstrip() if finite
                else "diverged (non-finite state)")
        msg = (f"system {system.label!r}: trajectory {shown} {what} {where} "
               f"(state of trajectory {cfg.first + i}: {x[i].tolist()})")
    else:
        i = idx[0]
        lg = log_growth[i].tolist()
        if any(math.isnan(v) or v == math.inf for v in lg):
            what = f"{growth_of} became non-finite (NaN or overflow in the Jacobian or the tangent vectors)"
        else:
            top = max(lg)  # -inf where every direction was annihilated
            # directions lost, to 0 or to round-off, in the worst of the trajectories that failed here
            lost = log_growth[idx].to(torch.float64)
            lost = (lost <= lost.amax(dim=1, keepdim=True) - lost_limit(x.dtype)) | torch.isneginf(lost)
            zero = int(lost.sum(dim=1).max())
            rank = None if degenerate else len(lg) - zero
            how = ("a growth factor of 0, ln = -inf" if min(lg) == -math.inf else
                   f"a growth factor {math.exp(min(lg) - top):.2g} of the largest in one interval, at the round-off "
                   f"floor, below {LOST_FACTOR:g} eps")
            what = f"{growth_of} degenerated ({how}): " + (
                degenerate or f"the Jacobian is singular along the orbit ({zero} of the frame's {len(lg)} "
                              f"directions annihilated, to 0 or to round-off: its rank is at most {len(lg) - zero} "
                              "there, and the exponents beyond are -inf; " + (
                                  f"ask for k <= {len(lg) - zero}" if zero < len(lg) else "every exponent is -inf")
                              + "), or the vectors over- or underflowed between renormalisations (renormalise more "
                                "often)" + (" (in float32 a saturated unit's derivative, 1 - tanh^2, rounds to 0, so "
                                           "the rank may be float32's: run in float64)"
                                           if x.dtype in (torch.float32, torch.float16, torch.bfloat16) else ""))
        msg = (f"system {system.label!r}: trajectory {shown}: {what} {where} (ln growth = {lg}; "
               f"state of trajectory {cfg.first + i}: {x[i].tolist()})")
    raise TrajectoryError(msg, system=system.label, trajectories=traj, step=step, rank=rank)
