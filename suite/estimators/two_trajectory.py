"""Benettin's two-trajectory estimate of the largest exponent (needs only ``step``)."""
from __future__ import annotations

import math
from typing import Optional

import torch

from reference_systems import System, TrajectoryRNG
from suite.core.args import check_bool, check_int, check_positive
from suite.core.errors import InvalidArgumentError
from suite.estimators.base import (Estimator, GrowthAccumulator, RunConfig, check_finite, check_taper,
                                   trajectories_ok)
from suite.estimators.numerics import capture as capture_
from suite.estimators.numerics import units
from suite.estimators.numerics.capture import CAPTURE_MODES
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
    capture : 'auto', 'none', 'trace', 'graph' or 'compile'
        As for ``qr``: whole intervals (the pair's steps, the reset, the
        accumulation) in units, recorded or compiled
        (:mod:`suite.estimators.numerics.units`); 'none' steps one step at a time.

    Renormalisations: every ``renorm_every`` steps of the transient, at its
    end, then every ``renorm_every`` steps of the run.

    Measured variance reduction: docs/estimators.md.
    """

    name = "two_trajectory"
    requires = "step"
    largest_only = True

    def __init__(self, d0: Optional[float] = None, renorm_every: int = 1, taper: int = 0,
                 control_variates: bool = False, capture: str = "auto"):
        check_positive("d0", d0, allow_none=True, allowed="None or a finite number > 0")
        check_int("renorm_every", renorm_every, 1)
        self.d0 = d0
        self.renorm_every = renorm_every
        self.taper = check_taper(taper)
        self.control_variates = check_bool("control_variates", control_variates)
        if capture not in CAPTURE_MODES:
            raise InvalidArgumentError("capture", capture, f"one of {CAPTURE_MODES} "
                                       "(suite.estimators.numerics.capture)")
        self.capture = capture

    def not_applicable(self, system: System) -> Optional[str]:
        if not callable(getattr(system, "step", None)):
            return f"{self.name} needs the system's step map"
        return None

    def _estimate(self, system: System, cfg: RunConfig):
        capture_.check_device(self.capture, cfg.device)
        with capture_.scope(self.capture, cfg.transient + cfg.steps) as recorded:
            res = self._run(system, cfg)
        res.meta["capture"] = dict(recorded.record)
        return res

    @torch.no_grad()
    def _run(self, system: System, cfg: RunConfig):
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
        direction = u[:, :, None]
        last, t, end, stepwise_to = 0, 0, cfg.transient + cfg.steps, 0
        while t < end:
            ends = self._unit_ends(system, t, cfg, m, acc) if t >= stepwise_to else ()
            if ends:
                counter = pair.counter
                z1, direction1, good, accumulated = self._units(system, z, direction, pair, ends, m, acc,
                                                                cfg.transient, (d0, log_d0))
                if bool(good):
                    z, direction, t = z1, direction1, ends[-1]
                    last = t
                    acc.fold([e - cfg.transient for e in ends], *accumulated)
                    continue
                pair.counter, stepwise_to = counter, ends[-1]  # redo these intervals step by step, with the checks
            t += 1
            z = capture_.call((self.name, "step"), lambda z_: system.step(z_, pair), (z,), pair)
            s = t - cfg.transient
            # every m steps of the transient, at its end, then every m steps of the run (the accumulator's ends)
            if (t % m == 0 or t == cfg.transient) if s <= 0 else (s % m == 0 or s == cfg.steps):
                x, y = z[:B], z[B:]
                sep = y - x
                d = torch.linalg.vector_norm(sep, dim=1, keepdim=True)
                log_growth = torch.log(d.to(torch.float64)) - log_d0
                check_finite(system, x, log_growth, t, last, cfg, "the separation from the neighbour",
                             "the neighbour and the state became equal: the map is singular along the orbit, or "
                             "the separation d0 fell below the state's round-off as the state grew (give d0, or "
                             "use qr, whose tangent has no such floor)")
                last = t
                step_back = sep * (d0 / d)
                y = x + step_back
                outside = ~system.in_domain(y)
                if bool(outside.any()):  # near the domain's edge: place the neighbour on the other side
                    y = torch.where(outside[:, None], x - step_back, y)
                    check_finite(system, y, None, t, t - 1, cfg)
                z = torch.cat([x, y])
                direction = (sep / d)[:, :, None]
                if s > 0:
                    acc.add(log_growth, s)
                if self.control_variates and s >= 0:  # the separation's direction is the frame
                    acc.observe(s, lambda: boundary_features(system, x, direction))
        res = acc.result()
        res.meta["d0"] = "sqrt(eps)*(1+|x0|)" if self.d0 is None else self.d0
        return res

    def _unit_key(self, system: System, m: int):
        g = units.unit_shape(m)[0]
        return lambda kind, r, observes: (self.name, system.label, kind, g, r, observes)

    def _unit_ends(self, system: System, t: int, cfg: RunConfig, m: int, acc: GrowthAccumulator):
        """The steps (counted from the start, transient included) of the renormalisations one unit would end
        after step t, or () where a unit does not apply: ``capture='none'``, the transient, the first interval
        of a run without one, t not a renormalisation, or :func:`suite.estimators.numerics.units.ends_after`'s
        reasons (as for ``qr``)."""
        if self.capture == "none" or t < cfg.transient or t == 0 or (t - cfg.transient) % m:
            return ()
        return units.ends_after(t, m, cfg.transient + cfg.steps, self._unit_key(system, m), acc, cfg.transient)

    def _units(self, system: System, z, direction, pair, ends, m: int, acc: GrowthAccumulator, offset: int,
               constants):
        """The intervals ending at ``ends`` by :func:`suite.estimators.numerics.units.intervals`: the pair's
        steps, the neighbour's reset (the operations of the stepwise loop, the reflection at the domain's edge
        applied where it is needed by a select instead of a host branch) and the accumulation; z, the
        direction, the 0-dim bool of the checks and what :meth:`GrowthAccumulator.fold` takes."""
        B = z.shape[0] // 2

        def step(z_, direction_):
            return system.step(z_, pair), direction_

        def renormalise(z_, direction_, d0, log_d0):
            x, y = z_[:B], z_[B:]
            sep = y - x
            d = torch.linalg.vector_norm(sep, dim=1, keepdim=True)
            log_growth = torch.log(d.to(torch.float64)) - log_d0
            step_back = sep * (d0 / d)
            y = x + step_back
            y = torch.where((~system.in_domain(y))[:, None], x - step_back, y)
            return torch.cat([x, y]), (sep / d)[:, :, None], log_growth, None

        def ok(z_, log_growth):  # both states in the domain (the neighbour after its reset), the growth finite
            return trajectories_ok(system, z_[:B], log_growth) & system.in_domain(z_[B:]).all()

        return units.run(self._unit_key(system, m), step, renormalise, ok, m, z, direction,
                         acc.fold_inputs([e - offset for e in ends]),
                         lambda z_, direction_: boundary_features(system, z_[:B], direction_).to(torch.float64),
                         pair, constants)
