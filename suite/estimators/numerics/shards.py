"""A large unit's batch split into shards, one per thread, each shard a unit compiled for one thread.

    plan, why_not = shards.planned(inputs, device)          # plan None: not sharded, and why
    unit = shards.ShardedUnit(shard_unit, plan, split, dims, expected)   # called like the recorded unit

Inductor parallelises each loop of a unit over the batch with OpenMP, a barrier per loop: a Lorenz-63 ``qr()``
unit has hundreds of them, and on the 2-core CPU two threads ran such a unit little faster than one.  Trajectories
are independent, so the batch can be split instead: S equal shards (S the torch threads, reduced until each shard
holds at least :data:`MIN_SHARD` trajectories), the unit recorded and compiled once for a shard's size and one
thread, and the S shard calls run at once on a pool of S worker threads (the compiled call releases the GIL): one
hand-off per unit instead of a barrier per loop.  Each shard reads views of the unit's inputs (those whose first
dimension is the batch; the others, like the taper's weights and the generator's counter, whole), and its outputs
are copied into outputs laid out as the recording's; a 0-dim boolean output (the unit's checks) is the ``and`` of
the shards'.  A unit with another unbatched output, a batch that does not split evenly, or no batch of frames is
not sharded.  Per trajectory a shard does the recording's operations, so the sharded unit is held to the round-off
bound of any compiled unit (:func:`~suite.estimators.numerics.capture.compile_recorded`).

Measured side by side in one process, Lorenz-63, float64, two threads, ms a unit call sharded / whole
(``python -m suite.studies.batch_last --compare shards``, docs/performance.md): B = 4,096 ``qr()`` 5.1 / 6.7,
``qr(reorth_every='auto')`` 2.1 / 3.0, ``jvp_qr`` 5.4 / 5.7; B = 16,384 ``qr(reorth_every='auto')`` 9.3 / 13.3;
B = 1,024 1.05x.  ``two_trajectory``'s unit of states ran 0.87x as fast in shards, hence frames only.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from suite.estimators.numerics import batch_last

#: trajectories a shard holds at least (below it the hand-off to a worker thread, tens of microseconds, is not
#: repaid by a shard's share of the unit)
MIN_SHARD = 512

_POOL: Optional[ThreadPoolExecutor] = None
_POOL_PID: Optional[int] = None
_POOL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Plan:
    """S shards of ``size`` trajectories each (``batch`` = S * size)."""
    shards: int
    size: int

    @property
    def batch(self) -> int:
        return self.shards * self.size


def planned(inputs: Sequence[torch.Tensor], device: torch.device, threads: Optional[int] = None
            ) -> Tuple[Optional[Plan], str]:
    """How a unit with these inputs (the batch the first input's first dimension) is split, and why not where it
    is not: CPU only, a batch of frames (:func:`~suite.estimators.numerics.batch_last.batch_of`), S = ``threads``
    (default ``torch.get_num_threads()``) reduced until each shard holds at least :data:`MIN_SHARD` trajectories,
    the batch a multiple of S."""
    if device.type != "cpu":
        return None, f"not sharded: device {device.type!r} (the CPU's threads only)"
    if not batch_last.batch_of(inputs):
        return None, ("not sharded: no batch of frames (two_trajectory's unit of states ran 0.87x as fast in "
                      "shards)")
    threads = torch.get_num_threads() if threads is None else threads
    batch = inputs[0].shape[0]
    shards = min(threads, batch // MIN_SHARD)
    if shards < 2:
        return None, (f"not sharded: {threads} thread(s), batch {batch} (two shards or more of at least "
                      f"{MIN_SHARD} trajectories)")
    if batch % shards:
        return None, f"not sharded: batch {batch} does not split into {shards} equal shards"
    return Plan(shards, batch // shards), ""


def batched(inputs: Sequence, batch: int) -> List[bool]:
    """Which inputs are split: tensors whose first dimension is the batch."""
    return [isinstance(a, torch.Tensor) and a.dim() >= 1 and a.shape[0] == batch for a in inputs]


def shard_of(inputs: Sequence, split: Sequence[bool], plan: Plan, index: int) -> list:
    """Shard ``index``'s inputs: views of the split inputs, the others whole."""
    return [a.narrow(0, index * plan.size, plan.size) if s else a for a, s in zip(inputs, split)]


def output_dims(full: Sequence[torch.Tensor], shard: Sequence[torch.Tensor], plan: Plan) -> List[Optional[int]]:
    """For each output of the unit (``full``, from the whole batch) the dimension that holds the batch, from the
    same output of a shard; None for a 0-dim boolean (and-ed over the shards).  Raises ValueError for an output
    that is neither (an unbatched value cannot be put together from shards)."""
    dims: List[Optional[int]] = []
    for j, (u, v) in enumerate(zip(full, shard)):
        differ = [i for i, (a, b) in enumerate(zip(u.shape, v.shape)) if a != b]
        if u.dim() == v.dim() and len(differ) == 1 and u.shape[differ[0]] == plan.batch \
                and v.shape[differ[0]] == plan.size:
            dims.append(differ[0])
        elif u.dim() == v.dim() == 0 and u.dtype == v.dtype == torch.bool:
            dims.append(None)
        else:
            raise ValueError(f"output {j} of shape {tuple(u.shape)} is not batched (shard: {tuple(v.shape)})")
    return dims


def _one_thread() -> None:
    torch.get_num_threads()  # torch's lazy per-thread initialisation first, else it would later restore the
    torch.set_num_threads(1)  # process's count in this thread


def _pool(workers: int) -> ThreadPoolExecutor:
    """The worker threads, each set to one torch thread (no OpenMP team of its own: libgomp throttles every team's
    barriers once it manages more threads than there are CPUs, which made a unit compiled for two threads 4.6x
    slower in the same process); the process's torch threads are restored after starting them.  A new pool in a
    process forked from the one that started the old (whose threads the child does not have)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers or _POOL_PID != os.getpid():
            threads = torch.get_num_threads()
            if _POOL is not None and _POOL_PID == os.getpid():
                _POOL.shutdown(wait=False)  # a smaller pool: its idle threads end
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lyapbench-shard",
                                       initializer=_one_thread)
            _POOL_PID = os.getpid()
            started = threading.Barrier(workers)
            for future in [_POOL.submit(started.wait) for _ in range(workers)]:
                future.result()
            torch.set_num_threads(threads)
        return _POOL


class ShardedUnit:
    """``unit(*inputs)`` over the whole batch from ``shard_unit`` called on each shard, each on a worker thread of
    one torch thread (the caller waits); outputs laid out as ``expected`` (the recording's outputs)."""

    def __init__(self, shard_unit: Callable, plan: Plan, split: Sequence[bool], dims: Sequence[Optional[int]],
                 expected: Sequence[torch.Tensor]):
        self.shard_unit, self.plan, self.split, self.dims = shard_unit, plan, list(split), list(dims)
        self.layouts = [(tuple(e.shape), e.stride(), e.dtype, e.device) for e in expected]

    def _run(self, inputs, outputs, index: int) -> list:
        pieces = self.shard_unit(*shard_of(inputs, self.split, self.plan, index))
        flags = []
        for out, dim, piece in zip(outputs, self.dims, pieces):
            if dim is None:
                flags.append(piece)
            else:
                out.narrow(dim, index * self.plan.size, self.plan.size).copy_(piece)
        return flags

    def __call__(self, *inputs):
        outputs = [torch.empty_strided(shape, stride, dtype=dtype, device=device)
                   for shape, stride, dtype, device in self.layouts]
        pool = _pool(self.plan.shards)
        flags = [f.result() for f in [pool.submit(self._run, inputs, outputs, i) for i in range(self.plan.shards)]]
        combined = iter([torch.stack(list(column)).all() for column in zip(*flags)])
        return tuple(next(combined) if dim is None else out for out, dim in zip(outputs, self.dims))
