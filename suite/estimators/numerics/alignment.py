"""How much a QR frame aligned over a transient still biases the exponents: measured, not assumed.

A QR run whose state is on the attractor and whose frame is the stationary (backward Lyapunov) frame
sums a stationary sequence of ln R_ii: its time average is unbiased at every T.  What biases it is the
frame's residual misalignment at the end of the transient, which adds a boundary term c_i (nats, once
per trajectory) to the summed log growth of exponent i, so E[estimate] - lambda_i = E[c_i] / T.  The
misalignment decays as exp(-gap tau) over an alignment of tau steps (gap: the smallest spacing between
the exponents up to k + 1), which can be fast (Hénon: to round-off in 50 steps) or slow (Rössler, gap
0.07), so it is measured on the system itself:

* ``2 n`` trajectories run ``aligned + aligned // 2`` steps with a QR step after every step: trajectories
  ``n + b`` repeat trajectories ``b`` (the same random streams, so the same states and noise), each pair
  with two independent random initial frames;
* over the last ``aligned // 2`` steps the two frames' summed log growths differ by
  Delta_i = c_i(a) - c_i(b), the difference of the boundary terms of two frames already aligned over
  ``aligned`` steps;
* the bound is ``SAFETY`` times the mean of |Delta_i| over the pairs, the largest over the exponents.

Why that bounds the bias of a run whose frame is aligned over at least ``aligned`` steps: its
misalignment is at most the probe's (it decays with alignment), the boundary term is first order in
the misalignment with a sign set by the random initial frame (mean zero), so its mean, the bias, is of
second order and far below the spread of single boundary terms, E|c - E c| <= E|Delta| (Jensen), which
the mean of |Delta| estimates (the mean, not the largest: the spread is heavy-tailed, Lorenz-63 pairs
aligned over 1000 steps differ by 4e-5 nats in the median and up to 0.3 in one pair of 16); SAFETY
covers the estimate's own sampling error.  Degenerate or slowly separating exponents leave Delta of order one and
the bound large; so does a pair whose states part (duplicated rows computed differently), which is
recorded.  Tests: tests/test_accuracy.py; rationale and measurements: docs/accuracy.md.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Dict

import torch

from reference_systems import System
from reference_systems.noise import TrajectoryRNG

#: pairs of trajectories (same states, independent frames) of the probe
TRAJECTORIES = 16
#: the bound is SAFETY times the mean difference of two aligned frames' boundary terms
SAFETY = 2.0


def _frame_seed(seed: int) -> int:
    digest = hashlib.sha256(f"alignment-frames:{seed}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def boundary_bound(system: System, aligned: int, advance: Callable, qr: Callable, check: Callable, *, k: int,
                   seed: int, device, dtype, trajectories: int = TRAJECTORIES) -> Dict[str, Any]:
    """Measure the boundary term left by a frame aligned over ``aligned`` steps (module docstring).

    ``advance(x, Q, rng) -> (x, V)`` is the estimator's tangent step, ``qr(V) -> (Q, log_growth)`` its QR
    step, ``check(x, log_growth, step, since)`` raises on a diverged trajectory.  Returns a record:
    ``bias_nats`` (the bound, nats), ``mean_difference`` and ``max_difference`` per exponent,
    ``aligned_steps`` (the alignment it holds for), ``probe_steps``, ``window_steps``, ``states_identical``,
    ``trajectories``, ``seconds``.
    """
    t0 = time.perf_counter()
    n = trajectories
    keys = TrajectoryRNG(seed, n, device=device).keys
    rng = TrajectoryRNG.from_keys(torch.cat([keys, keys]), device=device)
    x = system.sample_initial(2 * n, rng).to(device, dtype)
    frames = TrajectoryRNG(_frame_seed(seed), 2 * n, device=device).normal(system.dim, k, dtype=dtype)
    Q, _ = qr(frames)
    steps = aligned + max(1, aligned // 2)
    summed = torch.zeros(2 * n, k, dtype=torch.float64, device=device)
    last = 0
    for t in range(1, steps + 1):
        x, V = advance(x, Q, rng)
        Q, log_growth = qr(V)
        check(x, log_growth, t, last)
        last = t
        if t > aligned:
            summed += log_growth.to(torch.float64)
    difference = (summed[:n] - summed[n:]).abs()
    return {"bias_nats": SAFETY * float(difference.mean(0).max()), "mean_difference": difference.mean(0).tolist(),
            "max_difference": difference.amax(0).tolist(),
            "aligned_steps": aligned, "probe_steps": steps, "window_steps": steps - aligned, "trajectories": n,
            "states_identical": bool(torch.equal(x[:n], x[n:])), "safety": SAFETY,
            "seconds": round(time.perf_counter() - t0, 3)}
