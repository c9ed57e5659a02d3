"""The task registry: neural-network scenarios built into ordinary Systems.

    import tasks
    tasks.names()                            # every task id
    spec = tasks.get("rnn/gru-xor-h64-end-v1")   # its TaskSpec
    system = tasks.build(spec.id)            # a System with its computed reference (if fresh)
    tasks.build(spec.id, hidden=16)          # a smaller variant (no reference: the task changed)
    tasks.register(TaskSpec(...))            # add one
    tasks.from_module(torch_rnn, inputs)     # a user's recurrent torch model as a System (tasks.modules)
    tasks.training_map(model, loss_fn, (X, y), lr=0.1)   # a user's training run as a map (tasks.training)

Third-party packages add tasks through the entry-point group
``lyapbench.tasks`` (an entry point names a TaskSpec or a zero-argument
factory returning one).  A built task is a System like any other, so every
estimator runs on it unchanged; its reference is *computed* and cached under
``results/references`` (:mod:`tasks.references`).
"""
from __future__ import annotations

# the built-in tasks register themselves on import
from tasks import catalogue  # noqa: F401
from tasks.modules import from_module
from tasks.references import attach, read, reference_path, references_dir, status
from tasks.registry import build, get, names, register, select, unregister
from tasks.spec import TaskSpec, optional_spec
from tasks.training import TrainingMap, training_map

__all__ = ["TaskSpec", "register", "unregister", "names", "get", "build", "select", "read", "status", "attach",
           "reference_path", "references_dir", "training_map", "TrainingMap", "from_module"]
