"""TaskSpec: the frozen description of one task, and its fingerprint.

A task is a neural-network scenario turned into an ordinary System: the
hidden-state dynamics of an RNN driven by its task's inputs, or the training
map of a small network.  The spec names everything that fixes the System
(model family, data, training schedule, checkpoint, seed, model parameters);
``builder(spec) -> System`` constructs it.  Ids are versioned
(``rnn/gru-xor-h64-end-v1``): a change that alters a task's dynamics gets a
new version, and the computed reference of the old one is detected as stale
(:mod:`tasks.references`).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from suite.core.args import check_int
from suite.core.errors import InvalidArgumentError

_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)+-v[0-9]+$")  # a family, then the name


@dataclass(frozen=True)
class TaskSpec:
    """One registered task.

    Attributes
    ----------
    id : str
        ``family/name-vN``: lower case, slashes between parts, a version suffix.
    family : str
        Model family ('tanh', 'gru', 'lstm', 'mlp', ...).
    dataset : str
        Data or input distribution ('copy', 'xor', 'adding', 'iris', ...).
    schedule : mapping
        How the model was trained (optimizer, learning rate, steps, batch,
        sequence length); for a training-map task, the map's own optimizer
        settings.  Empty for an untrained network.
    checkpoint : str
        Which weights: 'init', 'mid', 'end' (of the schedule), or 'untrained'
        (a random network), 'training map' (the system is training itself).
    seed : int
        Seed of the weights' initialisation and of the training data.
    tags : tuple of str
        For selection on the command line (``--tasks tag:rnn``).
    params : mapping
        Model parameters (hidden size, gain, learning rate, ...); overridable
        in :func:`tasks.build` (then the computed reference no longer applies).
    builder : callable ``(TaskSpec) -> System``
    description : str
        One line for ``lyapbench tasks list``.
    """

    id: str
    family: str
    dataset: str
    builder: Callable[["TaskSpec"], Any] = field(compare=False, repr=False)
    schedule: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: str = "end"
    seed: int = 0
    tags: Tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise InvalidArgumentError("TaskSpec.id", self.id, "lower-case 'family/name-vN' "
                                       "(letters, digits, '-', '_', '.', '/', ending in a version -vN)")
        for name in ("family", "dataset", "checkpoint"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidArgumentError(f"TaskSpec.{name}", getattr(self, name), "a non-empty string")
        if not callable(self.builder):
            raise InvalidArgumentError("TaskSpec.builder", self.builder, "a callable (TaskSpec) -> System")
        check_int("TaskSpec.seed", self.seed, 0)
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "schedule", dict(self.schedule))
        object.__setattr__(self, "params", dict(self.params))
        try:
            self.key()
        except TypeError as exc:
            raise InvalidArgumentError("TaskSpec schedule/params", (self.schedule, self.params),
                                       f"JSON-serialisable values ({exc})") from exc

    def key(self) -> str:
        """sha256 of everything that defines the task (the builder excluded), for reference files."""
        body = {"id": self.id, "family": self.family, "dataset": self.dataset, "schedule": self.schedule,
                "checkpoint": self.checkpoint, "seed": self.seed, "params": self.params}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def with_params(self, **overrides) -> "TaskSpec":
        """The same task with some model parameters replaced (unknown names are refused)."""
        unknown = [k for k in overrides if k not in self.params]
        if unknown:
            raise InvalidArgumentError(f"{self.id} parameter {unknown[0]!r}", overrides[unknown[0]],
                                       f"parameters {sorted(self.params)}")
        return replace(self, params={**self.params, **overrides})

    def describe(self) -> Dict[str, Any]:
        return {"id": self.id, "family": self.family, "dataset": self.dataset, "checkpoint": self.checkpoint,
                "params": ", ".join(f"{k}={v}" for k, v in self.params.items() if not isinstance(v, (dict, list))),
                "tags": ",".join(self.tags), "description": self.description}


def optional_spec(obj: Any, origin: str) -> Optional[TaskSpec]:
    """``obj`` if it is a TaskSpec, the spec a zero-argument factory returns, else an error."""
    if isinstance(obj, TaskSpec):
        return obj
    if callable(obj):
        spec = obj()
        if isinstance(spec, TaskSpec):
            return spec
    raise InvalidArgumentError("task", origin, "a TaskSpec or a zero-argument factory returning one")
