"""Piecewise-smooth flows: x' = f(x, s), s = sign g(x), advanced by RK4 steps split at the switching surface.

    flow = SwitchedFlow("sprott_more", field, switching, dim=3, dt=0.01)
    # field(x, side) -> (B, d) with side (B,) of +-1; switching(x) -> (B,) g(x)

A step of size h whose end lies across g = 0 is split where the trajectory crosses: the crossing time tau is
located by Newton's iteration on g(Phi_tau(x)) (Phi: the RK4 step under the start's side, from the secant's
guess), the step goes on from there under the other side for h - tau, and again should it cross twice.  The
tangent frame follows the same pieces, with the saltation matrix at the crossing x_c (Aizerman & Gantmacher
1958; Leine & Nijmeijer 2004, ch. 7):

    S = I + (f_+ - f_-) grad g^T / (grad g . f_-),    f_-, f_+ the fields before and after, at x_c,

the derivative of the crossing time's dependence on the start, which a Jacobian of either side's field misses
(it is not small: it is the jump of the field over the normal speed).  det S = (grad g . f_+) / (grad g . f_-),
1 where the normal speed is continuous.  A crossing after which the new field points back to the surface is
Filippov sliding (a stick phase): with ``filippov=True`` the state then slides on the surface with Filippov's
convex combination of the fields until one of them turns away (the class docstring), the normal perturbation
annihilated on entry (the last exponent is -inf); otherwise it is a SlidingError naming the trajectories, never
stepped through.  A step that crosses twice within itself unnoticed (out and back, near a grazing contact) is
missed as any fixed step misses it; dt must resolve the crossings.  Exponents per unit time.
"""
from __future__ import annotations

from typing import Callable

import torch

from reference_systems.rk4 import rk4_step, rk4_tangent_step
from reference_systems.system import Flow, _jvp_columns
from suite.core.args import check_bool
from suite.core.errors import SlidingError

#: Newton iterations locating an event: from the secant's guess (error O(h^2)) quadratic convergence reaches
#: round-off within 3-4 at the steps used (the located states lie on g = 0 to 1e-15, tests/test_switched.py);
#: 8 leave margin
NEWTON_ITERATIONS = 8
#: the largest number of events (crossings, sticks, releases) one step may hold before the trajectory is reported
#: as chattering
MAX_CROSSINGS = 4
#: a state within this of the surface (|g|, relative to 1 + |x|_inf; 1e3 machine epsilons in float32) with both
#: fields pointing at it slides (``filippov``): a stick is entered at a located crossing, where |g| is round-off
SURFACE_TOL = 1e-10


class SwitchedFlow(Flow):
    """A flow whose vector field switches between two smooth fields across the surface g(x) = 0 (module docstring).

    ``field(x, side)``: the field of side ``side`` ((B,) of +1, -1) at states ``x`` (B, d), smooth in x for a
    fixed side; ``switching(x)``: g(x) (B,), smooth.  ``filippov``: follow Filippov sliding (a stick phase) instead
    of raising a :class:`~suite.core.errors.SlidingError`: on the surface, where both fields point at it, the
    state moves with f_s = a f_+ + (1 - a) f_-, a = grad g . f_- / grad g . (f_- - f_+), until one field turns
    away (a leaves (0, 1), located as a crossing is; the saltation matrix there is I); entering it, the saltation
    matrix I + (f_s - f_-) grad g^T / (grad g . f_-) annihilates the normal component, so lambda_d = -inf and a
    QR estimator asks for at most d - 1 exponents (grad g is held constant in f_s's Jacobian: exact for a plane,
    as every dysts surface is).  ``rhs(x)``: the field of the mode x is in.  Everything else as
    :class:`~reference_systems.Flow` (the tangent by autodiff of each mode's field)."""

    def __init__(self, name: str, field: Callable, switching: Callable, dim: int, dt: float, *,
                 filippov: bool = False, **kwargs):
        self.field, self.switching, self.filippov = field, switching, check_bool("filippov", filippov)
        # its step locates crossings with data-dependent control flow, which torch.func cannot differentiate
        kwargs.setdefault("differentiable_step", False)
        super().__init__(name, lambda x: self._mode_field(self.mode(x))(x), dim, dt, **kwargs)

    def side(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) +1 where g(x) >= 0, else -1."""
        return torch.where(self.switching(x) >= 0, 1.0, -1.0).to(x.dtype)

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) the field each state moves with: its side, or 0 where it slides (``filippov``: on the surface to
        :data:`SURFACE_TOL`, both fields pointing at it)."""
        side = self.side(x)
        if not self.filippov:
            return side
        a, b = self._normal_speeds(x)
        tol = max(SURFACE_TOL, 1e3 * torch.finfo(x.dtype).eps)  # float32: a located event is good to 1e-7
        on = self.switching(x).abs() <= tol * (1 + x.abs().amax(dim=1))
        return torch.where(on & (a < 0) & (b > 0), torch.zeros_like(side), side)

    def _normal(self, x: torch.Tensor) -> torch.Tensor:
        """grad g(x) (B, d), a constant of the graph it enters."""
        with torch.enable_grad():
            y = x.detach().requires_grad_(True)
            return torch.autograd.grad(self.switching(y).sum(), y)[0]

    def _both_sides(self, x: torch.Tensor):
        """(f_+, f_-, grad g . f_+, grad g . f_-) at x."""
        n, ones = self._normal(x), torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        f_plus, f_minus = self.field(x, ones), self.field(x, -ones)
        return f_plus, f_minus, (n * f_plus).sum(dim=1), (n * f_minus).sum(dim=1)

    def _normal_speeds(self, x: torch.Tensor):
        """(grad g . f_+, grad g . f_-) at x, each (B,)."""
        return self._both_sides(x)[2:]

    def _sliding_field(self, y: torch.Tensor, sliding: torch.Tensor) -> torch.Tensor:
        """Filippov's f_s at y, in the rows ``sliding`` (elsewhere finite, unused)."""
        f_plus, f_minus, a, b = self._both_sides(y)
        share = (b / torch.where(sliding, b - a, torch.ones_like(a))).unsqueeze(1)
        return share * f_plus + (1 - share) * f_minus

    def _mode_field(self, mode: torch.Tensor) -> Callable:
        """The field of fixed modes ``mode`` (B,), also on the (B d, d) states of a rowwise Jacobian."""
        def f(y):
            m = mode if y.shape[0] == mode.shape[0] else mode.repeat_interleave(y.shape[0] // mode.shape[0])
            sliding = m == 0
            out = self.field(y, torch.where(sliding, torch.ones_like(m), m))
            if bool(sliding.any()):
                out = torch.where(sliding.unsqueeze(1), self._sliding_field(y, sliding), out)
            return out
        return f

    def _pieces(self, mode, x, V, h):
        """An RK4 step of size h (B, 1) under ``mode``: (x, V or None)."""
        f = self._mode_field(mode)
        if V is None:
            return rk4_step(f, x, h), None
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
        return rk4_tangent_step(f, lambda y, W: torch.bmm(_jvp_columns(self._mode_field(mode), y, eye), W),
                                x, V, h)

    def _event(self, mode: torch.Tensor, x_end: torch.Tensor) -> Callable:
        """e(x) (B,), positive while a state stays in ``mode``, <= 0 past its event: m g for a side m; for a
        sliding state -grad g . f_+ (leaving to +) where that is what ``x_end`` crossed, else grad g . f_-."""
        if not bool((mode == 0).any()):
            return lambda y: mode * self.switching(y)
        a_end, _ = self._normal_speeds(x_end)
        leaves_up = a_end >= 0

        def event(y):
            a, b = self._normal_speeds(y)
            return torch.where(mode == 0, torch.where(leaves_up, -a, b), mode * self.switching(y))
        return event

    def _event_time(self, mode, x, h, event):
        """tau (B, 1) in [0, h] with event(Phi_tau(x)) = 0 under ``mode``, where event(x) > 0 >= event(Phi_h(x)):
        Newton's iteration from the secant's guess."""
        f = self._mode_field(mode)
        e0, e1 = event(x), event(rk4_step(f, x, h))
        tau = (h[:, 0] * e0 / (e0 - e1)).unsqueeze(1)
        for _ in range(NEWTON_ITERATIONS):
            y = rk4_step(f, x, tau)
            with torch.enable_grad():
                z = y.detach().requires_grad_(True)
                value = event(z)
                slope = torch.autograd.grad(value.sum(), z)[0]
            rate = (slope * f(y)).sum(dim=1)
            shift = torch.where(rate != 0, value.detach() / torch.where(rate != 0, rate, torch.ones_like(rate)), 0.0)
            tau = torch.minimum(torch.clamp(tau - shift.unsqueeze(1), min=0.0), h)
        return tau

    def _transition(self, mode, xc, rest):
        """(the new modes, the saltation matrices (B, d, d)) of states ``xc`` at their events under ``mode``: a
        side crossing the surface goes to the other side (S = I + (f_new - f_old) grad g^T / grad g . f_old), or
        to sliding where the other side's field points back (``filippov``; else a SlidingError); a sliding state
        leaves to the side whose field turned away (S = I: f_s equals that side's field there)."""
        eye = torch.eye(xc.shape[1], dtype=xc.dtype, device=xc.device).expand(xc.shape[0], -1, -1)
        a, b = self._normal_speeds(xc)
        leaving = mode == 0
        after = torch.where(leaving, torch.where(a >= 0, 1.0, -1.0).to(xc.dtype), -mode)
        back = ~leaving & (after * torch.where(after > 0, a, b) <= 0)
        if bool(back.any()) and not self.filippov:
            raise SlidingError(
                f"system {self.label!r}: trajectories {rest[back].tolist()} enter Filippov sliding on the "
                "switching surface (the field beyond it points back): a stick phase, where the normal "
                "perturbation is annihilated (lambda_d = -inf); not stepped through (SwitchedFlow(filippov=True) "
                "follows it)", system=self.label, trajectories=rest[back].tolist())
        new = torch.where(back, torch.zeros_like(after), after)
        n = self._normal(xc)
        f_old, f_new = self._mode_field(torch.where(leaving, after, mode))(xc), self._mode_field(new)(xc)
        speed = torch.where(leaving, torch.ones_like(a), (n * f_old).sum(dim=1))
        jump = torch.where(leaving.unsqueeze(1), torch.zeros_like(f_new), f_new - f_old)
        return new, eye + jump.unsqueeze(2) * n.unsqueeze(1) / speed[:, None, None]

    def _onto_surface(self, x, sliding):
        """Sliding states projected back onto g = 0 along grad g (one Newton step: round-off for a plane)."""
        if not bool(sliding.any()):
            return x
        n = self._normal(x)
        shift = (self.switching(x) / (n * n).sum(dim=1)).unsqueeze(1) * n
        return torch.where(sliding.unsqueeze(1), x - shift, x)

    def _advance(self, x, V):
        """One step of x (and V, if given) with its events (crossings, sticks, releases) split; (x, V)."""
        mode = self.mode(x)
        B = x.shape[0]
        h = torch.full((B, 1), self.dt, dtype=x.dtype, device=x.device)
        rest = torch.arange(B, device=x.device)
        out_x, out_V = x.clone(), None if V is None else V.clone()
        for events in range(MAX_CROSSINGS + 1):
            nx, nV = self._pieces(mode, x, V, h)
            nx = self._onto_surface(nx, mode == 0)
            if bool((mode == 0).any()):
                a, b = self._normal_speeds(nx)
                ended = torch.where(mode == 0, (a >= 0) | (b <= 0), self.side(nx) != mode)
            else:
                ended = self.side(nx) != mode
            done = ~ended
            out_x[rest[done]] = nx[done]
            if V is not None:
                out_V[rest[done]] = nV[done]
            if not bool(ended.any()):
                return out_x, out_V
            if events == MAX_CROSSINGS:
                break
            rest, x, mode, h, nx = rest[ended], x[ended], mode[ended], h[ended], nx[ended]
            V = None if V is None else V[ended]
            tau = self._event_time(mode, x, h, self._event(mode, nx))
            xc, V = self._pieces(mode, x, V, tau)
            xc = self._onto_surface(xc, mode == 0)
            mode, S = self._transition(mode, xc, rest)
            xc = self._onto_surface(xc, mode == 0)
            if V is not None:
                V = torch.bmm(S, V)
            x, h = xc, h - tau
        raise SlidingError(f"system {self.label!r}: trajectories {rest.tolist()} met more than {MAX_CROSSINGS} "
                           f"events (crossings, sticks, releases) within one step of {self.dt:g} (chattering: "
                           "sliding that is not followed, or a step too coarse for the crossings)",
                           system=self.label, trajectories=rest.tolist())

    def _step(self, x, generator):
        return self._advance(x, None)[0]

    def _tangent(self, x, V, generator):
        return self._advance(x, V)

    def field_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Df(x) of the mode x is in (B, d, d), by autodiff."""
        self._check_state(x)
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], self.dim, self.dim)
        return _jvp_columns(self._mode_field(self.mode(x)), x, eye)
