"""lyapax (Ziaeemehr): JAX-compiled Benettin/QR spectrum of a flow from its right-hand side."""
from __future__ import annotations

import math
import time
from typing import List, Optional

import numpy as np

from reference_systems import System
from suite.core.args import check_int
from suite.core.errors import TrajectoryError
from suite.core.result import LyapunovResult
from suite.estimators.base import RunConfig
from suite.peers.base import (PeerEstimator, collect_warnings, growth_result, import_peer, renorm_ends,
                              symbolic_flow_reason)


class LyapaxSpectrum(PeerEstimator):
    """The k largest exponents by ``lyapax.lyapunov_spectrum`` (JAX, jit-compiled ``lax.scan``).

    Applies to flows whose ``meta['symbolic_rhs']`` gives the vector field in arithmetic a JAX array
    supports (lorenz63, rossler, lorenz96, linear_ode): the right-hand side is evaluated on JAX
    scalars, ``lyapax.ode_step(rhs, dt, integrator='rk4')`` builds lyapax's own RK4 step with
    our dt (the same map as ours, up to round-off) and lyapax pushes k tangent vectors by
    ``jax.jvp`` of that step (its exact derivative), QR-renormalising every ``renorm_every``
    steps (default 10, lyapax's documented setting; reduced to divide ``steps``).  Float64: the
    adapter turns on ``jax_enable_x64`` (a process-wide JAX setting) before building arrays.
    Initial states: our ``sample_initial`` and transient (RK4 steps), then lyapax with no
    transient of its own; its random tangent basis is seeded per trajectory from our seed.
    One trajectory per lyapax call (the step is compiled on the first call of each run length and
    reused, across ``estimate`` calls of the same adapter too, so repeated runs time lyapax warm:
    ``meta['first_call_seconds']`` includes any JAX compilation, ``meta['compile_seconds']`` is its
    excess over the median of the other calls).  Standard errors across
    trajectories (B > 1) or batch means of lyapax's running estimate (B = 1).
    """

    name = "lyapax_spectrum"
    package = "lyapax"
    requires = "tangent"

    def __init__(self, renorm_every: int = 10):
        self.renorm_every = check_int("renorm_every", renorm_every, 1)
        self._step_fns = {}

    def not_applicable(self, system: System) -> Optional[str]:
        return symbolic_flow_reason(self.name, system)

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        self.check_config(system, cfg)
        lyapax = self.peer()
        jax = import_peer("jax", self.package)
        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy
        k, d, dt = cfg.k, system.dim, system.dt
        m = math.gcd(self.renorm_every, cfg.steps)
        symbolic = system.capabilities.symbolic_rhs

        def rhs(y):
            return jnp.stack(symbolic([y[i] for i in range(d)]))

        x0, _ = self.start_states(system, cfg)
        ends = renorm_ends(cfg.steps, m)
        notes: List[str] = []
        cums, finals, seconds = [], [], []
        # one step function per system and dtype for this adapter: JAX compiles the scan once for each run length,
        # and later runs of that length (throughput's repeats) reuse it
        key = (system.label, dt, d, str(cfg.dtype))
        step_fn = self._step_fns.get(key)
        if step_fn is None:
            step_fn = self._step_fns[key] = lyapax.ode_step(rhs, dt, integrator="rk4")
        for b in range(cfg.batch):
            t0 = time.perf_counter()
            with collect_warnings(notes), np.errstate(all="ignore"):
                out = self.call_peer(f"lyapunov_spectrum on trajectory {cfg.first + b}", lyapax.lyapunov_spectrum,
                                     step_fn, jnp.asarray(x0[b], dtype=jnp.float64), dt, cfg.steps, k=k,
                                     renorm_every=m,
                                     seed=(cfg.seed * 1_000_003 + cfg.first + b) % 2 ** 31)
                history = np.asarray(out.history, dtype=np.float64)   # (steps / m, k): running estimates
                times = np.asarray(out.times, dtype=np.float64)
                final = np.asarray(out.exponents, dtype=np.float64)
            seconds.append(time.perf_counter() - t0)
            if not (np.all(np.isfinite(history)) and np.all(np.isfinite(final))):
                raise TrajectoryError(f"system {system.label!r}: trajectory {cfg.first + b} under lyapax ended "
                                      f"non-finite (exponents {final.tolist()})", system=system.label,
                                      trajectories=[cfg.first + b], step=cfg.transient + cfg.steps)
            cums.append((history * times[:, None])[np.asarray(ends) // m - 1])
            finals.append(final)
        res = growth_result(np.stack(cums), ends, cfg.steps, m, dt, np.stack(finals))
        # JAX compiles on the first call: its excess over the later calls' median (None with one trajectory)
        compile_seconds = max(0.0, seconds[0] - float(np.median(seconds[1:]))) if len(seconds) > 1 else None
        return self.finish(res, notes, integrates="rk4_map", renorm_every=m, first_call_seconds=round(seconds[0], 3),
                           call_seconds=[round(x, 4) for x in seconds], compile_seconds=compile_seconds,
                           peer_scheme="lyapax.lyapunov_spectrum: lyapax's RK4 step with our dt, tangents by "
                                       "jax.jvp of that step, QR every renorm_every steps")
