"""Input-driven RNN hidden-state dynamics: vanilla tanh, GRU and LSTM, trained or random.

After Vogt, Puelma Touzel, Shlizerman & Lajoie (2022), "On Lyapunov
exponents for RNNs: understanding information propagation using dynamical
systems tools" (Front. Appl. Math. Stat. 8:818799), and Engelken, Wolf &
Abbott (2020), "Lyapunov spectra of chaotic recurrent neural networks"
(arXiv 2006.02427).  The System is the hidden-state update of a torch.nn
cell driven by the task's inputs,

    x_{t+1} = cell(u_t, x_t),   u_t drawn i.i.d. from the task (tasks.sequences),

with x = h (tanh, GRU) or x = (h, c) stacked (LSTM, dimension 2H): a
random dynamical system whose exponents are per step, natural log.  The
System is built by :func:`tasks.from_module` on the torch.nn cell loaded
with the weights (one path for the registry's networks and a user's): the
state is torch's own cell function, bit for bit, and the tangent J V the
analytic derivative of PyTorch's equations.

Training is brief and deterministic: float64 on the CPU, Adam, sequences of
the task's inputs from a seeded TrajectoryRNG, the cell initialised by
torch's default initialisation under ``torch.manual_seed(seed)``; the
weights at the start ('init'), half-way ('mid') and at the end ('end') are
kept with the held-out loss and score at each.  Trained weights are cached
on disk (``$LYAPBENCH_CACHE`` or ``~/.cache/lyapbench``), keyed by the
training configuration and the source of this module and tasks.sequences,
so a change to the training code or the data retrains.  Untrained networks across a gain g use
W_hh ~ N(0, g^2 / H), W_ih ~ N(0, 1), zero biases (the edge of chaos of the
undriven network is g = 1; input drive moves it to larger g: Molgedey,
Schuchhardt & Schuster 1992).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Dict

import torch
from torch import nn

from reference_systems import Map, TrajectoryRNG
from suite.core.args import check_int, check_number
from suite.core.errors import InvalidArgumentError, UnknownNameError
from tasks.modules import from_module
from tasks.sequences import SequenceTask, sequence_task

FAMILIES = ("tanh", "gru", "lstm")
CHECKPOINTS = ("init", "mid", "end")
EVAL_SEQUENCES, EVAL_SEED_OFFSET = 256, 1_000_003  # held-out sequences, seeded apart from training


def make_cell(family: str, input_dim: int, hidden: int, device=None) -> nn.Module:
    """The float64 torch.nn cell of ``family`` (tanh: RNNCell, gru: GRUCell, lstm: LSTMCell)."""
    if family == "tanh":
        return nn.RNNCell(input_dim, hidden, nonlinearity="tanh", dtype=torch.float64, device=device)
    if family == "gru":
        return nn.GRUCell(input_dim, hidden, dtype=torch.float64, device=device)
    if family == "lstm":
        return nn.LSTMCell(input_dim, hidden, dtype=torch.float64, device=device)
    raise UnknownNameError("RNN family", family, FAMILIES)


def _source_hash() -> str:
    """Hash of the code that determines trained weights (this module and the tasks' data)."""
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / f).read_bytes() for f in ("rnn.py", "sequences.py"))).hexdigest()[:12]


def cache_dir() -> Path:
    return Path(os.environ.get("LYAPBENCH_CACHE") or Path.home() / ".cache" / "lyapbench") / "tasks"


_LAYERS = {"tanh": lambda i, h: nn.RNN(i, h, nonlinearity="tanh", batch_first=True, dtype=torch.float64),
           "gru": lambda i, h: nn.GRU(i, h, batch_first=True, dtype=torch.float64),
           "lstm": lambda i, h: nn.LSTM(i, h, batch_first=True, dtype=torch.float64)}


def _cell_params(layer: nn.Module) -> Dict[str, torch.Tensor]:
    """The one-layer torch.nn.RNN/GRU/LSTM's weights under the cell's names (same equations, same layout)."""
    return {name[:-3]: p.detach().clone() for name, p in layer.named_parameters()}  # 'weight_ih_l0' -> 'weight_ih'


def _outputs(family: str, layer: nn.Module, readout: nn.Module, u: torch.Tensor, lag: int) -> torch.Tensor:
    """Readout of the hidden states from a zero initial state, steps lag .. L-1."""
    h, _ = layer(u)
    return readout(h[:, lag:])


def train(family: str, task: SequenceTask, hidden: int, schedule: Dict[str, Any], seed: int) -> Dict[str, Any]:
    """Train ``family`` on ``task``; returns {checkpoint: {'params', 'loss', 'score'}} (cached on disk).

    ``schedule``: ``steps`` (Adam steps), ``lr``, ``batch`` (sequences per
    step), ``length`` (sequence length); gradient norm clipped at 1.  The
    fused one-layer torch.nn.RNN / GRU / LSTM trains (its equations are the
    cells'); the checkpoints hold its weights under the cell's names.  Loss
    and score are measured on EVAL_SEQUENCES held-out sequences.
    """
    config = {"family": family, "task": task.name, "task_params": task.params, "hidden": hidden,
              "schedule": schedule, "seed": seed, "source": _source_hash(), "torch": torch.__version__}
    key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return _train_cached(key, json.dumps(config, sort_keys=True, default=str))


@functools.lru_cache(maxsize=32)
def _train_cached(key: str, config_json: str) -> Dict[str, Any]:
    path = cache_dir() / f"{key}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - a corrupt cache entry is simply retrained
            pass
    cfg = json.loads(config_json)
    family, hidden, seed, sched = cfg["family"], cfg["hidden"], cfg["seed"], cfg["schedule"]
    task = sequence_task(cfg["task"], **dict(cfg["task_params"]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = _LAYERS[family](task.input_dim, hidden)
        readout = nn.Linear(hidden, task.output_dim, dtype=torch.float64)
    params = list(layer.parameters()) + list(readout.parameters())
    opt = torch.optim.Adam(params, lr=sched["lr"])
    data = TrajectoryRNG(seed, sched["batch"])
    held_out = task.sequences(TrajectoryRNG(seed + EVAL_SEED_OFFSET, EVAL_SEQUENCES), sched["length"])
    out: Dict[str, Any] = {}

    def keep(name):
        with torch.no_grad():
            loss, score = task.loss_and_score(_outputs(family, layer, readout, held_out[0], task.lag), held_out[1])
        out[name] = {"params": _cell_params(layer), "loss": float(loss), "score": float(score)}

    keep("init")
    for step in range(1, sched["steps"] + 1):
        u, y = task.sequences(data, sched["length"])
        loss, _ = task.loss_and_score(_outputs(family, layer, readout, u, task.lag), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step == sched["steps"] // 2:
            keep("mid")
    keep("end")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(out, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs a retraining next time
    return out


def random_weights(family: str, input_dim: int, hidden: int, gain: float, seed: int) -> Dict[str, torch.Tensor]:
    """W_hh ~ N(0, g^2/H), W_ih ~ N(0, 1), zero biases (the tanh cell only)."""
    if family != "tanh":
        raise InvalidArgumentError("family", family, "'tanh' for an untrained network across a gain")
    gen = torch.Generator().manual_seed(seed)
    W_hh = torch.randn(hidden, hidden, generator=gen, dtype=torch.float64) * (gain / math.sqrt(hidden))
    W_ih = torch.randn(hidden, input_dim, generator=gen, dtype=torch.float64)
    zero = torch.zeros(hidden, dtype=torch.float64)
    return {"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": zero, "bias_hh": zero.clone()}


def driven_rnn(spec) -> Map:
    """Builder of the RNN tasks: ``spec.params`` = family, hidden, task, task_params, (gain).

    The torch cell loaded with the checkpoint's weights, wrapped by :func:`tasks.from_module` and
    driven by the task's inputs (``meta``: ``family``, ``loss`` and ``score`` of the checkpoint on
    held-out sequences, ``gain`` for an untrained network)."""
    p = spec.params
    family = p["family"]
    if family not in FAMILIES:
        raise UnknownNameError("RNN family", family, FAMILIES)
    hidden = check_int("hidden", p["hidden"], 1)
    task = sequence_task(p["task"], **p.get("task_params", {}))
    meta: Dict[str, Any] = {"validation": dict(p.get("validation") or {"steps": 2_000, "transient": 500,
                                                                        "batch": 16}),
                            "reference_run": dict(p.get("reference_run") or {}),
                            "source": "tasks/rnn.py (Vogt et al. 2022; Engelken et al. 2020)"}
    if spec.checkpoint == "untrained":
        gain = check_number("gain", p["gain"], low=0.0, low_open=True)
        weights = random_weights(family, task.input_dim, hidden, gain, spec.seed)
        meta.update(gain=gain, loss=None, score=None)
    else:
        if spec.checkpoint not in CHECKPOINTS:
            raise InvalidArgumentError("checkpoint", spec.checkpoint, f"one of {CHECKPOINTS} or 'untrained'")
        ckpt = train(family, task, hidden, dict(spec.schedule), spec.seed)[spec.checkpoint]
        weights = ckpt["params"]
        meta.update(loss=ckpt["loss"], score=ckpt["score"])
    cell = make_cell(family, task.input_dim, hidden, device="meta")  # no initialisation, no global RNG drawn
    cell.load_state_dict(weights, assign=True)
    return from_module(cell, lambda generator, batch: task.draw(generator), name=spec.id, family=family, **meta)
