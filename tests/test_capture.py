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
from suite.estimators.numerics import batch_last, capture, inductor, shards
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
def compiling(monkeypatch, tmp_path):
    """Compilation on (tests/conftest.py turns it off for the other tests), its remembered compile times in a
    file of the test's own (a stand-in compiler's times must not reach the machine's)."""
    from suite.estimators.numerics import compile_cost
    monkeypatch.setenv(capture.COMPILE_ENV, "auto")
    monkeypatch.setattr(compile_cost, "cache_path", lambda: str(tmp_path / compile_cost.FILE_NAME))


@pytest.fixture
def small_units(monkeypatch, compiling):
    """Units of 2 steps, compilation on: what the compiled path does is the same, a cold compilation takes a
    few seconds (CI)."""
    from suite.estimators.numerics import units
    monkeypatch.setattr(units, "UNIT_STEPS", 2)


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
    # units are recorded only to be compiled (off here): the run steps, its single steps replayed
    assert long_.meta["capture"]["single_steps"]["mode"] == "trace" and long_.meta["capture"]["recordings"] >= 1
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
    with pytest.raises(InvalidArgumentError, match="capture"):
        estimators.get("two_trajectory", capture="cuda_graphs")
    with pytest.raises(InvalidArgumentError, match="capture.*CUDA devices only"):
        estimators.get("two_trajectory", capture="graph").estimate(rs.get("henon"), 10)
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
    shards_ = {"requested": "auto", "mode": "compile", "reason": None, "compiled_shards": {"shards": 2, "size": 2048}}
    assert throughput.capture_note(shards_) == "capture='auto' ran 'compile' in 2 shards of 2048"


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
    monkeypatch.setattr(capture, "_should_compile", lambda *a: False)  # units step eagerly; single steps: the test
    gp = rs.get("gaussian_products", N=6)
    auto = QREstimator(reorth_every="auto").estimate(gp, 200, batch=3, seed=1)
    m = auto.meta["reorth_auto"]["interval"]
    assert auto.meta["capture"]["single_steps"]["mode"] == ("none" if race[0] < race[1] else "trace")
    assert_same(auto, QREstimator(reorth_every=m, capture="none").estimate(gp, 200, batch=3, seed=1))


# --- 'compile': the recording compiled by inductor (issue 23) -----------------------------------------------------

CV_BATCH = 220  # suite.estimators.numerics.control_variates.min_batch(henon, k=2)
UNIT_RUNS = [  # (system, params, estimator params, run): what a unit must take over from the stepwise loop
    ("lorenz63", {}, {}, dict(steps=400, transient=32, batch=2)),
    ("lorenz63", {}, {"taper": 100}, dict(steps=400, transient=32, batch=1)),
    ("lorenz63", {}, {"reorth_every": 12}, dict(steps=400, transient=40, batch=3, dtype=torch.float32)),
    ("henon", {}, {"reorth_every": "auto", "taper": 400, "control_variates": True},
     dict(steps=3200, transient=200, batch=CV_BATCH)),
    ("gaussian_products", {"N": 4}, {"reorth_every": 3}, dict(steps=300, transient=30, batch=3, k=2)),
]


@pytest.mark.parametrize("unit_steps", [4, 16])
@pytest.mark.parametrize("name,params,est,kw", UNIT_RUNS)
def test_units_give_the_stepwise_run_bit_for_bit(monkeypatch, unit_steps, name, params, est, kw):
    """Traced units (several intervals, their QR steps and their accumulation a call; intervals longer than a unit
    split into units) give the run of ``capture='none'``, which steps one step at a time, bit for bit: exponents,
    per trajectory, history, standard errors, with tapers, control variates, B = 1 batch means, float32 and a
    random system."""
    from suite.estimators.numerics import units
    monkeypatch.setattr(units, "UNIT_STEPS", unit_steps)
    made, intervals = [], units.intervals
    monkeypatch.setattr(units, "intervals", lambda *a: made.append(1) or intervals(*a))
    system = rs.get(name, **params)
    kw = dict(kw)
    steps = kw.pop("steps")
    stepwise = QREstimator(capture="none", **est).estimate(system, steps, seed=5, **kw)
    traced = QREstimator(capture="trace", **est).estimate(system, steps, seed=5, **kw)
    assert traced.meta["capture"]["mode"] == "trace" and len(made) > 5  # units ran
    assert_same(traced, stepwise)
    np.testing.assert_array_equal(traced.stderr, stepwise.stderr)


TWO_TRAJECTORY_RUNS = [  # two_trajectory's units: the pair's steps, the neighbour's reset and the accumulation
    ("lorenz63", {}, {}, dict(steps=800, transient=50, batch=2)),
    ("henon", {}, {"renorm_every": 3, "taper": 100}, dict(steps=800, transient=50, batch=1)),  # transient % m != 0
    ("henon", {}, {"control_variates": True}, dict(steps=800, transient=20, batch=160)),
    ("gaussian_products", {"N": 4}, {"renorm_every": 2}, dict(steps=800, transient=10, batch=3,
                                                                dtype=torch.float32)),
]


@pytest.mark.parametrize("name,params,est,kw", TWO_TRAJECTORY_RUNS)
def test_two_trajectory_units_give_the_stepwise_run_bit_for_bit(monkeypatch, name, params, est, kw):
    """two_trajectory in traced units gives its stepwise run bit for bit (a random system's pair drawing the same
    noise, tapers, control variates, B = 1, float32), and a transient that is not a multiple of renorm_every
    no longer shifts the renormalisations off the accumulator's (it raised IndexError before)."""
    from suite.estimators.numerics import units
    made, intervals = [], units.intervals
    monkeypatch.setattr(units, "intervals", lambda *a: made.append(1) or intervals(*a))
    system = rs.get(name, **params)
    kw = dict(kw)
    steps = kw.pop("steps")
    stepwise = estimators.get("two_trajectory", capture="none", **est).estimate(system, steps, seed=5, **kw)
    traced = estimators.get("two_trajectory", capture="trace", **est).estimate(system, steps, seed=5, **kw)
    assert traced.meta["capture"]["mode"] == "trace" and len(made) > 5  # units ran
    assert_same(traced, stepwise)
    np.testing.assert_array_equal(traced.stderr, stepwise.stderr)


@pytest.mark.parametrize("estimator", ["qr", "two_trajectory"])
def test_a_trajectory_that_diverges_inside_a_unit_is_reported_as_stepping_would(monkeypatch, estimator):
    """A unit whose checks fail is redone step by step: the error names the step of a stepwise run."""
    from suite.core.errors import TrajectoryError
    system = Map("growing", lambda x: 1.5 * x, 1, jacobian=lambda x: torch.full_like(x, 1.5)[:, :, None],
                 sample_initial=lambda b, g: torch.ones(b, 1, dtype=torch.float64))  # overflows at step 1751
    from suite.estimators.numerics import units
    messages, made, intervals = [], [], units.intervals
    monkeypatch.setattr(units, "intervals", lambda *a: made.append(1) or intervals(*a))
    for mode in ("none", "trace"):
        with pytest.raises(TrajectoryError) as info:
            estimators.get(estimator, capture=mode).estimate(system, 4000, batch=2)
        messages.append(str(info.value))
    assert made and messages[0] == messages[1] and "step" in messages[0]


UNIT_CASES = [  # runs long enough for whole units: 20 blocks of at least UNIT_STEPS renormalisations, a transient
    ("lorenz63", {}, dict(steps=400, transient=32, batch=2)),
    ("gaussian_products", {"N": 4}, dict(steps=400, transient=32, batch=3)),
]


@pytest.mark.parametrize("estimator, name, params, kw, regime", [
    (QREstimator, *UNIT_CASES[0], "small"),   # an RK4 flow with its analytic tangent, compiled as a small unit
    # ... and as a large one (a batch's settings), a batch large enough to be rewritten batch-last
    (QREstimator, "lorenz63", {}, dict(UNIT_CASES[0][2], batch=batch_last.MIN_BATCH), "large"),
    (JVPQREstimator, *UNIT_CASES[1], "small"),  # a random system: the generator's keys and counter are graph inputs
    # ... and both in two shards on two threads: the shard's unit draws the first shard's streams
    (QREstimator, "lorenz63", {}, dict(UNIT_CASES[0][2], batch=2 * batch_last.MIN_BATCH), "sharded"),
    (JVPQREstimator, "gaussian_products", {"N": 4}, dict(UNIT_CASES[1][2], batch=2 * batch_last.MIN_BATCH),
     "sharded"),
])
def test_compiled_units_give_the_eager_run(estimator, name, params, kw, regime, small_units, monkeypatch):
    """Inductor compiles the recorded units (steps, QR steps, accumulation) once, each checked on the first state
    against the recording.  Later intervals may round a sqrt or a log differently (vectorised against scalar
    code) by at most the unit's round-off bound (``compiled_bound``: COMPILE_ULPS units times the unit's own
    conditioning) of an interval's log growth: the exponents, averages of log growths, then agree to that bound
    times the largest |exponent| (a chaotic state would amplify a different rounding of the state itself, which
    Lorenz-63's polynomial step never has; the Gaussian products have no state).  The random products' frames are
    ill-conditioned at times (bound ~1e-11, where Lorenz-63's is ~COMPILE_RTOL): their exponents differed by 1.5e-13
    whole and sharded alike."""
    small = regime == "small"
    if not small:
        monkeypatch.setattr(inductor, "SMALL_UNIT_BYTES", 0)
    threads = torch.get_num_threads()
    monkeypatch.setattr(shards, "MIN_SHARD", batch_last.MIN_BATCH)
    torch.set_num_threads(2 if regime == "sharded" else 1)
    system = rs.get(name, **params)
    kw = dict(kw)
    steps = kw.pop("steps")
    try:
        eager = estimator(capture="none").estimate(system, steps, seed=3, **kw)
        compiled = estimator(capture="compile").estimate(system, steps, seed=3, **kw)
    finally:
        torch.set_num_threads(threads)
    record = compiled.meta["capture"]
    assert record["mode"] == "compile" and record["reason"] is None, record
    options = record["compiled_options"]  # the settings of the regime, recorded
    assert options["cpp_wrapper"] and (options.get("cpp.simdlen") == 1) == small
    assert ("aot_inductor.allow_stack_allocation" in options) == (small and inductor.register_stack_wrapper())
    assert record["compiled_max_relative_difference"] <= record["compiled_bound"] and record["seconds"] > 0
    assert record["compiled_cuda_graph"] is None  # a CUDA graph is captured on CUDA only
    moved = (record["compiled_batch_last"] or {}).get("moved", 0)
    assert (moved > 100) == (not small), record["compiled_batch_last"]  # every unit of a large batch is rewritten
    if regime == "sharded":  # each shard's unit compiled for one thread
        assert record["compiled_shards"] == {"shards": 2, "size": batch_last.MIN_BATCH} and \
            options["cpp.threads"] == 1
    else:
        assert record["compiled_shards"].startswith("not sharded: ")
    # steps outside whole units (none here) are recorded, never compiled
    assert record.get("single_steps", {}).get("mode") in (None, "trace")
    bound = record["compiled_bound"] * np.abs(eager.per_trajectory).max()
    np.testing.assert_allclose(compiled.per_trajectory, eager.per_trajectory, rtol=0, atol=bound)
    np.testing.assert_allclose(compiled.history, eager.history, rtol=0, atol=bound)


def scaled(factor):
    """A stand-in for inductor whose compiled unit scales every floating output by ``factor``."""
    return lambda gm, inputs: (lambda *a: tuple(o * factor if o.is_floating_point() else o for o in gm(*a)))


def test_compiled_two_trajectory_units_agree_with_the_eager_run_within_its_round_off(small_units):
    """two_trajectory's units compiled (2-step units): each log growth ln(d / d0) carries round-off of order
    eps / (d / |x|) ~ sqrt(eps) (d0 = sqrt(eps)(1 + |x0|)), which a different rounding of the states by the
    compiled unit (within COMPILE_ULPS units, checked on the first state) scales by at most COMPILE_ULPS: the
    exponent, a mean of log growths over m dt, moves by at most COMPILE_ULPS sqrt(eps) / (m dt)."""
    system = rs.get("lorenz63")
    eager = estimators.get("two_trajectory", capture="none").estimate(system, 400, transient=32, batch=2, seed=3)
    compiled = estimators.get("two_trajectory", capture="compile").estimate(system, 400, transient=32, batch=2,
                                                                          seed=3)
    record = compiled.meta["capture"]
    assert record["mode"] == "compile" and record["reason"] is None, record
    assert record["compiled_options"].get("cpp.simdlen") == 1  # two trajectories of Lorenz-63: a small unit
    bound = capture.COMPILE_ULPS * np.sqrt(np.finfo(np.float64).eps) / system.dt
    np.testing.assert_allclose(compiled.per_trajectory, eager.per_trajectory, rtol=0, atol=bound)


def test_a_compiled_unit_outside_the_round_off_bound_or_failing_falls_back_to_the_trace(monkeypatch, compiling):
    """A compiled unit is checked against the recording on the first state: one that moves the result by more than
    its round-off bound (for 16 chaotic Henon steps about 1e-11: what one unit of round-off in the inputs grows to),
    or a compiler that fails, leaves the run on the recorded (traced) unit, with the reason."""
    import torch._inductor
    system = rs.get("henon")
    run_ = dict(steps=400, transient=32, seed=3, batch=2)
    eager = QREstimator(capture="none").estimate(system, **run_)
    monkeypatch.setattr(torch._inductor, "compile", scaled(1 + 1e-6))
    res = QREstimator(capture="compile").estimate(system, **run_)
    assert res.meta["capture"]["mode"] == "trace" and "differs from the recorded one by 1e-06" in \
        res.meta["capture"]["reason"]
    assert_same(res, eager)

    def no_compiler(gm, inputs):
        raise RuntimeError("no C++ compiler found")
    monkeypatch.setattr(torch._inductor, "compile", no_compiler)
    res = QREstimator(capture="compile").estimate(system, **run_)
    assert res.meta["capture"]["mode"] == "trace" and "no C++ compiler" in res.meta["capture"]["reason"]
    assert_same(res, eager)
    # within the bound (a relative 1e-15) it is used, and the difference is recorded
    monkeypatch.setattr(torch._inductor, "compile", scaled(1 + 2e-15))
    res = QREstimator(capture="compile").estimate(system, **run_)
    assert res.meta["capture"]["mode"] == "compile"
    assert 0 < res.meta["capture"]["compiled_max_relative_difference"] <= res.meta["capture"]["compiled_bound"]


def test_the_round_off_bound_grows_with_the_units_conditioning():
    """The bound is COMPILE_ULPS units of round-off times what one unit of round-off in the inputs does to the
    outputs: eps for a well-conditioned unit, c eps for a Gram-Schmidt of a frame of condition c."""
    from suite.estimators.numerics.linalg import qr_unchecked
    V = torch.tensor([[[1.0, 1.0], [1.0, 1.0 + 1e-6]]], dtype=torch.float64)  # condition ~ 4e6: MGS cancels
    W = torch.tensor([[[2.0, 0.1], [0.3, 1.0]]], dtype=torch.float64)  # condition ~ 2

    def gs(V_):
        return qr_unchecked(V_, "mgs")[:2]
    eps = torch.finfo(torch.float64).eps
    assert capture.round_off_bound(gs, (W,), gs(W)) <= 4 * capture.COMPILE_ULPS * eps
    assert capture.round_off_bound(gs, (V,), gs(V)) > 1e4 * capture.COMPILE_ULPS * eps


def test_auto_compiles_only_where_the_saving_exceeds_the_predicted_compile_time(monkeypatch, compiling):
    """'auto' compiles a unit where (1 - 1 / AUTO_ASSUMED_SPEEDUP) of the eager time left exceeds the predicted compile
    time, and keeps the compiled unit only if it timed faster; the prediction and its source are recorded."""
    import torch._inductor
    from suite.estimators.numerics import compile_cost
    calls = []
    monkeypatch.setattr(torch._inductor, "compile", lambda gm, inputs: calls.append(1) or gm)
    system = rs.get("henon")
    run_ = dict(steps=400, transient=32, seed=3, batch=2)
    short = QREstimator().estimate(system, **run_)
    assert not calls and short.meta["capture"]["mode"] == "none"
    monkeypatch.setattr(capture, "AUTO_MIN_RUN_SECONDS", 0.0)
    monkeypatch.setattr(capture, "race", lambda *a, **k: (2e-3, 1e-3))
    monkeypatch.setattr(compile_cost, "predicted_seconds", lambda identity, steps, *ops: (1e9, "a test's guess"))
    costly = QREstimator().estimate(system, **run_)
    assert not calls and costly.meta["capture"]["mode"] == "none"  # units stepped eagerly, not even recorded
    assert "predicted to take (a test's guess" in costly.meta["capture"]["compile_reason"]  # x the load, if busy
    assert costly.meta["capture"]["predicted_compile_s"] == 1e9 * costly.meta["capture"]["load_slowdown"]
    monkeypatch.setattr(compile_cost, "predicted_seconds", lambda identity, steps, *ops: (0.0, "a test's guess"))
    fast = QREstimator().estimate(system, **run_)
    assert calls and fast.meta["capture"]["mode"] == "compile"
    monkeypatch.setattr(capture, "race", lambda *a, **k: (1e-3, 1e-3))
    slow = QREstimator().estimate(system, **run_)
    assert slow.meta["capture"]["mode"] != "compile" and "compiled step was not faster" in \
        slow.meta["capture"]["compile_reason"]
    for res in (costly, fast, slow):
        assert_same(res, short)


def test_auto_predicts_a_cold_compilation_from_the_recorded_operations(monkeypatch, compiling):
    """Where the step count's lower bound lets a unit be recorded, its aten operations predict the cold compilation
    (COLD_SECONDS_PER_OPERATION each): a unit whose saving falls short is replayed uncompiled, and says why."""
    import torch._inductor
    from suite.estimators.numerics import compile_cost
    calls = []
    monkeypatch.setattr(torch._inductor, "compile", lambda gm, inputs: calls.append(1) or gm)
    monkeypatch.setattr(capture, "AUTO_MIN_RUN_SECONDS", 0.0)
    monkeypatch.setattr(capture, "race", lambda *a, **k: (2e-3, 1e-3))
    monkeypatch.setattr(compile_cost, "COLD_SECONDS_PER_STEP", 0.0)  # the lower bound lets every unit be recorded
    run_ = dict(steps=400, transient=32, seed=3, batch=2)
    system = rs.get("henon")
    recorded = QREstimator().estimate(system, **run_)
    meta = recorded.meta["capture"]
    assert not calls and meta["mode"] == "trace" and " operations" in meta["compile_reason"]
    operations = int(meta["predicted_compile_source"].split(" of ")[1].split()[0])
    assert meta["predicted_compile_s"] == pytest.approx(operations * compile_cost.COLD_SECONDS_PER_OPERATION
                                                        * meta["load_slowdown"])  # 1 on an idle machine
    assert meta["predicted_compile_s"] >= meta["eager_left_s"] * (1 - 1 / capture.AUTO_ASSUMED_SPEEDUP)
    monkeypatch.setattr(compile_cost, "COLD_SECONDS_PER_OPERATION", 0.0)
    compiled = QREstimator().estimate(system, **run_)
    assert calls and compiled.meta["capture"]["mode"] == "compile"
    assert_same(compiled, recorded)


def test_auto_scales_the_predicted_compile_time_by_the_machines_load(monkeypatch):
    """Eager steps timed on a busy machine are set against a compile time that would wait as long: the
    prediction is scaled by the larger of the call's wall / CPU time and the load average per core."""
    monkeypatch.setattr(capture.os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    monkeypatch.setattr(capture.os, "cpu_count", lambda: 2)
    cpu = torch.device("cpu")
    assert capture.load_slowdown(1.0, 1.0, cpu) == 4.0  # 8 runnable threads on 2 cores
    assert capture.load_slowdown(1.0, 0.1, cpu) == 10.0  # the call waited 9 of its 10 s for a core
    assert capture.load_slowdown(1.0, 0.1, torch.device("meta")) == 1.0  # off the CPU: the device's time
    monkeypatch.setattr(capture.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert capture.load_slowdown(1.0, 2.0, cpu) == 1.0  # idle, two threads busy: never below 1
    idle, busy = {"eager_left_s": 40.0, "load_slowdown": 1.0}, {"eager_left_s": 40.0, "load_slowdown": 3.0}
    assert capture._repays((10.0, "a guess"), idle)  # saves 20 s of 40 against 10 s of compiling
    assert not capture._repays((10.0, "a guess"), busy) and busy["predicted_compile_s"] == 30.0
    assert "x 3 for the machine's load" in busy["compile_reason"]

def test_compile_seconds_are_remembered_across_processes(tmp_path, monkeypatch):
    """A unit compiled here before is predicted at the seconds it took; an unseen one as a cold compilation."""
    from suite.estimators.numerics import compile_cost
    monkeypatch.setattr(compile_cost, "cache_path", lambda: str(tmp_path / "sub" / compile_cost.FILE_NAME))
    unit = ("qr", "henon", "intervals", 1, 16)
    seconds, source = compile_cost.predicted_seconds(unit, 16)
    assert source == "a cold compilation of 16 steps" and seconds == 16 * compile_cost.COLD_SECONDS_PER_STEP
    compile_cost.remember(unit, 1.25)
    assert compile_cost.predicted_seconds(unit, 16) == (1.25, "measured here before")
    assert compile_cost.predicted_seconds(unit[:-1] + (8,), 8)[1].startswith("a cold")


def test_auto_steps_a_run_too_short_to_repay_a_compilation_one_step_at_a_time(monkeypatch, compiling):
    """Where compiling would not repay itself, 'auto' records no unit and the run steps as capture='none' does
    (eager units do more small operations than eager steps)."""
    from suite.estimators.numerics import units
    monkeypatch.setattr(capture, "AUTO_MIN_RUN_SECONDS", 0.0)
    calls = []
    intervals = units.intervals
    monkeypatch.setattr(units, "intervals", lambda *a: calls.append(1) or intervals(*a))
    system = rs.get("henon")
    res = QREstimator().estimate(system, 400, transient=32, seed=3, batch=2)
    assert len(calls) == 1 and res.meta["capture"]["recordings"] <= 1  # the one unit timed, then steps
    assert "not compiled" in res.meta["capture"]["compile_reason"]
    assert_same(res, QREstimator(capture="none").estimate(system, 400, transient=32, seed=3, batch=2))


@pytest.mark.slow
def test_gpu_check_cpu_half(tmp_path, compiling):
    """The GPU check's CPU half (python -m suite.benchmarks.gpu_check --device cpu --smoke): every compiled or
    traced run equals the eager one here, and the throughput table is written (about a minute: it compiles)."""
    from suite.benchmarks import gpu_check
    assert gpu_check.main(["--device", "cpu", "--smoke", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "compile_check_cpu.md").read_text()
    assert text.count("| compile | compile |") == 2 and text.count("| trace | trace |") == 2
    assert (tmp_path / "throughput_cpu_quick.csv").exists()


def test_compilation_can_be_turned_off_for_a_machine(monkeypatch):
    """LYAPBENCH_COMPILE=off: 'compile' replays the recording and says why; 'auto' never compiles."""
    monkeypatch.setenv(capture.COMPILE_ENV, "off")
    system = rs.get("henon")
    res = QREstimator(capture="compile").estimate(system, 400, transient=32, batch=2, seed=3)
    assert res.meta["capture"]["mode"] == "trace" and "LYAPBENCH_COMPILE=off" in res.meta["capture"]["reason"]
    with capture.assume_long_runs():
        auto = QREstimator().estimate(system, 400, transient=32, batch=2, seed=3)
    assert auto.meta["capture"]["mode"] != "compile" and "turned off" in auto.meta["capture"]["compile_reason"]
    assert_same(res, QREstimator(capture="none").estimate(system, 400, transient=32, batch=2, seed=3))


@pytest.mark.parametrize("diverges", [False, True])
def test_units_under_speculation_give_the_careful_run(monkeypatch, diverges):
    """On CUDA a run checks a chunk of renormalisations at once (speculate); units then gather their checks into
    the chunk's boolean, and a failed chunk is redone carefully: the same numbers, or the same error."""
    from suite.core.errors import TrajectoryError
    from suite.estimators.numerics import units
    made, intervals = [], units.intervals
    monkeypatch.setattr(units, "intervals", lambda *a: made.append(1) or intervals(*a))
    if diverges:
        system = Map("growing", lambda x: 1.5 * x, 1, jacobian=lambda x: torch.full_like(x, 1.5)[:, :, None],
                     sample_initial=lambda b, g: torch.ones(b, 1, dtype=torch.float64))
        run_ = dict(steps=4000, batch=2)
    else:
        system, run_ = rs.get("lorenz63"), dict(steps=600, transient=40, batch=3)
    results = []
    for mode, speculate in (("none", False), ("trace", True)):
        est = QREstimator(capture=mode)
        est.speculate = speculate
        if diverges:
            with pytest.raises(TrajectoryError) as info:
                est.estimate(system, **run_)
            results.append(str(info.value))
        else:
            results.append(est.estimate(system, seed=2, **run_))
    assert made
    if diverges:
        assert results[0] == results[1]
    else:
        assert_same(results[1], results[0])
