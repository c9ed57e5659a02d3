"""Computed references of tasks: where they live, how they are read, when they are stale.

No closed form exists for a trained network's exponents, so each task's
reference is *computed* (``lyapbench tasks reference``, in
:mod:`suite.studies.task_references`: a long float64 QR run over many trajectories,
confirmed by the two-trajectory estimate of lambda_1) and cached as JSON in
``results/references/<id with '/' as '__'>.json`` (or under
``$LYAPBENCH_REFERENCES``).  Files are written by that command only, never
edited by hand.

A reference is used only if it still describes the task:

* its ``spec_key`` equals :meth:`TaskSpec.key` (the task's definition:
  family, data, schedule, checkpoint, seed, parameters), and
* its ``probe`` matches :func:`probe` of the freshly built System within
  PROBE_RTOL: a few steps of state and tangent from fixed initial states
  and noise, so any code change that alters the dynamics (the training,
  the input distribution, the cell) is caught, while edits that do not
  (comments, refactoring) leave the reference valid.  The tolerance, 1e-6
  relative, is far above float64 round-off in the training (the probes of
  references generated with one torch thread match networks retrained from
  scratch with two; the fused torch.nn layers and a loop over their cells
  gave probes equal to ~1e-13) and far below any real change.

Otherwise the task is built without a reference, and the note says why
(``missing`` or ``stale: ...``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from reference_systems import Reference, System, TrajectoryRNG
from suite.core.errors import InvalidArgumentError
from tasks.spec import TaskSpec

PROBE_RTOL = 1e-6
PROBE_SEED = 20261123


def references_dir() -> Path:
    """``$LYAPBENCH_REFERENCES`` or the checkout's ``results/references``."""
    env = os.environ.get("LYAPBENCH_REFERENCES")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "results" / "references"


def reference_path(task_id: str, directory: Optional[Path] = None) -> Path:
    return Path(directory or references_dir()) / (task_id.replace("/", "__") + ".json")


@torch.no_grad()
def probe(system: System, steps: int = 8, batch: int = 2, k: int = 3) -> List[float]:
    """Fingerprint of the dynamics: 4 numbers from ``steps`` steps of state and tangent (float64, CPU).

    Initial states and noise come from ``TrajectoryRNG(PROBE_SEED, batch)``; the
    frame starts as the first k unit vectors and is normalised column-wise every
    step.  Returns [sum x, sum x^2, sum V, sum of ln column norms] at the end.
    """
    k = min(k, system.dim)
    rng = TrajectoryRNG(PROBE_SEED, batch)
    x = system.sample_initial(batch, rng).to(torch.float64)
    V = torch.eye(system.dim, k, dtype=torch.float64).expand(batch, -1, -1).contiguous()
    log_norms = torch.zeros((), dtype=torch.float64)
    for _ in range(steps):
        x, V = system.tangent(x, V, rng)
        n = torch.linalg.vector_norm(V, dim=1, keepdim=True)
        log_norms = log_norms + torch.log(n).sum()
        V = V / n
    return [float(x.sum()), float((x * x).sum()), float(V.sum()), float(log_norms)]


def probes_match(a, b, rtol: float = PROBE_RTOL) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rtol * (1.0 + np.abs(b))))


def read(task_id: str, directory: Optional[Path] = None) -> Optional[Dict[str, Any]]:
    """The stored reference record of ``task_id`` (None if there is none)."""
    path = reference_path(task_id, directory)
    if not path.is_file():
        return None
    fix = f"regenerate it with `lyapbench tasks reference --tasks {task_id} --force`"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError("reference file", str(path), f"a JSON record written by `lyapbench tasks "
                                   f"reference`; this one is unreadable or corrupt ({exc}): {fix}") from exc
    for key in ("task", "spec_key", "probe", "values", "uncertainty", "source"):
        if not isinstance(record, dict) or key not in record:
            raise InvalidArgumentError("reference file", str(path), f"a record with the field {key!r} (it is "
                                       f"missing: the file is corrupt): {fix}")
    return record


def status(spec: TaskSpec, system: System, record: Optional[Dict[str, Any]]) -> str:
    """'fresh', 'missing', or 'stale: <why>' for ``record`` against the built ``system``."""
    if record is None:
        return "missing"
    if record["task"] != spec.id or record["spec_key"] != spec.key():
        return "stale: the task's definition (schedule, checkpoint, seed or parameters) changed"
    now = probe(system)
    if not probes_match(now, record["probe"]):
        return (f"stale: the dynamics changed (probe {np.round(now, 9).tolist()} != stored "
                f"{np.round(record['probe'], 9).tolist()})")
    return "fresh"


def to_reference(record: Dict[str, Any]) -> Reference:
    return Reference.make(record["values"], record["uncertainty"], "computed", record["source"],
                          bias_nats=float(record.get("bias_nats", 1.0)), note=record.get("note", ""),
                          extra={k: record[k] for k in ("git_sha", "created", "estimator", "confirmation")
                                 if k in record})


def attach(spec: TaskSpec, system: System, directory: Optional[Path] = None) -> Tuple[System, str]:
    """Give ``system`` its computed reference if a fresh one exists; returns (system, status)."""
    record = read(spec.id, directory)
    st = status(spec, system, record)
    if st == "fresh":
        system.reference = to_reference(record)
    else:
        system.reference = None
        system.declare(note=f"no computed reference ({st}); generate it with "
                            f"`lyapbench tasks reference --tasks {spec.id}`")
    system.meta["reference_status"] = st
    return system, st
