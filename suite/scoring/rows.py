"""LyapunovResult + Reference -> tidy rows, one per exponent.

Statuses: ``pass`` / ``fail`` (compared with the reference under
:mod:`suite.scoring.tolerance`), ``no reference`` (the system states none for this
exponent: reported, not judged), ``error`` (the estimator raised: the
message is kept), ``not applicable`` (the estimator cannot run on it),
``not installed`` (a peer-library adapter whose package is missing),
``inconclusive`` (within tolerance, but only because the estimator's own
stated systematic bound ``method_bias`` is wider than
INCONCLUSIVE_FRACTION = 10% of the exponent's scale, max(|reference_i|,
|reference_1|): such a row neither passes nor fails the estimator; or within tolerance
for an exponent the result flags as round-off, ``meta['unresolved']``).
Only ``fail`` and ``error`` make a validation fail.

A system with ``meta['fixed_horizon']`` (a training map: its reference is
the finite-time exponent of one stated horizon) is judged only on runs of
that horizon; other runs are ``no reference``, saying why.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from reference_systems import System
from suite.core.provenance import row_provenance
from suite.core.result import LyapunovResult
from suite.scoring.tolerance import derive

COLUMNS = ["system", "estimator", "quantity", "index", "reference", "ref_uncertainty", "provenance", "estimate",
           "stderr", "abs_error", "tolerance", "status", "message", "kind", "T", "steps", "transient",
           "batch", "seed", "stderr_dof", "dtype", "device", "wall_seconds", "git_sha", "versions", "source"]
FAILING = ("fail", "error")
INCONCLUSIVE_FRACTION = 0.1


def base_row(system: System, estimator: str, settings: Dict[str, Any]) -> Dict[str, Any]:
    """A row with the cell's identity and settings filled in, everything else None."""
    row = {c: None for c in COLUMNS}
    ref = system.reference
    row.update(system=system.label, estimator=estimator, kind=system.kind,
               provenance=ref.provenance if ref else None, source=ref.source if ref else None)
    row.update({k: settings[k] for k in ("steps", "transient", "batch", "seed") if k in settings})
    row.update(row_provenance(settings))
    if "T" in settings:  # a result's own duration (a time series sampled every few steps)
        row["T"] = settings["T"]
    elif "steps" in settings:
        row["T"] = settings["steps"] * system.dt
    return row


def judge(row: Dict[str, Any], reference: float, uncertainty: float, estimate: float, stderr: float,
          tol: float) -> Dict[str, Any]:
    """Fill in the comparison of ``estimate`` with ``reference`` under tolerance ``tol``."""
    err = abs(estimate - reference)
    row.update(reference=float(reference), ref_uncertainty=float(uncertainty), estimate=float(estimate),
               stderr=float(stderr), abs_error=float(err), tolerance=float(tol),
               status="pass" if err <= tol else "fail")
    return row


def score(system: System, estimator: str, result: LyapunovResult) -> List[Dict[str, Any]]:
    """One row per estimated exponent, judged against ``system.reference``; an exponent the result flags as
    not resolved (``meta['unresolved']``, round-off) says so in its message and never passes (inconclusive)."""
    meta, declared = result.meta, result.declared
    dof = declared.stderr_dof
    base = base_row(system, estimator, meta)
    base.update(quantity="exponent", wall_seconds=result.wall_seconds, stderr_dof=dof)
    ref = system.reference
    note = None
    caps = system.capabilities
    horizon = caps.validation if caps.fixed_horizon else None
    if ref is not None and horizon and (declared.steps, declared.transient) != (horizon.get("steps"),
                                                                                      horizon.get("transient")):
        ref = None  # a finite-time reference holds for its own horizon only
        note = (f"the reference holds for the task's horizon (transient {horizon.get('transient')}, steps "
                f"{horizon.get('steps')}); this run used transient {declared.transient}, steps {declared.steps}")
    T = declared.T
    n_ref = min(len(ref), result.exponents.size) if ref is not None else 0
    # an estimator's own stated systematic-error bound (time-series fits), 0 for the Benettin methods
    method_bias = declared.method_bias
    tol = derive(uncertainty=ref.uncertainty[:n_ref], stderr=result.stderr[:n_ref], dof=dof, T=T,
                 bias_nats=ref.bias_nats, method_bias=method_bias[:n_ref],
                 exact_scale=float(np.abs(ref.values).max()), dtype=declared.dtype or "float64", dt=system.dt,
                 steps=declared.steps or 0).total if n_ref else np.zeros(0)
    unresolved = set((meta.get("unresolved") or {}).get("exponents", ()))
    rows = []
    for i, (est, se) in enumerate(zip(result.exponents, result.stderr)):
        row = dict(base, index=i + 1, estimate=float(est), stderr=float(se))
        if i < n_ref:
            judge(row, ref.values[i], ref.uncertainty[i], est, se, tol[i])
            scale = max(abs(ref.values[i]), abs(ref.values[0]))
            if row["status"] == "pass" and method_bias[i] > INCONCLUSIVE_FRACTION * scale:
                row.update(status="inconclusive",
                           message=f"within tolerance only through the estimator's stated method_bias "
                                   f"{method_bias[i]:.3g} > {INCONCLUSIVE_FRACTION:g} x {scale:.3g}")
        else:
            row.update(status="no reference",
                       message=note or caps.note or f"{system.name} states no reference for exponent {i + 1}")
        if i + 1 in unresolved:  # at the QR's round-off floor (GrowthAccumulator): no pass on round-off
            if row["status"] == "pass":
                row["status"] = "inconclusive"
            row["message"] = meta["unresolved"]["message"] + (f"; {row['message']}" if row.get("message") else "")
        rows.append(row)
    return rows


def failure(system: System, estimator: str, settings: Dict[str, Any], exc: BaseException,
            status: str = "error", detail: Optional[str] = None) -> List[Dict[str, Any]]:
    """A single row recording why a cell produced no estimate: ``Type: message`` first, then ``detail``
    (a traceback) on the following lines where given (:func:`first_line` gives the first alone)."""
    row = base_row(system, estimator, settings)
    row.update(quantity="exponent", index=0, status=status,
               message=f"{type(exc).__name__}: {exc}" + (f"\n{detail}" if detail else ""))
    return [row]


def first_line(message: Optional[str]) -> str:
    """The first line of a row's message (``Type: message`` of an error row, without its traceback)."""
    return str(message or "").split("\n", 1)[0]


def failed(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in rows if r["status"] in FAILING]


def summary(rows: List[Dict[str, Any]]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out
