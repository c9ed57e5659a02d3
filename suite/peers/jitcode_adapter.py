"""JiTCODE (Ansmann): Lyapunov exponents of a flow from its symbolic right-hand side, compiled to C."""
from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from dataclasses import replace
from types import SimpleNamespace
from typing import List, Optional, Tuple

import numpy as np
import torch

from reference_systems import System
from suite.core.args import check_bool, check_int, check_positive
from suite.core.errors import InvalidArgumentError, TrajectoryError
from suite.core.result import LyapunovResult
from suite.estimators.base import RunConfig
from suite.estimators.numerics.linalg import qr_positive
from suite.estimators.series import run_transient
from suite.peers.base import (PeerError, PeerEstimator, collect_warnings, growth_result, renorm_ends,
                              symbolic_flow_reason)

_CACHE: "OrderedDict[tuple, object]" = OrderedDict()   # compiled jitcode_lyap objects, per equations and settings
_CACHE_SIZE = 8
_EXPLICIT = ("dopri5", "dop853", "RK45", "DOP853", "RK23")


@contextlib.contextmanager
def _deep_stack():
    """The soft stack limit raised to the hard one for the C compiler this process starts: gcc recurses over
    each expression, and MacArthur's tangent equations (nested minima of ten variables) overflowed the default
    8 MiB (cc1's segmentation fault; 515 s and 6 GiB with no limit).  Restored afterwards; a no-op where the
    platform has no such limit."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        resource.setrlimit(resource.RLIMIT_STACK, (hard, hard))
    except (ImportError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


@contextlib.contextmanager
def _failed_integration(system: System, cfg: RunConfig, b: int, dt: float, offset: int):
    """jitcode's integrator giving up on trajectory ``b`` (``UnsuccessfulIntegration``: the step size fell to
    nothing, as where the trajectory escapes to infinity) raised as a :class:`TrajectoryError` naming it, so that
    a caller can tell one trajectory's failure from the peer's (a run conditioned on survival replaces it);
    ``.t`` of the yielded object is the time integrated to, counted after the transient's first ``offset`` steps
    (run by RK4)."""
    at = SimpleNamespace(t=0.0)
    try:
        yield at
    except PeerError as exc:
        if type(exc.__cause__).__name__ != "UnsuccessfulIntegration":
            raise
        raise TrajectoryError(f"system {system.label!r}: trajectory {cfg.first + b} under jitcode: the integration "
                              f"failed before t = {at.t:g} ({exc})", system=system.label,
                              trajectories=[cfg.first + b], step=offset + round(at.t / dt)) from exc


class JitcodeLyap(PeerEstimator):
    """The k largest exponents by ``jitcode.jitcode_lyap`` (compiled C, adaptive integrator).

    Applies to flows whose ``meta['symbolic_rhs']`` gives the vector field
    as expressions (lorenz63, rossler, lorenz96, linear_ode): jitcode
    differentiates them symbolically, generates C for the flow and k tangent
    vectors, and compiles it with the system's C compiler (gcc).  Compilation
    takes ~1 s for a 3-D system; the compiled object is cached per
    equations, k and integrator settings for the life of the process
    (``meta['compile_seconds']``, 0 when cached).

    Integration: **the flow itself**, not the suite's RK4 map: jitcode's
    ``integrator`` (default 'dopri5', scipy's adaptive Dormand-Prince 5(4),
    with ``rtol`` and ``atol``, default 1e-10) advances state and tangents
    together (the exact variational equation), so its exponents differ from
    the RK4 map's by the RK4 map's O(dt^4) but not by the integrator's.
    Every ``renorm_every`` * dt time units the tangent vectors are
    orthonormalised (QR; one ``integrate`` call) and jitcode returns
    ln(norm) / interval, already per unit time.  Start, as ``qr()``'s: our
    ``sample_initial``, a random orthonormal frame drawn from the run's
    generator (``qr_positive`` of its normal numbers; jitcode's own
    ``set_initial_value`` would draw from numpy's global RNG, and the identity
    would stay inside any invariant coordinate subspace, e.g. the one a
    forced flow's phase variable leaves: dysts's Duffing gave [0.13, -0.23,
    0]), the transient's first ``transient - align`` steps on the state alone
    (RK4), its last ``align`` (default all of it) under jitcode with the
    frame, whose exponents are discarded (jitcode's documented use), then
    T = steps * dt time units measured.  ``align=0`` measures from a random
    frame: its alignment is then part of the estimate, a boundary term that
    exceeded 1 nat on non-normal flows (dysts's DequanLi: lambda_1 0.19 over
    the first T = 25, -0.01 over the next).  Standard errors: across
    trajectories (B > 1) or batch means of the per-interval exponents (B = 1).
    ``simplify``: run SymEngine's (SymPy's) simplify over each tangent equation
    before generating C, jitcode's own default for d <= 10; off here: it
    rewrites the expressions, not the equations (round-off only), and on
    large ones it outlasts the run (dysts's ExcitableCell: > 20 minutes in
    SymPy's ``cancel`` before compiling).
    """

    name = "jitcode_lyap"
    package = "jitcode"
    requires = "tangent"

    def __init__(self, integrator: str = "dopri5", rtol: float = 1e-10, atol: float = 1e-10,
                 renorm_every: int = 10, align: Optional[int] = None, simplify: bool = False):
        if integrator not in _EXPLICIT:
            raise InvalidArgumentError("integrator", integrator, ", ".join(map(repr, _EXPLICIT)))
        self.integrator = integrator
        self.rtol, self.atol = check_positive("rtol", rtol), check_positive("atol", atol)
        self.renorm_every = check_int("renorm_every", renorm_every, 1)
        self.align = check_int("align", align, 0, allow_none=True,
                               allowed="None (the whole transient) or an integer >= 0 (transient steps)")
        self.simplify = check_bool("simplify", simplify)

    def not_applicable(self, system: System) -> Optional[str]:
        return symbolic_flow_reason(self.name, system)

    def _compiled(self, jitcode, system: System, k: int):
        f_sym = system.capabilities.symbolic_rhs([jitcode.y(i) for i in range(system.dim)])
        key = (tuple(str(e) for e in f_sym), k, self.integrator, self.rtol, self.atol, self.simplify)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key], 0.0
        t0 = time.perf_counter()
        ode = jitcode.jitcode_lyap(f_sym, n_lyap=k, simplify=self.simplify, verbose=False)
        with _deep_stack():
            ode.compile_C()
        ode.set_integrator(self.integrator, interpolate=False, rtol=self.rtol, atol=self.atol)
        seconds = time.perf_counter() - t0
        _CACHE[key] = ode
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return ode, seconds

    def _start(self, system: System, cfg: RunConfig) -> Tuple[np.ndarray, np.ndarray, int]:
        """(states (B, d), frames (B, d, k), aligned steps): ``qr()``'s start, the transient's state-only part
        run here (RK4); the last ``aligned`` steps are jitcode's, with the frame."""
        aligned = cfg.transient if self.align is None else min(self.align, cfg.transient)
        rng = cfg.rng()
        x = system.sample_initial(cfg.batch, rng).to("cpu", torch.float64)
        frames, _ = qr_positive(rng.normal(system.dim, cfg.k, dtype=torch.float64))
        x = run_transient(system, x, rng, replace(cfg, transient=cfg.transient - aligned))
        return x.numpy().copy(), frames.numpy(), aligned

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        self.check_config(system, cfg)
        jitcode = self.peer()
        k, dt, m = cfg.k, system.dt, self.renorm_every
        notes: List[str] = []
        with collect_warnings(notes):
            ode, compile_seconds = self.call_peer("generating and compiling C code", self._compiled,
                                                  jitcode, system, k)
        x0, frames, aligned = self._start(system, cfg)
        ends = renorm_ends(cfg.steps, m)
        cums, finals = [], []
        for b in range(cfg.batch):
            # jitcode's base-class set_initial_value: state plus the tangent frame (k rows, as jitcode lays them out)
            self.call_peer("set_initial_value", jitcode.jitcode.set_initial_value, ode,
                           np.concatenate([x0[b], frames[b].T.ravel()]), 0.0)
            cum = np.zeros((ends.size, k))
            total, t_prev = np.zeros(k), aligned * dt
            with collect_warnings(notes), np.errstate(all="ignore"), \
                    _failed_integration(system, cfg, b, dt, cfg.transient - aligned) as at:
                for e in renorm_ends(aligned, m) if aligned else ():  # the frame aligns: exponents discarded
                    at.t = float(e) * dt
                    state, _, _ = self.call_peer(f"integrate on trajectory {cfg.first + b} to t={e * dt:g} "
                                                 f"(aligning)", ode.integrate, float(e) * dt)
                for j, e in enumerate(ends):
                    t = at.t = float(aligned + e) * dt
                    state, lyaps, _ = self.call_peer(f"integrate on trajectory {cfg.first + b} to t={t:g}",
                                                     ode.integrate, t)
                    total = total + np.asarray(lyaps, dtype=np.float64) * (t - t_prev)
                    cum[j] = total
                    t_prev = t
            state = np.asarray(state, dtype=np.float64)
            if not (np.all(np.isfinite(state)) and np.all(np.isfinite(total))):
                raise TrajectoryError(
                    f"system {system.label!r}: trajectory {cfg.first + b} under jitcode ended non-finite "
                    f"(state {state.tolist()}, ln growth {total.tolist()})", system=system.label,
                    trajectories=[cfg.first + b], step=cfg.transient + cfg.steps)
            cums.append(cum)
            finals.append(total / (cfg.steps * dt))
        res = growth_result(np.stack(cums), ends, cfg.steps, m, dt, np.stack(finals))
        return self.finish(res, notes, integrates="flow", compile_seconds=compile_seconds, integrator=self.integrator,
                           rtol=self.rtol, atol=self.atol, renorm_interval=m * dt, aligned_steps=aligned,
                           simplify=self.simplify,
                           peer_scheme="jitcode_lyap: adaptive integration of the flow and its variational "
                                       "equation (not the RK4 map)")
