"""The renormalising estimators' inner loop in units of many steps: what one compiled call does.

A run of ``qr`` / ``jvp_qr`` (``two_trajectory``) is a sequence of renormalisation
intervals of m tangent steps (steps of a reference and a neighbour), each ended by a QR
step (the neighbour's reset) whose log growth is accumulated.  A
unit does several of them in one call, so that the host's cost (Python,
kernel launches, checks) is paid once per unit instead of once per step, and
so that inductor can fuse the whole unit (:mod:`suite.estimators.numerics.capture`):

* :func:`intervals` (r intervals of m steps): per interval m tangent steps,
  the renormalisation (for ``qr`` the QR step without its fallback,
  :func:`~suite.estimators.numerics.linalg.qr_unchecked`; for ``two_trajectory`` the
  neighbour's reset),
  the checks of :func:`~suite.estimators.base.trajectories_ok` and the frame's
  ``ok`` gathered into one boolean, and the accumulation of
  :class:`~suite.estimators.base.GrowthAccumulator` (sums, block sums across at
  most one block boundary, the running sums the history reads, the control
  variates' boundary term; the taper's weights and the coefficients are
  inputs), in the order and with the operations ``add`` and ``observe`` use;
* :func:`advance` (g steps, no QR): the leading part of an interval longer than
  :data:`UNIT_STEPS`.

:func:`unit_shape` splits an interval into units of at most :data:`UNIT_STEPS`
steps.  The estimator calls a unit for whole intervals that the
accumulator can take in one piece (:meth:`GrowthAccumulator.foldable`) where
the unit is replayed (``capture='trace'``, ``'compile'``, or ``'auto'`` where
compiling repays itself; eager units do more small operations than eager
steps, so otherwise it steps), and redoes an interval whose boolean is False
step by step with the checks, so a run gives the numbers and the errors of a
run stepped one step at a time.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch

from suite.estimators.numerics import capture

#: the accumulator's inputs of :func:`intervals`, in their order (``GrowthAccumulator.fold_inputs``)
INPUTS = ("sums", "block", "next_block", "weights", "in_block")

#: steps one unit advances at most: enough to amortise a call (B = 1 Lorenz-63, compiled: 8 steps a call
#: 140k steps/s, 32 steps 203k), few enough that a cold compilation stays short (it grows with the steps)
UNIT_STEPS = 16


def unit_shape(m: int) -> Tuple[int, int, int]:
    """(g, r, lead) for an interval of m steps: a unit of r intervals of g = m steps (r = UNIT_STEPS // m)
    for m <= UNIT_STEPS; otherwise ``lead`` calls of :func:`advance` of g steps then one interval unit of g
    steps (r = 1), g the largest divisor of m up to UNIT_STEPS."""
    if m <= UNIT_STEPS:
        return m, UNIT_STEPS // m, 0
    g = max(d for d in range(1, UNIT_STEPS + 1) if m % d == 0)
    return g, 1, m // g - 1


def advance(step: Callable, g: int) -> Callable:
    """(x, Q) -> g tangent steps later."""
    def unit(x, Q):
        for _ in range(g):
            x, Q = step(x, Q)
        return x, Q
    return unit


def intervals(step: Callable, renormalise: Callable, ok: Callable, g: int, r: int,
              features: Optional[Callable] = None, n_extra: int = 0) -> Callable:
    """(x, Q, sums, block, next_block, weights, in_block[, boundary, coefficients], *extra) ->
    (x, Q, sums, block, next_block, running, good[, boundary]) after r intervals of g steps.

    ``step(x, Q)``: one step of state and frame; ``renormalise(x, Q, *extra) -> (x, Q, log_growth, ok_frames or
    None)``: the renormalisation (the QR step; two_trajectory's reset of the neighbour), ``extra`` the last
    ``n_extra`` inputs, constants of the run; ``ok(x, log_growth)``: 0-dim bool, the run's checks;
    ``features(x, Q)``: the control variates' boundary features (B, p) float64, or None for a unit without them.
    Inputs from :meth:`GrowthAccumulator.fold_inputs`: the sums, the current and the next block's sums (B, k)
    float64, the taper's weights (r,) float64, ``in_block`` (r,) bool (the interval belongs to the current
    block, else to the next), the boundary term (B, p) and its coefficients (r,).  ``running`` (r, B, k): the
    sums after each interval (the history); ``good``: 0-dim bool, every check of every interval passed."""
    def unit(x, Q, sums, block, next_block, weights, in_block, *rest):
        good, running = None, []
        extra = rest[len(rest) - n_extra:] if n_extra else ()
        boundary, coefficients = rest[:2] if features is not None else (None, None)
        for i in range(r):
            for _ in range(g):
                x, Q = step(x, Q)
            x, Q, log_growth, frames_ok = renormalise(x, Q, *extra)
            passed = ok(x, log_growth)
            if frames_ok is not None:
                passed = passed & frames_ok.all()
            good = passed if good is None else good & passed
            log_growth = log_growth * weights[i]
            sums = sums + log_growth
            running.append(sums)
            block = torch.where(in_block[i], block + log_growth, block)
            next_block = torch.where(in_block[i], next_block, next_block + log_growth)
            if features is not None:
                boundary = boundary + coefficients[i] * features(x, Q)
        out = (x, Q, sums, block, next_block, torch.stack(running), good)
        return out + (boundary,) if features is not None else out
    return unit


def ends_after(t: int, m: int, stop: int, key: Callable[[str, int, bool], Any], acc=None, offset: int = 0):
    """The steps of the r renormalisations one unit of :func:`unit_shape` (m) would end after step t (a
    renormalisation), or () where the run decided to run such units eagerly (:func:`capture.replayed`), they
    would pass ``stop``, or ``acc`` (counting its steps from ``offset``) cannot take them in one piece
    (``GrowthAccumulator.foldable``).  ``key(kind, r, observes)`` names the estimator's units."""
    g, r, _ = unit_shape(m)
    if capture.replayed(key("intervals", r, False)) is False:
        return ()
    ends = [t + m * (i + 1) for i in range(r)]
    if ends[-1] > stop or (acc is not None and not acc.foldable([e - offset for e in ends])):
        return ()
    return ends


def run(key: Callable[[str, int, bool], Any], step: Callable, renormalise: Callable, ok: Callable, m: int,
        x, Q, inputs: Dict[str, Any], features: Callable, rng, constants: Sequence[torch.Tensor] = ()):
    """Whole intervals of m steps from (x, Q) through :func:`capture.call` (recorded, compiled or eager as the
    run decides): the leading :func:`advance` calls of an interval longer than a unit, then one
    :func:`intervals` call starting from ``inputs`` (:data:`INPUTS`, and with control variates ``boundary``
    and ``coefficients``); ``features`` enters the unit only where a coefficient is not 0.  Returns x, Q, the
    0-dim bool of the checks and what ``GrowthAccumulator.fold`` takes."""
    g, r, lead = unit_shape(m)
    for _ in range(lead):
        x, Q = capture.call(key("advance", 1, False), advance(step, g), (x, Q), rng, steps=g, compilable=True)
    args = [x, Q] + [inputs[name] for name in INPUTS]
    observes = "coefficients" in inputs and bool((inputs["coefficients"] != 0).any())
    if observes:
        boundary = inputs["boundary"]
        args += [features(x, Q).zero_() if boundary is None else boundary, inputs["coefficients"]]
    unit = intervals(step, renormalise, ok, g, r, features if observes else None, len(constants))
    out = capture.call(key("intervals", r, observes), unit, args + list(constants), rng, steps=g * r,
                       compilable=True)
    x, Q, sums, block, next_block, running, good = out[:7]
    return x, Q, good, (sums, block, next_block, running) + tuple(out[7:])
