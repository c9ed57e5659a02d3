"""lyapbench regress: the rules on rows with known answers, and the command end to end.

End to end: a baseline of qr and an injectable plug-in (tests/wrong_estimators.py:Tunable) on Hénon
and 4x4 Gaussian products; the unchanged code run with other seeds reports no regression; a
biased plug-in and a slowed one are reported, and only they.
"""
import json
import math

import numpy as np
import pytest

from suite.studies import regress as rg
from suite.cli import main
from suite.reporting.tables import read_rows, write_csv


def _acc(est="qr", estimate=0.5, stderr=0.01, status="pass", quantity="exponent", index=1, dof=63, **kw):
    row = dict(system="sys", estimator=est, quantity=quantity, index=index, reference=0.5, ref_uncertainty=0.0,
               estimate=estimate, stderr=stderr, abs_error=None if estimate is None else abs(estimate - 0.5),
               tolerance=0.1, status=status, stderr_dof=dof, dtype="float64", kind="map", T=1000.0, steps=1000,
               message=None)
    row.update(kw)
    return row


def test_accuracy_rule_threshold_is_the_pair_stderr_times_the_bonferroni_quantile():
    base = [_acc(estimate=0.5 + 0.001)]
    z = float(__import__("scipy").stats.t.ppf(1 - rg.ALPHA_FAMILY, 63))  # m = 1 comparison
    allowed = z * math.hypot(0.01, 0.01)
    just_in = rg.compare_accuracy(base, [_acc(estimate=0.5 + 0.001 + allowed * 0.99)])
    just_out = rg.compare_accuracy(base, [_acc(estimate=0.5 + 0.001 + allowed * 1.01)])
    assert [v["verdict"] for v in just_in] == ["ok"]
    assert [v["verdict"] for v in just_out] == ["regression"]
    assert just_out[0]["threshold"] == pytest.approx(0.001 + allowed)
    # an error that shrank, or grew on the other side within the noise, is fine
    assert rg.compare_accuracy(base, [_acc(estimate=0.5 - 0.02)])[0]["verdict"] == "ok"


def test_accuracy_rule_flags_new_failures_and_errors_and_skips_what_was_not_run():
    base = [_acc(), _acc(est="other")]
    now = [_acc(status="fail"),
           _acc(est="other", status="error", estimate=None, stderr=None, index=0, message="boom")]
    v = {(r["estimator"], r["verdict"]) for r in rg.compare_accuracy(base, now)}
    assert v == {("qr", "regression"), ("other", "regression")}
    msgs = " ".join(r["reason"] for r in rg.compare_accuracy(base, now))
    assert "boom" in msgs and "now fails" in msgs
    # a cell left out of this run's grid is not compared; a new one is not either
    out = rg.compare_accuracy(base, [_acc(), _acc(est="new")])
    assert sorted((r["estimator"], r["verdict"]) for r in out) == [
        ("new", "not compared"), ("other", "not compared"), ("qr", "ok")]


def test_accuracy_rule_bonferroni_widens_with_the_number_of_comparisons():
    one = rg.compare_accuracy([_acc()], [_acc()])[0]["threshold"]
    many = rg.compare_accuracy([_acc(index=i) for i in range(1, 51)], [_acc(index=i) for i in range(1, 51)])
    assert many[0]["threshold"] > one * 1.2


def _conv(t1, t2, t3, est="qr", t_max=1000.0):
    return {"system": "sys", "estimator": est, "index": 1, "T_max": t_max, "status": "ok",
            "T_1e-1": t1, "T_1e-2": t2, "T_1e-3": t3}


def test_convergence_rule():
    f = rg.CONVERGENCE_FACTOR
    out = rg.compare_convergence([_conv(10.0, 100.0, "not reached")],
                                 [_conv(10.0 * f * 1.01, 100.0 * f * 0.99, 500.0)])
    assert [(v["eps"], v["verdict"]) for v in out] == [(0.1, "regression"), (0.01, "ok")]  # 1e-3: nothing to lose
    # not reached now: a regression only if the baseline reached it with a factor f to spare
    out = rg.compare_convergence([_conv(10.0, 1000.0 / f * 1.01, None)], [_conv(10.0, "not reached", None)])
    assert [v["verdict"] for v in out] == ["ok", "ok"]
    out = rg.compare_convergence([_conv(10.0, 1000.0 / f, None)], [_conv(10.0, "not reached", None)])
    assert [v["verdict"] for v in out] == ["ok", "regression"]


def _tp(cost, est="qr", device_name="cpu-x"):
    return {"system": "sys", "estimator": est, "status": "ok", "relative_cost": cost, "seconds_per_step": cost,
            "device_name": device_name, "dtype": "float64"}


def test_throughput_rule():
    f = rg.THROUGHPUT_FACTOR
    assert rg.compare_throughput([_tp(1.0)], [_tp(1.0 / f * 0.99)])[0]["verdict"] == "ok"
    assert rg.compare_throughput([_tp(1.0)], [_tp(1.0 / f * 1.01)])[0]["verdict"] == "regression"
    assert rg.compare_throughput([_tp(1.0)], [_tp(9.0, device_name="gpu")])[0]["verdict"] == "not compared"
    bad = rg.compare_throughput([_tp(1.0)], [dict(_tp(1.0), status="error", message="oom")])
    assert bad[0]["verdict"] == "regression" and "oom" in bad[0]["reason"]


def test_a_timing_below_the_factor_is_timed_again_and_the_fastest_kept(monkeypatch):
    base = _tp(1.0)
    slow, fast = dict(_tp(1.0 / rg.THROUGHPUT_FACTOR * 1.5)), dict(_tp(1.0))
    timings = iter([slow, fast])
    monkeypatch.setattr(rg, "_time_cell", lambda cell, grid: dict(next(timings)))
    row = rg._time_cell_confirmed(None, None, base)
    assert row["relative_cost"] == 1.0 and "timed 2 times" in row["message"]
    assert rg.compare_throughput([base], [row])[0]["verdict"] == "ok"
    timings = iter([slow, dict(slow), fast])  # a load that lasted two timings (0.42 twice in CI)
    row = rg._time_cell_confirmed(None, None, base)
    assert row["relative_cost"] == 1.0 and "timed 3 times" in row["message"] and rg.THROUGHPUT_TIMINGS == 3
    timings = iter([slow, dict(slow), dict(slow), fast])  # slow every time: a real slowdown stays a regression
    row = rg._time_cell_confirmed(None, None, base)
    assert rg.compare_throughput([base], [row])[0]["verdict"] == "regression"
    assert next(timings) is fast  # at most THROUGHPUT_TIMINGS timings
    timings = iter([fast])  # within the factor, or no baseline: timed once
    assert rg._time_cell_confirmed(None, None, base)["relative_cost"] == 1.0
    timings = iter([slow])
    assert rg._time_cell_confirmed(None, None, None)["relative_cost"] == slow["relative_cost"]


GRID = ["--systems", "henon,gaussian_products(N=4)", "--estimators", "qr,wrong_estimators:Tunable"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    d = tmp_path_factory.mktemp("regress")
    code = main(["regress", "--update-baseline", "--baseline-dir", str(d / "base"), "--output-dir", str(d / "out"),
                 "--quiet", "--threads", "1", *GRID])
    assert code == 0
    return d


def _regress(d, *extra):
    code = main(["regress", "--baseline-dir", str(d / "base"), "--output-dir", str(d / "out"), "--quiet",
                 "--threads", "1", *extra])
    return code, read_rows(d / "out" / "regress.csv")


def test_baseline_holds_the_grid_and_three_tables(baseline):
    base = rg.read_measurement(baseline / "base")
    assert base.grid.estimators == "qr,wrong_estimators:Tunable" and base.grid.tasks == ""
    assert {r["estimator"] for r in base.accuracy} == {"qr", "tunable"}
    assert all(r["status"] == "pass" for r in base.accuracy if r["reference"] is not None)
    assert len(base.throughput) == 4 and all(r["relative_cost"] > 0 for r in base.throughput)
    assert {r["index"] for r in base.convergence if r["system"].startswith("gaussian")} == {1, 2, 3, 4}
    for key in ("git_sha", "versions", "device_name", "created"):
        assert base.info[key]


@pytest.mark.parametrize("seed", [1, 2])
def test_unchanged_code_with_another_seed_is_no_regression(baseline, seed):
    code, verdicts = _regress(baseline, "--seed", str(seed))
    assert [v for v in verdicts if v["verdict"] == "regression"] == []
    assert code == 0
    checks = {v["check"] for v in verdicts if v["verdict"] == "ok"}
    assert checks == {"accuracy", "convergence", "throughput"}


def test_a_biased_estimator_is_reported(baseline, monkeypatch, capsys):
    monkeypatch.setenv("LYAPBENCH_TEST_BIAS", "0.03")
    code, verdicts = _regress(baseline, "--seed", "1", "--no-throughput")
    bad = [v for v in verdicts if v["verdict"] == "regression"]
    assert code == 1
    assert {v["estimator"] for v in bad} == {"tunable"}
    assert {(v["system"].split("(")[0], v["index"]) for v in bad if v["check"] == "accuracy"
            and v["quantity"] == "exponent"} == {("henon", 1), ("henon", 2)} | {("gaussian_products", i)
                                                                                for i in range(1, 5)}
    assert "REGRESSION accuracy" in capsys.readouterr().err


def test_a_slowed_estimator_is_reported(baseline, monkeypatch):
    monkeypatch.setenv("LYAPBENCH_TEST_SLOWDOWN", "4")
    code, verdicts = _regress(baseline, "--seed", "1")
    bad = [v for v in verdicts if v["verdict"] == "regression"]
    assert code == 1
    assert {(v["check"], v["estimator"]) for v in bad} == {("throughput", "tunable")}
    assert len(bad) == 2  # both systems


def test_missing_or_corrupt_baseline_is_a_usage_error(tmp_path, capsys):
    assert main(["regress", "--baseline-dir", str(tmp_path / "nowhere"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "--update-baseline" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text("{not json")
    assert main(["regress", "--baseline-dir", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_measurement_and_rows_round_trip_through_csv(baseline, tmp_path):
    base = rg.read_measurement(baseline / "base")
    rg.write_measurement(base, tmp_path / "copy")
    again = rg.read_measurement(tmp_path / "copy")
    assert again.grid == base.grid and again.info == base.info
    for table in ("accuracy", "convergence", "throughput"):
        assert getattr(again, table) == getattr(base, table)
    # floats exactly, None for empty, ints and bools and strings as they were
    rows = [{"a": 0.1 + 0.2, "b": None, "c": 3, "d": True, "e": "x, \"y\"", "f": 1e-300, "g": float("nan")}]
    write_csv(rows, tmp_path / "t.csv", list(rows[0]))
    back = read_rows(tmp_path / "t.csv")[0]
    assert back["a"] == 0.1 + 0.2 and back["b"] is None and back["c"] == 3 and back["d"] is True
    assert back["e"] == "x, \"y\"" and back["f"] == 1e-300 and back["g"] is None
    assert json.loads(json.dumps(back))  # plain Python values
    assert np.isfinite(back["a"])


def test_report_builds_every_figure_from_the_tables(tmp_path, capsys):
    """Tables from small runs of compare, convergence, throughput and regress -> report.md and its figures."""
    from matplotlib.image import imread
    out = str(tmp_path)
    common = ["--output-dir", out, "--quiet", "--threads", "1"]
    assert main(["validate", "--quick", "--systems", "henon", *common]) == 0
    assert main(["compare", "--quick", "--systems", "henon", "--estimators", "qr,two_trajectory", *common]) == 0
    assert main(["convergence", "--quick", "--systems", "henon", "--seeds", "0,1", "--batch", "8", *common]) == 0
    assert main(["throughput", "--systems", "henon", "--estimators", "qr", "--batch", "1,8", "--min-seconds", "0.01",
                 "--repeats", "1", *common]) == 0
    for extra in (["--update-baseline"], []):
        assert main(["regress", *extra, "--systems", "henon", "--estimators", "qr", "--no-throughput",
                     "--baseline-dir", str(tmp_path / "baseline"), *common]) == 0
    capsys.readouterr()
    assert main(["report", "--results-dir", out]) == 0
    text = (tmp_path / "report.md").read_text()
    figs = sorted((tmp_path / "figures").glob("report_*.png"))
    assert {f.name for f in figs} == {"report_accuracy_vs_time.png", "report_spectra.png",
                                      "report_convergence.png", "report_throughput_cpu_quick.png"}
    for f in figs:
        assert f"figures/{f.name}" in text
        img = imread(f)
        assert img.shape[0] > 200 and img.shape[1] > 200
        assert img[..., :3].std() > 0.05, f"{f.name} looks blank"
    # every section found its table, except the tasks' scores, which say what writes them
    assert "| two_trajectory | 1 | 1 | 0 |" in text
    assert "`tasks_compare.csv` is missing; `lyapbench tasks score` writes it" in text
    assert "| accuracy | 3 | 0 | 0 |" in text  # henon: lambda_1, lambda_2, the sum rule
    assert "| henon(a=1.4, b=0.3) | qr | 1 | 2 |" in text  # convergence: median over two seeds
    assert text.count("Not available") == 1
    assert "| qr | 3 |" in text  # validation: henon x qr, three rows passed (lambda_1, lambda_2, the sum rule)


def test_report_on_an_empty_folder_names_the_commands(tmp_path, capsys):
    assert main(["report", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    for command in ("lyapbench compare", "lyapbench validate", "lyapbench convergence", "lyapbench throughput",
                    "lyapbench regress"):
        assert f"`{command}" in text
    assert main(["report", "--results-dir", str(tmp_path / "absent")]) == 2
    assert "--results-dir" in capsys.readouterr().err
