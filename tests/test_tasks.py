"""The task registry: every task builds and runs, its computed reference is fresh, stale ones are caught."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import reference_systems as rs
import tasks
from reference_systems import TrajectoryRNG
from suite import cli, estimators
from suite.core.errors import InvalidArgumentError, UnknownNameError
from suite.studies.features import kaplan_yorke, spectrum_features
from suite.studies.task_references import ReferenceNotConfirmed, compute

# full-size training of these takes > 15 s each on 2 cores: their freshness is checked in a slow test
SLOW_TO_TRAIN = {"rnn/tanh-copy-h256-end-v1", "rnn/tanh-copy-h512-end-v1"}


def small(task_id):
    """Overrides that make a task small (every built-in task has a hidden size)."""
    return {"hidden": 8} if "hidden" in tasks.get(task_id).params else {}


def test_registry_ids_specs_and_selection():
    ids = tasks.names()
    assert len(ids) >= 17 and len(set(ids)) == len(ids)
    for tid in ids:
        spec = tasks.get(tid)
        assert spec.id == tid and tid.rsplit("-", 1)[1].startswith("v")
        assert spec.key() == tasks.get(tid).key()
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.seed = 1
    assert tasks.select(["rnn/gru-*"]) == [t for t in ids if t.startswith("rnn/gru-")]
    assert set(tasks.select(["tag:gain-sweep"])) == {t for t in ids if "untrained" in t}
    with pytest.raises(UnknownNameError, match="Did you mean 'rnn/gru-xor-h64-end-v1'"):
        tasks.get("rnn/gru-xor-h64-end-v2")
    with pytest.raises(UnknownNameError, match="tag:rnn"):
        tasks.select(["tag:nonexistent"])
    with pytest.raises(InvalidArgumentError, match="parameter 'width'"):
        tasks.build("rnn/tanh-copy-h16-end-v1", width=3)
    with pytest.raises(InvalidArgumentError, match="family/name-vN"):
        tasks.TaskSpec("No Version", "x", "y", lambda s: None)
    with pytest.raises(InvalidArgumentError, match="family/name-vN"):  # no family: accepted before
        tasks.TaskSpec("nofamily-v1", "x", "y", lambda s: None)


@pytest.mark.parametrize("task_id", tasks.names())
def test_every_task_builds_small_and_runs(task_id):
    """At a small size each task trains (if it does) and steps in seconds, states finite."""
    system = tasks.build(task_id, **small(task_id))
    assert system.meta["task"] == task_id and system.meta["reference_status"] == "overridden"
    assert system.reference is None
    k = min(3, system.dim)
    res = estimators.get("qr").estimate(system, 30, transient=5, batch=2, k=k, seed=0)
    assert res.exponents.shape == (k,) and np.all(np.isfinite(res.exponents))


@pytest.mark.parametrize("task_id", [t for t in tasks.names() if t not in SLOW_TO_TRAIN])
def test_reference_file_matches_current_code(task_id):
    """The cached reference exists and still describes the task (spec key and dynamics probe)."""
    system = tasks.build(task_id)
    assert system.meta["reference_status"] == "fresh", system.meta["reference_status"]
    rec = tasks.read(task_id)
    assert rec["provenance"] == "computed" and rec["confirmation"]["abs_difference"] <= rec["confirmation"]["allowed"]
    assert len(rec["values"]) == len(rec["uncertainty"]) == system.reference.values.size
    v, u = np.asarray(rec["values"]), np.asarray(rec["uncertainty"])
    assert np.all(np.diff(v) <= u[1:] + u[:-1])  # descending, up to the uncertainty of near-degenerate ones
    assert rec["git_sha"] and rec["versions"]["torch"]


@pytest.mark.slow
@pytest.mark.parametrize("task_id", sorted(SLOW_TO_TRAIN))
def test_reference_file_matches_current_code_large(task_id):
    test_reference_file_matches_current_code(task_id)


def _driven(task_id, hidden=8):
    system = tasks.build(task_id, hidden=hidden)
    rng = TrajectoryRNG(3, 4)
    x = system.sample_initial(4, rng).to(torch.float64)
    u = system.draw_noise(rng, x)
    return system, x, u


@pytest.mark.parametrize("task_id", ["rnn/tanh-copy-h16-end-v1", "rnn/gru-xor-h64-end-v1",
                                     "rnn/lstm-adding-h32-end-v1"])
def test_rnn_analytic_jacobian_equals_autodiff(task_id):
    system, x, u = _driven(task_id)
    J = system._jacobian(x, u)
    J_auto = torch.func.vmap(torch.func.jacrev(lambda y, v: system._forward(y[None], v[None])[0]))(x, u)
    assert torch.allclose(J, J_auto, rtol=0, atol=1e-14)
    V = torch.randn(4, system.dim, 3, dtype=torch.float64)
    rng = TrajectoryRNG(3, 4)
    rng.counter = 1  # the draw that gave u
    _, JV = system.tangent(x, V, rng)
    assert torch.allclose(JV, J @ V, rtol=0, atol=1e-13)


@pytest.mark.parametrize("task_id", ["rnn/gru-xor-h64-end-v1", "rnn/lstm-adding-h32-end-v1"])
def test_gated_rnn_tangent_equals_finite_differences(task_id):
    """Analytic tangent J V (standard orientation) against central differences of the step."""
    system, x, _ = _driven(task_id)
    V = torch.randn(4, system.dim, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, JV = system.tangent(x, V, TrajectoryRNG(7, 4))
    h = 1e-6
    for j in range(2):
        plus = system.step(x + h * V[:, :, j], TrajectoryRNG(7, 4))
        minus = system.step(x - h * V[:, :, j], TrajectoryRNG(7, 4))
        fd = (plus - minus) / (2 * h)
        assert torch.allclose(JV[:, :, j], fd, rtol=0, atol=1e-8)


def _henon_task(builder_a=1.4, seed=0, jacobian=None):
    def builder(spec):
        a, b = builder_a, 0.3
        return rs.Map("henon_task", lambda x: torch.stack([1 - a * x[:, 0] ** 2 + x[:, 1], b * x[:, 0]], 1), 2,
                      jacobian=jacobian, sample_initial=lambda n, g: 0.1 * g.uniform(2))
    return tasks.TaskSpec("test/henon-v1", "map", "none", builder, seed=seed, tags=("test",))


def test_reference_lifecycle_fresh_stale_and_corrupt(tmp_path, monkeypatch):
    """compute() writes a confirmed reference; a changed spec or changed dynamics make it stale."""
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    try:
        tasks.register(_henon_task())
        rec = compute("test/henon-v1", steps=2000)
        assert abs(rec["values"][0] - 0.41922) < rec["uncertainty"][0] + 3e-5  # Henon's literature value
        assert abs(sum(rec["values"]) - math.log(0.3)) < 1e-9                   # sum rule, exact
        system = tasks.build("test/henon-v1")
        assert system.meta["reference_status"] == "fresh" and system.reference.provenance == "computed"
        tasks.register(_henon_task(builder_a=1.39), overwrite=True)  # same spec, different dynamics
        assert tasks.build("test/henon-v1").meta["reference_status"].startswith("stale: the dynamics changed")
        tasks.register(_henon_task(seed=1), overwrite=True)          # different definition
        assert tasks.build("test/henon-v1").meta["reference_status"].startswith("stale: the task's definition")
        tasks.reference_path("test/henon-v1").write_text("{not json")
        with pytest.raises(ValueError, match="corrupt.*--force"):
            tasks.build("test/henon-v1")
    finally:
        tasks.unregister("test/henon-v1")


def test_reference_refused_when_tangent_disagrees_with_step(tmp_path, monkeypatch):
    """A task whose Jacobian is transposed: QR and two-trajectory lambda_1 disagree, nothing is written.

    Lorenz-63 with J^T of the right-hand side: lambda_1 ~ 0.66 instead of 0.906 (tests/test_compare.py).
    (For the Henon map J^T would not do: the reversed-order product has nearly the same lambda_1.)
    """
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    lorenz = rs.get("lorenz63")

    def builder(spec):
        return rs.Flow("lorenz_JT", lorenz.rhs, 3, 0.01, jacobian=lambda x: lorenz._jac(x).transpose(1, 2),
                       sample_initial=lorenz.sample_initial, reference_run={"steps": 5000, "transient": 500, "batch": 16})
    try:
        tasks.register(tasks.TaskSpec("test/lorenz-jt-v1", "flow", "none", builder))
        with pytest.raises(ReferenceNotConfirmed, match="differ"):
            compute("test/lorenz-jt-v1")
        assert not tasks.reference_path("test/lorenz-jt-v1").exists()
    finally:
        tasks.unregister("test/lorenz-jt-v1")


def test_spectrum_features():
    lorenz = [0.9056, 0.0, -14.5723]
    assert kaplan_yorke(lorenz) == pytest.approx(2 + 0.9056 / 14.5723)
    assert kaplan_yorke([-0.1, -0.2]) == 0.0
    assert kaplan_yorke([0.5, 0.2], dim=10) is None          # partial spectrum: undetermined
    assert kaplan_yorke([0.5, 0.2]) == 2.0                   # full, nowhere contracting
    f = spectrum_features([0.3, -0.1, -0.5], dim=8)
    assert f == {"lambda1": 0.3, "mean_exponent": None, "n_positive": 1, "kaplan_yorke": 2 + 0.2 / 0.5}
    assert spectrum_features([0.3, 0.1], dim=8)["n_positive"] is None


def test_tasks_cli_list_score_and_check(tmp_path, capsys):
    assert cli.main(["tasks", "list", "--tasks", "rnn/tanh-copy-h16-*"]) == 0
    assert "rnn/tanh-copy-h16-end-v1" in capsys.readouterr().out
    code = cli.main(["tasks", "score", "--tasks", "rnn/tanh-copy-h16-end-v1", "--quick", "--quiet",
                     "--output-dir", str(tmp_path)])
    import pandas as pd
    df = pd.read_csv(tmp_path / "tasks_compare.csv")
    assert code == 0 and set(df.status) == {"pass"} and set(df.estimator) == {"qr", "two_trajectory"}
    rows = pd.read_csv(tmp_path / "tasks_compare_rows.csv")
    assert "sum rule" in set(rows.quantity)  # the invariants run on tasks as on any system
    assert cli.main(["tasks", "reference", "--check", "--tasks", "rnn/tanh-copy-h16-end-v1"]) == 0
    assert cli.main(["tasks", "list", "--tasks", "tag:nope"]) == 2


def test_compare_accepts_tasks_beside_systems(tmp_path):
    code = cli.main(["compare", "--systems", "henon", "--tasks", "rnn/tanh-copy-h16-end-v1", "--estimators", "qr",
                     "--quick", "--quiet", "--output-dir", str(tmp_path)])
    import pandas as pd
    df = pd.read_csv(tmp_path / "compare.csv")
    assert code == 0 and set(df.system) == {"henon(a=1.4, b=0.3)", "rnn/tanh-copy-h16-end-v1"}
    assert json.loads(json.dumps(list(df.status))) == ["pass", "pass"]


def test_tasks_features_table_and_figures(tmp_path):
    """The scientific table: features from the references, and the figures, written and non-empty."""
    ids = "rnn/tanh-copy-h64-*,tag:gain-sweep"
    assert cli.main(["tasks", "features", "--tasks", ids, "--output-dir", str(tmp_path)]) == 0
    import pandas as pd
    df = pd.read_csv(tmp_path / "tasks_features.csv").set_index("task")
    assert (df.reference == "fresh").all()
    gains = df.dropna(subset=["gain"]).sort_values("gain")
    assert gains.lambda1.iloc[0] < 0 < gains.lambda1.iloc[-1]          # the sweep crosses the edge of chaos
    assert (np.diff(gains.lambda1.to_numpy()) > 0).all()                # lambda_1 grows with the gain
    trained = df.loc["rnn/tanh-copy-h64-end-v1"]
    assert trained.loss < 0.01 and trained.score == 1.0 and trained.kaplan_yorke == 0.0
    for name in ("tasks_lambda1_vs_gain.png", "tasks_features_vs_loss.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000
    assert "figures/tasks_lambda1_vs_gain.png" in (tmp_path / "tasks_features.md").read_text()


def test_training_map_references_place_the_transition():
    """The committed (and, by the freshness test, current) references of the learning-rate sweep.

    Plain cross-entropy has H + 1 exactly-zero exponents (softmax's shift invariance,
    tasks/iris_training.py), so a regular run has lambda_1 = 0, not < 0: at lr <= 10
    (up to the edge of stability, lr * sharpness ~ 1-2) lambda_1 is 0 within its
    uncertainty; in the chaotic regime (lr >= 100) it is positive beyond it. With weight
    decay the zeros move to ln(1 - 0.01 lr) < 0 and lambda_1 changes sign between lr 10 and 30.
    """
    def ref(tid):
        rec = tasks.read(tid)
        return rec["values"][0], rec["uncertainty"][0]
    for lr in ("0.1", "1", "10"):
        lam, u = ref(f"mlp/iris-h10-gd-lr{lr}-v1")
        assert abs(lam) <= u, (lr, lam, u)
    for lr in ("100", "150"):
        lam, u = ref(f"mlp/iris-h10-gd-lr{lr}-v1")
        assert lam > u and lam > 0.1, (lr, lam, u)
    lam, u = ref("mlp/iris-h10-gd-wd0.01-lr10-v1")
    assert lam < -u
    lam, u = ref("mlp/iris-h10-gd-wd0.01-lr30-v1")
    assert lam > u


def test_fixed_horizon_task_is_judged_only_on_its_horizon():
    """A training map's reference is a finite-time exponent: another horizon gets no verdict, with the reason."""
    from suite.scoring.rows import score
    system = tasks.build("mlp/iris-h10-gd-lr1-v1")
    assert system.reference is not None and system.meta["fixed_horizon"]
    res = estimators.get("qr").estimate(system, 40, transient=10, batch=2, k=1, seed=0)
    rows = score(system, "qr", res)
    assert [r["status"] for r in rows] == ["no reference"] and "horizon" in rows[0]["message"]


@pytest.mark.parametrize("task_id", ["rnn/gru-xor-h64-end-v1", "rnn/lstm-adding-h32-end-v1",
                                     "mlp/iris-h10-sgd16-lr50-v1"])
def test_matrix_free_estimator_agrees_on_tasks(task_id):
    """jvp_qr (tangents by JVPs of the step) equals qr (the system's tangent) on random task maps."""
    system = tasks.build(task_id, **small(task_id))  # the small build's training is reused (cached)
    a = estimators.get("qr").estimate(system, 60, transient=10, batch=3, k=4, seed=5)
    b = estimators.get("jvp_qr").estimate(system, 60, transient=10, batch=3, k=4, seed=5)
    assert np.allclose(a.per_trajectory, b.per_trajectory, rtol=0, atol=1e-10)


def test_task_runs_in_float32():
    """Device/dtype agnostic: a float32 run of a trained task agrees with float64 to float32 accuracy."""
    system = tasks.build("rnn/tanh-copy-h16-end-v1")
    a = estimators.get("qr").estimate(system, 400, transient=50, batch=4, seed=2)
    b = estimators.get("qr").estimate(system, 400, transient=50, batch=4, seed=2, dtype=torch.float32)
    assert np.abs(a.exponents - b.exponents).max() < 1e-3


def test_largest_exponent_estimator_runs_on_a_task_with_a_default_k(tmp_path):
    """A task states k (the leading exponents its reference covers); two_trajectory gives lambda_1 there
    instead of refusing k, while an explicit --k it cannot honour is still an error."""
    tid = "rnn/tanh-copyinput-h128-g1-untrained-v1"
    args = ["compare", "--tasks", tid, "--estimators", "two_trajectory", "--quick", "--quiet",
            "--output-dir", str(tmp_path)]
    import pandas as pd
    assert cli.main(args) == 0
    assert list(pd.read_csv(tmp_path / "compare.csv").status) == ["pass"]
    assert cli.main(args + ["--k", "3"]) == 1
    assert "largest exponent only" in pd.read_csv(tmp_path / "compare.csv").message[0]
