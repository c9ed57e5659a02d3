"""What every peer-library adapter shares.

A peer adapter is an ordinary :class:`~suite.estimators.base.Estimator` that
hands the work to another package.  The package is imported lazily, inside
``estimate`` (never when lyapbench is imported), through :func:`import_peer`:
a package that is absent raises :class:`~suite.core.errors.NotInstalledError`
(the runner records the cell as ``not installed``), one that is installed
but fails to import raises :class:`PeerImportError` (a NotInstalledError
whose message carries the real cause), and an exception inside the peer's
own code becomes a :class:`PeerError` (a LyapbenchError) carrying the peer's
message.

Every adapter follows the suite's protocol, not the peer's defaults: the
``batch`` initial states come from ``system.sample_initial`` seeded from the
run's seed, the transient is run with the system's own ``step`` (on the CPU,
float64), then each trajectory is handed to the peer; exponents are
converted to the suite's units (per step for maps, per unit time for flows)
and reported largest first.  Standard errors: across trajectories when
batch > 1; for batch = 1 from batch means along the trajectory (the peers
that expose running sums) or from ``n_split`` consecutive segments of the
series (the series peers).  ``meta['peer']`` is ``'package version'``.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import math
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from reference_systems import System, TrajectoryRNG
from reference_systems.switched import SwitchedFlow
from suite.core.args import check_int
from suite.core.errors import InvalidArgumentError, LyapbenchError, NotInstalledError
from suite.core.result import LyapunovResult
from suite.estimators.base import Estimator, GrowthAccumulator, RunConfig
from suite.estimators.series import check_coordinate, observe, run_transient

EXTRA = "peers"


class PeerImportError(NotInstalledError):
    """A peer package is installed but importing it fails (recorded as ``not installed``)."""

    def __init__(self, package: str, cause: BaseException, extra: str = EXTRA):
        super().__init__(package, extra)
        self.cause = cause
        msg = (f"{package} is installed but fails to import: {type(cause).__name__}: {cause} "
               f"(the versions pinned in the `{extra}` extra import: `pip install lyapbench[{extra}]`)")
        self.args = (msg,)
        self.msg = msg


class PeerError(LyapbenchError, RuntimeError):
    """The peer library raised while estimating; the message is the peer's own."""


def import_peer(module: str, package: Optional[str] = None):
    """Import ``module`` of the peer distribution ``package`` or say why it cannot be used."""
    package = package or module.split(".")[0]
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - classify every import failure
        try:
            missing = importlib.util.find_spec(top) is None
        except (ImportError, ValueError):
            missing = True
        if missing:
            raise NotInstalledError(package, EXTRA) from exc
        raise PeerImportError(package, exc) from exc


def peer_version(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} (version unknown)"


@contextlib.contextmanager
def seeded_numpy(seed: int):
    """Seed numpy's global RNG (peers that draw from it: RANSAC fits, random frames), then restore it."""
    state = np.random.get_state()
    np.random.seed(seed % 2 ** 32)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def collect_warnings(into: List[str]):
    """Keep a peer's warnings (as unique strings, in ``into``) instead of printing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in into:
            into.append(text)


class PeerEstimator(Estimator):
    """Base of the adapters: lazy import, CPU float64 protocol, result assembly."""

    in_default_validation = False
    package: str = ""          # distribution name (pip)
    module: str = ""           # module to import
    largest_only: bool = False  # True: the peer estimates lambda_1 only (Estimator.estimate checks k)

    # -- the peer --------------------------------------------------------
    def peer(self):
        """The peer module (its import-time warnings, e.g. deprecations, are not shown)."""
        with collect_warnings([]):
            return import_peer(self.module or self.package, self.package)

    def call_peer(self, what: str, fn: Callable, *args, **kwargs):
        """Call the peer; any exception but the suite's own becomes a PeerError naming ``what``, and so does
        a SystemExit: setuptools ends the process that way when a C compilation fails (jitcode's gcc crashing
        on MacArthur's equations stopped a whole ``lyapbench dysts references`` run before its record)."""
        try:
            return fn(*args, **kwargs)
        except LyapbenchError:
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the peer's message is kept
            raise PeerError(f"{self.package} failed ({what}): {type(exc).__name__}: {exc}") from exc

    # -- protocol --------------------------------------------------------
    def check_config(self, system: System, cfg: RunConfig) -> None:
        if cfg.device.type != "cpu":
            raise InvalidArgumentError("device", str(cfg.device),
                                       f"'cpu': {self.name} hands numpy arrays to {self.package}")
        if cfg.dtype != torch.float64:
            raise InvalidArgumentError("dtype", str(cfg.dtype).replace("torch.", ""),
                                       f"float64: {self.package} computes in float64 numpy")

    def k_out(self, system: System, cfg: RunConfig) -> int:
        return 1 if self.largest_only else cfg.k

    @torch.no_grad()
    def start_states(self, system: System, cfg: RunConfig) -> Tuple[np.ndarray, TrajectoryRNG]:
        """The batch's initial states after the transient, (B, d) float64, and their generator."""
        rng = cfg.rng()
        x = run_transient(system, system.sample_initial(cfg.batch, rng).to("cpu", torch.float64), rng, cfg)
        return x.numpy().copy(), rng

    def finish(self, res: LyapunovResult, peer_warnings: Sequence[str] = (), **meta) -> LyapunovResult:
        res.meta["peer"] = peer_version(self.package)
        if peer_warnings:
            res.meta["peer_warnings"] = list(peer_warnings)
        res.meta.update(meta)
        return res


def symbolic_flow_reason(name: str, system: System) -> Optional[str]:
    """Why a peer that integrates ``meta['symbolic_rhs']`` (jitcode, lyapax) cannot take ``system``, or None."""
    if system.kind != "flow":
        return f"{name} integrates an ordinary differential equation; {system.name!r} is a {system.kind}, not a flow"
    if system.capabilities.symbolic_rhs is None:
        return (f"{name} needs the flow's right-hand side as symbolic expressions (meta['symbolic_rhs']), which "
                f"{system.name!r} does not provide")
    if system.is_random:
        return f"{name} integrates deterministic equations; {system.name!r} is random"
    if isinstance(system, SwitchedFlow):
        return (f"{name} integrates the variational equations without events, and {system.name!r} is a switched "
                "flow whose tangent jumps at each crossing (a saltation matrix)")
    return None


class OneTrajectory:
    """One trajectory of a torch system as numpy functions (what the peers call).

    ``step(x)``, ``tangent(x) -> (x_next, DF(x))`` of the system's own step
    (for a flow: the RK4 map and its exact derivative), and for flows
    ``rhs(x)`` and ``rhs_jacobian(x)`` of the vector field.  A random system
    draws its noise from ``generator`` (one trajectory's stream); the state
    and the Jacobian of one step share one draw: ``tangent`` keeps the next
    state, which the following ``step`` from the same state returns.
    """

    def __init__(self, system: System, generator: Optional[TrajectoryRNG] = None):
        self.system, self.generator = system, generator
        self.d = system.dim
        self._eye = torch.eye(self.d, dtype=torch.float64).unsqueeze(0)
        self._cached: Optional[Tuple[np.ndarray, np.ndarray]] = None

    @staticmethod
    def _t(x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(1, -1)

    @torch.no_grad()
    def step(self, x) -> np.ndarray:
        if self._cached is not None and np.array_equal(self._cached[0], x):
            out = self._cached[1]
            self._cached = None
            return out
        return self.system.step(self._t(x), self.generator)[0].numpy()

    @torch.no_grad()
    def tangent(self, x) -> Tuple[np.ndarray, np.ndarray]:
        x_next, J = self.system.tangent(self._t(x), self._eye.clone(), self.generator)
        x_next = x_next[0].numpy()
        if self.system.is_random:
            self._cached = (np.array(x, dtype=np.float64, copy=True), x_next)
        return x_next, J[0].numpy()

    @torch.no_grad()
    def rhs(self, x) -> np.ndarray:
        return self.system.rhs(self._t(x))[0].numpy()

    @torch.no_grad()
    def rhs_jacobian(self, x) -> np.ndarray:
        # the flow's Jacobian of the vector field: its analytic jacobian where given, else autodiff
        return self.system._jvp(self._t(x), self._eye.clone())[0].numpy()


def growth_result(cum: np.ndarray, ends: np.ndarray, steps: int, interval: int, dt: float,
                  final: Optional[np.ndarray] = None) -> LyapunovResult:
    """A LyapunovResult from cumulative ln growth sums reported by a peer.

    ``cum`` (B, n, k): the running sum of ln growth factors of each
    trajectory at step counts ``ends`` (n,), which must be the renormalisation
    ends of :class:`GrowthAccumulator` for ``interval`` (multiples of
    ``interval``, the last one ``steps``).  Gives the history on a log grid,
    the stderr across trajectories (B > 1) or from batch means (B = 1).
    ``final`` (B, k), the peer's own final exponents, replaces the
    accumulated ones in ``per_trajectory`` (they agree to round-off).
    """
    B, n, k = cum.shape
    acc = GrowthAccumulator(B, k, steps, interval, dt, "cpu")
    prev = np.zeros((B, k))
    for j in range(n):
        acc.add(torch.from_numpy(cum[:, j] - prev), int(ends[j]))
        prev = cum[:, j]
    res = acc.result()
    if final is not None:
        final = np.asarray(final, dtype=np.float64).reshape(B, k)
        res.per_trajectory = final
        res.exponents = final.mean(axis=0)
        if B > 1:
            res.stderr = final.std(axis=0, ddof=1) / math.sqrt(B)
    return res


def renorm_ends(steps: int, interval: int) -> np.ndarray:
    """The step counts at which :class:`GrowthAccumulator` expects a renormalisation."""
    return np.unique(np.minimum(np.arange(1, math.ceil(steps / interval) + 1) * interval, steps))


def estimates_result(per_traj: np.ndarray, T: float, split: Optional[np.ndarray] = None,
                     history: bool = True) -> LyapunovResult:
    """A LyapunovResult from final estimates only (the series peers, dysts).

    ``per_traj`` (B, k).  Stderr across trajectories when B > 1; for B = 1
    from ``split`` (n_split, k), the estimates on consecutive segments:
    std / sqrt(n_split) on n_split - 1 degrees of freedom (assumes the
    estimate's variance falls like 1 / length).  The history is the one row
    at time T (the peers give no running estimate).
    """
    per_traj = np.asarray(per_traj, dtype=np.float64)
    B, k = per_traj.shape
    if B > 1:
        stderr = per_traj.std(axis=0, ddof=1) / math.sqrt(B)
        meta = {"stderr_method": "across trajectories", "stderr_dof": B - 1}
    else:
        split = np.asarray(split, dtype=np.float64)
        stderr = split.std(axis=0, ddof=1) / math.sqrt(split.shape[0])
        meta = {"stderr_method": f"{split.shape[0]} segments of the series", "stderr_dof": split.shape[0] - 1,
                "segment_estimates": split.tolist()}
    mean = per_traj.mean(axis=0)
    hist = mean[None] if history else np.zeros((0, k))
    times = np.array([T]) if history else np.zeros(0)
    return LyapunovResult(mean, stderr, per_traj, hist, times, wall_seconds=0.0, meta=meta)


def sorted_desc(values) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=np.float64).ravel())[::-1]


def check_finite_estimates(name: str, values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise PeerError(f"{name} returned non-finite exponents {values.tolist()} ({what})")
    return values


def slope_spread(ks: np.ndarray, curve: np.ndarray, slope: float) -> float:
    """How far a fitted divergence slope moves over the admissible fit regions.

    The slope of ``curve`` against ``ks`` is refitted (least squares) on the
    first three quarters and on the last three quarters of the fit region;
    the result is the largest distance between these and the reported
    ``slope`` (per sample).  A divergence curve that saturates inside the
    region (a large exponent, a long ``trajectory_len``) gives a large value:
    the fit region decides the answer, and the estimator says so.
    """
    ks, curve = np.asarray(ks, dtype=np.float64), np.asarray(curve, dtype=np.float64)
    L = ks.size
    if L < 4:
        return 0.0
    q = max(2, (3 * L) // 4)
    slopes = [np.polyfit(ks[:q], curve[:q], 1)[0], np.polyfit(ks[L - q:], curve[L - q:], 1)[0]]
    return float(max(abs(s - slope) for s in slopes))


class SeriesPeer(PeerEstimator):
    """A peer that fits exponents to a scalar time series (delay-embedding methods).

    The series is generated by :func:`suite.estimators.series.observe`: coordinate
    ``coordinate`` of the state, sampled every ``every`` steps after the
    transient, ``steps // every`` samples per trajectory.  ``every=None``
    picks the smallest stride that keeps at most ``max_samples`` samples
    (these methods build an n x n distance matrix or scan all pairs: their
    cost grows like n^2).  The peer returns exponents per sample; they are
    divided by the sampling interval ``every * dt`` (steps for maps, time
    units for flows).  With batch = 1 the series is also cut into
    ``n_split`` consecutive segments, each fitted alone, for the stderr.
    """

    requires = "series"

    def _series_params(self, coordinate, every, max_samples, n_split):
        self.coordinate = coordinate
        self.every = check_int("every", every, 1, allow_none=True)
        self.max_samples = check_int("max_samples", max_samples, 16)
        self.n_split = check_int("n_split", n_split, 2)

    def fit(self, peer, x: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Exponents per sample, largest first, and their stated fit spread (or None)."""
        raise NotImplementedError  # pragma: no cover

    def max_k(self) -> int:
        return 1

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:

        self.check_config(system, cfg)
        coordinate = check_coordinate(system, self.coordinate)
        k = self.k_out(system, cfg)
        if k > self.max_k():
            raise InvalidArgumentError("k", cfg.k, f"at most {self.max_k()} for {self.name} with {self.get_params()}")
        peer = self.peer()
        every = self.every or max(1, math.ceil(cfg.steps / self.max_samples))
        n = cfg.steps // every
        if n < 16:
            raise InvalidArgumentError("steps", cfg.steps, f">= {16 * every} ({self.name} needs at least 16 samples "
                                       f"of the series; every={every})")
        series, interval = observe(system, cfg, n, coordinate=coordinate, every=every)
        notes: List[str] = []
        per_traj, biases = [], []
        for b in range(cfg.batch):
            with collect_warnings(notes), seeded_numpy(cfg.seed * 1_000_003 + cfg.first + b):
                vals, bias = self.call_peer(f"trajectory {cfg.first + b}", self.fit, peer, series[b])
            vals = check_finite_estimates(self.package, vals, f"trajectory {cfg.first + b}")
            per_traj.append(vals[:k] / interval)
            if bias is not None:
                biases.append(np.asarray(bias, dtype=np.float64)[:k] / interval)
        split = None
        if cfg.batch == 1:
            split = []
            for j, seg in enumerate(np.array_split(series[0], self.n_split)):
                try:
                    with collect_warnings(notes), seeded_numpy(cfg.seed * 1_000_003 + cfg.first + 7919 * (j + 1)):
                        vals, _ = self.call_peer(f"segment {j + 1} of {self.n_split}", self.fit, peer, seg)
                    vals = check_finite_estimates(self.package, vals, f"segment {j + 1}")
                except PeerError as exc:
                    raise InvalidArgumentError(
                        "batch", 1, f">= 2, or more steps: with batch=1 the stderr comes from {self.n_split} "
                        f"segments of {seg.size} samples, and {exc}") from exc
                split.append(vals[:k] / interval)
        res = estimates_result(np.array(per_traj), cfg.steps * system.dt, None if split is None else np.array(split))
        meta = {"every": every, "n_samples": n, "sample_interval": interval, "coordinate": coordinate}
        if biases:
            meta["method_bias"] = np.mean(biases, axis=0).tolist()
        return self.finish(res, notes, **meta)
