"""Deliberately wrong estimators, used as plug-ins (module:attr) by the compare tests, and a plain-class QR
(no Estimator base) with two optional faults."""
import numpy as np
import torch

import reference_systems as rs
from suite.core.result import LyapunovResult
from suite.estimators import QREstimator


class Transposed(QREstimator):
    """Propagates tangents with J^T instead of J: the classic orientation bug."""
    name = "transposed"

    def _advance(self, system, x, Q, rng):
        eye = torch.eye(system.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1).contiguous()
        x_next, J = system.tangent(x, eye, rng)
        return x_next, J.transpose(1, 2) @ Q


class FrozenJacobian(QREstimator):
    """Advances the tangent frame of a flow with the Jacobian frozen at the start of each step.

    P = I + J dt + (J dt)^2/2 + (J dt)^3/6 + (J dt)^4/24 with J = Df(x_n): the
    fourth-order Taylor series of exp(J(x_n) dt), i.e. RK4 applied to the
    linearised equation dV/dt = J(x_n) V with J held fixed over the step,
    while the state moves with RK4 of the full flow.  A common shortcut that
    is not the derivative of the map the trajectory follows: its error is
    O(dt^2) per step, O(dt) in the exponents.
    """
    name = "frozen_jacobian"

    def _advance(self, system, x, Q, rng):
        B, d = x.shape
        eye = torch.eye(d, dtype=x.dtype, device=x.device).expand(B, -1, -1).contiguous()
        J = system._jvp(x, eye) * system.dt
        P, term = eye.clone(), eye
        for n in range(1, 5):
            term = term @ J / n
            P = P + term
        return system.step(x, rng), P @ Q


class Tunable(QREstimator):
    """QR with a fault injected from the environment at every call, for the regression tests.

    LYAPBENCH_TEST_BIAS: nats added to every exponent (and to its history and per-trajectory
    values): a biased estimator.  LYAPBENCH_TEST_SLOWDOWN: the estimate is computed that many
    times and the total wall time reported: the same numbers, slower.  Unset: exactly ``qr``.
    """
    name = "tunable"

    def estimate(self, system, steps, **kw):
        import dataclasses
        import os
        import time
        bias = float(os.environ.get("LYAPBENCH_TEST_BIAS", "0"))
        repeats = int(os.environ.get("LYAPBENCH_TEST_SLOWDOWN", "1"))
        t0 = time.perf_counter()
        for _ in range(repeats):
            res = super().estimate(system, steps, **kw)
        return dataclasses.replace(res, exponents=res.exponents + bias, per_trajectory=res.per_trajectory + bias,
                                   history=res.history + bias, wall_seconds=time.perf_counter() - t0)


class RaisesOnHenon(QREstimator):
    """Raises inside estimate on Hénon (a bug in a plug-in), and is qr elsewhere."""
    name = "raises_on_henon"

    def _estimate(self, system, cfg):
        if system.name == "henon":
            raise RuntimeError("deliberate failure on henon")
        return super()._estimate(system, cfg)


class EulerTangent(QREstimator):
    """Advances the tangent frame by one Euler step (I + dt J(x_n)) beside an RK4 trajectory: a tangent
    integrated with another scheme than the state (an O(dt) error in the exponents)."""
    name = "euler_tangent"

    def _advance(self, system, x, Q, rng):
        B, d = x.shape
        eye = torch.eye(d, dtype=x.dtype, device=x.device).expand(B, -1, -1).contiguous()
        return system.step(x, rng), (eye + system.dt * system._jvp(x, eye)) @ Q


class Biased(QREstimator):
    """qr with a constant 0.02 nats added to every exponent (and its history and per-trajectory values)."""
    name = "biased"
    BIAS = 0.02

    def estimate(self, system, steps, **kw):
        import dataclasses
        res = super().estimate(system, steps, **kw)
        return dataclasses.replace(res, exponents=res.exponents + self.BIAS,
                                   per_trajectory=res.per_trajectory + self.BIAS, history=res.history + self.BIAS)


class PlainQR:
    """A plug-in that is not an Estimator subclass (README's example): QR every step, nothing in ``meta``.
    Faults on request: ``frame_from_torch`` draws the initial frame from torch's global stream (not the seed's),
    ``shift`` adds to the exponents without moving ``per_trajectory``."""

    name = "plain_qr"

    def __init__(self, frame_from_torch: bool = False, shift: float = 0.0):
        self.frame_from_torch, self.shift = frame_from_torch, shift

    def estimate(self, system, steps, *, transient=0, batch=1, k=None, seed=0, device="cpu", dtype=torch.float64):
        k = system.dim if k is None else k
        rng = rs.TrajectoryRNG(seed, batch)
        x = system.sample_initial(batch, rng).to(dtype)
        Q = (torch.linalg.qr(torch.randn(batch, system.dim, k, dtype=dtype))[0] if self.frame_from_torch
             else torch.eye(system.dim, k, dtype=dtype).expand(batch, -1, -1))
        growth = torch.zeros(batch, k, dtype=torch.float64)
        for t in range(transient + steps):
            x, V = system.tangent(x, Q, rng)
            Q, R = torch.linalg.qr(V)
            if t >= transient:
                growth += torch.diagonal(R, dim1=-2, dim2=-1).abs().log()
        per = (growth / (steps * system.dt)).numpy()
        mean = per.mean(0) + self.shift
        return LyapunovResult(mean, per.std(0, ddof=1) / np.sqrt(batch) + 1e-9, per, mean[None],
                              np.array([steps * system.dt]), 0.0)
