"""The built-in tasks: one place, a few lines each.

RNN scenarios (tasks.rnn): three families trained briefly on three stream
tasks with checkpoints at init / mid / end, a hidden-size ladder 16 ... 512,
and untrained tanh networks across the gain g driven by the copy task's
inputs.  Training-map scenarios (tasks.iris_training): full-batch gradient
descent on Iris across learning rates, and mini-batch SGD.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from tasks.registry import register
from tasks.rnn import driven_rnn
from tasks.spec import TaskSpec
from tasks.iris_training import training_map_task

# brief, deterministic training (float64 Adam on the CPU, seconds per network)
_SCHEDULE = {"optimizer": "adam", "lr": 0.01, "steps": 300, "batch": 32, "length": 40}
# estimator runs on a task: the stationary driven dynamics; full spectrum where it is cheap
_VALIDATION = {"steps": 2_000, "transient": 500, "batch": 16}
# the computed reference: 2.5x the steps, 2x the trajectories, the same k (about 1-3 minutes per task)
_REFERENCE_RUN = {"steps": 5_000, "transient": 1_000, "batch": 32}


def _rnn(family: str, task: str, hidden: int, checkpoint: str, *, task_params: Optional[Dict[str, Any]] = None,
         gain: Optional[float] = None, k: Optional[int] = None, schedule=None, description: str = "") -> None:
    trained = checkpoint != "untrained"
    name = (f"rnn/{family}-{task}-h{hidden}-{checkpoint}-v1" if trained
            else f"rnn/{family}-{task}input-h{hidden}-g{gain:g}-untrained-v1")
    validation, reference_run = dict(_VALIDATION), dict(_REFERENCE_RUN)
    if k is not None:
        validation["k"] = reference_run["k"] = k
    params: Dict[str, Any] = {"family": family, "hidden": hidden, "task": task,
                              "task_params": dict(task_params or {}), "validation": validation,
                              "reference_run": reference_run}
    if gain is not None:
        params["gain"] = gain
    tags = ("rnn", family, task, checkpoint) + (("gain-sweep",) if not trained else ())
    register(TaskSpec(name, family, task, driven_rnn, schedule=dict(schedule or _SCHEDULE) if trained else {},
                      checkpoint=checkpoint, seed=0, tags=tags, params=params,
                      description=description or (f"{family} RNN, H={hidden}, {checkpoint} of training on "
                                                  f"{task}" if trained else
                                                  f"untrained tanh RNN, H={hidden}, gain {gain:g}, "
                                                  f"driven by {task} inputs")))


for _ckpt in ("init", "mid", "end"):
    _rnn("tanh", "copy", 64, _ckpt)
    _rnn("gru", "xor", 64, _ckpt)
    _rnn("lstm", "adding", 32, _ckpt)

# hidden sizes 16 ... 512 (leading 8 exponents where the full spectrum would cost O(H^3) per step)
_rnn("tanh", "copy", 16, "end")
_rnn("tanh", "copy", 256, "end", k=8)
_rnn("tanh", "copy", 512, "end", k=8, schedule={**_SCHEDULE, "lr": 0.001, "steps": 200})  # at lr 0.01 it stays at chance

# the edge of chaos: untrained networks across the gain, driven by the copy task's inputs
for _g in (0.5, 1.0, 1.5, 2.0, 3.0):
    _rnn("tanh", "copy", 128, "untrained", gain=_g, k=16)


def _mlp(lr: float, *, sgd_batch: Optional[int] = None, weight_decay: float = 0.0, regime: str) -> None:
    """Training of the 4-10-3 sigmoid MLP on Iris as a map (tasks.iris_training), one learning rate."""
    opt = f"sgd{sgd_batch}" if sgd_batch else "gd"
    wd = f"-wd{weight_decay:g}" if weight_decay else ""
    params = {"lr": lr, "hidden": 10, "sgd_batch": sgd_batch, "weight_decay": weight_decay,
              # the finite-time horizon (training steps 1000..3000) and the leading 4 exponents
              "validation": {"steps": 2_000, "transient": 1_000, "batch": 8, "k": 4}}
    register(TaskSpec(f"mlp/iris-h10-{opt}{wd}-lr{lr:g}-v1", "mlp-" + opt + wd, "iris", training_map_task,
                      schedule={"optimizer": opt, "lr": lr, "weight_decay": weight_decay, "sgd_batch": sgd_batch},
                      checkpoint="training map", seed=0, tags=("training-map", opt, regime), params=params,
                      description=f"{'mini-batch SGD' if sgd_batch else 'full-batch GD'} training map of a 4-10-3 MLP "
                                  f"on Iris, lr {lr:g}{', weight decay ' + format(weight_decay, 'g') if weight_decay else ''}"
                                  f" ({regime})"))


# the learning-rate sweep of Danovski, Soriano & Lacasa (2024): regimes measured in tasks/iris_training.py
for _lr, _regime in ((0.1, "regular"), (1.0, "regular"), (10.0, "edge-of-stability"), (30.0, "intermittent"),
                     (100.0, "chaotic"), (150.0, "chaotic")):
    _mlp(_lr, regime=_regime)
# weight decay lifts the H + 1 structural zero exponents: a strictly negative lambda_1 where training is regular
_mlp(10.0, weight_decay=0.01, regime="regular")
_mlp(30.0, weight_decay=0.01, regime="chaotic")
_mlp(50.0, sgd_batch=16, regime="chaotic")
