"""Route two of a switched flow: scipy's adaptive DOP853 on the variational equations, its crossings located by
scipy's event finder, the saltation matrix applied there (the dysts references' second route where jitcode,
without events, cannot go)."""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from reference_systems import System
from reference_systems.switched import SwitchedFlow
from suite.core.args import check_int, check_positive
from suite.core.errors import SlidingError, TrajectoryError
from suite.core.result import LyapunovResult
from suite.estimators.base import RunConfig
from suite.peers.base import collect_warnings, growth_result, renorm_ends
from suite.peers.jitcode_adapter import JitcodeLyap


class ScipyEventsLyap(JitcodeLyap):
    """The k largest exponents of a :class:`~reference_systems.switched.SwitchedFlow` by
    ``scipy.integrate.solve_ivp`` (DOP853, ``rtol`` = ``atol`` = 1e-10) on the state and the variational
    equation V' = Df(x, side) V, each side's Jacobian Df from the symbolic rendering (SymEngine, differentiated
    symbolically, evaluated by ``Lambdify``), the switching surface g(x) = 0 a terminal event (scipy's root
    finder); at each crossing V <- S V with the saltation matrix S = I + (f_+ - f_-) grad g^T / (grad g . f_-)
    written out here (:mod:`reference_systems.switched` steps and differentiates its RK4 pieces instead), and a
    crossing into Filippov sliding is a TrajectoryError.  Start, alignment over the transient and result as
    :class:`~suite.peers.jitcode_adapter.JitcodeLyap`'s: ``qr()``'s starts and frame, the transient's first
    ``transient - align`` steps by RK4 on the state alone, the frame aligned over the rest; QR every
    ``renorm_every`` * dt time units.  Exponents per unit time.  Needs SymEngine (the ``peers`` extra)."""

    name = "scipy_events_lyap"
    package = "symengine"

    def __init__(self, rtol: float = 1e-10, atol: float = 1e-10, renorm_every: int = 100,
                 align: Optional[int] = None):
        self.rtol, self.atol = check_positive("rtol", rtol), check_positive("atol", atol)
        self.renorm_every = check_int("renorm_every", renorm_every, 1)
        self.align = check_int("align", align, 0, allow_none=True,
                               allowed="None (the whole transient) or an integer >= 0 (transient steps)")
        self.integrator = "DOP853"

    def not_applicable(self, system: System) -> Optional[str]:
        if not isinstance(system, SwitchedFlow):
            return f"{self.name} integrates a switched flow (reference_systems.SwitchedFlow); {system.name!r} is not"
        if not {"symbolic_sided_rhs", "symbolic_switching"} <= set(system.meta):
            return (f"{self.name} needs each side's symbolic field and the switching function "
                    "(meta['symbolic_sided_rhs'], meta['symbolic_switching'])")
        return None

    def _functions(self, system: System):
        """(field, jacobian, g, grad g), numpy functions of (y, side) and y, from the flow's symbolic renderings
        (``meta['symbolic_sided_rhs'](ys, side)``, ``meta['symbolic_switching'](ys)``)."""
        se = self.peer()
        d, meta = system.dim, system.meta
        y, side = se.symbols(f"y0:{d}"), se.Symbol("side")
        f, g = list(meta["symbolic_sided_rhs"](list(y), side)), meta["symbolic_switching"](list(y))
        args = list(y) + [side]
        field = se.Lambdify(args, f)
        jac = se.Lambdify(args, [[se.diff(fi, yj) for yj in y] for fi in f])
        gfun = se.Lambdify(args, [g])
        grad = se.Lambdify(args, [se.diff(g, yj) for yj in y])
        return (lambda x, s: np.asarray(field(np.append(x, s)), float).ravel(),
                lambda x, s: np.asarray(jac(np.append(x, s)), float).reshape(d, d),
                lambda x: float(np.asarray(gfun(np.append(x, 0.0))).ravel()[0]),
                lambda x: np.asarray(grad(np.append(x, 0.0)), float).ravel())

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        from scipy.integrate import solve_ivp
        self.check_config(system, cfg)
        k, dt, m, d = cfg.k, system.dt, self.renorm_every, system.dim
        t0 = time.perf_counter()
        field, jac, g, grad = self._functions(system)
        build_seconds = time.perf_counter() - t0
        x0, frames, aligned = self._start(system, cfg)
        ends = renorm_ends(cfg.steps, m)
        notes: List[str] = []
        cums, finals, crossings = [], [], 0

        def advance(b, y, V, side, t, t_end):
            """State and frame from t to t_end, crossings handled; (y, V, side, crossings)."""
            n = 0
            while True:
                def rhs(_, z, s=side):
                    x, W = z[:d], z[d:].reshape(d, k)
                    return np.concatenate([field(x, s), (jac(x, s) @ W).ravel()])

                def event(_, z):
                    return g(z[:d])
                event.terminal, event.direction = True, -side
                out = solve_ivp(rhs, (t, t_end), np.concatenate([y, V.ravel()]), method="DOP853", rtol=self.rtol,
                                atol=self.atol, events=event)
                if out.status == -1 or not np.all(np.isfinite(out.y[:, -1])):
                    raise TrajectoryError(f"system {system.label!r}: trajectory {cfg.first + b} under "
                                          f"{self.name}: the integration failed before t = {t_end:g} "
                                          f"({out.message})", system=system.label, trajectories=[cfg.first + b])
                z = out.y[:, -1] if out.status == 0 else out.y_events[0][0]
                y, V = z[:d].copy(), z[d:].reshape(d, k).copy()
                if out.status == 0:
                    return y, V, side, n
                t, n = float(out.t_events[0][0]), n + 1
                normal = grad(y)
                before, after = field(y, side), field(y, -side)
                if -side * float(normal @ after) <= 0:
                    raise SlidingError(f"system {system.label!r}: trajectory {cfg.first + b} enters Filippov "
                                          f"sliding at t = {t:g} under {self.name} (lambda_d = -inf)",
                                          system=system.label, trajectories=[cfg.first + b])
                V = V + np.outer(after - before, normal @ V) / float(normal @ before)
                side = -side
                if t >= t_end:
                    return y, V, side, n

        for b in range(cfg.batch):
            y, V = x0[b], frames[b]
            side = 1.0 if g(y) >= 0 else -1.0
            t, total, cum = 0.0, np.zeros(k), np.zeros((ends.size, k))
            with collect_warnings(notes), np.errstate(all="ignore"):
                for j, e in enumerate(list(renorm_ends(aligned, m)) if aligned else []):
                    y, V, side, n = advance(b, y, V, side, t, float(e) * dt)
                    V, _ = np.linalg.qr(V)
                    t = float(e) * dt
                for j, e in enumerate(ends):
                    t_end = float(aligned + e) * dt
                    y, V, side, n = advance(b, y, V, side, t, t_end)
                    crossings += n
                    V, r = np.linalg.qr(V)
                    growth = np.log(np.abs(np.diag(r)))
                    if not np.all(np.isfinite(growth)):
                        raise TrajectoryError(f"system {system.label!r}: trajectory {cfg.first + b}'s frame "
                                              f"degenerated under {self.name} at t = {t_end:g}",
                                              system=system.label, trajectories=[cfg.first + b])
                    total = total + growth
                    cum[j], t = total, t_end
            cums.append(cum)
            finals.append(total / (cfg.steps * dt))
        res = growth_result(np.stack(cums), ends, cfg.steps, m, dt, np.stack(finals))
        return self.finish(res, notes, integrates="flow", integrator="DOP853 (scipy.integrate.solve_ivp)",
                           rtol=self.rtol, atol=self.atol, renorm_interval=m * dt, aligned_steps=aligned,
                           crossings=crossings, build_seconds=build_seconds,
                           peer_scheme="solve_ivp's adaptive DOP853 on the flow and its variational equation, the "
                                       "switching surface an event, the saltation matrix at each crossing")

