"""Runs conditioned on survival: a trajectory that escapes is replaced by the next start of the stream.

    result, escapes, excluded = run_surviving(run, system, batch)

A flow that leaks (a chaotic saddle that trajectories leave at a slow rate kappa, then diverging) has no
exponent over all trajectories, only over those that stay: the exponents of its natural measure (the saddle's
conditionally invariant measure, Kantz & Grassberger, Phys. Lett. A 107, 235, 1985).  :func:`run_surviving`
runs ``run(view)``, where ``view`` is ``system`` drawing its starts from the stream's trajectories
``0, 1, 2, ...`` with the escaped ones left out; each :class:`~suite.core.errors.TrajectoryError` names the
trajectories that escaped, which are left out and the run repeated, until it finishes or more than
``max_escapes`` have escaped.  The escapes (stream index, time) measure the leak: k escapes over an exposure
of the survivors' full runs plus the escaped ones' times.  A trajectory whose tangent frame degenerates raises
the same error and is replaced and counted alike, so that it counts against the flow in a leak check, never
for it.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from scipy import stats

from reference_systems import System
from reference_systems.noise import TrajectoryRNG
from suite.core.errors import SlidingError, TrajectoryError


def kept_indices(batch: int, excluded: Sequence[int]) -> List[int]:
    """The stream indices of a batch of ``batch`` starts with ``excluded`` left out: the first ``batch`` of
    0, 1, 2, ... not in ``excluded``."""
    out, i, skip = [], 0, set(excluded)
    while len(out) < batch:
        if i not in skip:
            out.append(i)
        i += 1
    return out


def surviving_view(system: System, excluded: Sequence[int]) -> System:
    """``system`` whose ``sample_initial(batch, g)`` returns the starts of stream indices
    :func:`kept_indices` (``g``'s seed and first trajectory; its own draws still made, so that what the
    run draws from ``g`` next is as without exclusions).  ``excluded`` empty: ``system`` itself."""
    if not excluded:
        return system
    view = copy.copy(system)

    def sample_initial(batch: int, g: TrajectoryRNG):
        system.sample_initial(batch, g)  # g advances as in the run without exclusions
        kept = kept_indices(batch, excluded)
        pool = system.sample_initial(kept[-1] + 1, TrajectoryRNG(g.seed, kept[-1] + 1, first=g.first,
                                                                  device=g.device))
        return pool[kept]

    view._sample_initial = sample_initial
    return view


def run_surviving(run: Callable[[System], Any], system: System, batch: int, max_escapes: int,
                  excluded: Sequence[int] = ()) -> Tuple[Any, List[List[float]], List[int]]:
    """``run(view)`` with escaped trajectories replaced (the module docstring): (its result, the escapes as
    [stream index, time], every index left out).  ``excluded``: indices left out from the start (an earlier
    run's escapes on the same starts).  A :class:`TrajectoryError` is raised again where it names no
    trajectory or the escapes exceed ``max_escapes``.  Times are ``step * system.dt``; the run's
    first trajectory is the stream's 0 (``TrajectoryError.trajectories`` are then batch positions)."""
    excluded, escapes = list(excluded), []
    while True:
        view = surviving_view(system, excluded)
        try:
            return run(view), escapes, excluded
        except TrajectoryError as exc:
            if isinstance(exc, SlidingError) or not exc.trajectories or \
                    len(escapes) + len(exc.trajectories) > max_escapes:
                raise
            kept = kept_indices(batch, excluded)
            new = [kept[p] for p in exc.trajectories]
            escapes += [[i, float(exc.step * system.dt) if exc.step is not None else None] for i in new]
            excluded += new


def escape_rate(times: Sequence[Optional[float]], survivors: int, duration: float, alpha: float) -> Dict[str, Any]:
    """The escape rate kappa (per trajectory and unit of time) from runs of ``duration`` in which ``survivors``
    trajectories stayed and the escaped ones left at ``times`` (None: unknown, counted as 0, which makes the
    bound conservative): the maximum-likelihood rate k / exposure of an exponential escape, the exposure being
    ``survivors * duration + sum(times)``, and its one-sided 1 - ``alpha`` upper bound
    chi2(1 - alpha; 2k + 2) / (2 exposure) (Poisson; -ln(alpha) / exposure where none escaped)."""
    spent = [float(t) if t is not None else 0.0 for t in times]
    exposure, k = survivors * duration + sum(spent), len(spent)
    return {"escaped": k, "starts": survivors + k, "exposure": exposure, "rate": k / exposure,
            "rate_upper": float(stats.chi2.ppf(1 - alpha, 2 * k + 2) / (2 * exposure))}
