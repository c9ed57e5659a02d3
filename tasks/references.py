"""Computed references of tasks: the task's side of :mod:`reference_systems.computed`.

No closed form exists for a trained network's exponents, so each task's
reference is *computed* (``lyapbench tasks reference``, in
:mod:`suite.studies.task_references`: a long float64 QR run over many
trajectories, confirmed by the two-trajectory estimate of lambda_1) and cached
as JSON in ``results/references/<id with '/' as '__'>.json``.  A record is used
only while its ``spec_key`` equals :meth:`TaskSpec.key` and its probe matches
the freshly built system (:mod:`reference_systems.computed`); otherwise the
task is built without a reference, and the note says why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from reference_systems import System, computed
from reference_systems.computed import PROBE_RTOL, PROBE_SEED, probe, probes_match, references_dir, to_reference
from tasks.spec import TaskSpec


def reference_path(task_id: str, directory: Optional[Path] = None) -> Path:
    return computed.reference_path(task_id, directory)


def read(task_id: str, directory: Optional[Path] = None) -> Optional[Dict[str, Any]]:
    """The stored reference record of ``task_id`` (None if there is none)."""
    return computed.read(task_id, directory, fix=f"regenerate it with `lyapbench tasks reference --tasks {task_id} "
                                                 "--force`")


def status(spec: TaskSpec, system: System, record: Optional[Dict[str, Any]]) -> str:
    """'fresh', 'missing', or 'stale: <why>' for ``record`` against the built ``system``."""
    return computed.status(record, spec.id, spec.key(), system,
                           changed="the task's definition (schedule, checkpoint, seed or parameters) changed")


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


__all__ = ["PROBE_RTOL", "PROBE_SEED", "probe", "probes_match", "references_dir", "reference_path", "read", "status",
           "to_reference", "attach"]
