"""A large unit in shards, one per thread (suite.estimators.numerics.shards): the plan, putting the outputs
together, the fallback to the whole unit, and the worker threads' own thread count.  Inductor is replaced by a
stand-in that returns the graph it is given (the compiled path: tests/test_capture.py), so every sharded result
here must be the recording's bit for bit."""
import threading

import pytest
import torch

from reference_systems.noise import TrajectoryRNG
from suite.estimators.numerics import batch_last, capture, inductor, shards

B = 2 * batch_last.MIN_BATCH


@pytest.fixture
def two_threads(monkeypatch):
    """Torch on two threads (tests/conftest.py sets one), shards of MIN_BATCH trajectories, the large regime,
    inductor a stand-in."""
    import torch._inductor
    monkeypatch.setattr(shards, "MIN_SHARD", batch_last.MIN_BATCH)
    monkeypatch.setattr(inductor, "SMALL_UNIT_BYTES", 0)  # a batch's regime for these small tensors
    monkeypatch.setattr(torch._inductor, "compile", lambda gm, inputs: gm)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def frames(batch=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, batch, generator=g, dtype=torch.float64).T  # batch-last, as the built-in flows store it
    Q = torch.randn(batch, 3, 3, generator=g, dtype=torch.float64)
    return [x, Q, torch.tensor([0.5, 2.0], dtype=torch.float64)]


def unit(x, Q, w, rng=None):
    """Per trajectory: a state, a frame, a history (2, B), a flag; plus draws where given a generator."""
    if rng is not None:
        x = x + rng.normal(3)
    y = torch.tanh(x) * w[0] + w[1]
    R = torch.linalg.vector_norm(Q, dim=1, keepdim=True)
    return y, Q / R, torch.stack([y.sum(-1), R.sum((-1, -2))]), torch.isfinite(y).all()


def test_the_plan_splits_large_cpu_batches_of_frames_evenly(two_threads):
    args = frames()
    assert shards.planned(args, torch.device("cpu")) == (shards.Plan(2, B // 2), "")
    assert shards.planned(args, torch.device("cpu"), threads=4)[0] == shards.Plan(2, B // 2)  # shards >= MIN_SHARD
    for why, inputs, kw in [("device 'cuda'", args, dict(device=torch.device("cuda"))),
                            ("1 thread(s)", args, dict(threads=1)),
                            ("does not split into 2", frames(B + 1), {}),
                            ("no batch of frames", args[:1], {})]:
        plan, reason = shards.planned(inputs, **dict(dict(device=torch.device("cpu")), **kw))
        assert plan is None and reason.startswith("not sharded: ") and why in reason, reason


def test_output_dims_find_the_batch_or_refuse_an_unbatched_value():
    plan = shards.Plan(2, 64)
    full = [torch.zeros(128, 3), torch.zeros(4, 128, 2), torch.tensor(True)]
    assert shards.output_dims(full, [torch.zeros(64, 3), torch.zeros(4, 64, 2), torch.tensor(True)], plan) == \
        [0, 1, None]
    with pytest.raises(ValueError, match="output 0 of shape"):
        shards.output_dims([torch.zeros(())], [torch.zeros(())], plan)


@pytest.mark.parametrize("draws", [False, True])
def test_a_sharded_unit_is_the_unit_bit_for_bit(two_threads, draws):
    """Outputs laid out as the recording's, equal bit for bit; a generator's draws are each trajectory's own
    (the shard is recorded on the first shard's streams); the flag is the and of the shards'."""
    args = frames()
    rng = TrajectoryRNG(seed=3, batch=B) if draws else None
    fn = (lambda x, Q, w: unit(x, Q, w, rng))  # three inputs: make_fx traces every argument
    recorded, reason = capture.record(fn, args, rng)
    assert reason is None
    compiled, outcome = capture.compile_recorded(recorded, args, rng, fn=fn)
    assert outcome["shards"] == {"shards": 2, "size": B // 2}, outcome["shards"]
    assert outcome["batch_last"]["moved"] > 0  # each shard's unit rewritten batch-last
    assert outcome["options"]["cpp.threads"] == 1
    for _ in range(2):  # the generator moves on between calls
        start = getattr(rng, "counter", None)
        expected = fn(*args)
        if rng is not None:
            rng.counter = start
        got = compiled(args, rng)
        assert getattr(rng, "counter", None) == (start + recorded.draws if draws else None)
        for u, v in zip(got, expected):
            assert torch.equal(u, v) and u.stride() == v.stride()
    args[0][B - 1, 0] = float("nan")  # a trajectory of the second shard fails its check
    assert not bool(compiled(args, rng)[3]) and bool(compiled(frames(), rng)[3])


def test_a_unit_that_cannot_be_sharded_is_compiled_whole_with_the_reason(two_threads):
    """A unit with an output over the whole batch (a mean) cannot be put together from shards."""
    def pooled(x, Q, w):
        y, Q, history, ok = unit(x, Q, w)
        return y, Q, y.mean(), ok
    args = frames()
    recorded, _ = capture.record(pooled, args)
    compiled, outcome = capture.compile_recorded(recorded, args, fn=pooled)
    assert outcome["shards"].startswith("not sharded: ValueError: output 2 of shape ()"), outcome["shards"]
    assert "cpp.threads" not in outcome["options"]
    assert all(torch.equal(u, v) for u, v in zip(compiled(args), pooled(*args)))


def test_worker_threads_run_one_torch_thread_and_leave_the_process_count(two_threads):
    """Each worker is set to one thread (an OpenMP team of its own would throttle the process's other teams),
    after torch's lazy per-thread initialisation, which would otherwise restore the process's count."""
    pool = shards._pool(2)
    counts = [pool.submit(torch.get_num_threads).result() for _ in range(4)]
    assert counts == [1, 1, 1, 1] and torch.get_num_threads() == 2
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [2]  # a thread the process starts later still gets the process's count
