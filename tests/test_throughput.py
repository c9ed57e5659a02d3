"""`lyapbench throughput` and `lyapbench race`: rows, files, model flops, bad input (no timing asserted)."""
import numpy as np
import pandas as pd
import pytest

import reference_systems as rs
from suite import estimators
from suite.cli import main
from suite.studies import throughput as tp
from suite.studies.throughput import COLUMNS, measure, model_flops_per_step, scales_with_dimension


def test_model_flops_counts_tangent_product_and_qr():
    henon, lorenz = rs.get("henon"), rs.get("lorenz63")
    # map, d = k = 2: 2 d^2 k = 16, Householder 4 d k^2 - 4/3 k^3 = 32 - 32/3
    assert model_flops_per_step(henon, 2) == pytest.approx(16 + 32 - 32 / 3)
    # flow: four RK4 stages; QR every 10 steps
    assert model_flops_per_step(lorenz, 3, 10) == pytest.approx(4 * 2 * 27 * 3 / 3 + (4 * 27 - 4 / 3 * 27) / 10)


def test_measure_gives_consistent_rates():
    row = measure(estimators.get("qr"), rs.get("henon"), batch=8, min_seconds=0.02, repeats=2)
    assert row["status"] == "ok" and row["k"] == 2 and row["batch"] == 8
    assert row["traj_steps_per_s"] == pytest.approx(8 * row["steps_per_s"])
    assert row["exponent_steps_per_s"] == pytest.approx(2 * row["traj_steps_per_s"])
    assert row["steps_per_s"] == pytest.approx(1 / row["seconds_per_step"])
    assert 0 < row["fraction_of_gemm"] < 1 and row["fraction_of_nominal"] is None
    assert row["peak_mem_mb"] is None or row["peak_mem_mb"] > 10


def test_measure_times_the_interval_auto_picks():
    """reorth_every='auto' is timed at the m its probe picks (Henon float64: 4), named in the row,
    and the model flops count the QR once every m steps."""
    hen = rs.get("henon")
    row = measure(estimators.from_spec("qr(reorth_every='auto')"), hen, batch=8, min_seconds=0.02, repeats=2)
    assert row["status"] == "ok" and row["message"].startswith(
        "reorth_every='auto' chose m = 4 (limited by precision); capture='auto' ran ")
    assert row["model_gflop_per_step"] == pytest.approx(8 * model_flops_per_step(hen, 2, 4) / 1e9)
    assert measure(estimators.get("qr"), hen, batch=8, min_seconds=0.02, repeats=2)["message"].startswith(
        "capture='auto' ran ")
    assert measure(estimators.get("two_trajectory"), hen, batch=8, min_seconds=0.02, repeats=2)["message"].startswith(
        "capture='auto' ran ")  # two_trajectory runs in units too


def test_scalable_systems_are_those_with_N():
    assert scales_with_dimension("random_rnn") and scales_with_dimension("gaussian_products")
    assert not scales_with_dimension("henon") and not scales_with_dimension("no_such_system")


def test_throughput_command_writes_table_and_figure(tmp_path):
    argv = ["throughput", "--systems", "henon,random_rnn", "--dims", "8,16", "--estimators", "qr,jvp_qr",
            "--batch", "1,4", "--k", "all,32", "--min-seconds", "0.01", "--repeats", "1", "--quiet",
            "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    df = pd.read_csv(tmp_path / "throughput_cpu_quick.csv")
    assert list(df.columns) == COLUMNS
    # henon 2 est x 2 batch x 2 k + random_rnn 2 d x 2 est x 2 batch x 2 k
    assert len(df) == 8 + 16
    assert set(df.status) == {"ok", "skipped"}  # k = 32 > d is skipped, not an error
    assert (df[df.status == "ok"].traj_steps_per_s > 0).all()
    assert set(df[df.system.str.startswith("random_rnn")].d) == {8, 16}
    assert (tmp_path / "throughput_cpu_quick.png").stat().st_size > 5000
    assert "| system |" in (tmp_path / "throughput_cpu_quick.md").read_text()
    # --append adds to the table instead of replacing it
    assert main(argv[:2] + ["henon", "--batch", "2", "--estimators", "qr", "--k", "all", "--min-seconds", "0.01",
                            "--repeats", "1", "--quiet", "--append", "--output-dir", str(tmp_path)]) == 0
    assert len(pd.read_csv(tmp_path / "throughput_cpu_quick.csv")) == 25


@pytest.mark.parametrize("bad,named", [(["--batch", "0"], "--batch"), (["--dims", "x"], "--dims"),
                                       (["--k", "two"], "--k"), (["--estimators", "qrr"], "'qrr'"),
                                       (["--systems", "henonn"], "'henonn'"), (["--dtype", "float16"], "dtype"),
                                       (["--device", "tpu"], "device")])
def test_throughput_bad_input_is_a_usage_error(bad, named, capsys):
    assert main(["throughput", "--no-write", "--quiet"] + bad) == 2
    assert named in capsys.readouterr().err


def test_race_command_with_lyapbench_alone(tmp_path, monkeypatch):
    """The race loop and its table at a small size (the committed race with the peers is
    results/race_lorenz63.md): T doubles until |error| + 2 stderr <= eps, only the last run counts."""
    from suite.studies import race as rc
    # a taper of 0.5 time units fits the shortest run here (the race's own 8 needs T >= 16)
    monkeypatch.setitem(rc.CONTENDERS, "lyapbench", dict(rc.CONTENDERS["lyapbench"], batch=16, T0=2.0,
                                                         config="qr(reorth_every=10, taper=50)"))
    monkeypatch.setattr(rc, "TRANSIENT_TIME", 5.0)  # the loop is under test, not eps = 2e-3's transient
    assert main(["race", "--systems", "lorenz63", "--contenders", "lyapbench", "--eps", "0.05", "--output-dir",
                 str(tmp_path), "--quiet"]) == 0
    everything = pd.read_csv(tmp_path / "race_lorenz63.csv")
    df, again = everything[everything.repeat == 0], everything[everything.repeat > 0]
    assert set(everything.contender) == {"lyapbench"}
    assert (everything.configuration == "qr(reorth_every=10, taper=50)").all()
    assert list(df["T"]) == [2.0 * 2 ** i for i in range(len(df))] and (everything.batch == 16).all()
    assert list(df.reached) == ["no"] * (len(df) - 1) + ["yes"]
    assert (df.worst_error_plus_2se.iloc[:-1] > 0.05).all() and df.worst_error_plus_2se.iloc[-1] <= 0.05
    # the reaching run is repeated (default --repeats 3): the same seeded computation, the same numbers
    assert list(again.repeat) == [1, 2] and (again["T"] == df["T"].iloc[-1]).all() and (again.reached == "yes").all()
    for col in ("lambda1", "lambda2", "lambda3", "worst_error_plus_2se"):
        assert (again[col] == df[col].iloc[-1]).all()
    median = float(np.median([df.wall_seconds.iloc[-1], *again.wall_seconds]))
    ref = np.array([0.9056, 0.0, -14.5723])
    err = np.abs(df[["lambda1", "lambda2", "lambda3"]].to_numpy() - ref).max(axis=1)
    np.testing.assert_allclose(df.worst_abs_error, err, rtol=1e-12)
    assert (df.worst_error_plus_2se >= df.worst_abs_error).all()
    text = (tmp_path / "race_lorenz63.md").read_text()
    assert f"| lyapbench | qr(reorth_every=10, taper=50) | {median:.2f} | 3 | 1.0x |" in text
    # a budget spent before eps is reached: reported as such, no ratio claimed
    assert main(["race", "--systems", "lorenz63", "--contenders", "lyapbench", "--eps", "1e-9", "--budget", "0",
                 "--output-dir", str(tmp_path), "--quiet"]) == 0
    df = pd.read_csv(tmp_path / "race_lorenz63.csv")
    assert list(df.reached) == ["no (budget spent)"]
    md = (tmp_path / "race_lorenz63.md").read_text()
    assert "| lyapbench | qr(reorth_every=10, taper=50) | not reached | 0 | n/a |" in md
    assert main(["race", "--contenders", "fastest", "--no-write"]) == 2
    assert main(["race", "--systems", "lorenz96", "--no-write"]) == 2
    assert main(["race", "--repeats", "0", "--no-write"]) == 2


def test_race_runs_lyapax_as_a_contender(tmp_path, monkeypatch):
    """lyapax (installed with the test extra) races like the others: a reaching run, its configuration named."""
    pytest.importorskip("lyapax")
    import pandas as pd
    from suite.studies import race as rc
    monkeypatch.setitem(rc.CONTENDERS, "lyapax", dict(rc.CONTENDERS["lyapax"], T0=20.0))
    monkeypatch.setattr(rc, "TRANSIENT_TIME", 5.0)
    assert main(["race", "--systems", "lorenz63", "--contenders", "lyapax", "--eps", "0.5", "--repeats", "1",
                 "--output-dir", str(tmp_path), "--quiet"]) == 0
    df = pd.read_csv(tmp_path / "race_lorenz63.csv")
    assert set(df.contender) == {"lyapax"} and df.reached.iloc[-1] == "yes"
    assert (df.configuration == "lyapax_spectrum(renorm_every=10)").all() and (df.batch == 4).all()
    assert abs(df.lambda1.iloc[-1] - 0.9056) < 0.5


def test_race_defaults_contender_is_one_estimate_to_accuracy_call(tmp_path):
    """lyapbench_defaults: one estimate_to_accuracy call (its attempts timed together), judged by its own promise
    checked against the truth (it reached eps on its half-widths, and every |error| <= eps); its T and batch are the
    last attempt's, and a repeat is the same seeded computation."""
    import pandas as pd
    from suite.studies import race as rc
    assert main(["race", "--systems", "lorenz63", "--contenders", "lyapbench_defaults", "--eps", "0.1", "--repeats", "2",
                 "--output-dir", str(tmp_path), "--quiet"]) == 0
    df = pd.read_csv(tmp_path / "race_lorenz63.csv")
    assert list(df.repeat) == [0, 1] and (df.reached == "yes").all() and (df.worst_abs_error <= 0.1).all()
    assert (df.lambda1 == df.lambda1.iloc[0]).all() and (df["T"] == df["T"].iloc[0]).all()
    assert "estimate_to_accuracy" in (tmp_path / "race_lorenz63.md").read_text()
    # a result outside eps is not counted, whatever its half-widths said
    system = rs.get("lorenz63")
    row = rc._measure_accuracy("lyapbench_defaults", rc.CONTENDERS["lyapbench_defaults"], system, 0.1, 600.0, 0, 0)
    assert row["reached"] == "yes"
    shifted = rs.get("lorenz63")
    shifted.reference = type(system.reference)(**{**vars(system.reference), "values": system.reference.values + 0.2})
    row = rc._measure_accuracy("lyapbench_defaults", rc.CONTENDERS["lyapbench_defaults"], shifted, 0.1, 600.0, 0, 0)
    assert row["reached"] == "no (missed eps)" and row["worst_abs_error"] > 0.1


def test_race_on_a_map_runs_lyapynov_and_names_the_flow_only_peers_not_applicable(tmp_path):
    """Hénon: lyapynov runs its DiscreteDS with the race's numpy map and Jacobian and reaches eps; lyapax and
    jitcode integrate flows only, so their rows say not applicable (no time, no ratio); the defaults reach eps
    and are the ratio's base."""
    pytest.importorskip("lyapynov")
    import pandas as pd
    assert main(["race", "--systems", "henon", "--contenders", "lyapynov,lyapax,jitcode,lyapbench_defaults", "--eps",
                 "0.02", "--repeats", "1", "--output-dir", str(tmp_path), "--quiet"]) == 0
    df = pd.read_csv(tmp_path / "race_henon.csv")
    for peer in ("lyapax", "jitcode"):
        assert df[df.contender == peer].reached.str.startswith(("not applicable", "not installed")).all()
    lyapynov = df[df.contender == "lyapynov"].iloc[-1]
    assert lyapynov.reached == "yes" and abs(lyapynov.lambda1 - 0.41922) <= 0.02
    assert abs(lyapynov.lambda2 - -1.62319) <= 0.02 and np.isnan(lyapynov.lambda3)
    assert df[df.contender == "lyapbench_defaults"].reached.iloc[-1] == "yes"
    md = (tmp_path / "race_henon.md").read_text()
    assert "ratio to lyapbench_defaults" in md and "| lyapbench_defaults |" in md and "| 1.0x |" in md
    assert "| lyapax | lyapax_spectrum(renorm_every=10) | not applicable" in md


def test_compiled_study_writes_its_table(tmp_path, monkeypatch):
    """python -m suite.studies.compiled --quick: every row group runs and the table names each contender and
    what it ran (compilation is off in the tests: the units step eagerly; lyapax where installed)."""
    from suite.studies import compiled
    monkeypatch.setattr(compiled, "QUICK_STEPS", {1: {"eager": 40, "fast": 80}, 4096: {"eager": 2, "fast": 4}})
    assert compiled.main(["--quick", "--repeats", "1", "--output-dir", str(tmp_path)]) == 0
    rows = pd.read_csv(tmp_path / "compiled_cpu.csv")
    assert set(rows["system"]) == {"lorenz63", "lorenz63_autodiff"}
    assert set(rows["contender"]) >= {"qr(capture='none')", "qr()", "qr(reorth_every='auto')",
                                      "two_trajectory(capture='none')", "two_trajectory()"}
    ok = rows[rows["steps_per_s"].notna()]
    eager = ok["contender"].str.endswith("(capture='none')")
    assert (ok["steps_per_s"] > 0).all() and (ok.loc[eager, "vs_eager"] == 1).all()
    assert "Compiled units against eager steps" in (tmp_path / "compiled_cpu.md").read_text()


def test_throughput_sets_b1_rows_beside_lyapax_in_its_steady_state(tmp_path, monkeypatch):
    """Where lyapax is installed, each B = 1 CPU float64 flow case gets a lyapax_spectrum row, its rate the
    difference of runs of n and 2n steps (n: the longest run of the rows it is compared with, at least
    PEER_MIN_STEPS), and their vs_peer ratio; maps get none, --no-peer none at all (no timing asserted)."""
    pytest.importorskip("lyapax")
    monkeypatch.setattr(tp, "PEER_MIN_STEPS", 2_000)
    argv = ["throughput", "--systems", "lorenz63,henon", "--estimators", "qr(capture='none')", "--batch", "1,2",
            "--k", "all", "--min-seconds", "0.01", "--repeats", "1", "--quiet", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    df = pd.read_csv(tmp_path / "throughput_cpu_quick.csv")
    peer = df[df.estimator == tp.PEER]
    assert len(peer) == 1 and peer.batch.item() == 1 and peer.system.str.startswith("lorenz63").item()
    ours = df[(df.estimator != tp.PEER) & df.system.str.startswith("lorenz63") & (df.batch == 1)]
    assert peer.status.item() == "ok" and peer.steps_timed.item() == max(ours.steps_timed.max(), 2_000)
    assert peer.steps_per_s.item() > 0
    assert ours.vs_peer.item() == pytest.approx(ours.steps_per_s.item() / peer.steps_per_s.item())
    assert df[df.batch == 2].vs_peer.isna().all() and df[df.system.str.startswith("henon")].vs_peer.isna().all()
    assert main(argv + ["--no-peer"]) == 0
    assert tp.PEER not in set(pd.read_csv(tmp_path / "throughput_cpu_quick.csv").estimator)


def test_probe_runs_are_long_enough_for_units():
    """A run shorter than UNIT_RUN_INTERVALS intervals steps one step at a time (its blocks are shorter than a
    unit), so the probe that settles 'auto' and sizes the timed runs is at least that long where units apply."""
    assert tp.probe_steps(estimators.get("qr", capture="none")) == 10
    assert tp.probe_steps(estimators.get("qr")) == tp.UNIT_RUN_INTERVALS
    assert tp.probe_steps(estimators.get("qr", reorth_every=8)) == 8 * tp.UNIT_RUN_INTERVALS
    assert tp.probe_steps(estimators.get("two_trajectory", renorm_every=30)) == 30 * tp.UNIT_RUN_INTERVALS
    assert tp.probe_steps(estimators.get("two_trajectory", renorm_every=30, capture="none")) == 60


def test_a_peers_steady_state_rate_leaves_its_fixed_cost_per_call_out():
    """marginal_seconds_per_step on a stand-in run of 0.5 s per call plus 1 ms a step: 1 ms, where the plain
    protocol would report 1.5 ms at 1,000 steps."""
    calls = []

    def run(steps):
        calls.append(steps)
        return 0.5 + 1e-3 * steps
    assert tp.marginal_seconds_per_step(run, 1_000, repeats=3) == pytest.approx(1e-3)
    assert calls == [1_000, 2_000] + [1_000, 2_000] * 3  # each length once untimed, then taking turns
    plain = tp.sized_seconds_per_step(run, 10, min_seconds=100.0, max_steps=1_000, repeats=3)
    assert plain == (pytest.approx(1.5e-3), 1_000)
