"""Route two of a switched flow: scipy's adaptive DOP853 on the variational equations, its crossings (and sticks
and releases) located by scipy's event finder, the saltation matrix applied there (the dysts references' second
route where jitcode, without events, cannot go)."""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from reference_systems import System
from reference_systems.switched import SURFACE_TOL, SwitchedFlow
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
    written out here (:mod:`reference_systems.switched` steps and differentiates its RK4 pieces instead).  A
    crossing into Filippov sliding is followed where the flow is ``filippov`` (Filippov's f_s and its symbolic
    Jacobian until grad g . f_+ or grad g . f_- passes 0, an event too; S = I + (f_s - f_-) grad g^T /
    (grad g . f_-) on entry, I at the release), else a SlidingError.  Start, alignment over the transient and result as
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
        """(field, jacobian, speeds, g, grad g): numpy functions of (y, mode) (a side +-1, or 0 sliding: Filippov's
        f_s = (b f_+ - a f_-) / (b - a)) and of y ((a, b) = grad g . f_+-), from the flow's symbolic renderings
        (``meta['symbolic_sided_rhs'](ys, side)``, ``meta['symbolic_switching'](ys)``)."""
        se = self.peer()
        d, meta = system.dim, system.meta
        y, side = se.symbols(f"y0:{d}"), se.Symbol("side")
        sided = lambda s: list(meta["symbolic_sided_rhs"](list(y), s))  # noqa: E731
        g = meta["symbolic_switching"](list(y))
        normal = [se.diff(g, yj) for yj in y]
        f_plus, f_minus = sided(1), sided(-1)
        a = sum(n * f for n, f in zip(normal, f_plus))
        b = sum(n * f for n, f in zip(normal, f_minus))
        args, f = list(y) + [side], sided(side)

        def jacobian(fs):
            return [[se.diff(fi, yj) for yj in y] for fi in fs]
        on_side = (se.Lambdify(args, f), se.Lambdify(args, jacobian(f)))
        # Filippov's f_s only where sliding is followed (mode 0 arises nowhere else); elsewhere b - a may be 0
        # identically (a normal speed continuous across the surface, FluidTrampoline's x' = y)
        slides = None
        if system.filippov:
            sliding = [(b * p - a * q) / (b - a) for p, q in zip(f_plus, f_minus)]
            slides = (se.Lambdify(list(y), sliding), se.Lambdify(list(y), jacobian(sliding)))
        speeds, gfun, grad = se.Lambdify(list(y), [a, b]), se.Lambdify(list(y), [g]), se.Lambdify(list(y), normal)

        def field(x, mode):
            return np.asarray(slides[0](x) if mode == 0 else on_side[0](np.append(x, mode)), float).ravel()

        def jac(x, mode):
            return np.asarray(slides[1](x) if mode == 0 else on_side[1](np.append(x, mode)), float).reshape(d, d)
        return (field, jac, lambda x: np.asarray(speeds(x), float).ravel(),
                lambda x: float(np.asarray(gfun(x)).ravel()[0]), lambda x: np.asarray(grad(x), float).ravel())

    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        from scipy.integrate import solve_ivp
        self.check_config(system, cfg)
        k, dt, m, d = cfg.k, system.dt, self.renorm_every, system.dim
        t0 = time.perf_counter()
        field, jac, speeds, g, grad = self._functions(system)
        build_seconds = time.perf_counter() - t0
        x0, frames, aligned = self._start(system, cfg)
        ends = renorm_ends(cfg.steps, m)
        notes: List[str] = []
        cums, finals, events = [], [], 0

        def start_mode(y):
            a, b = speeds(y)
            on = abs(g(y)) <= SURFACE_TOL * (1 + np.abs(y).max())
            return 0.0 if system.filippov and on and a < 0 < b else (1.0 if g(y) >= 0 else -1.0)

        def advance(b, y, V, mode, t, t_end):
            """State and frame from t to t_end, events handled; (y, V, mode, events)."""
            n = 0
            while True:
                def rhs(_, z, mode=mode):
                    x, W = z[:d], z[d:].reshape(d, k)
                    return np.concatenate([field(x, mode), (jac(x, mode) @ W).ravel()])

                def crossing(_, z):
                    return g(z[:d])

                def releases_up(_, z):  # grad g . f_+ rising through 0: f_+ turns away
                    return speeds(z[:d])[0]

                def releases_down(_, z):
                    return speeds(z[:d])[1]
                crossing.terminal, crossing.direction = True, -mode
                releases_up.terminal, releases_up.direction = True, 1
                releases_down.terminal, releases_down.direction = True, -1
                watched = [releases_up, releases_down] if mode == 0 else [crossing]
                out = solve_ivp(rhs, (t, t_end), np.concatenate([y, V.ravel()]), method="DOP853", rtol=self.rtol,
                                atol=self.atol, events=watched)
                if out.status == -1 or not np.all(np.isfinite(out.y[:, -1])):
                    raise TrajectoryError(f"system {system.label!r}: trajectory {cfg.first + b} under "
                                          f"{self.name}: the integration failed before t = {t_end:g} "
                                          f"({out.message})", system=system.label, trajectories=[cfg.first + b])
                if out.status == 0:
                    z = out.y[:, -1]
                    return z[:d].copy(), z[d:].reshape(d, k).copy(), mode, n
                fired = next(i for i, e in enumerate(out.t_events) if len(e))
                z, t, n = out.y_events[fired][0], float(out.t_events[fired][0]), n + 1
                y, V = z[:d].copy(), z[d:].reshape(d, k).copy()
                if mode == 0:  # released: f_s is the side's field there, S = I
                    mode = 1.0 if fired == 0 else -1.0
                else:
                    after, (a, b_) = -mode, speeds(y)
                    new = 0.0 if after * (a if after > 0 else b_) <= 0 else after
                    if new == 0 and not system.filippov:
                        raise SlidingError(f"system {system.label!r}: trajectory {cfg.first + b} enters Filippov "
                                           f"sliding at t = {t:g} under {self.name} (lambda_d = -inf)",
                                           system=system.label, trajectories=[cfg.first + b])
                    normal, before = grad(y), field(y, mode)
                    V = V + np.outer(field(y, new) - before, normal @ V) / float(normal @ before)
                    mode = new
                if t >= t_end:
                    return y, V, mode, n

        for b in range(cfg.batch):
            y, V = x0[b], frames[b]
            mode = start_mode(y)
            t, total, cum = 0.0, np.zeros(k), np.zeros((ends.size, k))
            with collect_warnings(notes), np.errstate(all="ignore"):
                for j, e in enumerate(list(renorm_ends(aligned, m)) if aligned else []):
                    y, V, mode, n = advance(b, y, V, mode, t, float(e) * dt)
                    V, _ = np.linalg.qr(V)
                    t = float(e) * dt
                for j, e in enumerate(ends):
                    t_end = float(aligned + e) * dt
                    y, V, mode, n = advance(b, y, V, mode, t, t_end)
                    events += n
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
                           events=events, build_seconds=build_seconds,
                           peer_scheme="solve_ivp's adaptive DOP853 on the flow and its variational equation, the "
                                       "switching surface an event, the saltation matrix at each crossing")

