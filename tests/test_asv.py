"""Smoke test of the asv benchmarks (suite/benchmarks/, asv.conf.json).

(a) every benchmark module imports and every benchmark runs once, in this
    process, with its first parameter combination (which must not be skipped);
(b) ``asv check --python=same`` accepts the suite and the configuration;
(c) ``asv run --python=same --quick --dry-run`` runs every benchmark and every
    parameter combination once (quick profile) without a failure.  It runs
    against a copy of asv.conf.json whose results and machine file lie in a
    temporary directory, so nothing is written into results/asv/.

(b) and (c) are in the slow set (``pytest -m slow``): (c) alone took 156 s of one worker, and the default suite
ran 10 min 07 s in clean-clone CI with it; (a) keeps every benchmark running once by default.
"""
from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

asv_util = pytest.importorskip("asv.util", reason="asv is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("time_", "timeraw_", "mem_", "peakmem_", "track_")


def _modules():
    import suite.benchmarks as pkg
    mods = [pkg]
    for info in pkgutil.iter_modules(pkg.__path__):
        mods.append(importlib.import_module(f"{pkg.__name__}.{info.name}"))
    return mods


def _benchmarks():
    """(id, owner class or None, function) for every asv benchmark in the package."""
    out = []
    for mod in _modules():
        for name, obj in vars(mod).items():
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isclass(obj):
                for attr in sorted(vars(obj)):
                    if attr.startswith(PREFIXES) and callable(getattr(obj, attr)):
                        out.append((f"{mod.__name__}.{name}.{attr}", obj, attr))
            elif inspect.isfunction(obj) and name.startswith(PREFIXES):
                out.append((f"{mod.__name__}.{name}", None, obj))
    return out


BENCHMARKS = _benchmarks()


def _first_params(*sources):
    for src in sources:
        params = getattr(src, "params", None)
        if params is not None:
            if params and isinstance(params[0], (list, tuple)):
                return tuple(p[0] for p in params)
            return (params[0],) if params else ()
    return ()


def test_benchmarks_found():
    names = {b[0].rsplit(".", 1)[-1] for b in BENCHMARKS}
    assert {"time_estimate", "peakmem_estimate", "track_seconds_per_step",
            "track_abs_error_lambda1"} <= names, names


@pytest.mark.parametrize("bench", BENCHMARKS, ids=[b[0] for b in BENCHMARKS])
def test_benchmark_runs_once(bench):
    _, cls, attr = bench
    if cls is None:
        func, inst, owner = attr, None, attr
    else:
        inst = cls()
        func, owner = getattr(inst, attr), cls
    params = _first_params(func, owner)
    setup = getattr(inst if inst is not None else sys.modules[func.__module__], "setup", None)
    teardown = getattr(inst if inst is not None else sys.modules[func.__module__], "teardown", None)
    if setup is not None:
        try:
            setup(*params)
        except NotImplementedError as exc:  # pragma: no cover - a broken parameter order
            pytest.fail(f"the first parameter combination {params} is skipped: {exc}")
    try:
        value = func(*params)
    finally:
        if teardown is not None:
            teardown(*params)
    if bench[0].rsplit(".", 1)[-1].startswith("track_"):
        assert getattr(func, "unit", None), "track_* benchmarks state their unit"
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, value


def _asv(args, tmp_path, timeout):
    env = dict(os.environ, HOME=str(tmp_path), LYAPBENCH_ASV_PROFILE="quick")
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


# asv's static checks of the benchmark definitions (13 s); the dry run below imports and runs every
# benchmark in the default set, so this one is in the slow set
@pytest.mark.slow
def test_asv_check(tmp_path):
    proc = _asv(["check", "--python=same"], tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow  # 156 s of one worker, a quarter of the default suite's 10 minutes; (a) runs every benchmark
def test_asv_run_quick_dry_run(tmp_path):
    conf = asv_util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / conf["benchmark_dir"]),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"),
                env_dir=str(tmp_path / "env"))
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps(conf))
    proc = _asv(["machine", "--yes", "--machine", "lyapbench-smoke"], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _asv(["run", "--config", str(config), "--python=same", "--quick", "--dry-run", "--show-stderr",
                 "--machine", "lyapbench-smoke"], tmp_path, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "failed" not in out, out
    for name in {b[0].split(".", 2)[-1] for b in BENCHMARKS}:  # every benchmark ran
        assert name.rsplit(".", 1)[-1] in out, (name, out)
    assert not (ROOT / "results" / "asv" / "lyapbench-smoke").exists()
