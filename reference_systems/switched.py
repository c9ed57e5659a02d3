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
Filippov sliding (a stick phase), where the normal perturbation is annihilated and the spectrum's last exponent
is -inf: reported as a TrajectoryError naming the trajectories, never stepped through.  A step that crosses
twice within itself unnoticed (out and back) is missed as any fixed step misses it; dt must resolve the
crossings.  Exponents per unit time.
"""
from __future__ import annotations

from typing import Callable

import torch

from reference_systems.rk4 import rk4_step, rk4_tangent_step
from reference_systems.system import Flow, _jvp_columns
from suite.core.errors import SlidingError

#: Newton iterations locating a crossing: from the secant's guess (error O(h^2)) quadratic convergence reaches
#: round-off within 3-4 at the steps used; 8 leave margin, and a crossing left unconverged is reported
NEWTON_ITERATIONS = 8
#: the largest number of crossings one step may hold before the trajectory is reported as chattering (sliding)
MAX_CROSSINGS = 4


class SwitchedFlow(Flow):
    """A flow whose vector field switches between two smooth fields across the surface g(x) = 0 (module docstring).

    ``field(x, side)``: the field of side ``side`` ((B,) of +1, -1) at states ``x`` (B, d), smooth in x for a
    fixed side; ``switching(x)``: g(x) (B,), smooth.  ``rhs(x)`` = field(x, sign g(x)).  Everything else as
    :class:`~reference_systems.Flow` (the tangent by autodiff of each side's field)."""

    def __init__(self, name: str, field: Callable, switching: Callable, dim: int, dt: float, **kwargs):
        self.field, self.switching = field, switching
        # its step locates crossings with data-dependent control flow, which torch.func cannot differentiate
        kwargs.setdefault("differentiable_step", False)
        super().__init__(name, lambda x: field(x, self.side(x)), dim, dt, **kwargs)

    def side(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) +1 where g(x) >= 0, else -1."""
        return torch.where(self.switching(x) >= 0, 1.0, -1.0).to(x.dtype)

    def _sided(self, side: torch.Tensor) -> Callable:
        """The field of fixed sides ``side`` (B,), also on the (B d, d) states of a rowwise Jacobian."""
        def f(y):
            s = side if y.shape[0] == side.shape[0] else side.repeat_interleave(y.shape[0] // side.shape[0])
            return self.field(y, s)
        return f

    def _normal(self, x: torch.Tensor) -> torch.Tensor:
        """grad g(x) (B, d)."""
        with torch.enable_grad():
            y = x.detach().requires_grad_(True)
            return torch.autograd.grad(self.switching(y).sum(), y)[0]

    def _crossing_time(self, x, side, h):
        """tau (B, 1) in (0, h] with g(Phi_tau(x)) = 0 under ``side``, where g(x) and g(Phi_h(x)) differ in sign."""
        f = self._sided(side)
        g0, g1 = self.switching(x), self.switching(rk4_step(f, x, h))
        tau = (h[:, 0] * g0 / (g0 - g1)).unsqueeze(1)
        for _ in range(NEWTON_ITERATIONS):
            y = rk4_step(f, x, tau)
            speed = (self._normal(y) * f(y)).sum(dim=1)
            tau = torch.minimum(torch.clamp(tau - (self.switching(y) / speed).unsqueeze(1), min=0.0), h)
        return tau

    def _saltation(self, xc, before, after):
        """S (B, d, d) at crossing states ``xc`` from the field of side ``before`` to ``after``."""
        n = self._normal(xc)
        f_minus, f_plus = self.field(xc, before), self.field(xc, after)
        eye = torch.eye(xc.shape[1], dtype=xc.dtype, device=xc.device)
        return eye + (f_plus - f_minus).unsqueeze(2) * n.unsqueeze(1) / (n * f_minus).sum(dim=1)[:, None, None]

    def _advance(self, x, V):
        """One step of x (and V, if given) with the crossings split; (x, V)."""
        side = self.side(x)
        B = x.shape[0]
        h = torch.full((B, 1), self.dt, dtype=x.dtype, device=x.device)
        rest = torch.arange(B, device=x.device)
        out_x, out_V = x.clone(), None if V is None else V.clone()
        for crossings in range(MAX_CROSSINGS + 1):
            f = self._sided(side)
            if V is None:
                nx, nV = rk4_step(f, x, h), None
            else:
                nx, nV = rk4_tangent_step(f, lambda y, W: _jvp_columns(self._sided(side), y, W), x, V, h)
            crossed = self.side(nx) != side
            done = ~crossed
            out_x[rest[done]] = nx[done]
            if V is not None:
                out_V[rest[done]] = nV[done]
            if not bool(crossed.any()):
                return out_x, out_V
            if crossings == MAX_CROSSINGS:
                break
            rest, x, side, h = rest[crossed], x[crossed], side[crossed], h[crossed]
            V = None if V is None else V[crossed]
            tau = self._crossing_time(x, side, h)
            f = self._sided(side)
            if V is None:
                xc = rk4_step(f, x, tau)
            else:
                xc, V = rk4_tangent_step(f, lambda y, W: _jvp_columns(self._sided(side), y, W), x, V, tau)
            after = -side
            n = self._normal(xc)
            sliding = (n * self.field(xc, after)).sum(dim=1) * after <= 0
            if bool(sliding.any()):
                raise SlidingError(
                    f"system {self.label!r}: trajectories {rest[sliding].tolist()} enter Filippov sliding on the "
                    "switching surface (the field beyond it points back): a stick phase, where the normal "
                    "perturbation is annihilated (lambda_d = -inf); not stepped through", system=self.label,
                    trajectories=rest[sliding].tolist())
            if V is not None:
                V = torch.bmm(self._saltation(xc, side, after), V)
            x, side, h = xc, after, h - tau
        raise SlidingError(f"system {self.label!r}: trajectories {rest.tolist()} crossed the switching surface "
                              f"more than {MAX_CROSSINGS} times within one step of {self.dt:g} (chattering: "
                              "sliding, or a step too coarse for the crossings)", system=self.label,
                              trajectories=rest.tolist())

    def _step(self, x, generator):
        return self._advance(x, None)[0]

    def _tangent(self, x, V, generator):
        return self._advance(x, V)

    def field_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Df(x) of the side x lies on (B, d, d), by autodiff."""
        self._check_state(x)
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], self.dim, self.dim)
        return _jvp_columns(self._sided(self.side(x)), x, eye)
