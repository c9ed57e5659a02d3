"""`lyapbench validate` and `lyapbench list` end to end (exit codes, files, user systems)."""
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from suite.cli import build_parser, main
from suite.scoring.rows import COLUMNS

USER_SYSTEMS = textwrap.dedent('''
    import math, torch
    import reference_systems as rs

    def lozi_step(x):
        return torch.stack([1 - 1.7 * x[:, 0].abs() + x[:, 1], 0.5 * x[:, 0]], 1)

    # no Jacobian (autodiff), a reference for the exact sum only would need invariants: none here
    lozi = rs.Map("lozi", step=lozi_step, dim=2, validation={"steps": 2000, "transient": 100, "batch": 8})
    # a flow with an exact reference: x' = A x, exponents = real parts of eig(A) = -0.5, -1
    decay = rs.Flow("decay", rhs=lambda x: torch.stack([-0.5 * x[:, 0], -1.0 * x[:, 1]], 1), dim=2, dt=0.05,
                    reference=rs.Reference.make([-0.5, -1.0], [0.0, 0.0], "exact", "eigenvalues of diag(-0.5, -1)"),
                    validation={"steps": 400, "transient": 400, "batch": 4})
''')

WRONG_REFERENCE = textwrap.dedent('''
    import reference_systems as rs
    SYSTEMS = [rs.get("henon")]
    wrong = rs.Map("henon_wrong", step=SYSTEMS[0]._f, dim=2,
                   sample_initial=lambda b, g: g.uniform(2, low=-0.1, high=0.1),
                   reference=rs.Reference.make([0.45, -1.62319], [3e-5, 3e-5], "literature", "deliberately wrong"),
                   validation={"steps": 3000, "transient": 200, "batch": 16})
    SYSTEMS.append(wrong)
''')


def test_validate_selection_writes_tables_and_exits_0(tmp_path, capsys):
    code = main(["validate", "--quick", "--systems", "henon,logistic", "--output-dir", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    df = pd.read_csv(tmp_path / "validation.csv")
    assert list(df.columns) == COLUMNS
    assert set(df.system.str.split("(").str[0]) == {"henon", "logistic"}
    assert (df.status == "pass").all()
    assert set(df.estimator) == {"qr", "two_trajectory"}  # the default estimators
    qr = df[df.estimator == "qr"]
    assert len(qr[qr.quantity == "exponent"]) == 2 + 5 and len(qr[qr.quantity == "sum rule"]) == 1 + 5
    # largest exponent only; for the 1-D logistic map that is the full spectrum, with its sum rule
    assert len(df[df.estimator == "two_trajectory"]) == 1 + 5 + 5
    md = (tmp_path / "validation.md").read_text()
    assert "estimate ± stderr" in md and "henon(a=1.4, b=0.3)" in md and "Tolerance rule" in md
    assert "henon(a=1.4, b=0.3)" in out and "summary: 24 pass" in out


def test_user_system_file_runs_through_validate(tmp_path, capsys):
    f = tmp_path / "my_systems.py"
    f.write_text(USER_SYSTEMS)
    code = main(["validate", "--system-file", str(f), "--output-dir", str(tmp_path), "--quiet"])
    assert code == 0
    df = pd.read_csv(tmp_path / "validation.csv")
    df = df[df.estimator == "qr"]
    lozi = df[df.system == "lozi"]
    assert list(lozi.status) == ["no reference", "no reference", "pass"]  # the sum rule still applies
    assert abs(lozi.estimate.iloc[0] - 0.470) < 0.01
    # the printed table folds the two exponents without reference into one row that shows them
    l1, l2 = lozi.estimate.iloc[:2]
    se = sorted(f"{v:.2g}" for v in lozi.stderr.iloc[:2])
    shown = f"{l1:.3g}, {l2:.3g} (stderr {se[0] if se[0] == se[1] else se[0] + '–' + se[1]})"
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("lozi") and " qr " in ln
                and "no reference" in ln)
    assert "1–2" in line and shown in line, (shown, line)
    decay = df[df.system == "decay"]
    assert list(decay.status) == ["pass", "pass", "pass"]  # two exponents and the sum rule
    assert "zero exponent" not in set(decay.quantity)  # converges to its fixed point: no zero exponent
    # after a transient of 20 time units the frame is aligned to e^(-0.5 * 20) ~ 5e-5, so only
    # that residual boundary term (/ T = 20) and RK4's O(dt^4) ~ 1e-7 remain
    assert decay.abs_error.max() < 1e-5


def test_a_spectrum_without_reference_is_shown_compactly():
    """32 exponents without reference: one row, its index 1–32, the spectrum's first and last estimates
    and the stderr range (the Markdown and the terminal table; the CSV keeps the 32 rows)."""
    from suite.grid.runner import DISPLAY, with_display
    from suite.reporting.tables import markdown
    est = [0.118, 0.0953, 0.0712] + [0.05 - 0.07 * i for i in range(27)] + [-1.9, -2.31]
    base = dict(system="net32", estimator="qr", quantity="exponent", status="no reference", reference=None)
    rows = [dict(base, index=i + 1, estimate=e, stderr=1e-3 * (1 + i % 4)) for i, e in enumerate(est)]
    rows.append(dict(base, quantity="sum rule", index=0, status="pass", reference=-49.9, estimate=-49.9, stderr=1e-6))
    shown = with_display(rows)
    assert len(shown) == 2 and shown[0]["index"] == "1–32"
    assert shown[0]["estimate_pm"] == "0.118, 0.0953, 0.0712, …, -1.9, -2.31 (stderr 0.001–0.004)"
    assert "CSV" not in markdown(shown, DISPLAY)
    assert with_display(rows[:2])[0]["estimate_pm"] == "0.118, 0.0953 (stderr 0.001–0.002)"
    assert with_display(rows[:1])[0]["estimate_pm"] == "0.118 ± 0.001"  # one exponent alone: as any row


def test_failing_row_exits_1(tmp_path, capsys):
    f = tmp_path / "wrong.py"
    f.write_text(WRONG_REFERENCE)
    code = main(["validate", "--system-file", str(f), "--estimators", "qr", "--output-dir", str(tmp_path),
                 "--quiet"])
    assert code == 1
    df = pd.read_csv(tmp_path / "validation.csv")
    assert set(df[df.system == "henon_wrong"].status) == {"fail", "pass"}
    assert "FAILED henon_wrong x qr #1" in capsys.readouterr().err


def test_error_cell_is_recorded_and_exits_1(tmp_path, capsys):
    f = tmp_path / "escape.py"
    f.write_text("import torch, reference_systems as rs\n"
                 "esc = rs.Map('escape', step=lambda x: x * x + 1.0, dim=1, validation={'steps': 2000, 'batch': 2})\n")
    code = main(["validate", "--system-file", str(f), "--output-dir", str(tmp_path), "--quiet"])
    assert code == 1
    df = pd.read_csv(tmp_path / "validation.csv")
    assert list(df.status) == ["error", "error"]  # one per default estimator
    assert all("TrajectoryError" in m and "trajectory 0, 1" in m and "at step" in m for m in df.message)


@pytest.mark.parametrize("argv,pattern", [
    (["validate", "--systems", "henonn"], "Did you mean 'henon'"),
    (["validate", "--estimators", "qrr"], "Did you mean 'qr'"),
    (["validate", "--system-file", "missing_file.py"], "system-file"),
    (["validate", "--device", "tpu"], "device"),
])
def test_bad_usage_exits_2(argv, pattern, capsys, tmp_path):
    assert main(argv + ["--output-dir", str(tmp_path)]) == 2
    assert pattern in capsys.readouterr().err


BIG = str(2 ** 63)
# every bad argument: exit 2 and a message naming the flag (argparse's own errors included)
BAD_ARGUMENTS = [
    (["compare", "--systems", "henon", "--seeds", "0,x"], "--seeds"),
    (["compare", "--systems", "henon", "--seeds", "0,,1"], "--seeds"),
    (["compare", "--systems", "henon", "--seeds", "0,1,"], "--seeds"),
    (["compare", "--systems", "henon", "--seeds", ""], "--seeds"),
    (["compare", "--systems", "henon", "--seeds", "-1"], "--seeds"),
    (["compare", "--systems", "henon", "--seeds", BIG], "--seeds"),
    (["convergence", "--systems", "henon", "--seeds", "1.5"], "--seeds"),
    (["tasks", "score", "--tasks", "rnn/tanh-copy-h16-end-v1", "--seeds", "0,-2"], "--seeds"),
    (["validate", "--systems", "henon", "--seed", "-1"], "--seed"),
    (["validate", "--systems", "henon", "--seed", BIG], "--seed"),
    (["validate", "--systems", "henon", "--seed", str(-2 ** 70)], "--seed"),
    (["regress", "--seed", "-1", "--no-throughput"], "--seed"),
    (["race", "--seed", "-1"], "--seed"),
    (["compare", "--systems", "henon", "--estimators", ""], "--estimators"),
    (["validate", "--systems", "henon", "--estimators", "qr,,two_trajectory"], "--estimators"),
    (["compare", "--systems", "henon", "--estimators", "no_such_module:Est"], "--estimators"),
    (["regress", "--estimators", "", "--no-throughput"], "--estimators"),
    (["throughput", "--estimators", ""], "--estimators"),
    (["validate", "--systems", ""], "--systems"),
    (["compare", "--systems", "henon,,logistic"], "--systems"),
    (["regress", "--systems", "", "--no-throughput"], "--systems"),
    (["throughput", "--systems", ""], "--systems"),
    (["validate", "--tasks", ""], "--tasks"),
    (["tasks", "list", "--tasks", ""], "--tasks"),
    (["regress", "--tasks", "", "--no-throughput"], "--tasks"),
    (["compare", "--systems", "henon", "--batch", "x"], "--batch"),
    (["compare", "--systems", "henon", "--steps", "1e3"], "--steps"),
    (["throughput", "--batch", "1,,4"], "--batch"),
    (["throughput", "--batch", "1,x"], "--batch"),
    (["throughput", "--dims", ""], "--dims"),
    (["throughput", "--k", "all,0"], "--k"),
    (["race", "--contenders", ""], "--contenders"),
    (["validate", "--system-file", "my.txt"], "--system-file"),
    (["validate", "--system-file", "{tmp}/existing.txt"], "--system-file"),
    (["validate", "--system-file", "no_such_module:SYSTEMS"], "--system-file"),
    (["validate", "--system-file", "reference_systems:no_such_attribute"], "--system-file"),
    (["validate", "--system-file", ""], "--system-file"),
]


@pytest.mark.parametrize("argv,flag", BAD_ARGUMENTS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_ARGUMENTS])
def test_every_bad_argument_exits_2_naming_its_flag(argv, flag, tmp_path, capsys):
    (tmp_path / "existing.txt").write_text("SYSTEMS = []\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    out = ["--output-dir", str(tmp_path / "out")] if argv[0] != "tasks" or argv[1] != "list" else []
    try:
        code = main(argv + out)
    except SystemExit as exc:  # argparse's own usage errors (--batch x)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert flag in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_a_negative_seed_is_refused_by_the_python_api():
    from suite import estimators
    import reference_systems as rs
    for seed in (-1, -2 ** 70, 2 ** 63, (-1, 0)):
        with pytest.raises(ValueError, match=r"invalid seed=.*0\.\.2\*\*63 - 1"):
            estimators.get("qr").estimate(rs.get("henon"), 10, seed=seed)
    with pytest.raises(ValueError, match="invalid seed=-1"):
        rs.TrajectoryRNG(-1, 2)
    with pytest.raises(ValueError, match="invalid seed="):
        rs.TrajectoryRNG(2 ** 64, 2)  # would alias seed 0
    assert estimators.get("qr").estimate(rs.get("henon"), 10, seed=2 ** 63 - 1).exponents.shape == (2,)


def test_argparse_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["validate", "--dtype", "float16"])
    assert info.value.code == 2


def test_list_shows_catalogue(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("henon", "lorenz63", "gaussian_products", "logistic", "linear_map"):
        assert name in out
    assert "Sprott" in out and "Newman" in out


def test_console_script_entry_point(tmp_path):
    """The installed `lyapbench` command (python -m suite.cli is the same code)."""
    r = subprocess.run([sys.executable, "-m", "suite.cli", "validate", "--quick", "--systems", "linear_map",
                        "--output-dir", str(tmp_path), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "summary: 6 pass" in r.stdout  # qr: 4 exponents + sum rule; two_trajectory: 1


def test_system_parameters_on_the_command_line(tmp_path, capsys):
    code = main(["compare", "--systems", "logistic(r=4.0),henon(a=1.4, b=0.3)", "--steps", "300", "--k", "1",
                 "--batch", "8", "--estimators", "qr", "--no-write", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "logistic(r=4)" in out and "henon(a=1.4, b=0.3)" in out
    for bad in ["henon(a=)", "henon(1.4)", "henon(a=1.4"]:
        assert main(["compare", "--systems", bad, "--no-write", "--quiet"]) == 2
        assert "--systems" in capsys.readouterr().err or bad == "henon(a=1.4"
    assert main(["compare", "--systems", "henon(c=1)", "--no-write", "--quiet"]) == 2  # unknown parameter
    assert main(["compare", "--systems", "henon", "--k", "0", "--no-write", "--quiet"]) == 2


def test_compare_append_keeps_the_earlier_grid(tmp_path, capsys):
    """Two grids with different settings into one table: --append adds, without it the table is replaced."""
    import pandas as pd
    common = ["compare", "--systems", "logistic(r=4.0)", "--steps", "300", "--output-dir", str(tmp_path), "--quiet"]
    assert main(common + ["--estimators", "qr", "--batch", "4"]) == 0
    assert "logistic(r=4)  qr " in capsys.readouterr().out
    assert main(common + ["--estimators", "two_trajectory", "--batch", "8", "--append"]) == 0
    out = capsys.readouterr().out
    assert "two_trajectory" in out and "logistic(r=4)  qr " not in out  # the new grid's rows only are printed
    summary = pd.read_csv(tmp_path / "compare.csv")
    assert summary[["estimator", "batch"]].values.tolist() == [["qr", 4], ["two_trajectory", 8]]
    rows = pd.read_csv(tmp_path / "compare_rows.csv")
    assert set(rows["estimator"]) == {"qr", "two_trajectory"}
    assert "qr" in (tmp_path / "compare.md").read_text()
    assert main(common + ["--estimators", "two_trajectory", "--batch", "8"]) == 0
    assert pd.read_csv(tmp_path / "compare.csv")["estimator"].tolist() == ["two_trajectory"]


def test_tables_go_to_lyapbench_results_in_the_current_folder_by_default(tmp_path, monkeypatch, capsys):
    """A command run in a clone leaves the committed results/ alone; report reads the same default folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    assert main(["compare", "--systems", "henon", "--estimators", "qr", "--steps", "200", "--quiet"]) == 0
    assert main(["validate", "--quick", "--systems", "henon", "--estimators", "qr", "--quiet"]) == 0
    assert main(["report"]) == 0
    out = tmp_path / "lyapbench-results"
    assert {"compare.csv", "compare_rows.csv", "validation.csv", "report.md"} <= {p.name for p in out.iterdir()}
    assert list((tmp_path / "results").iterdir()) == []
    assert "lyapbench-results/validation.csv" in capsys.readouterr().out
    for command in ("validate", "compare", "convergence", "throughput", "race", "tasks", "regress"):
        args = build_parser().parse_args([command] + (["score"] if command == "tasks" else []))
        assert args.output_dir == "lyapbench-results", command
    assert build_parser().parse_args(["report"]).results_dir == "lyapbench-results"


def test_compare_refuses_k_above_a_selected_system_dimension_up_front(capsys):
    """--k 5 on Henon (d = 2) ran and wrote error rows (exit 1); it is bad usage, refused before any work."""
    assert main(["compare", "--systems", "henon,lorenz63", "--k", "3", "--quick", "--no-write"]) == 2
    assert "--k=3: allowed an integer in 1..2" in capsys.readouterr().err


HENON_FILE = '''
import torch
import reference_systems as rs

def henon(x):
    return torch.stack([1 - 1.4 * x[:, 0] ** 2 + x[:, 1], 0.3 * x[:, 0]], 1)

def jac(x):
    J = torch.zeros(x.shape[0], 2, 2, dtype=x.dtype)
    J[:, 0, 0], J[:, 0, 1], J[:, 1, 0] = -2.8 * x[:, 0], 1.0, 0.3
    return J{transpose}

h = rs.Map("{name}", henon, 2, jacobian=jac, sample_initial=lambda b, g: {start})
'''


def test_validate_warns_of_a_user_system_whose_tangent_is_not_its_step_derivative(tmp_path, capsys):
    """A transposed Henon Jacobian gives Henon's exponents (those of the transposed cocycle), so no row can fail
    it; check_system, run on every --system-file system, prints what is wrong. A start outside the basin (one of
    the sum rule's 64 trajectories, seed 1, from 0.1 N(0, 1)) makes that run diverge: its error says so (it said
    only that ln|det DF| was not finite)."""
    from suite.scoring.invariants import volume_rate
    from suite.grid.selection import load_systems
    f = tmp_path / "transposed.py"
    f.write_text(HENON_FILE.format(transpose=".transpose(1, 2)", name="henon_t", start="0.1 * g.normal(2) * 0"))
    main(["compare", "--system-file", str(f), "--estimators", "qr", "--steps", "50", "--batch", "4", "--no-write",
          "--quiet"])
    err = capsys.readouterr().err
    assert "WARNING: system 'henon_t'" in err and "fails check_system's 'tangent frame'" in err
    f = tmp_path / "far.py"
    f.write_text(HENON_FILE.format(transpose="", name="henon_far", start="0.1 * g.normal(2)"))
    with pytest.raises(ArithmeticError, match=r"1 of the sum rule's 64 trajectories \(seed 1\) diverged.*basin"):
        volume_rate(load_systems(str(f))[0], 500, transient=50, batch=64, seed=1)
