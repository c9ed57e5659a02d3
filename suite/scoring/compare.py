"""Estimator comparison: one summary row per (system, estimator, seed).

Built on the validation grid (:mod:`suite.grid.runner`): every cell is run,
scored against the reference and checked for invariants; the rows of a cell
are then summarised so that one glance shows which implementation is right,
which is fast, and which is confidently wrong:

* ``lambda1_error``: abs error of the largest exponent;
* ``worst_error``: the largest abs error over the exponents with a reference;
* ``worst_error_over_tol``: the same, as a fraction of each row's tolerance
  (> 1 fails);
* ``max_z``: max (|error| - u_ref)+ / stderr over rows with a non-zero
  stderr, the error beyond the reference's own uncertainty in standard
  errors: far above ~4 means the stated uncertainty is not honest
  (confidently wrong), unless the finite-T bias dominates a short run (an
  exact reference whose stated uncertainty is a known deviation, such as
  the RK4 map's, does not count against an estimator with ~0 spread);
* ``sum_residual``: abs(sum of exponents - <ln|det DF|>/dt) where the full
  spectrum was estimated;
* ``t_to_1e-2``: the time T from which the running estimate of lambda_1 stays
  within 1e-2 of the reference (from the run's history; empty if never);
* ``wall_seconds`` and ``status`` (``fail`` if any row failed,
  ``inconclusive`` if none failed but a row passed only through the
  estimator's own wide ``method_bias``, ``error``, ``not installed`` or
  ``not applicable`` if the cell produced no estimate).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from reference_systems import System
from suite.core.provenance import PROVENANCE_COLUMNS
from suite.core.result import LyapunovResult

COMPARE_DISPLAY = ["system", "estimator", "seed", "status", "lambda1_error", "worst_error", "worst_error_over_tol",
                   "max_z", "sum_residual", "t_to_1e-2", "wall_seconds", "T", "batch"]
COMPARE_COLUMNS = COMPARE_DISPLAY + ["message", *PROVENANCE_COLUMNS]


def time_to_accuracy(system: System, result: Optional[LyapunovResult], eps: float = 1e-2) -> Optional[float]:
    """First history time from which |lambda_1(T) - reference| < eps for every later T."""
    if result is None or system.reference is None or result.history.shape[0] == 0:
        return None
    err = np.abs(result.history[:, 0] - system.reference.values[0])
    bad = np.nonzero(err >= eps)[0]
    if bad.size == 0:
        return float(result.times[0])
    if bad[-1] + 1 >= err.size:
        return None
    return float(result.times[bad[-1] + 1])


def summarise(system: System, rows: List[Dict[str, Any]], result: Optional[LyapunovResult]) -> Dict[str, Any]:
    first = rows[0]
    out = {c: None for c in COMPARE_COLUMNS}
    out.update(system=first["system"], estimator=first["estimator"], seed=first.get("seed"),
               wall_seconds=first.get("wall_seconds"), T=first.get("T"), batch=first.get("batch"),
               **{c: first.get(c) for c in PROVENANCE_COLUMNS})
    statuses = {r["status"] for r in rows}
    unrun = [st for st in ("error", "not installed", "not applicable") if st in statuses]
    if unrun:
        out.update(status=unrun[0], message="; ".join(r["message"] for r in rows if r["status"] in unrun))
        if result is None:
            return out
    judged = [r for r in rows if r["quantity"] == "exponent" and r["status"] in ("pass", "fail", "inconclusive")]
    if judged:
        errs = np.array([r["abs_error"] for r in judged])
        tols = np.array([r["tolerance"] for r in judged])
        ses = np.array([r["stderr"] for r in judged])
        excess = np.maximum(errs - np.array([r["ref_uncertainty"] or 0.0 for r in judged]), 0.0)
        out["worst_error"] = float(errs.max())
        out["worst_error_over_tol"] = float((errs / tols).max())
        spread = ses > 0  # the ratio is undefined where every trajectory gave the same value
        out["max_z"] = float(np.max(excess[spread] / ses[spread])) if spread.any() else None
        lam1 = [r for r in judged if r["index"] == 1]
        out["lambda1_error"] = lam1[0]["abs_error"] if lam1 else None
    sums = [r for r in rows if r["quantity"] == "sum rule"]
    if sums:
        out["sum_residual"] = sums[0]["abs_error"]
    out["t_to_1e-2"] = time_to_accuracy(system, result)
    failing = [r for r in rows if r["status"] == "fail"]
    if out["status"] is None:
        inconclusive = any(r["status"] == "inconclusive" for r in rows)
        out["status"] = ("fail" if failing else "inconclusive" if inconclusive else
                         "pass" if judged or sums else "no reference")
    if failing:
        out["message"] = "; ".join(f"{r['quantity']} {r['index']}: |error| {r['abs_error']:.3g} > "
                                   f"tolerance {r['tolerance']:.3g}" for r in failing[:4])
    return out
