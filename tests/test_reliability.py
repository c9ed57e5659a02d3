"""Faults during long runs (kill, Ctrl-C, resume) and determinism (seeds, cell order, batch splits)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import reference_systems as rs
from suite import estimators
from suite.cli import main
from suite.grid.journal import Journal, cell_key, decode_result, encode_result
from suite.grid.runner import run_grid
from suite.grid.cells import validation_cells
from suite.reporting.tables import read_rows

ROOT = Path(__file__).resolve().parent.parent
# 8 cells on one core (quick budgets): the process is signalled within ~20 ms of the second
# cell's file appearing; the Lorenz-63 cells last (~1 s each) keep it from finishing first, which
# the small-system cells alone (a few ms each since Gram-Schmidt QR) might not
GRID = ["validate", "--quick", "--systems", "henon,logistic(r=3.9),gaussian_products(N=4),lorenz63",
        "--estimators", "qr,two_trajectory", "--threads", "1", "--quiet"]
N_CELLS = 8


def _without_wall(rows):
    """Rows without what may differ between two runs of the same grid: the wall time, and the commit (a commit
    made while the suite runs changes it between the uninterrupted and the resumed run)."""
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "git_sha")} for r in rows]


def _default_sigint():
    # a shell that starts pytest in the background (`cmd &` without job control) hands it
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler in the child:
    # Ctrl-C reaches a user's lyapbench with the default disposition, so the child gets it too
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out: Path, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "suite.cli", *GRID, "--output-dir", str(out), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _wait_for_cells(out: Path, n: int, proc, timeout: float = 240.0) -> int:
    journal = out / ".journal" / "validation"
    t0 = time.time()
    while time.time() - t0 < timeout:
        done = len(list(journal.glob("*.json"))) if journal.is_dir() else 0
        if done >= n:
            return done
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError(f"no {n} finished cells within {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert main([*GRID, "--output-dir", str(out)]) == 0
    return read_rows(out / "validation.csv")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_grid_resumes_to_the_uninterrupted_table(tmp_path, uninterrupted, sig):
    proc = _start(tmp_path)
    done = _wait_for_cells(tmp_path, 2, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert done < N_CELLS
    if sig == signal.SIGINT:  # Ctrl-C: a clean end with a summary of what was saved
        assert proc.returncode == 130
        assert "finished cells are saved" in err and "--resume" in err and "validation.csv" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    saved = len(list((tmp_path / ".journal" / "validation").glob("*.json")))
    assert done <= saved < N_CELLS  # at most the cell in flight is lost
    resumed = _start(tmp_path, "--resume")
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    assert _without_wall(read_rows(tmp_path / "validation.csv")) == _without_wall(uninterrupted)


def test_without_resume_a_grid_starts_afresh_and_resume_with_no_write_is_refused(tmp_path, capsys):
    args = ["validate", "--systems", "henon", "--estimators", "qr", "--quick", "--quiet", "--output-dir", str(tmp_path)]
    assert main(args) == 0
    journal = tmp_path / ".journal" / "validation"
    (journal / "stale-cell.json").write_text("{}")
    assert main(args) == 0
    assert not (journal / "stale-cell.json").exists() and len(list(journal.glob("*.json"))) == 1
    assert main([*args, "--resume"]) == 0
    assert "resumed from the journal" not in capsys.readouterr().err  # --quiet
    assert main([*args, "--resume", "--no-write"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_journal_replays_a_result_exactly_and_reruns_an_unreadable_cell(tmp_path):
    system = rs.get("gaussian_products", N=3)
    res = estimators.get("qr").estimate(system, 50, batch=4, seed=2)
    j = Journal(tmp_path / "j")
    key = cell_key(system, "qr", {"steps": 50, "seed": 2})
    j.put(key, {"result": encode_result(res)})
    back = decode_result(Journal(tmp_path / "j", resume=True).get(key)["result"])
    for name in ("exponents", "stderr", "per_trajectory", "history", "times"):
        assert np.array_equal(getattr(back, name), getattr(res, name))
    assert np.array_equal(back.meta["history_stderr"], res.meta["history_stderr"])
    assert back.meta["versions"] == res.meta["versions"] and back.wall_seconds == res.wall_seconds
    # another definition is another key; an unreadable file is reported and its cell runs again
    assert cell_key(system, "qr", {"steps": 51, "seed": 2}) != key
    assert cell_key(rs.get("gaussian_products", N=4), "qr", {"steps": 50, "seed": 2}) != key
    (tmp_path / "j" / f"{key}.json").write_text('{"result": [1, 2')
    import io
    warn = io.StringIO()
    assert Journal(tmp_path / "j", resume=True, warn=warn).get(key) is None
    assert "unreadable" in warn.getvalue()


def test_same_seed_gives_bit_identical_rows_in_any_cell_order():
    systems = [rs.get("henon"), rs.get("gaussian_products", N=4), rs.get("logistic", r=3.9)]
    cells = validation_cells(systems, ["qr", "two_trajectory"], quick=True, seed=7)
    forward = run_grid(cells, progress=None)
    backward = run_grid(validation_cells(systems, ["qr", "two_trajectory"], quick=True, seed=7)[::-1],
                        progress=None)
    key = lambda r: (r["system"], r["estimator"], r["quantity"], r["index"])  # noqa: E731
    assert sorted(map(str, _without_wall(forward))) == sorted(map(str, _without_wall(backward)))
    assert {key(r) for r in forward} == {key(r) for r in backward}
    other = run_grid(validation_cells(systems, ["qr"], quick=True, seed=8), progress=None)
    assert [r["estimate"] for r in other if r["quantity"] == "exponent"] != \
        [r["estimate"] for r in forward if r["quantity"] == "exponent" and r["estimator"] == "qr"]


def _split_runs(system, est, B=6, parts=((0, 2), (2, 1), (3, 3)), steps=60):
    k = 1 if est == "two_trajectory" else min(system.dim, 4)
    E = estimators.get(est)
    whole = E.estimate(system, steps, transient=5, batch=B, seed=11, k=k).per_trajectory
    split = np.concatenate([E.estimate(system, steps, transient=5, batch=b, seed=(11, first), k=k).per_trajectory
                            for first, b in parts])
    return whole, split


CATALOGUE = [(n, v) for n in rs.names() for v in rs.variants(n)]


@pytest.mark.parametrize("name,params", CATALOGUE, ids=[f"{n}{v}" for n, v in CATALOGUE])
def test_a_split_batch_gives_the_same_trajectories(name, params):
    """Bit-identical for every system that does not declare meta['batch_invariant'] = False; those
    (one weight matrix multiplied across the batch) agree to round-off on a short horizon."""
    system = rs.get(name, **params)
    exact = system.meta.get("batch_invariant", True)
    for est in ("qr", "two_trajectory"):
        whole, split = _split_runs(system, est, steps=60 if exact else 20)
        if exact:
            assert np.array_equal(whole, split), (est, np.abs(whole - split).max())
        else:
            # qr: round-off (~1e-15 per step) grown by exp(lambda_1 t) over 25 steps (lambda_1 <= 0.4 per
            # step here: a factor <= 2e4), over T = 20: < 1e-12.  two_trajectory: the separation d0 =
            # sqrt(eps)(1 + |x|) carries a relative round-off eps |x| / d0 ~ sqrt(eps) = 1.5e-8 per step,
            # random over 20 steps: ~ sqrt(20) 1.5e-8 / 20 = 3e-9; bound 1e-7 (|x| up to ~30)
            np.testing.assert_allclose(split, whole, rtol=0, atol=1e-9 if est == "qr" else 1e-7)


@pytest.mark.parametrize("tid", ["rnn/tanh-copy-h16-end-v1", "mlp/iris-h10-sgd16-lr50-v1"])
def test_tasks_declare_that_a_split_batch_is_equal_to_round_off_only(tid):
    import tasks
    system = tasks.build(tid)  # shared W_hh, or vmapped products: BLAS paths that depend on the batch
    assert system.meta["batch_invariant"] is False
    whole, split = _split_runs(system, "qr", steps=10)
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-9)


@pytest.mark.parametrize("argv,table", [
    (["convergence", "--quick", "--systems", "henon", "--batch", "8"], "convergence.csv"),
    (["throughput", "--systems", "henon", "--estimators", "qr", "--batch", "1,4", "--min-seconds", "0.01",
      "--repeats", "1"], "throughput_cpu_quick.csv"),
    (["regress", "--update-baseline", "--systems", "henon", "--estimators", "qr", "--min-seconds", "0.01",
      "--repeats", "1"], "regress_run/throughput.csv"),
])
def test_every_grid_command_replays_its_journal(tmp_path, argv, table):
    """A finished grid run again with --resume replays every cell: the same table, timings included."""
    args = [*argv, "--output-dir", str(tmp_path), "--quiet", "--threads", "1"]
    if argv[0] == "regress":
        args += ["--baseline-dir", str(tmp_path / "baseline")]
    assert main(args) == 0
    first = (tmp_path / table).read_text()
    assert len(list((tmp_path / ".journal").glob("*/*.json"))) >= 1
    assert main([*args, "--resume"]) == 0
    assert (tmp_path / table).read_text() == first  # measured again, the timings would differ


def test_a_malformed_journal_entry_is_rerun_not_trusted(tmp_path):
    import io
    cells = validation_cells([rs.get("henon")], ["qr"], quick=True)
    Journal(tmp_path / "j").put(cell_key(cells[0].system, cells[0].estimator_name, cells[0].settings), {"oops": 1})
    warn = io.StringIO()
    rows = run_grid(cells, progress=None, journal=Journal(tmp_path / "j", resume=True, warn=warn))
    assert [r["status"] for r in rows] == ["pass"] * 3 and "runs again" in warn.getvalue()


def test_a_journal_entry_scored_against_another_reference_runs_again(tmp_path):
    """The cell key is the run's definition, not the reference it was scored against: an entry whose exponent rows
    name another reference than the system's now (a record recomputed or withdrawn since, as GlycolyticOscillation's
    was) runs again on resume instead of replaying stale pass/fail rows; an unchanged one is replayed."""
    import io
    cells = validation_cells([rs.get("henon")], ["qr"], quick=True)
    first = run_grid(cells, progress=None, journal=Journal(tmp_path / "j"))
    key = cell_key(cells[0].system, cells[0].estimator_name, cells[0].settings)
    entry = Journal(tmp_path / "j", resume=True).get(key)
    entry["rows"] = [dict(r, estimate=123.0) if r["quantity"] == "exponent" else r for r in entry["rows"]]
    Journal(tmp_path / "j").put(key, entry)  # a marked replay, under the same reference
    warn = io.StringIO()
    replayed = run_grid(cells, progress=None, journal=Journal(tmp_path / "j", resume=True, warn=warn))
    assert [r["estimate"] for r in replayed if r["quantity"] == "exponent"] == [123.0] * 2 and not warn.getvalue()
    entry["rows"] = [dict(r, reference=r["reference"] + 0.01) if r["quantity"] == "exponent" else r
                     for r in entry["rows"]]
    Journal(tmp_path / "j").put(key, entry)
    rerun = run_grid(cells, progress=None, journal=Journal(tmp_path / "j", resume=True, warn=warn))
    assert "scored against another reference" in warn.getvalue()
    assert _without_wall(rerun) == _without_wall(first)
