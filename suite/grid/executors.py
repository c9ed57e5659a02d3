"""Where a grid's cells run: in this process (the default), or on a Dask cluster.

An executor has two methods: ``run(cells, indices)`` yields ``(index, rows,
result, seconds)`` for each cell it was given, in any order;
``run_calls(calls)`` does the same for any picklable zero-argument callables
(a reference to compute, :func:`suite.cli.references.refresh`), yielding
``(index, value, exception, seconds)``.
The runner (:func:`suite.grid.runner.run_grid`) journals each cell as it arrives and
writes the tables in grid order, so a grid gives the same tables, and resumes
the same way, whichever executor ran it.

* :class:`InProcess`: one cell after another in this process.
* :class:`DaskExecutor` (``pip install lyapbench[distributed]``): each cell is
  one Dask task.  ``workers=N`` starts a local cluster of N worker processes
  on this machine (one thread each, plus one worker per CUDA device tagged
  with the resource ``GPU=1`` when the grid has CUDA cells); ``scheduler=
  'tcp://host:port'`` uses a cluster started elsewhere (``dask scheduler`` and
  ``dask worker ADDRESS --nthreads 1``, GPU workers with ``--resources
  GPU=1`` and one ``CUDA_VISIBLE_DEVICES`` each).  A cell whose device is CUDA
  is sent only to workers with a GPU; CPU cells go anywhere.  Each worker sets
  torch's intra-op threads to ``threads_per_worker`` before a cell.  A worker
  lost mid-cell (killed, out of memory) makes the scheduler run that cell again
  elsewhere (up to distributed's ``allowed-failures``, 3 by default); a cell
  that still cannot finish becomes an ``error`` row, and the grid goes on.

Every cell seeds its own random streams, so CPU float64 results are the same
bits in-process and on a cluster, provided torch runs with the same number of
threads in both (thread count changes how BLAS splits a product); the
in-process runs to compare with use ``--threads 1``.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from suite.core.args import check_int
from suite.core.errors import InvalidArgumentError, NotInstalledError
from suite.grid.cells import run_cell
from suite.scoring.rows import failure

Finished = Tuple[int, list, object, float]
Called = Tuple[int, Any, Optional[BaseException], float]


class InProcess:
    """Cells one after another in this process."""
    name = "in-process"

    def run(self, cells: Sequence, indices: Sequence[int]) -> Iterator[Finished]:
        for i in indices:
            yield (i, *run_timed(cells[i]))

    def run_calls(self, calls: Sequence[Callable[[], Any]]) -> Iterator[Called]:
        for i, call in enumerate(calls):
            yield (i, *call_timed(call))

    def close(self) -> None:
        pass


def run_timed(cell, threads: Optional[int] = None):
    """(rows, result, seconds) of one cell, with torch on ``threads`` threads if given: what an
    executor runs, in this process or as a Dask worker's task."""
    import torch


    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    rows, result = run_cell(cell, keep_result=True)
    return rows, result, time.perf_counter() - t0


def call_timed(call: Callable[[], Any], threads: Optional[int] = None) -> Tuple[Any, Optional[BaseException], float]:
    """(value, None, seconds) of ``call()``, or (None, the exception, seconds) where it raised one (reported by
    the caller, like a failed cell); with torch on ``threads`` threads if given."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        return call(), None, time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - the caller reports it
        return None, exc, time.perf_counter() - t0


def _needs_gpu(cell) -> bool:
    return str(cell.settings.get("device", "cpu")).startswith("cuda")


def local_worker_specs(workers: int, threads: int, gpus: int) -> dict:
    """SpecCluster worker specs: ``workers`` CPU workers, and one per GPU tagged GPU=1 that sees only it."""
    import logging

    from distributed import Nanny
    common = {"nthreads": 1, "host": "127.0.0.1", "silence_logs": logging.ERROR}  # loopback, quiet
    specs = {f"cpu-{i}": {"cls": Nanny, "options": {**common, "env": {"OMP_NUM_THREADS": str(threads)}}}
             for i in range(workers)}
    for g in range(gpus):
        specs[f"gpu-{g}"] = {"cls": Nanny, "options": {**common, "resources": {"GPU": 1},
                                                       "env": {"CUDA_VISIBLE_DEVICES": str(g),
                                                               "OMP_NUM_THREADS": str(threads)}}}
    return specs


class DaskExecutor:
    """Cells as Dask tasks on a local cluster (``workers``) or an existing one (``scheduler``)."""
    name = "dask"

    def __init__(self, workers: Optional[int] = None, scheduler: Optional[str] = None, threads_per_worker: int = 1,
                 gpus: Optional[int] = None, connect_timeout: str = "20s"):
        try:
            from distributed import Client, Scheduler, SpecCluster
        except ImportError as exc:
            raise NotInstalledError("the Dask executor needs dask.distributed: pip install 'lyapbench[distributed]'"
                                    f" ({exc})") from exc
        if (workers is None) == (scheduler is None):
            raise InvalidArgumentError("--workers / --scheduler", (workers, scheduler),
                                       "exactly one: a number of local workers, or a scheduler address")
        check_int("--workers", workers, 1, allowed="an integer >= 1", allow_none=True)
        check_int("threads per worker", threads_per_worker, 1)
        self.threads = threads_per_worker
        self.cluster = None
        if scheduler is not None:
            try:
                self.client = Client(scheduler, timeout=connect_timeout)
            except OSError as exc:
                raise InvalidArgumentError("--scheduler", scheduler, f"the address of a running Dask scheduler "
                                           f"(tcp://host:port; connecting failed: {exc})") from exc
        else:
            if gpus is None:
                import torch
                gpus = torch.cuda.device_count()
            self.cluster = SpecCluster(workers=local_worker_specs(workers, threads_per_worker, gpus),
                                       scheduler={"cls": Scheduler, "options": {"dashboard_address": None,
                                                                                "host": "127.0.0.1"}},
                                       silence_logs=logging.ERROR)
            self.client = Client(self.cluster)

    def gpu_workers(self) -> int:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return sum(1 for w in info.values() if (w.get("resources") or {}).get("GPU", 0) >= 1)

    def run(self, cells: Sequence, indices: Sequence[int]) -> Iterator[Finished]:
        if any(_needs_gpu(cells[i]) for i in indices) and self.gpu_workers() == 0:
            raise InvalidArgumentError("--device", "cuda", "workers tagged GPU=1 on the cluster (dask worker ... "
                                       "--resources GPU=1); this cluster has none")
        submitted = {i: (run_timed, (cells[i], self.threads), {"GPU": 1} if _needs_gpu(cells[i]) else None)
                     for i in indices}
        for i, value, exc in self._finished(submitted, "cell"):
            if exc is None:
                yield (i, *value)
            else:  # a cell that could not finish becomes an error row
                c = cells[i]
                yield i, failure(c.system, c.estimator_name, c.settings, exc), None, 0.0

    def run_calls(self, calls: Sequence[Callable[[], Any]]) -> Iterator[Called]:
        """Each call as one Dask task on a CPU worker; (index, value, exception, seconds) as they finish (a lost
        worker's call runs again elsewhere, as a cell does)."""
        submitted = {i: (call_timed, (call, self.threads), None) for i, call in enumerate(calls)}
        for i, value, exc in self._finished(submitted, "call"):
            yield (i, *value) if exc is None else (i, None, exc, 0.0)

    def _finished(self, submitted: dict, kind: str) -> Iterator[Tuple[int, Any, Optional[BaseException]]]:
        """Submit ``{index: (fn, args, resources)}`` as Dask tasks; (index, fn's value, None) as each finishes,
        or (index, None, the exception) where the task could not finish (lost workers beyond the retries, an
        argument that does not pickle).  Tasks not yet finished are cancelled when the caller stops."""
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:8]
        futures = {self.client.submit(fn, *args, key=f"lyapbench-{run_id}-{kind}-{i}", resources=resources,
                                      pure=False): i for i, (fn, args, resources) in submitted.items()}
        try:
            for fut in as_completed(list(futures)):
                try:
                    value = fut.result()
                except Exception as exc:  # noqa: BLE001 - reported by the caller
                    yield futures[fut], None, exc
                else:
                    yield futures[fut], value, None
        finally:
            for fut in futures:
                fut.cancel()

    def worker_pids(self) -> List[int]:
        import os
        return sorted(self.client.run(os.getpid).values())

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(name: str = "in-process", workers: Optional[int] = None, scheduler: Optional[str] = None,
                  threads_per_worker: int = 1):
    """The executor a command line asks for (``--executor``, ``--workers``, ``--scheduler``)."""
    if name in (None, "in-process", "local"):
        if workers is not None or scheduler is not None:
            raise InvalidArgumentError("--workers / --scheduler", (workers, scheduler),
                                       "only with --executor dask")
        return InProcess()
    if name == "dask":
        if workers is None and scheduler is None:
            workers = 2
        return DaskExecutor(workers=workers, scheduler=scheduler, threads_per_worker=threads_per_worker)
    raise InvalidArgumentError("--executor", name, "'in-process' or 'dask'")
