"""A shared assertion for random systems: a batch of B trajectories equals B single runs."""
import numpy as np
import torch

from reference_systems import TrajectoryRNG
from suite import estimators


def assert_batch_equals_single_runs(system, *, B: int = 4, k: int = 3, steps: int = 12, singles=None):
    """State and tangent stepped for a batch of B equal those of each single run ``first=b`` (same seed,
    same initial frames), and so does ``qr`` through ``seed=(seed, b)`` for the trajectories ``singles``.
    Returns the batch's final states."""
    V0 = torch.randn(B, system.dim, k, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def run(g, x, V):
        for _ in range(steps):
            x, V = system.tangent(x, V, g)
        return x, V
    gB = TrajectoryRNG(11, B)
    xB, VB = run(gB, system.sample_initial(B, gB), V0)
    for b in range(B):
        g1 = TrajectoryRNG(11, 1, first=b)
        x1, V1 = run(g1, system.sample_initial(1, g1), V0[b:b + 1])
        assert torch.allclose(x1, xB[b:b + 1], rtol=1e-12, atol=1e-13)
        assert torch.allclose(V1, VB[b:b + 1], rtol=1e-10, atol=1e-12)
    qr = estimators.get("qr")
    rB = qr.estimate(system, steps, transient=2, batch=B, k=2, seed=5)
    for b in (singles if singles is not None else (0, B - 1)):
        r1 = qr.estimate(system, steps, transient=2, batch=1, k=2, seed=(5, b))
        np.testing.assert_allclose(r1.per_trajectory[0], rB.per_trajectory[b], rtol=1e-9, atol=1e-12)
    return xB
