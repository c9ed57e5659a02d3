"""Compute, confirm and cache the reference spectrum of a task (``lyapbench tasks reference``).

Each task's System states its run in ``capabilities.reference_run`` (steps,
transient, batch, k; defaults :data:`DEFAULT_RUN`).  The routes and the
uncertainty are those of every computed reference
(:mod:`suite.studies.computed_references`): a long float64 QR run confirmed
by the two-trajectory estimate of lambda_1 (a task's tangent is autodiff
already, so there is no separate autodiff route).  The record adds the
task's definition key and its checkpoint's loss and score; it is read back
by :mod:`tasks.references`.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import tasks
from suite.studies.computed_references import (DEFAULT_RUN, REFERENCE_SEED, ReferenceNotConfirmed, confirmed_run,
                                               record_of, reference_bounds, write)


def compute(task_id: str, *, directory=None, device="cpu", steps: Optional[int] = None) -> Dict[str, Any]:
    """Compute, confirm and write the reference of ``task_id``; returns the record.

    ``steps`` overrides the task's reference run length (for tests).
    """
    spec = tasks.get(task_id)
    system = tasks.build(task_id, with_reference=False)
    run = {**DEFAULT_RUN, **(system.capabilities.reference_run or {})}
    if steps is not None:
        run["steps"] = steps
    # the two-trajectory route confirms lambda_1; the tasks' analytic tangents (RNN cells, Hessian-vector
    # products) are checked against autodiff in tests/test_tasks.py and tests/test_from_module.py
    res, routes, uncertainty = confirmed_run(system, run, f"task {task_id!r}", device, autodiff=False)
    meta = system.meta
    record = record_of(system, res, routes, uncertainty, run, task=spec.id, key=spec.id, spec_key=spec.key(),
                       checkpoint={"loss": meta.get("loss"), "score": meta.get("score")},
                       note="computed reference: a long float64 QR run confirmed by the two-trajectory estimate")
    write(record, spec.id, directory)
    return record


__all__ = ["compute", "reference_bounds", "ReferenceNotConfirmed", "REFERENCE_SEED", "DEFAULT_RUN"]
