"""Flows with known exponents: Lorenz-63."""
from __future__ import annotations

import torch

from . import register
from ._checks import finite
from .reference import Reference
from .system import Flow

_LORENZ_STANDARD = (10.0, 28.0, 8.0 / 3.0)


def lorenz63(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0, dt: float = 0.01) -> Flow:
    """Lorenz-63: x' = sigma (y - x), y' = x (rho - z) - y, z' = x y - beta z.

    Exponents per unit time.  At (10, 28, 8/3): 0.9056, 0, -14.5723
    (Sprott, "Chaos and Time-Series Analysis", OUP 2003, table A.1; +-5e-4;
    the middle exponent is exactly 0 for an autonomous flow).  For any
    parameters the divergence is constant, so the sum of the exponents is
    -(sigma + 1 + beta) exactly (for the RK4 map: up to O(dt^4)).
    J = [[-sigma, sigma, 0], [rho - z, -1, -x], [y, x, -beta]].
    """
    sigma, rho, beta = finite("sigma", sigma), finite("rho", rho), finite("beta", beta)
    dt = finite("dt", dt, low=0.0, low_open=True)
    ref = None
    if (sigma, rho, beta) == _LORENZ_STANDARD:
        ref = Reference.make([0.9056, 0.0, -14.5723], [5e-4, 0.0, 5e-4], "literature",
                             "Sprott, Chaos and Time-Series Analysis (OUP 2003), table A.1; "
                             "the zero exponent is exact")

    def rhs(x):
        X, Y, Z = x[:, 0], x[:, 1], x[:, 2]
        return torch.stack([sigma * (Y - X), X * (rho - Z) - Y, X * Y - beta * Z], dim=1)

    def jacobian(x):
        X, Y, Z = x[:, 0], x[:, 1], x[:, 2]
        J = x.new_zeros(x.shape[0], 3, 3)
        J[:, 0, 0], J[:, 0, 1] = -sigma, sigma
        J[:, 1, 0], J[:, 1, 1], J[:, 1, 2] = rho - Z, -1.0, -X
        J[:, 2, 0], J[:, 2, 1], J[:, 2, 2] = Y, X, -beta
        return J

    def sample_initial(batch, g):
        # a box around the attractor; the transient brings states onto it
        return g.normal(3, std=5.0) + torch.tensor([0.0, 0.0, 25.0], dtype=torch.float64, device=g.device)

    return Flow("lorenz63", rhs, dim=3, dt=dt, jacobian=jacobian, reference=ref,
                sample_initial=sample_initial,
                params={"sigma": sigma, "rho": rho, "beta": beta, "dt": dt},
                divergence=-(sigma + 1.0 + beta),
                validation={"steps": 20_000, "transient": 2_000, "batch": 256})


register("lorenz63", lorenz63)
