"""jvp_qr's recorded step (suite.estimators.numerics.capture): a replay gives the eager run bit for bit,
random systems included, and a step that cannot be replayed faithfully runs eagerly with the
reason in meta['capture'].  The CUDA-graph path's buffer handling is run on the CPU through an
injected capture that re-runs the step into the captured buffers."""
import time

import numpy as np
import pytest
import torch

import reference_systems as rs
from reference_systems import Map, TrajectoryRNG
from suite import estimators
from suite.studies import throughput
from suite.core.errors import InvalidArgumentError
from suite.estimators.numerics import capture
from suite.estimators.jvp_qr import JVPQREstimator
from suite.estimators.qr import QREstimator
import tasks

CASES = [  # system, params, run: maps, an RK4 flow, a network, and two random systems
    ("henon", {}, dict(steps=300, transient=50, batch=3)),
    ("lorenz63", {}, dict(steps=200, transient=50, batch=2)),
    ("random_rnn", {"N": 16}, dict(steps=100, transient=20, batch=2, k=4)),
    ("gaussian_products", {"N": 4}, dict(steps=100, transient=10, batch=3)),
    ("deep_random_net", {"N": 16, "sigma_w": 2.0}, dict(steps=60, transient=10, batch=2, k=3)),
]


@pytest.fixture
def long_runs():
    """'auto' decides as in a long run (the tests' runs are short, and 'auto' keeps those eager)."""
    with capture.assume_long_runs():
        yield


def run(system, capture_mode, **kw):
    kw = dict(kw)
    steps = kw.pop("steps")
    return JVPQREstimator(capture=capture_mode).estimate(system, steps, seed=3, **kw)


def assert_same(a, b):
    np.testing.assert_array_equal(a.per_trajectory, b.per_trajectory)
    np.testing.assert_array_equal(a.history, b.history)


@pytest.mark.parametrize("name,params,kw", CASES)
def test_replayed_step_is_the_eager_step(name, params, kw):
    system = rs.get(name, **params)
    eager, traced = run(system, "none", **kw), run(system, "trace", **kw)
    assert_same(traced, eager)
    assert traced.meta["capture"]["mode"] == "trace" and traced.meta["capture"]["reason"] is None
    assert traced.meta["capture"]["recordings"] >= 1 and traced.meta["capture"]["seconds"] > 0
    assert eager.meta["capture"] == {"requested": "none", "mode": "none", "reason": "not requested",
                                     "recordings": 0, "seconds": 0.0}


@pytest.mark.parametrize("name,params,kw", [CASES[0], CASES[1], CASES[3]])
def test_qr_replays_its_tangent_bit_for_bit(name, params, kw):
    system = rs.get(name, **params)
    kw = dict(kw)
    steps = kw.pop("steps")
    eager, traced = (QREstimator(capture=c).estimate(system, steps, seed=3, **kw) for c in ("none", "trace"))
    assert traced.meta["capture"]["mode"] == "trace"
    assert_same(traced, eager)


@pytest.mark.parametrize("k", [8, 64])
def test_qr_replays_an_autodiff_tangent_of_a_task(k):
    """The GRU task's tangent comes from autodiff (no analytic Jacobian), the case 'auto' is for:
    forward-mode JVPs for k = 8, the Jacobian by reverse mode for k = 64 >= d / 4."""
    system = tasks.build("rnn/gru-xor-h64-end-v1")
    eager, traced = (QREstimator(capture=c).estimate(system, 30, batch=2, k=k, seed=1) for c in ("none", "trace"))
    assert traced.meta["capture"]["mode"] == "trace"
    assert_same(traced, eager)


@pytest.mark.parametrize("eager_s,replay_s,mode", [(1e-3, 2e-3, "none"), (1e-3, 0.95e-3, "none"),
                                                   (2e-3, 1e-3, "trace")])
def test_auto_keeps_the_replay_only_where_it_was_faster(monkeypatch, eager_s, replay_s, mode, long_runs):
    monkeypatch.setattr(capture, "race", lambda *a, **k: (eager_s, replay_s))
    system = rs.get("henon")
    res = run(system, "auto", steps=100, batch=2)
    assert res.meta["capture"]["mode"] == mode
    assert (res.meta["capture"]["eager_step_s"], res.meta["capture"]["replay_step_s"]) == (eager_s, replay_s)
    if mode == "none":
        assert "not faster" in res.meta["capture"]["reason"]
    assert_same(res, run(system, "none", steps=100, batch=2))


def test_auto_keeps_a_short_run_eager_without_recording(monkeypatch):
    """A run whose steps would take under AUTO_MIN_RUN_SECONDS eagerly is not worth a recording;
    the rule reads the first step's time and the steps left."""
    system = rs.get("henon")
    short = run(system, "auto", steps=200, batch=2)
    assert short.meta["capture"]["mode"] == "none" and "too short" in short.meta["capture"]["reason"]
    assert short.meta["capture"]["recordings"] == 0
    monkeypatch.setattr(capture, "AUTO_MIN_RUN_SECONDS", 0.0)
    monkeypatch.setattr(capture, "race", lambda *a, **k: (2e-3, 1e-3))
    long_ = run(system, "auto", steps=200, batch=2)
    assert long_.meta["capture"]["mode"] == "trace" and long_.meta["capture"]["recordings"] >= 1
    assert_same(long_, short)


def test_race_times_both_and_leaves_the_generator():
    system = rs.get("gaussian_products", N=4)
    rng = TrajectoryRNG(0, 2)
    x = system.sample_initial(2, rng)
    Q = torch.linalg.qr(torch.randn(2, 4, 4, dtype=torch.float64))[0]
    fn = (lambda x_, Q_: system.tangent(x_, Q_, rng))
    recorded, _ = capture.record(fn, (x, Q), rng)
    counter = rng.counter
    eager_s, replay_s = capture.race(fn, recorded, (x, Q), rng, repeats=2)
    assert eager_s > 0 and replay_s > 0 and rng.counter == counter


def test_a_replay_that_repeated_the_first_draws_would_be_caught(monkeypatch):
    """Mutation check: a recording that does not advance the generator's counter replays the
    first step's noise, and the comparison with the eager run sees it."""
    system = rs.get("gaussian_products", N=4)
    kw = dict(CASES[3][2])
    eager = run(system, "none", **kw)
    monkeypatch.setattr(capture.Recorded, "__call__",
                        lambda self, args, rng=None: self.graph_module(*self.inputs(args, rng)))
    stale = run(system, "trace", **kw)
    assert not np.array_equal(stale.per_trajectory, eager.per_trajectory)


def test_recording_leaves_the_generator_where_it_was():
    system = rs.get("gaussian_products", N=4)
    rng = TrajectoryRNG(1, 2)
    rng.counter = 7
    x = system.sample_initial(2, rng)
    Q = torch.linalg.qr(torch.randn(2, 4, 2, dtype=torch.float64))[0]
    counter = rng.counter
    recorded, reason = capture.record(lambda x_, Q_: system.tangent(x_, Q_, rng), (x, Q), rng)
    assert reason is None and recorded.draws == 1 and rng.counter == counter
    first = recorded((x, Q), rng)
    assert rng.counter == counter + 1
    second = recorded((x, Q), rng)
    assert not torch.equal(first[1], second[1])  # fresh noise at the next draw


def branching_map():
    """A plug-in map whose step branches in Python on a value (untraceable with fake tensors)."""
    def step(x):
        if float(x.abs().max()) > 1e6:
            return x
        return torch.stack([1 - 1.4 * x[:, 0] ** 2 + x[:, 1], 0.3 * x[:, 0]], dim=1)
    return Map("branching_henon", step, 2, sample_initial=lambda b, g: 0.1 * g.uniform(2, dtype=torch.float64))


def noisy_map():
    """A plug-in map drawing from torch's global generator (not the run's streams)."""
    def step(x):
        return 0.5 * x + 1e-3 * torch.rand_like(x)
    return Map("global_noise", step, 2, sample_initial=lambda b, g: g.uniform(2, dtype=torch.float64))


def counting_map():
    """A plug-in map with a Python side effect that changes the numbers (against the contract)."""
    calls = []

    def step(x):
        calls.append(1)
        return 0.5 * x + 1e-3 * len(calls)
    return Map("counting", step, 2, sample_initial=lambda b, g: g.uniform(2, dtype=torch.float64))


@pytest.mark.parametrize("make,reason", [(branching_map, "could not be traced"),
                                         (noisy_map, "differs from the eager step"),
                                         (counting_map, "differs from the eager step")])
def test_a_step_that_cannot_be_replayed_runs_eagerly(make, reason, long_runs):
    system = make()
    torch.manual_seed(0)
    eager = run(system, "none", steps=50, batch=2)
    torch.manual_seed(0)
    auto = run(system, "auto", steps=50, batch=2)
    assert auto.meta["capture"]["mode"] == "none" and reason in auto.meta["capture"]["reason"]
    if make is branching_map:
        assert_same(auto, eager)


def rerun_capture(fn, inputs):
    """A stand-in for torch.cuda.graph on the CPU: the replay re-runs ``fn`` on the captured input
    buffers and writes into the captured output buffers, as a graph replay does."""
    outputs = tuple(o.clone() for o in fn(*inputs))

    def replay():
        for buffer, new in zip(outputs, fn(*inputs)):
            buffer.copy_(new)
    return replay, outputs


@pytest.fixture
def graph_on_cpu(monkeypatch):
    monkeypatch.setattr(capture, "cuda_capture", rerun_capture)
    monkeypatch.setattr(JVPQREstimator, "_check_capture", lambda self, device: None)


@pytest.mark.parametrize("name,params,kw", [CASES[0], CASES[3]])
@pytest.mark.parametrize("speculate", [False, True])
def test_graph_buffers_give_the_eager_run(name, params, kw, speculate, graph_on_cpu):
    system = rs.get(name, **params)
    kw = dict(kw)
    steps = kw.pop("steps")
    graphed_est = JVPQREstimator(capture="graph", reorth_every=2)
    graphed_est.speculate = speculate
    graphed = graphed_est.estimate(system, steps, seed=3, **kw)
    assert graphed.meta["capture"]["mode"] == "graph"
    assert_same(graphed, JVPQREstimator(capture="none", reorth_every=2).estimate(system, steps, seed=3, **kw))


def test_graph_step_returns_copies_and_reads_its_inputs():
    def f(a, b):
        return a * 2 + b, a - b
    a, b = torch.arange(3.0), torch.ones(3)
    step = capture.GraphedStep(f, (a, b), rerun_capture)
    out = step(a, b)
    out[0].zero_()  # the caller's copy: the next replay is unaffected
    a2 = torch.tensor([5.0, 6.0, 7.0])
    torch.testing.assert_close(step(a2, b), f(a2, b), rtol=0, atol=0)
    torch.testing.assert_close(step(a, b), f(a, b), rtol=0, atol=0)


@pytest.mark.parametrize("broken,reason", [
    (lambda fn, inputs: ((lambda: None), tuple(torch.zeros_like(o) for o in fn(*inputs))), "replay differs"),
    (lambda fn, inputs: (_ for _ in ()).throw(RuntimeError("operation not permitted when stream is capturing")),
     "capture failed"),
])
def test_a_graph_that_fails_its_check_falls_back_to_the_trace(monkeypatch, broken, reason):
    monkeypatch.setattr(capture, "cuda_capture", broken)
    monkeypatch.setattr(JVPQREstimator, "_check_capture", lambda self, device: None)
    system = rs.get("henon")
    eager = run(system, "none", steps=100, batch=2)
    res = run(system, "graph", steps=100, batch=2)
    assert res.meta["capture"]["mode"] == "trace" and reason in res.meta["capture"]["reason"]
    assert_same(res, eager)


def test_bad_capture_values_are_errors_naming_the_argument():
    with pytest.raises(InvalidArgumentError, match="capture"):
        JVPQREstimator(capture="cuda_graphs")
    with pytest.raises(InvalidArgumentError, match="capture.*CUDA devices only"):
        JVPQREstimator(capture="graph").estimate(rs.get("henon"), 10)
    with pytest.raises(InvalidArgumentError, match="capture.*CUDA devices only"):
        QREstimator(capture="graph", reorth_every="auto").interval_for(rs.get("henon"), 1000)
    assert estimators.from_spec("jvp_qr(capture='none')").get_params()["capture"] == "none"


def test_outside_a_run_the_step_is_eager():
    calls = []

    def f(a):
        calls.append(1)
        return a + 1
    capture.call("f", f, (torch.zeros(2),))
    capture.call("f", f, (torch.zeros(2),))
    assert len(calls) == 2


def test_throughput_names_the_capture_mode():
    system = rs.get("henon")
    row = throughput.measure(estimators.get("jvp_qr", capture="trace"), system, batch=2, min_seconds=0.01,
                             repeats=1)
    assert row["message"] == "capture='trace' ran 'trace'"
    row = throughput.measure(estimators.get("jvp_qr", capture="none"), system, batch=2, min_seconds=0.01,
                             repeats=1)
    assert row["message"] == "capture='none' ran 'none'"


def test_throughput_does_not_time_the_recording(monkeypatch):
    """A recording made slow on purpose (0.3 s) must not show in the time per step."""
    original = capture._recorded_step

    def slow(*args):
        time.sleep(0.3)
        return original(*args)
    monkeypatch.setattr(capture, "_recorded_step", slow)
    row = throughput.measure(estimators.get("jvp_qr", capture="trace"), rs.get("henon"), batch=2,
                             min_seconds=0.01, repeats=1, max_steps=50)
    assert row["seconds_per_step"] * row["steps_timed"] < 0.3


@pytest.mark.parametrize("race", [(1e-3, 2e-3), (2e-3, 1e-3)])
def test_the_probe_on_a_copy_of_the_generator_does_not_leak_into_the_run(monkeypatch, race, long_runs):
    """reorth_every='auto' probes on a copy of the run's generator before the run: whatever 'auto'
    decides at that first call, the run's steps must draw from the run's own streams."""
    monkeypatch.setattr(capture, "race", lambda *a, **k: race)
    gp = rs.get("gaussian_products", N=6)
    auto = QREstimator(reorth_every="auto").estimate(gp, 200, batch=3, seed=1)
    m = auto.meta["reorth_auto"]["interval"]
    assert auto.meta["capture"]["mode"] == ("none" if race[0] < race[1] else "trace")
    assert_same(auto, QREstimator(reorth_every=m, capture="none").estimate(gp, 200, batch=3, seed=1))


# --- 'compile': the recording compiled by inductor (issue 23) -----------------------------------------------------

@pytest.mark.parametrize("estimator, name, params, kw", [
    (QREstimator, *CASES[1]),        # an RK4 flow with its analytic tangent
    (JVPQREstimator, *CASES[3]),     # a random system: the generator's keys and counter are inputs of the graph
])
def test_compiled_step_gives_the_eager_run(estimator, name, params, kw):
    """Inductor compiles the recorded step once, checked on the first state (difference 0.0 here).  Lorenz-63's
    fused RK4 tangent keeps every operation: the run equals the eager one bit for bit.  The Gaussian products'
    4 x 4 matrix products become inductor's own loops, which round some later products differently: the
    exponents agree to round-off (|difference| <= 1e-13; the frame's dynamics contract such differences, while
    a chaotic state would amplify them as any change of operation order does)."""
    system = rs.get(name, **params)
    kw = dict(kw)
    steps = kw.pop("steps")
    eager = estimator(capture="none").estimate(system, steps, seed=3, **kw)
    compiled = estimator(capture="compile").estimate(system, steps, seed=3, **kw)
    record = compiled.meta["capture"]
    assert record["mode"] == "compile" and record["reason"] is None, record
    assert record["compiled_max_relative_difference"] == 0.0 and record["seconds"] > 0
    if name == "lorenz63":
        assert_same(compiled, eager)
    else:
        np.testing.assert_allclose(compiled.per_trajectory, eager.per_trajectory, rtol=0, atol=1e-13)


def test_a_compiled_step_outside_the_round_off_bound_or_failing_falls_back_to_the_trace(monkeypatch):
    """A compiled step is checked against the recording on the first state: one that moves the result by more than
    COMPILE_RTOL, or a compiler that fails, leaves the run on the recorded (traced) step, with the reason."""
    import torch._inductor
    system = rs.get("henon")
    eager = QREstimator(capture="none").estimate(system, 100, seed=3, batch=2)

    def off_by_a_little(gm, inputs):
        return lambda *a: tuple(o * (1 + 1e-12) for o in gm(*a))
    monkeypatch.setattr(torch._inductor, "compile", off_by_a_little)
    res = QREstimator(capture="compile").estimate(system, 100, seed=3, batch=2)
    assert res.meta["capture"]["mode"] == "trace" and "differs from the recorded one by 1e-12" in \
        res.meta["capture"]["reason"]
    assert_same(res, eager)

    def no_compiler(gm, inputs):
        raise RuntimeError("no C++ compiler found")
    monkeypatch.setattr(torch._inductor, "compile", no_compiler)
    res = QREstimator(capture="compile").estimate(system, 100, seed=3, batch=2)
    assert res.meta["capture"]["mode"] == "trace" and "no C++ compiler" in res.meta["capture"]["reason"]
    assert_same(res, eager)
    # within the bound (a relative 1e-15) it is used, and the difference is recorded
    monkeypatch.setattr(torch._inductor, "compile",
                        lambda gm, inputs: (lambda *a: tuple(o * (1 + 2e-15) for o in gm(*a))))
    res = QREstimator(capture="compile").estimate(system, 100, seed=3, batch=2)
    assert res.meta["capture"]["mode"] == "compile"
    assert 0 < res.meta["capture"]["compiled_max_relative_difference"] <= capture.COMPILE_RTOL


def test_auto_compiles_only_a_run_long_enough_to_repay_it(monkeypatch):
    """'auto' compiles where the run's remaining steps would take AUTO_COMPILE_MIN_RUN_SECONDS eagerly, and keeps the
    compiled step only if it timed faster; shorter runs never compile."""
    import torch._inductor
    calls = []
    monkeypatch.setattr(torch._inductor, "compile", lambda gm, inputs: calls.append(1) or gm)
    system = rs.get("henon")
    short = QREstimator().estimate(system, 200, seed=3, batch=2)
    assert not calls and short.meta["capture"]["mode"] == "none"
    monkeypatch.setattr(capture, "AUTO_MIN_RUN_SECONDS", 0.0)
    monkeypatch.setattr(capture, "AUTO_COMPILE_MIN_RUN_SECONDS", 0.0)
    monkeypatch.setattr(capture, "race", lambda *a, **k: (2e-3, 1e-3))
    fast = QREstimator().estimate(system, 200, seed=3, batch=2)
    assert calls and fast.meta["capture"]["mode"] == "compile"
    monkeypatch.setattr(capture, "race", lambda *a, **k: (1e-3, 1e-3))
    slow = QREstimator().estimate(system, 200, seed=3, batch=2)
    assert slow.meta["capture"]["mode"] != "compile" and "compiled step was not faster" in \
        slow.meta["capture"]["compile_reason"]
    assert_same(fast, short) and assert_same(slow, short)


@pytest.mark.slow
def test_gpu_check_cpu_half(tmp_path):
    """The GPU check's CPU half (python -m suite.benchmarks.gpu_check --device cpu --smoke): every compiled or
    traced run equals the eager one here, and the throughput table is written (about a minute: it compiles)."""
    from suite.benchmarks import gpu_check
    assert gpu_check.main(["--device", "cpu", "--smoke", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "compile_check_cpu.md").read_text()
    assert text.count("| compile | compile |") == 2 and text.count("| trace | trace |") == 2
    assert (tmp_path / "throughput_cpu_quick.csv").exists()
