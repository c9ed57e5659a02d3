"""Compute, confirm and cache the reference spectrum of a task.

Each task's System states how its reference is computed in
``meta['reference_run']`` (steps, transient, batch, k; defaults below):

1. the QR estimator (Householder, re-orthonormalised every step) in float64
   over ``batch`` independent trajectories seeded REFERENCE_SEED, so that an
   estimator scored with the usual seeds (0, 1, ...) is independent of it;
2. the two-trajectory estimate of lambda_1 (no Jacobian: an independent
   route that would expose a wrong tangent map) on trajectories seeded
   REFERENCE_SEED + 1, over the same T;
3. the two must agree: |lambda_1^QR - lambda_1^2traj| <= t * sqrt(s_QR^2 +
   s_2traj^2) + 2 b / T (the tolerance rule of suite.scoring.tolerance for a
   difference of two independent estimates, each with its finite-T bias
   bound b / T); otherwise nothing is written and the command fails.

The stored uncertainty of each exponent is t * s_i + b / T (the same rule:
the reference's own statistical and finite-time error), with t the
Student-t quantile of suite.scoring.tolerance.  The file records the estimator and
its parameters, T, the batch, the seeds, the git commit, the library
versions, the date, the probe that detects a stale reference
(tasks.references), the checkpoint's loss and score, and the spectrum's
features (suite.studies.features).
"""
from __future__ import annotations

import datetime
import json
import math
from typing import Any, Dict, Optional

import numpy as np
import torch

import tasks
from suite import estimators
from suite.core.provenance import git_sha
from suite.core.result import LyapunovResult
from suite.reporting.tables import atomic_write
from suite.scoring.tolerance import DEFAULT_BIAS_NATS, derive
from suite.studies.features import spectrum_features
from tasks.references import probe, reference_path

REFERENCE_SEED = 1_000_000
DEFAULT_RUN = {"steps": 20_000, "transient": 1_000, "batch": 32, "k": None}


class ReferenceNotConfirmed(ArithmeticError):
    """QR and two-trajectory lambda_1 disagree beyond their joint uncertainty."""


def reference_bounds(qr: LyapunovResult, two: LyapunovResult, T: float, bias: float = DEFAULT_BIAS_NATS):
    """(allowed |lambda_1^QR - lambda_1^2traj|, the stored uncertainty of each exponent), by the tolerance rule.

    The allowed difference of two independent estimates is t * joint stderr + 2 b / T (each carries its
    finite-T bound b / T); the stored uncertainty is t * s_i + b / T.
    """
    dof = qr.meta["stderr_dof"]
    allowed = derive(stderr=math.hypot(qr.stderr[0], two.stderr[0]), dof=min(dof, two.meta["stderr_dof"]), T=T,
                     bias_nats=2 * bias)
    return float(allowed.total), derive(stderr=qr.stderr, dof=dof, T=T, bias_nats=bias).total


def compute(task_id: str, *, directory=None, device="cpu", steps: Optional[int] = None) -> Dict[str, Any]:
    """Compute, confirm and write the reference of ``task_id``; returns the record.

    ``steps`` overrides the task's reference run length (for tests).
    """
    spec = tasks.get(task_id)
    system = tasks.build(task_id, with_reference=False)
    run = {**DEFAULT_RUN, **(system.capabilities.reference_run or {})}
    if steps is not None:
        run["steps"] = steps
    bias = DEFAULT_BIAS_NATS
    T = run["steps"] * system.dt
    common = dict(transient=run["transient"], batch=run["batch"], device=device, dtype=torch.float64)
    qr = estimators.get("qr", reorth_every=1, method="householder")
    res = qr.estimate(system, run["steps"], k=run["k"], seed=REFERENCE_SEED, **common)
    two = estimators.get("two_trajectory").estimate(system, run["steps"], k=1, seed=REFERENCE_SEED + 1, **common)
    dof = res.meta["stderr_dof"]
    diff = abs(res.exponents[0] - two.exponents[0])
    allowed, uncertainty = reference_bounds(res, two, T, bias)
    confirmation = {"estimator": "two_trajectory", "lambda1": float(two.exponents[0]),
                    "stderr": float(two.stderr[0]), "abs_difference": float(diff), "allowed": float(allowed),
                    "seed": REFERENCE_SEED + 1, "wall_seconds": round(two.wall_seconds, 2)}
    if not diff <= allowed:
        raise ReferenceNotConfirmed(
            f"task {task_id!r}: QR lambda_1 = {res.exponents[0]:.6g} +- {res.stderr[0]:.2g} and two-trajectory "
            f"lambda_1 = {two.exponents[0]:.6g} +- {two.stderr[0]:.2g} differ by {diff:.3g} > {allowed:.3g} "
            "(t * joint stderr + 2/T): the tangent map and the step disagree; no reference written")
    meta = system.meta
    record = {
        "task": spec.id, "spec_key": spec.key(), "probe": probe(system),
        "values": res.exponents.tolist(), "stderr": res.stderr.tolist(), "uncertainty": uncertainty.tolist(),
        "stderr_dof": dof, "bias_nats": bias, "dim": system.dim, "k": int(res.exponents.size),
        "provenance": "computed",
        "source": (f"lyapbench qr(reorth_every=1, method='householder'), float64, {run['batch']} trajectories x "
                   f"{run['steps']} steps after {run['transient']}, seed {REFERENCE_SEED}, git {git_sha()}; "
                   f"lambda_1 confirmed by two_trajectory ({two.exponents[0]:.5g} +- {two.stderr[0]:.1g}); "
                   "uncertainty = t(1-1e-4/2, dof) * stderr + 1/T"),
        "estimator": "qr(reorth_every=1, method='householder')", "T": T, "steps": run["steps"],
        "transient": run["transient"], "batch": run["batch"], "seed": REFERENCE_SEED,
        "confirmation": confirmation, "git_sha": git_sha(), "versions": res.meta["versions"],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(res.wall_seconds, 2),
        "checkpoint": {"loss": meta.get("loss"), "score": meta.get("score")},
        "features": spectrum_features(res.exponents, system.dim),
        "note": "computed reference: a long float64 QR run confirmed by the two-trajectory estimate",
    }
    atomic_write(reference_path(spec.id, directory), json.dumps(record, indent=1, default=_jsonable) + "\n")
    return record


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")
