"""Third-party estimators, systems and tasks found through entry points, in a fresh interpreter.

A fake installed distribution (a ``*.dist-info`` folder with an
``entry_points.txt``) is put on PYTHONPATH, exactly what ``pip install`` of
a package declaring ``[project.entry-points."lyapbench.estimators"]`` leaves
behind; the suite must find both plug-ins by name without being told where.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_entry_point_estimator_and_system_are_discovered(tmp_path):
    (tmp_path / "my_le_pkg.py").write_text(textwrap.dedent('''
        import torch
        import reference_systems as rs
        from suite.estimators import QREstimator

        class MyQR(QREstimator):
            name = "my_qr"

        def my_logistic():
            """x -> 4x(1-x) written as a plain Map: lambda = ln 2 exactly (Ulam & von Neumann)."""
            ref = rs.Reference.make([0.6931471805599453], [0.0], "exact", "ln 2")
            return rs.Map("my_logistic", lambda x: 4 * x * (1 - x), dim=1,
                          jacobian=lambda x: (4 - 8 * x)[:, :, None], reference=ref,
                          sample_initial=lambda b, g: 0.05 + 0.9 * g.uniform(1))

        import tasks
        MY_TASK = tasks.TaskSpec("mine/logistic-v1", "map", "none", lambda spec: my_logistic(), tags=("mine",))
    '''))
    dist = tmp_path / "my_le_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-le-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[lyapbench.estimators]\nmy_qr = my_le_pkg:MyQR\n\n[lyapbench.systems]\nmy_logistic = my_le_pkg:my_logistic\n"
        "\n[lyapbench.tasks]\nmine/logistic-v1 = my_le_pkg:MY_TASK\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    code = ("from suite import estimators; import reference_systems as rs, tasks; "
            "print('my_qr' in estimators.names(), 'my_logistic' in rs.names(), "
            "tasks.select(['tag:mine']) == ['mine/logistic-v1'], tasks.build('mine/logistic-v1').dim == 1)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True"] * 4, out.stderr
    res = subprocess.run([sys.executable, "-m", "suite.cli", "compare", "--systems", "my_logistic,henon(a=1.4)",
                          "--estimators", "my_qr,qr", "--steps", "400", "--batch", "4", "--quiet",
                          "--output-dir", str(tmp_path / "out")],
                         env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert set(df.estimator) == {"my_qr", "qr"} and (df.status == "pass").all()
    assert set(df.system) == {"my_logistic", "henon(a=1.4, b=0.3)"}


def test_a_broken_task_entry_point_does_not_stop_the_others(tmp_path):
    """A third party's entry point that cannot be imported is a row of `tasks list` (exit 1) and is skipped, with
    a warning, by a tag selection among the others; before, either failed outright (a black-box test)."""
    (tmp_path / "my_tasks.py").write_text(textwrap.dedent('''
        import reference_systems as rs, tasks
        GOOD = tasks.TaskSpec("mine/logistic-v1", "map", "none", lambda spec: rs.get("logistic"), tags=("mine",))
    '''))
    dist = tmp_path / "my_tasks-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tasks\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lyapbench.tasks]\nmine/logistic-v1 = my_tasks:GOOD\n"
                                           "mine/broken-v1 = no_such_module:TASK\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    code = ("import tasks; from suite.cli import main; print(tasks.select('tag:mine')); "
            "print('exit', main(['tasks', 'list', '--tasks', 'mine/*']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.stdout.splitlines()[0] == "['mine/logistic-v1']", out.stderr
    assert "task 'mine/broken-v1' skipped" in out.stderr and "no_such_module" in out.stderr
    assert "mine/logistic-v1" in out.stdout and "cannot be loaded" in out.stdout and "exit 1" in out.stdout
