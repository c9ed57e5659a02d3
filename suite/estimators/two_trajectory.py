"""Benettin's two-trajectory estimate of the largest exponent (needs only ``step``)."""
from __future__ import annotations

import math
from typing import Optional

import torch

from reference_systems import System, TrajectoryRNG
from suite.core.args import check_bool, check_int, check_positive
from suite.core.errors import InvalidArgumentError
from suite.estimators.base import Estimator, GrowthAccumulator, RunConfig, check_finite, check_taper
from suite.estimators.numerics.control_variates import boundary_features, check_batch


class TwoTrajectoryEstimator(Estimator):
    """Largest exponent from a reference trajectory and a renormalised neighbour.

    Method (Benettin, Galgani & Strelcyn, Phys. Rev. A 14, 2338 (1976)): a
    neighbour y_0 = x_0 + d0 u (u a random unit vector) is advanced with the
    system's own ``step`` beside x; every ``renorm_every`` steps the separation
    d = |y - x| is measured and reset to d0 along the same direction, and
    lambda_1 = sum ln(d / d0) / (steps * dt): natural log, per step for maps,
    per unit time for flows.  No Jacobian is used (black-box systems); a random
    system's two copies see the same noise; a neighbour that would leave the
    system's domain is placed on the other side of the reference state.  The
    finite separation biases by O(d0) and adds round-off O(eps / d0); the
    default d0 = sqrt(eps) (1 + |x_0|) balances the two.

    Parameters
    ----------
    d0 : float or None
        Initial and reset separation; None for the default above.
    renorm_every : int >= 1
        Steps between renormalisations (keep d well inside the linear regime).
    taper : int >= 0, at most steps / 2
        Steps at each end over which the weight of ln(d / d0) rises from 0 to 1
        (as for :class:`~suite.estimators.qr.QREstimator`).
    control_variates : bool
        Regress the boundary term out, as for ``qr``, with the separation's
        direction as the frame (Lorenz-63: 16 features, batch >= 320).

    Measured variance reduction: docs/estimators.md.
    """

    name = "two_trajectory"
    requires = "step"

    def __init__(self, d0: Optional[float] = None, renorm_every: int = 1, taper: int = 0,
                 control_variates: bool = False):
        check_positive("d0", d0, allow_none=True, allowed="None or a finite number > 0")
        check_int("renorm_every", renorm_every, 1)
        self.d0 = d0
        self.renorm_every = renorm_every
        self.taper = check_taper(taper)
        self.control_variates = check_bool("control_variates", control_variates)

    def not_applicable(self, system: System) -> Optional[str]:
        if not callable(getattr(system, "step", None)):
            return f"{self.name} needs the system's step map"
        return None

    @torch.no_grad()
    def _estimate(self, system: System, cfg: RunConfig):
        if cfg.k != 1 and cfg.k != system.dim:
            raise InvalidArgumentError("k", cfg.k, f"1 (or None): {self.name} estimates the largest exponent only")
        rng = cfg.rng()
        B, m = cfg.batch, self.renorm_every
        x = system.sample_initial(B, rng).to(cfg.device, cfg.dtype)
        u = rng.normal(system.dim, dtype=cfg.dtype)
        u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
        eps = torch.finfo(cfg.dtype).eps
        d0 = (torch.full((B, 1), self.d0, dtype=cfg.dtype, device=cfg.device) if self.d0 is not None
              else math.sqrt(eps) * (1 + torch.linalg.vector_norm(x, dim=1, keepdim=True)))
        # both copies in one batch: rows b and B + b draw the same noise
        pair = TrajectoryRNG.from_keys(torch.cat([rng.keys, rng.keys]), device=cfg.device)
        pair.counter = rng.counter
        z = torch.cat([x, x + d0 * u])
        log_d0 = torch.log(d0.to(torch.float64))

        if self.control_variates:
            check_batch(system, 1, B)
        acc = GrowthAccumulator(B, 1, cfg.steps, m, system.dt, cfg.device, taper=self.taper,
                                control_variates=self.control_variates)

        if self.control_variates and cfg.transient == 0:
            acc.observe(0, lambda: boundary_features(system, x, u[:, :, None]))
        last = 0
        for t in range(1, cfg.transient + cfg.steps + 1):
            z = system.step(z, pair)
            s = t - cfg.transient
            if t % m == 0 or t == cfg.transient or s == cfg.steps:
                x, y = z[:B], z[B:]
                sep = y - x
                d = torch.linalg.vector_norm(sep, dim=1, keepdim=True)
                log_growth = torch.log(d.to(torch.float64)) - log_d0
                check_finite(system, x, log_growth, t, last, cfg, "the separation from the neighbour")
                last = t
                step_back = sep * (d0 / d)
                y = x + step_back
                outside = ~system.in_domain(y)
                if bool(outside.any()):  # near the domain's edge: place the neighbour on the other side
                    y = torch.where(outside[:, None], x - step_back, y)
                    check_finite(system, y, None, t, t - 1, cfg)
                z = torch.cat([x, y])
                if s > 0:
                    acc.add(log_growth, s)
                if self.control_variates and s >= 0:  # the separation's direction is the frame
                    acc.observe(s, lambda: boundary_features(system, x, (sep / d)[:, :, None]))
        res = acc.result()
        res.meta["d0"] = "sqrt(eps)*(1+|x0|)" if self.d0 is None else self.d0
        return res
