"""Products of random Gaussian matrices (Newman 1986): an exact spectrum."""
from __future__ import annotations

import numpy as np
import torch
from scipy.special import digamma

from suite.core.args import check_int, check_number
from reference_systems.reference import Reference
from reference_systems.registry import register
from reference_systems.system import Map


def newman_spectrum(N: int, sigma: float) -> np.ndarray:
    """lambda_i = 1/2 [ln(2 sigma^2) + psi((N - i + 1)/2)], i = 1..N (natural log, per step)."""
    i = np.arange(1, N + 1)
    return 0.5 * (np.log(2.0 * sigma ** 2) + digamma((N - i + 1) / 2.0))


def gaussian_products(N: int = 8, sigma: float = 1.0) -> Map:
    """Products M_T ... M_2 M_1 of iid N x N matrices with iid N(0, sigma^2) entries.

    A random dynamical system x_{t+1} = M_t x_t with fresh M_t every step,
    drawn per trajectory.  Exact spectrum (Newman, "The distribution of
    Lyapunov exponents: exact results for random matrices", Commun. Math.
    Phys. 103, 121 (1986)):

        lambda_i = 1/2 [ln(2 sigma^2) + psi((N - i + 1)/2)],  i = 1..N.

    By rotation invariance, M_t Q has iid Gaussian entries for any
    orthonormal Q, so the QR diagonal satisfies R_ii^2 ~ sigma^2 chi^2_{N-i+1},
    independently at every step: the QR estimate over T steps is unbiased for
    every T (bias_nats = 0) with variance psi'((N - i + 1)/2) / (4 T).
    The state stays at the fixed point 0, where the tangent map is M_t.
    """
    N = check_int("N", N, 1)
    sigma = check_number("sigma", sigma, low=0.0, low_open=True)
    ref = Reference(newman_spectrum(N, sigma), np.zeros(N), "exact",
                    "Newman, Commun. Math. Phys. 103, 121 (1986)", bias_nats=0.0)

    def noise(g, x):
        return g.normal(N, N, std=sigma, dtype=x.dtype)

    return Map("gaussian_products", step=lambda x, M: torch.bmm(M, x.unsqueeze(-1)).squeeze(-1), dim=N,
               jacobian=lambda x, M: M, noise=noise, reference=ref,
               sample_initial=lambda batch, g: torch.zeros(batch, N, dtype=torch.float64, device=g.device),
               params={"N": N, "sigma": sigma},
               # the noise (B N^2 normals a step) dominates the cost: fewer trajectories for large N
               validation={"steps": 5_000 if N <= 8 else 2_000, "transient": 0, "batch": 64 if N <= 8 else 16})


register("gaussian_products", gaussian_products, variants=[{"N": 2}, {"N": 8}, {"N": 32}])
