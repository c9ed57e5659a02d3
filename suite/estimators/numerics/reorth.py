"""The re-orthonormalisation interval chosen from the spectrum's spread (``reorth_every='auto'``).

Between two QR steps direction i of the frame grows by exp(S_i), S_i the sum
of its log growth (natural log) over the m steps, so the frame's log
condition is about max_i S_i - min_i S_i.  Three bounds:

* precision: the spread is kept to half of the frame dtype's ln(1/eps) (36
  in float64, 16 in float32), so the weakest direction keeps sqrt(eps);
* the QR method's range (:func:`suite.estimators.numerics.linalg.log_condition_limit`);
* magnitude: max_i |S_i| below half of ln(largest float).

The sums are measured, not modelled: a probe advances the frame
``PROBE_STEPS`` steps renormalising every step (the QR of a product
telescopes, so every window of m probe steps shows what an interval of m
would see), skips ``PROBE_SKIP`` steps, and the largest m of ``CANDIDATES``
is taken whose worst window over the first ``PROBE_TRAJECTORIES``
trajectories, times ``SAFETY``, fits all three bounds, capped by
:func:`interval_cap`.  The probe runs in place in the transient if it has
the steps, else on copies after it, so the run is the same trajectory
either way; the chosen m depends on the batch (round-off level).

Measured choices (Henon 4, Lorenz-63 32, full spectra of random networks 1,
float32 Henon 1): docs/estimators.md; tests/test_reorth.py.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, Tuple

import torch

from suite.estimators.numerics.linalg import log_condition_limit

PROBE_STEPS = 160
PROBE_SKIP = 32
PROBE_TRAJECTORIES = 4096
SAFETY = 1.5
MAX_INTERVAL = 64
CANDIDATES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64)
#: renormalisations a run keeps at least (history on a log grid, 20 batch means for B = 1)
MIN_RENORMALISATIONS = 64
#: intervals a taper keeps at least, so its weights stay smooth
MIN_TAPER_INTERVALS = 8


def precision_budget(dtype: torch.dtype) -> float:
    """Half of ln(1/eps): the log condition a frame of ``dtype`` may reach (18.0 float64, 8.0 float32)."""
    return 0.5 * math.log(1.0 / torch.finfo(dtype).eps)


def magnitude_budget(dtype: torch.dtype) -> float:
    """Half of ln(largest finite float): the log growth a column may reach (354.9 float64, 44.4 float32)."""
    return 0.5 * math.log(torch.finfo(dtype).max)


def interval_cap(steps: int, taper: int = 0) -> int:
    """The largest m a run of ``steps`` with ``taper`` allows (module constants)."""
    cap = min(MAX_INTERVAL, max(1, steps // MIN_RENORMALISATIONS))
    if taper:
        cap = min(cap, max(1, taper // MIN_TAPER_INTERVALS))
    return cap


def cumulative_log_growth(growth: torch.Tensor) -> torch.Tensor:
    """Running sums of ``growth`` (n, B, k) from 0: (n + 1, B, k), for :func:`window_log_growth`."""
    return torch.cat([torch.zeros_like(growth[:1]), growth.cumsum(0)])


def window_log_growth(cumulative: torch.Tensor, m: int) -> torch.Tensor:
    """Sums of the growth over every window of m consecutive steps, from its running sums
    (:func:`cumulative_log_growth`): (n - m + 1, B, k)."""
    return cumulative[m:] - cumulative[:-m]


def choose_interval(growth: torch.Tensor, *, dtype: torch.dtype, method: str, cap: int
                    ) -> Tuple[int, Dict[str, Any]]:
    """The re-orthonormalisation interval for per-step log growth ``growth`` (n, B, k) (module docstring).

    Returns m and a record of the choice: the budgets, the worst window's log
    condition and log magnitude at m and at 1, and what stopped m growing.
    """
    g = growth.to(torch.float64)
    cumulative = cumulative_log_growth(g)  # once; every candidate m reads its windows from it
    precision, limit, magnitude = precision_budget(dtype), log_condition_limit(method, dtype), magnitude_budget(dtype)
    budget = min(precision, limit)

    def worst(m):
        w = window_log_growth(cumulative, m)
        return float((w.amax(-1) - w.amin(-1)).amax()), float(w.abs().amax())

    spread1, mag1 = worst(1)
    m, spread, mag, limited_by = 1, spread1, mag1, "cap"
    for cand in CANDIDATES[1:]:
        if cand > cap or cand > g.shape[0] // 2:
            limited_by = "cap" if cand > cap else "probe length"
            break
        s, a = worst(cand)
        if SAFETY * s > budget or SAFETY * a > magnitude:
            limited_by = "precision" if SAFETY * s > precision else ("qr method's range" if SAFETY * s > limit
                                                                    else "magnitude")
            break
        m, spread, mag = cand, s, a
    info = {"interval": m, "limited_by": limited_by, "log_condition": spread, "log_condition_per_step": spread1,
            "log_magnitude": mag, "precision_budget": precision, "method_limit": limit,
            "magnitude_budget": magnitude, "safety": SAFETY, "cap": cap, "method": method,
            "probe_steps": int(g.shape[0]) + PROBE_SKIP, "probe_trajectories": int(g.shape[1])}
    if spread1 > precision:
        info["warning"] = (
            f"the frame's log condition reaches {spread1:.1f} nats in a single step, more than half of "
            f"{str(dtype).replace('torch.', '')}'s {2 * precision:.1f}: the weakest exponents are resolved "
            "to fewer than half the digits even when renormalising every step; run in float64 or with "
            "fewer exponents (k)")
        warnings.warn(info["warning"], RuntimeWarning, stacklevel=3)
    return m, info


def probe(advance: Callable, qr: Callable, check: Callable, x: torch.Tensor, Q: torch.Tensor,
          start: int, last: int, steps: int = PROBE_STEPS):
    """Advance ``x``, ``Q`` by ``steps`` steps with a QR step after each.

    ``advance(x, Q) -> (x, V)``, ``qr(V) -> (Q, log_growth)``, ``check(x,
    log_growth, step, since)`` raises on a diverged trajectory.  Steps are
    numbered from ``start`` (the run's count, for error messages).  Returns
    x, Q, the last step checked, and the log growth (steps - PROBE_SKIP,
    min(B, PROBE_TRAJECTORIES), k) after the first PROBE_SKIP steps.
    """
    rows = []
    for i in range(1, steps + 1):
        x, V = advance(x, Q)
        Q, log_growth = qr(V)
        check(x, log_growth, start + i, last)
        last = start + i
        if i > PROBE_SKIP:
            rows.append(log_growth[:PROBE_TRAJECTORIES])
    return x, Q, last, torch.stack(rows)
