"""lyapynov (Savary): Benettin/QR Lyapunov spectrum of a system given as f and its Jacobian."""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from reference_systems import System
from suite.core.errors import InvalidArgumentError, TrajectoryError
from suite.core.result import LyapunovResult
from suite.estimators.base import RunConfig
from suite.peers.base import OneTrajectory, PeerEstimator, collect_warnings, growth_result, renorm_ends

INTEGRATORS = ("lyapynov", "system")


class LyapynovLCE(PeerEstimator):
    """The k largest exponents by ``lyapynov.LCE`` (QR every step, Benettin / Shimada-Nagashima).

    Each trajectory (our ``sample_initial``, our transient) is wrapped as a
    lyapynov system of numpy functions around the torch system, and
    ``lyapynov.LCE(system, p=k, n_forward=0, n_compute=steps, keep=True)`` runs
    it: the frame starts at the first k columns of the identity, is advanced one
    step, QR-decomposed, and ln|R_jj| summed; lyapynov divides by
    ``n_compute * dt``, so with our ``dt`` the exponents are already in natural
    log, per unit time for flows and per step for maps (dt = 1).

    Parameters
    ----------
    integrator : 'lyapynov' or 'system' (flows only)
        'lyapynov' (default): ``lyapynov.ContinuousDS`` with the vector field and
        its Jacobian: the state by lyapynov's RK4 with our dt (our trajectory up
        to round-off), the tangent by RK4 of W' = J(x_n) W with the Jacobian
        frozen at the start of the step, a first-order scheme (docs/design.md,
        "known traps"; <= 1.0e-4 on Lorenz-63 at dt = 0.01, growing like dt).
        'system': ``lyapynov.DiscreteDS`` over the system's RK4 map and its
        exact Jacobian: lyapynov's QR loop on exactly the suite's tangent map.

    Maps always use ``DiscreteDS``; a random map draws one noise sample per step,
    shared by the state and the Jacobian.  Standard errors across trajectories
    (B > 1) or from batch means of lyapynov's running sums (B = 1).  Every call
    goes through torch on one state, so it is slow (tens of microseconds per
    function call).  See docs/estimators.md.
    """

    name = "lyapynov_lce"
    package = "lyapynov"
    requires = "tangent"

    def __init__(self, integrator: str = "lyapynov"):
        if integrator not in INTEGRATORS:
            raise InvalidArgumentError("integrator", integrator, " or ".join(map(repr, INTEGRATORS)))
        self.integrator = integrator

    def not_applicable(self, system: System) -> Optional[str]:
        if system.kind == "flow" and self.integrator == "lyapynov" and not callable(getattr(system, "rhs", None)):
            return f"{self.name} (integrator='lyapynov') needs the flow's vector field rhs"
        return super().not_applicable(system)

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        self.check_config(system, cfg)
        lyapynov = self.peer()
        x0, rng = self.start_states(system, cfg)
        k, d, dt = cfg.k, system.dim, system.dt
        interval = max(1, cfg.steps // 1000)   # checkpoints of lyapynov's running sums
        ends = renorm_ends(cfg.steps, interval)
        continuous = system.kind == "flow" and self.integrator == "lyapynov"
        notes: List[str] = []
        finals, cums = [], []
        for b in range(cfg.batch):
            one = OneTrajectory(system, rng.subset([b]) if system.is_random else None)
            if continuous:
                ds = lyapynov.ContinuousDS(x0[b].copy(), 0.0, lambda x, t: one.rhs(x),
                                           lambda x, t: one.rhs_jacobian(x), dt)
            else:
                def jac(x, t, one=one):
                    J = one.tangent(x)[1]
                    return J.reshape(1) if d == 1 else J  # lyapynov's DiscreteDS wants a (1,) Jacobian in 1-D
                ds = lyapynov.DiscreteDS(x0[b].copy(), 0.0, lambda x, t, one=one: one.step(x), jac, dt)
            with collect_warnings(notes), np.errstate(all="ignore"):
                final, hist = self.call_peer(f"LCE on trajectory {cfg.first + b}", lyapynov.LCE,
                                             ds, k, 0, cfg.steps, True)
            x_end = np.asarray(ds.x, dtype=np.float64)
            final = np.asarray(final, dtype=np.float64).reshape(k)
            if not (np.all(np.isfinite(x_end)) and np.all(np.isfinite(final)) and np.all(np.isfinite(hist))):
                raise TrajectoryError(
                    f"system {system.label!r}: trajectory {cfg.first + b} under lyapynov ended non-finite "
                    f"(state {x_end.tolist()}, exponents {final.tolist()})", system=system.label,
                    trajectories=[cfg.first + b], step=cfg.transient + cfg.steps)
            finals.append(final)
            cums.append(np.asarray(hist)[ends - 1] * (ends * dt)[:, None])
        res = growth_result(np.stack(cums), ends, cfg.steps, interval, dt, np.stack(finals))
        how = ("lyapynov.ContinuousDS: lyapynov's RK4, tangent with the Jacobian frozen at the step's start"
               if continuous else "lyapynov.DiscreteDS over the system's step and its exact one-step Jacobian")
        # ContinuousDS moves the state by classical RK4 with the system's dt: the same map as ours
        integrates = "rk4_map" if system.kind == "flow" else "map"
        return self.finish(res, notes, peer_scheme=how, integrates=integrates)
