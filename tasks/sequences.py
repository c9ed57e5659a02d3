"""Synthetic sequence tasks with i.i.d. inputs per step: delayed copy, delayed XOR, adding.

Each task is a stream: its input u_t is drawn independently at every step
from a fixed distribution, and its target y_t is a function of the last few
inputs.  The same per-step draw serves training (sequences of length L) and
the Lyapunov analysis (the RNN's hidden-state map driven by u_t, a random
dynamical system whose exponents exist by Oseledets' theorem because the
driving is stationary).  All draws come from a per-trajectory
:class:`~reference_systems.TrajectoryRNG`, so the data are seeded and a
batch of B sequences equals B single ones.

* ``copy(delay=D)``: u_t = +-1 with probability 1/2; y_t = [u_{t-D} = +1]
  (binary, cross-entropy); chance level 0.693 nats.
* ``xor(delay=D)``: u_t as for copy; y_t = [u_{t-D} != u_{t-D-1}].
* ``adding(window=L, p=0.2)``: u_t = (v_t, m_t), v_t ~ U(0, 1), m_t = 1
  with probability p; y_t = sum_{s=t-L+1}^{t} v_s m_s (regression, squared
  error); the adding problem of Hochreiter & Schmidhuber (1997) as a stream.

The score is accuracy for the binary tasks and R^2 = 1 - MSE / Var(y) for
adding; ``lag`` is the number of leading steps without a target.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from reference_systems import TrajectoryRNG
from suite.core.args import check_int
from suite.core.errors import InvalidArgumentError, UnknownNameError


@dataclass(frozen=True)
class SequenceTask:
    """A stream task: per-step input distribution and targets (see the module docstring)."""
    name: str
    input_dim: int
    output_dim: int
    kind: str          # 'binary' (cross-entropy on a logit) or 'regression' (squared error)
    lag: int           # leading steps without a target
    params: Tuple[Tuple[str, float], ...] = ()

    def param(self, key: str) -> float:
        return dict(self.params)[key]

    def draw(self, generator: TrajectoryRNG, dtype=torch.float64) -> torch.Tensor:
        """One step's inputs for every trajectory of ``generator``, (B, input_dim)."""
        if self.name in ("copy", "xor"):
            return torch.where(generator.uniform(1) < 0.5, -1.0, 1.0).to(dtype)
        u = generator.uniform(2)
        marker = (u[:, 1:] < self.param("p")).to(torch.float64)
        return torch.cat([u[:, :1], marker], dim=1).to(dtype)

    def sequences(self, generator: TrajectoryRNG, length: int, dtype=torch.float64):
        """Inputs (B, length, input_dim) and targets (B, length - lag, output_dim)."""
        u = torch.stack([self.draw(generator, dtype) for _ in range(length)], dim=1)
        return u, self.targets(u)

    def targets(self, u: torch.Tensor) -> torch.Tensor:
        """Targets for steps lag .. L-1 of inputs ``u`` (B, L, input_dim)."""
        L = u.shape[1]
        if self.name == "copy":
            D = int(self.param("delay"))
            return (u[:, :L - D] > 0).to(u.dtype)
        if self.name == "xor":
            D = int(self.param("delay"))
            return (u[:, 1:L - D] != u[:, :L - D - 1]).to(u.dtype)
        W = int(self.param("window"))
        vm = (u[:, :, :1] * u[:, :, 1:])  # v_t m_t
        c = torch.cumsum(vm, dim=1)
        c = torch.cat([torch.zeros_like(c[:, :1]), c], dim=1)
        return c[:, W:] - c[:, :L + 1 - W]

    def loss_and_score(self, outputs: torch.Tensor, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, score) of readout ``outputs`` (B, L - lag, out) against ``targets``."""
        if self.kind == "binary":
            loss = F.binary_cross_entropy_with_logits(outputs, targets)
            score = ((outputs > 0).to(targets.dtype) == targets).to(torch.float64).mean()
        else:
            loss = F.mse_loss(outputs, targets)
            score = 1.0 - loss.detach() / targets.var()
        return loss, score


def sequence_task(name: str, **params) -> SequenceTask:
    """Build ``copy(delay)``, ``xor(delay)`` or ``adding(window, p)`` with checked parameters."""
    defaults: Dict[str, Dict[str, float]] = {"copy": {"delay": 3}, "xor": {"delay": 2},
                                             "adding": {"window": 8, "p": 0.2}}
    if name not in defaults:
        raise UnknownNameError("sequence task", name, defaults)
    unknown = set(params) - set(defaults[name])
    if unknown:
        key = sorted(unknown)[0]
        raise InvalidArgumentError(f"{name} parameter {key!r}", params[key], f"parameters {sorted(defaults[name])}")
    p = {**defaults[name], **params}
    if name in ("copy", "xor"):
        check_int("delay", p["delay"], 1)
        lag = p["delay"] + (1 if name == "xor" else 0)
        return SequenceTask(name, 1, 1, "binary", lag, tuple(sorted(p.items())))
    check_int("window", p["window"], 1)
    if not 0 < p["p"] < 1:
        raise InvalidArgumentError("p", p["p"], "a probability in (0, 1)")
    return SequenceTask(name, 2, 1, "regression", p["window"] - 1, tuple(sorted(p.items())))
