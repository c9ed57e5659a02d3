"""The one integrator: a fixed-step classical Runge-Kutta (RK4) step and its
exact derivative.

For x' = f(x) and step size h,

    k1 = f(x),  k2 = f(x + h/2 k1),  k3 = f(x + h/2 k2),  k4 = f(x + h k3),
    Phi(x) = x + h/6 (k1 + 2 k2 + 2 k3 + k4).

The tangent map is the derivative of the same discrete step, dPhi(x) V, by
the chain rule through the stages (no separate variational ODE, no Jacobian
frozen at the start of the step):

    K1 = J(x) V,  K2 = J(x + h/2 k1)(V + h/2 K1),
    K3 = J(x + h/2 k2)(V + h/2 K2),  K4 = J(x + h k3)(V + h K3),
    dPhi(x) V = V + h/6 (K1 + 2 K2 + 2 K3 + K4).

So the exponents computed are exactly those of the RK4 map divided by h,
which differ from the flow's by O(h^4).
"""
from __future__ import annotations

from typing import Callable, Union

import torch

Rhs = Callable[[torch.Tensor], torch.Tensor]
# jvp(y, W) -> J(y) @ W with y (B, d) and W (B, d, k)
Jvp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rk4_step(f: Rhs, x: torch.Tensor, h: Union[float, torch.Tensor]) -> torch.Tensor:
    """One step of size ``h``: a number, or a (B, 1) tensor giving each trajectory its own."""
    k1 = f(x)
    k2 = f(x + 0.5 * h * k1)
    k3 = f(x + 0.5 * h * k2)
    k4 = f(x + h * k3)
    return _combine(x, k1, k2, k3, k4, h)


def _combine(x: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, k3: torch.Tensor, k4: torch.Tensor,
             h: Union[float, torch.Tensor]) -> torch.Tensor:
    """x + h/6 (k1 + 2 k2 + 2 k3 + k4) in five torch ops instead of seven (for small systems
    each op's fixed cost is most of its time).  Only the exact factor 2 goes into a fused
    add: torch's vectorised ``add(..., alpha)`` may round a * b + c once (FMA) where its
    scalar tail rounds twice, which would make a trajectory's bits depend on its place in
    the batch; a product by 2 is exact, so both paths agree."""
    acc = torch.add(k1, k2, alpha=2.0)
    acc.add_(k3, alpha=2.0).add_(k4)
    return x + (h / 6.0) * acc


def rk4_tangent_step(f: Rhs, jvp: Jvp, x: torch.Tensor, V: torch.Tensor, h: Union[float, torch.Tensor]):
    """Advance the state and the tangent vectors V (B, d, k) by one RK4 step (``h`` as :func:`rk4_step`'s)."""
    hV = h.unsqueeze(-1) if isinstance(h, torch.Tensor) else h
    k1 = f(x)
    K1 = jvp(x, V)
    y2 = x + 0.5 * h * k1
    k2 = f(y2)
    K2 = jvp(y2, V + 0.5 * hV * K1)
    y3 = x + 0.5 * h * k2
    k3 = f(y3)
    K3 = jvp(y3, V + 0.5 * hV * K2)
    y4 = x + h * k3
    k4 = f(y4)
    K4 = jvp(y4, V + hV * K3)
    return _combine(x, k1, k2, k3, k4, h), _combine(V, K1, K2, K3, K4, hV)
