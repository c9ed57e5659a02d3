"""What compiling a recorded unit costs on this machine: measured, and remembered across processes.

Inductor keeps what it compiled in an on-disk cache (its FX graph cache, on by
default), so the second process to compile the same unit pays a fraction of
the first (a Lorenz-63 unit of 16 steps and their QR steps, CPU: 50-62 s
cold, 2-4 s from the cache).  'auto' (:mod:`suite.estimators.numerics.capture`) compiles a unit
only where the time it saves exceeds the time it costs, so it needs that cost
before compiling: the seconds the last compilation of the same graph took
here (kept in ``lyapbench_compile_seconds.json`` beside inductor's cache,
keyed by the graph's code, its inputs' shapes, strides and dtypes, the
device type and the torch version), or for a graph not compiled here before
:data:`COLD_SECONDS_PER_NODE` times its number of operations (a cold
compilation).  Reading or writing the file never fails a run: without it
every unit counts as cold.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Sequence, Tuple

import torch

#: seconds of a cold inductor compilation per operation of the recorded graph (CPU, C++ wrapper, one thread, fresh
#: TORCHINDUCTOR_CACHE_DIR; Lorenz-63 units: 16 intervals of one step and their QR steps, 3,088 operations, 50-62 s;
#: 16 steps, 1,464-1,535 operations, 15-18 s): the upper end of the measured 0.010-0.020
COLD_SECONDS_PER_NODE = 0.02
FILE_NAME = "lyapbench_compile_seconds.json"


def cache_path() -> str:
    """The file beside inductor's own cache (``TORCHINDUCTOR_CACHE_DIR``, or its default under the temp dir)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
        root = cache_dir()
    except Exception:  # noqa: BLE001 - an older or newer torch without the helper
        root = os.path.join(tempfile.gettempdir(), "torchinductor_lyapbench")
    return os.path.join(root, FILE_NAME)


def graph_key(graph_module, inputs: Sequence[torch.Tensor]) -> str:
    """What identifies a compilation: the graph's code, the inputs' layout, the device type, torch's version."""
    layout = [(tuple(a.shape), a.stride(), str(a.dtype), a.device.type) for a in inputs]
    text = f"{torch.__version__}\n{layout}\n{graph_module.code}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _load() -> dict:
    try:
        with open(cache_path()) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def predicted_seconds(graph_module, inputs: Sequence[torch.Tensor]) -> Tuple[float, str]:
    """Seconds compiling ``graph_module`` on ``inputs`` is expected to take, and where the figure comes from."""
    seconds = _load().get(graph_key(graph_module, inputs))
    if isinstance(seconds, (int, float)) and seconds >= 0:
        return float(seconds), "measured here before"
    nodes = sum(1 for node in graph_module.graph.nodes if node.op == "call_function")
    return COLD_SECONDS_PER_NODE * nodes, f"a cold compilation of {nodes} operations"


def remember(graph_module, inputs: Sequence[torch.Tensor], seconds: float) -> None:
    """Keep the seconds a compilation took (atomically replacing the file; silently skipped if it cannot be written)."""
    path = cache_path()
    try:
        data = _load()
        data[graph_key(graph_module, inputs)] = round(float(seconds), 3)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".lyapbench-")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass
