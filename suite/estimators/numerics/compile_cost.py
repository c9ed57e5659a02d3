"""What compiling a unit costs on this machine: measured, and remembered across processes.

Inductor keeps what it compiled in an on-disk cache (its FX graph cache, on by
default), so the second process to compile the same unit pays a fraction of
the first (a Lorenz-63 unit of 16 steps and their QR steps, CPU: 50-62 s
cold, 2-4 s from the cache).  'auto' (:mod:`suite.estimators.numerics.capture`)
compiles a unit only where the time it saves exceeds the time it costs, and
must know that cost before recording the unit (a recording of 16 steps costs
about a second itself): the seconds the last compilation of the same unit
took here (kept in ``lyapbench_compile_seconds.json`` beside inductor's
cache, keyed by the unit's identity: the estimator, the system, the unit's
shape, its inputs' shapes, strides, dtypes and device type, the torch
version), or for a unit not compiled here before a cold compilation:
:data:`COLD_SECONDS_PER_STEP` times its steps before the unit is recorded (a
lower bound that decides whether recording it is worth it), then, once the
recording shows its size, :data:`COLD_SECONDS_PER_OPERATION` times its aten
operations (a flow of many terms compiles for minutes: dysts's Aizawa took
142 s, ArnoldWeb several minutes, where the step count predicted 16 s).
Reading or writing the file never fails a run: without it every unit counts as
cold.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Optional, Tuple

import torch

#: seconds of a cold inductor compilation per step of a unit (CPU, C++ wrapper, one thread, fresh inductor cache;
#: Lorenz-63: 16 steps 15-18 s, 16 steps each with its QR step 50-62 s): the low end, so that a unit that would
#: repay a cold compilation is not refused it
COLD_SECONDS_PER_STEP = 1.0
#: seconds of a cold compilation per aten operation of the recorded unit (the same conditions; Lorenz-63's unit of
#: 16 steps and their QR steps: 3,408 operations, 50-62 s; dysts's Aizawa: 9,360 operations, 142 s): the low end
COLD_SECONDS_PER_OPERATION = 50.0 / 3408
FILE_NAME = "lyapbench_compile_seconds.json"


def cache_path() -> str:
    """The file beside inductor's own cache (``TORCHINDUCTOR_CACHE_DIR``, or its default under the temp dir)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
        root = cache_dir()
    except Exception:  # noqa: BLE001 - an older or newer torch without the helper
        root = os.path.join(tempfile.gettempdir(), "torchinductor_lyapbench")
    return os.path.join(root, FILE_NAME)


def unit_key(identity) -> str:
    """What identifies a compilation: the unit's identity (a repr-able tuple) and torch's version."""
    return hashlib.sha256(f"{torch.__version__}\n{identity!r}".encode()).hexdigest()[:32]


def _load() -> dict:
    try:
        with open(cache_path()) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def predicted_seconds(identity, steps: int, operations: Optional[int] = None) -> Tuple[float, str]:
    """Seconds compiling the unit ``identity`` of ``steps`` steps (and, once recorded, ``operations`` aten
    operations) is expected to take, and where the figure comes from."""
    seconds = _load().get(unit_key(identity))
    if isinstance(seconds, (int, float)) and seconds >= 0:
        return float(seconds), "measured here before"
    if operations is not None and COLD_SECONDS_PER_OPERATION * operations > COLD_SECONDS_PER_STEP * steps:
        return COLD_SECONDS_PER_OPERATION * operations, f"a cold compilation of {operations} operations"
    return COLD_SECONDS_PER_STEP * steps, f"a cold compilation of {steps} steps"


def remember(identity, seconds: float) -> None:
    """Keep the seconds a compilation took (atomically replacing the file; silently skipped if it cannot be written)."""
    path = cache_path()
    try:
        data = _load()
        data[unit_key(identity)] = round(float(seconds), 3)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".lyapbench-")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass
