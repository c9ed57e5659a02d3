"""The task registry: register, names, get, build, select (one generic registry, suite.core.registry)."""
from __future__ import annotations

import fnmatch
import warnings
from typing import List, Optional

from reference_systems import System
from suite.core.errors import InvalidArgumentError, LyapbenchError, UnknownNameError
from suite.core.registry import Registry
from tasks.references import attach
from tasks.spec import TaskSpec, optional_spec

_REGISTRY = Registry("task", group="lyapbench.tasks")


def register(spec: TaskSpec, *, overwrite: bool = False) -> TaskSpec:
    """Register ``spec`` under ``spec.id``."""
    if not isinstance(spec, TaskSpec):
        raise InvalidArgumentError("spec", spec, "a tasks.TaskSpec")

    def factory() -> TaskSpec:
        return spec
    _REGISTRY.register(spec.id, factory, overwrite=overwrite)
    return spec


def names() -> List[str]:
    """Ids of every registered task (built-in, registered, entry points)."""
    return _REGISTRY.names()


def get(task_id: str) -> TaskSpec:
    """The TaskSpec of ``task_id`` (unknown ids get a "did you mean" error)."""
    spec = optional_spec(_REGISTRY.factory(task_id), task_id)
    if spec.id != task_id and ":" not in task_id:
        raise InvalidArgumentError(f"task registered as {task_id!r}", spec.id,
                                   "a TaskSpec whose id equals the name it is registered under "
                                   "(an entry point's name must be the task id)")
    return spec


def build(task_id: str, *, with_reference: bool = True, **params):
    """Build the System of ``task_id``; ``params`` override the model parameters.

    With the task's own parameters the System carries its computed reference
    when the cached one is fresh (``system.meta['reference_status']`` says
    'fresh', 'missing' or 'stale: ...'); with overrides it has none.
    """
    spec = get(task_id)
    if params:
        spec = spec.with_params(**params)
    system = spec.builder(spec)
    if not isinstance(system, System):
        raise InvalidArgumentError(f"builder of task {task_id!r}", type(system).__name__, "a System")
    system.meta["task"] = spec.id
    system.meta["task_spec"] = spec
    if params:
        system.params = dict(params)
        system.meta["reference_status"] = "overridden"
        system.declare(note=f"parameters {params} override the task's: its computed reference does not apply")
    elif with_reference:
        attach(spec, system)
    return system


def select(patterns: Optional[List[str]]) -> List[str]:
    """Task ids matching any of ``patterns``: an id, a glob ('rnn/*'), or 'tag:NAME'."""
    if isinstance(patterns, str):  # one pattern, not its characters
        patterns = [patterns]
    all_ids = names()
    if not patterns:
        return all_ids
    out: List[str] = []
    for pat in patterns:
        if pat.startswith("tag:"):
            hits = [t for t in all_ids if pat[4:] in _tags(t)]
        elif any(ch in pat for ch in "*?["):
            hits = fnmatch.filter(all_ids, pat)
        else:
            get(pat)  # unknown ids raise with suggestions
            hits = [pat]
        if not hits:
            raise UnknownNameError("task pattern", pat, ["tag:" + t for t in sorted({g for i in all_ids
                                                                                     for g in _tags(i)})])
        out.extend(h for h in hits if h not in out)
    return out


def _tags(task_id: str) -> tuple:
    """The task's tags; a task that cannot be loaded (a third party's broken entry point) has none, with a
    warning, so that it does not stop a selection among the others."""
    try:
        return tuple(get(task_id).tags)
    except LyapbenchError as exc:
        warnings.warn(f"task {task_id!r} skipped: {exc}", RuntimeWarning, stacklevel=3)
        return ()


def unregister(task_id: str) -> None:
    """Remove ``task_id`` from the registry (no error if it is not there)."""
    _REGISTRY.unregister(task_id)
