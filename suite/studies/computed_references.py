"""Compute, confirm and cache the reference of a system without a closed form.

The routes, each an independent check of the one before (:func:`confirmed_run`):

1. ``qr`` (Householder, re-orthonormalised every step) in float64 over
   ``batch`` trajectories seeded REFERENCE_SEED, so that an estimator scored
   with the usual seeds (0, 1, ...) is independent of it: the spectrum;
2. ``two_trajectory`` lambda_1 (no Jacobian at all) on trajectories seeded
   REFERENCE_SEED + 1 over the same T; the two must agree within the
   tolerance rule for a difference of two independent estimates,
   t * sqrt(s_QR^2 + s_2traj^2) + 2 b / T (:func:`reference_bounds`);
3. where the system has a hand-written Jacobian, the tangent map against
   automatic differentiation: ``jvp_qr`` (torch.func.jvp through ``step``)
   and ``qr`` on the same short run and seed agree to AUTODIFF_ATOL.

A disagreement raises :class:`ReferenceNotConfirmed` and nothing is written.
The stored uncertainty of each exponent is t * s_i + b / T (the reference's
own statistical and finite-time error).  Records are read back by
:mod:`reference_systems.computed` (staleness probe) for catalogue systems, and
by :mod:`tasks.references` for tasks (:mod:`suite.studies.task_references`).
"""
from __future__ import annotations

import datetime
import json
import math
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from reference_systems import System, computed
from suite import estimators
from suite.core.provenance import git_sha
from suite.core.result import LyapunovResult
from suite.reporting.tables import atomic_write
from suite.scoring.tolerance import DEFAULT_BIAS_NATS, derive
from suite.studies.features import spectrum_features

REFERENCE_SEED = 1_000_000
DEFAULT_RUN = {"steps": 20_000, "transient": 1_000, "batch": 32, "k": None}
#: qr and jvp_qr on the same trajectories differ by round-off only (float64)
AUTODIFF_ATOL = 1e-8
AUTODIFF_RUN = {"steps": 300, "transient": 100, "batch": 4}


class ReferenceNotConfirmed(ArithmeticError):
    """Two routes to the same exponents disagree beyond their joint uncertainty."""


def reference_bounds(qr: LyapunovResult, two: LyapunovResult, T: float, bias: float = DEFAULT_BIAS_NATS):
    """(allowed |lambda_1^QR - lambda_1^2traj|, the stored uncertainty of each exponent), by the tolerance rule.

    The allowed difference of two independent estimates is t * joint stderr + 2 b / T (each carries its
    finite-T bound b / T); the stored uncertainty is t * s_i + b / T.
    """
    dof = qr.meta["stderr_dof"]
    allowed = derive(stderr=math.hypot(qr.stderr[0], two.stderr[0]), dof=min(dof, two.meta["stderr_dof"]), T=T,
                     bias_nats=2 * bias)
    return float(allowed.total), derive(stderr=qr.stderr, dof=dof, T=T, bias_nats=bias).total


def autodiff_check(system: System, device="cpu") -> Optional[Dict[str, Any]]:
    """``qr`` (the system's tangent) against ``jvp_qr`` (autodiff through ``step``) on one short run; None
    where the system has no hand-written Jacobian (both would be autodiff) or ``step`` is not differentiable."""
    if not system.hand_written_tangent or not system.capabilities.differentiable_step:
        return None
    run = dict(AUTODIFF_RUN, seed=REFERENCE_SEED + 2, device=device, dtype=torch.float64)
    steps = run.pop("steps")
    a = estimators.get("qr", reorth_every=1, method="householder").estimate(system, steps, **run)
    b = estimators.get("jvp_qr", reorth_every=1, method="householder").estimate(system, steps, **run)
    diff = float(np.max(np.abs(a.exponents - b.exponents)))
    return {"estimators": ["qr", "jvp_qr"], "steps": steps, "batch": run["batch"], "seed": run["seed"],
            "max_abs_difference": diff, "allowed": AUTODIFF_ATOL}


def confirmed_run(system: System, run: Dict[str, Any], label: str, device="cpu",
                  autodiff: bool = True) -> Tuple[LyapunovResult, Dict[str, Any], np.ndarray]:
    """The QR spectrum of ``system`` over ``run``, confirmed by the other routes; returns
    (result, routes, uncertainty per exponent) or raises :class:`ReferenceNotConfirmed`."""
    T = run["steps"] * system.dt
    common = dict(transient=run["transient"], batch=run["batch"], device=device, dtype=torch.float64)
    res = estimators.get("qr", reorth_every=1, method="householder").estimate(
        system, run["steps"], k=run.get("k"), seed=REFERENCE_SEED, **common)
    two = estimators.get("two_trajectory").estimate(system, run["steps"], k=1, seed=REFERENCE_SEED + 1, **common)
    diff = abs(res.exponents[0] - two.exponents[0])
    allowed, uncertainty = reference_bounds(res, two, T)
    routes = {"two_trajectory": {"lambda1": float(two.exponents[0]), "stderr": float(two.stderr[0]),
                                 "abs_difference": float(diff), "allowed": float(allowed),
                                 "seed": REFERENCE_SEED + 1, "wall_seconds": round(two.wall_seconds, 2)}}
    if not diff <= allowed:
        raise ReferenceNotConfirmed(
            f"{label}: QR lambda_1 = {res.exponents[0]:.6g} +- {res.stderr[0]:.2g} and two-trajectory "
            f"lambda_1 = {two.exponents[0]:.6g} +- {two.stderr[0]:.2g} differ by {diff:.3g} > {allowed:.3g} "
            "(t * joint stderr + 2/T): the tangent map and the step disagree; no reference written")
    check = autodiff_check(system, device) if autodiff else None
    if check is not None:
        routes["autodiff"] = check
        if not check["max_abs_difference"] <= AUTODIFF_ATOL:
            raise ReferenceNotConfirmed(
                f"{label}: the hand-written tangent and autodiff through step give exponents "
                f"{check['max_abs_difference']:.3g} apart (> {AUTODIFF_ATOL:g}) on the same trajectories: "
                "the Jacobian is wrong; no reference written")
    return res, routes, uncertainty


def record_of(system: System, res: LyapunovResult, routes: Dict[str, Any], uncertainty, run: Dict[str, Any],
              **fields) -> Dict[str, Any]:
    """The JSON record of a confirmed run (``fields``: key, spec_key and anything the caller adds)."""
    T = run["steps"] * system.dt
    confirmed_by = " and ".join(f"{name}" for name in routes)
    return {
        **fields, "probe": computed.probe(system),
        "values": res.exponents.tolist(), "stderr": res.stderr.tolist(), "uncertainty": np.asarray(uncertainty).tolist(),
        "stderr_dof": res.meta["stderr_dof"], "bias_nats": DEFAULT_BIAS_NATS, "dim": system.dim,
        "k": int(res.exponents.size), "provenance": "computed",
        "source": (f"lyapbench qr(reorth_every=1, method='householder'), float64, {run['batch']} trajectories x "
                   f"{run['steps']} steps after {run['transient']}, seed {REFERENCE_SEED}, git {git_sha()}; "
                   f"confirmed by {confirmed_by}; uncertainty = t(1-1e-4/2, dof) * stderr + 1/T"),
        "estimator": "qr(reorth_every=1, method='householder')", "T": T, "steps": run["steps"],
        "transient": run["transient"], "batch": run["batch"], "seed": REFERENCE_SEED,
        "routes": routes, "confirmation": routes["two_trajectory"], "git_sha": git_sha(),
        "versions": res.meta["versions"],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(res.wall_seconds, 2), "features": spectrum_features(res.exponents, system.dim),
    }


def write(record: Dict[str, Any], key: str, directory=None) -> None:
    atomic_write(computed.reference_path(key, directory), json.dumps(record, indent=1, default=_jsonable) + "\n")


def compute_system(system: System, *, directory=None, device="cpu", steps: Optional[int] = None) -> Dict[str, Any]:
    """Compute, confirm and write the reference of a catalogue ``system`` that declares ``reference_run``."""
    run = {**DEFAULT_RUN, **(system.capabilities.reference_run or {})}
    if steps is not None:
        run["steps"] = steps
    res, routes, uncertainty = confirmed_run(system, run, system.label, device)
    key = computed.system_key(system)
    # the reference the system was built with (e.g. mean-field), kept in the record beside the computed one
    fresh = system.meta.get("reference_status") == "fresh"
    limit = system.meta.get("limit_reference") if fresh else system.reference
    record = record_of(system, res, routes, uncertainty, run, key=key, spec_key=system.label,
                       note="computed reference of the finite system as defined: a long float64 QR run confirmed "
                            "by the two-trajectory estimate of lambda_1" + (" and by autodiff tangents"
                                                                            if "autodiff" in routes else ""),
                       limit={"values": limit.values.tolist(), "uncertainty": limit.uncertainty.tolist(),
                              "provenance": limit.provenance} if limit is not None else None)
    write(record, key, directory)
    return record


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")
