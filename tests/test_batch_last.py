"""suite.estimators.numerics.batch_last: the rewrite moves every batched value's batch last and changes no number."""
import pytest
import torch

import reference_systems as rs
from suite.estimators.numerics import batch_last, capture, inductor

ATEN = torch.ops.aten
B = batch_last.MIN_BATCH


def unit(x, V, sums, weights, const):
    """The operations of a recorded unit: elementwise ops broadcasting batched and unbatched tensors, columns
    (select), slices, unsqueeze, permute / transpose, views that keep the batch, expand, reductions over other
    dimensions and over everything, a vector norm, cat / stack (slices and cat along the batch too), an in-place column update
    (select_scatter once functional),
    and three kept in their layout: matrix products (addmm, bmm) and a reduction over the batch."""
    X, Y = x[:, 0], x[:, 1]
    f = torch.stack([Y - X, X * (const[0] - Y)], dim=0).T  # (B, 2), batch-last like stack_like
    J = torch.addmm(const[1:3, None], const[3:7].view(2, 2), x.T).T.reshape(-1, 2, 1).expand(-1, 2, 2)
    W = V.permute(0, 2, 1).transpose(1, 2) * J + f.unsqueeze(-1)
    W = torch.cat([W, W[:, :1, :] * 0.5], dim=1)  # (B, 3, 2)
    norms = torch.sqrt((W * W).sum(dim=1))  # (B, 2)
    W = W.clone()
    W[:, :, 0] /= norms[:, :1]  # an in-place column update
    logs = torch.log(norms) * weights[0]
    ok = (torch.isfinite(logs).all(dim=1) & (norms > 1e-300).all(dim=-1)).all()
    gram = torch.bmm(W.transpose(1, 2), W)  # (B, 2, 2): left in its layout
    total = logs.sum(dim=0)  # over the batch: left in its layout
    halves = torch.cat([x[B // 2:] - x[:B // 2], x[:B // 2]], dim=0)  # a pair's halves, sliced and joined
    lengths = torch.linalg.vector_norm(W, dim=(1,), keepdim=True)  # (B, 1, 2): a norm off the batch
    return x + 0.01 * f, W, sums + logs, torch.stack([sums, logs]), ok, gram, total, halves, lengths


def inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, B, generator=g, dtype=dtype).T  # batch-last (B, 2)
    V = torch.randn(2, 2, B, generator=g, dtype=dtype).permute(2, 0, 1)
    sums = torch.randn(B, 2, generator=g, dtype=torch.float64)
    return [x, V, sums, torch.tensor([0.5], dtype=torch.float64), torch.randn(7, generator=g, dtype=dtype) + 2]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_rewrite_moves_the_batch_last_and_gives_the_same_numbers(dtype):
    args = inputs(dtype)
    recorded, reason = capture.record(unit, args)
    assert reason is None
    rewritten, counts = batch_last.rewritten(recorded.graph_module, args, B)
    expected, got = recorded.graph_module(*args), rewritten(*args)
    for u, v in zip(got, expected):
        assert u.shape == v.shape and u.dtype == v.dtype
        if v.is_floating_point() and v.dim() and v.shape[0] != B:  # the sum over the batch: another order
            torch.testing.assert_close(u, v, rtol=8 * torch.finfo(v.dtype).eps, atol=0)
        else:
            assert torch.equal(u, v)  # elementwise and sums over d: the same operations on the same numbers
    assert counts["moved"] > 40 and set(counts["kept"]) == {"aten.addmm.default", "aten.bmm.default",
                                                     "aten.sum.dim_IntList"}
    # every value a rule produced has the batch last; the others are the kept nodes and the views between layouts
    batched = [n for n in rewritten.graph.nodes if n.op == "call_function" and B in tuple(n.meta["val"].shape)]
    first = [n for n in batched if n.meta["val"].shape[0] == B and n.meta["val"].dim() > 1]
    views = (ATEN.permute.default, ATEN.transpose.int)
    assert len(batched) > 40 and all(n.target in views or n.args and n.args[0].target in (ATEN.bmm.default,)
                                     or n.target in (ATEN.bmm.default, ATEN.sum.dim_IntList) for n in first), \
        [str(n.target) for n in first]


def test_units_with_a_batch_of_frames_are_rewritten_and_units_of_states_alone_are_not():
    x, V, sums = inputs()[:3]
    assert batch_last.batch_of([x, V, sums]) == B
    assert batch_last.batch_of([x, sums]) == 0  # two_trajectory's units: states only
    assert batch_last.batch_of([x[:8], V[:8]]) == 0  # too few trajectories to vectorise over
    assert batch_last.batch_of([]) == 0


def test_the_batch_dimension_is_the_only_one_of_its_size():
    assert batch_last.batch_dim(torch.zeros(B, 3), B) == 0
    assert batch_last.batch_dim(torch.zeros(3, B, 2), B) == 1
    assert batch_last.batch_dim(torch.zeros(B, B), B) is None  # cannot tell
    assert batch_last.batch_dim(torch.zeros(B), B) is None  # a vector needs no move
    assert batch_last.batch_dim(torch.zeros(3, 3), B) is None


def test_large_units_are_rewritten_where_the_batch_is_large_enough_and_kept_where_the_rewrite_fails(monkeypatch):
    args = inputs()
    recorded, _ = capture.record(unit, args)
    cpu = torch.device("cpu")
    monkeypatch.setattr(inductor, "SMALL_UNIT_BYTES", 0)
    graph_module, options = inductor.prepared(recorded.graph_module, cpu, args)
    assert options == inductor.OPTIONS_CPU and graph_module.meta["batch_last"]["moved"] > 40
    assert "batch_last" not in recorded.graph_module.meta  # the recording is left alone
    graph_module, _ = inductor.prepared(recorded.graph_module, cpu, [a[:8] if a.shape[0] == B else a for a in args])
    assert "batch_last" not in graph_module.meta  # a batch of 8: nothing to vectorise over

    def failing(*a):
        raise NotImplementedError("an operation without a fake kernel")
    monkeypatch.setattr(batch_last, "rewritten", failing)
    graph_module, _ = inductor.prepared(recorded.graph_module, cpu, args)
    assert graph_module.meta["batch_last"] == {"failed": "NotImplementedError: an operation without a fake kernel"}
    assert all(torch.equal(u, v) for u, v in zip(graph_module(*args), recorded.graph_module(*args)))


def test_a_recorded_tangent_step_of_a_batch_last_flow_is_moved_entirely():
    """Lorenz-63 (batch-last flow, analytic Jacobian): only its Jacobian's matrix product stays (a BLAS call)."""
    system = rs.get("lorenz63")
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(3, B, generator=g, dtype=torch.float64) + 20).T
    V = torch.eye(3, dtype=torch.float64).expand(B, 3, 3).permute(1, 2, 0).contiguous().permute(2, 0, 1)
    recorded, _ = capture.record(lambda x_, V_: system.tangent(x_, V_), [x, V])
    rewritten, counts = batch_last.rewritten(recorded.graph_module, [x, V], B)
    assert set(counts["kept"]) == {"aten.addmm.default"}
    assert all(torch.equal(u, v) for u, v in zip(rewritten(x, V), recorded.graph_module(x, V)))


def test_the_side_by_side_study_times_both_compiled_units(monkeypatch, tmp_path, capsys):
    """suite.studies.batch_last compiles a unit from each graph and times them in turns (units of 2 steps here,
    so that the two cold compilations take seconds)."""
    from suite.estimators.numerics import compile_cost, units
    from suite.studies import batch_last as study
    monkeypatch.setenv(capture.COMPILE_ENV, "auto")
    monkeypatch.setattr(compile_cost, "cache_path", lambda: str(tmp_path / compile_cost.FILE_NAME))
    monkeypatch.setattr(units, "UNIT_STEPS", 2)
    row = study.side_by_side("qr(reorth_every=2)", B, rounds=1, calls=2)
    assert row["rewritten"] > 0 and row["recorded"] > 0 and row["ratio"] == row["recorded"] / row["rewritten"]
    assert batch_last.MIN_BATCH == B and capture.compile_recorded.__name__ == "compile_recorded"  # restored
    study.main(["--batch", str(B), "--threads", "1", "--rounds", "1", "--estimators", "qr(reorth_every=2)"])
    assert "| `qr(reorth_every=2)` | 64 | 1 |" in capsys.readouterr().out
