"""Grids on a Dask LocalCluster of worker processes on loopback: the same table as in-process,
a worker killed mid-cell, a cell that raises."""
import os
import signal
import threading
import time

import pytest

pytest.importorskip("distributed")

import reference_systems as rs  # noqa: E402
from suite.cli import main  # noqa: E402
from suite.grid.executors import DaskExecutor, InProcess, make_executor  # noqa: E402
from suite.grid.runner import run_grid  # noqa: E402
from suite.grid.cells import validation_cells
from suite.reporting.tables import read_rows  # noqa: E402


def _without_wall(rows):
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


@pytest.fixture(scope="module")
def cluster():
    ex = DaskExecutor(workers=2, gpus=0)
    yield ex
    ex.close()


def test_the_command_line_grid_on_a_cluster_equals_in_process(tmp_path, cluster):
    """Through --scheduler (the fixture's LocalCluster of 2 worker processes: --workers 2 builds the same)."""
    args = ["validate", "--quick", "--systems", "henon,gaussian_products(N=4),lorenz63", "--estimators",
            "qr,two_trajectory", "--threads", "1", "--quiet"]
    assert main([*args, "--output-dir", str(tmp_path / "here")]) == 0
    address = cluster.client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")  # loopback
    assert main([*args, "--output-dir", str(tmp_path / "dask"), "--executor", "dask", "--scheduler", address]) == 0
    here, there = read_rows(tmp_path / "here" / "validation.csv"), read_rows(tmp_path / "dask" / "validation.csv")
    assert len(here) == 16 and _without_wall(there) == _without_wall(here)  # bit-identical CPU float64
    assert (tmp_path / "dask" / ".journal" / "validation").is_dir()


def _long_cells():
    # cells of ~1-2 s each on one core, so a kill lands inside one
    systems = [rs.get("lorenz63"), rs.get("rossler"), rs.get("gaussian_products", N=8)]
    cells = validation_cells(systems, ["qr", "two_trajectory"], quick=True, seed=3)
    for c in cells:
        c.settings["batch"] = 64
    return cells


@pytest.mark.slow  # 28 s of one worker: the default suite keeps the cluster grid test (docs/performance.md)
def test_a_worker_killed_mid_cell_only_reruns_that_cell(cluster):
    expected = run_grid(_long_cells(), progress=None, executor=InProcess())
    before = set(cluster.worker_pids())
    killed = []

    def kill_a_busy_worker():
        pids = cluster.client.run(os.getpid)
        t0 = time.time()
        while time.time() - t0 < 60:
            busy = [w for w, keys in cluster.client.processing().items() if keys]
            if busy:
                time.sleep(0.3)  # inside the cell
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    rows = run_grid(_long_cells(), progress=None, executor=cluster)
    killer.join()
    assert killed and killed[0] in before
    assert _without_wall(rows) == _without_wall(expected)  # nothing lost, nothing doubled
    t0 = time.time()
    while len(cluster.worker_pids()) < 2 and time.time() - t0 < 30:  # the nanny restarts the worker
        time.sleep(0.2)
    assert killed[0] not in cluster.worker_pids()


def test_a_cell_that_raises_is_an_error_row_and_the_grid_completes(cluster):
    from wrong_estimators import RaisesOnHenon
    systems = [rs.get("henon"), rs.get("gaussian_products", N=4), rs.get("logistic", r=3.9)]
    cells = validation_cells(systems, ["qr"], quick=True)
    for c in cells:
        c.estimator, c.estimator_name = RaisesOnHenon(), "raises_on_henon"
    rows = run_grid(cells, progress=None, executor=cluster)
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) == 1 and errors[0]["system"].startswith("henon")
    assert "deliberate failure on henon" in errors[0]["message"]
    assert {r["system"].split("(")[0] for r in rows if r["status"] == "pass"} == {"gaussian_products", "logistic"}


def test_executor_arguments_are_checked():
    with pytest.raises(ValueError, match="only with --executor dask"):
        make_executor("in-process", workers=2)
    with pytest.raises(ValueError, match="'in-process' or 'dask'"):
        make_executor("ray")
    with pytest.raises(ValueError, match="--workers"):
        DaskExecutor(workers=0)
    with pytest.raises(ValueError, match="exactly one"):
        DaskExecutor(workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="running Dask scheduler"):
        DaskExecutor(scheduler="tcp://127.0.0.1:9", connect_timeout="2s")  # nothing listens there


def test_cuda_cells_need_gpu_workers(cluster):
    cells = validation_cells([rs.get("henon")], ["qr"], quick=True, device="cuda")
    with pytest.raises(ValueError, match="GPU=1"):
        list(cluster.run(cells, [0]))


def test_any_call_runs_as_a_task_and_its_error_comes_back(cluster):
    """run_calls (what `lyapbench dysts references --executor dask` uses): values and exceptions by index,
    the same as in-process."""
    import functools
    import math
    calls = [functools.partial(math.sqrt, 4.0), functools.partial(math.sqrt, -1.0), functools.partial(pow, 2, 10)]
    for ex in (cluster, InProcess()):
        got = {i: (value, exc) for i, value, exc, seconds in ex.run_calls(calls)}
        assert got[0] == (2.0, None) and got[2] == (1024, None)
        assert got[1][0] is None and isinstance(got[1][1], ValueError) and "math domain" in str(got[1][1])


def test_the_suites_errors_travel_back_from_a_worker():
    """Errors raised in a Dask task come back pickled: each keeps its type, message and attributes (their
    constructors take other arguments than the message, which plain exception pickling cannot rebuild)."""
    import pickle
    from suite.core.errors import InvalidArgumentError, NotInstalledError, TrajectoryError, UnknownNameError
    for error in (InvalidArgumentError("k[0]", [0, -1], "a finite number"), UnknownNameError("system", "x", ["y"]),
                  TrajectoryError("trajectory 3 diverged", system="lorenz63"), NotInstalledError("jitcode")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error) and back.__dict__ == error.__dict__
