"""suite.estimators.numerics.inductor: the small-unit regime's rule, and the rewrite of small matrix products
(same products, summed in index order: equal to the recorded graph within a few units of round-off)."""
import torch

from suite.estimators.numerics import capture, inductor

ATEN = torch.ops.aten


def products(a, b, c, bias, wide, tall):
    """mm, bmm and addmm contracting 3 terms, and an mm contracting 16 (left as it is)."""
    return a @ b, torch.bmm(c, c), torch.addmm(bias, a, b), wide @ tall


def inputs():
    g = torch.Generator().manual_seed(0)
    shapes = [(2, 3), (3, 4), (5, 3, 3), (4,), (2, 16), (16, 2)]
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


def targets(graph_module):
    return [n.target for n in graph_module.graph.nodes if n.op == "call_function"]


def test_small_matrix_products_are_unrolled_and_give_the_same_numbers():
    args = inputs()
    recorded, reason = capture.record(products, args)
    assert reason is None
    expected = recorded.graph_module(*args)
    rewritten = inductor.unroll_small_matmuls(recorded.graph_module)
    assert rewritten == 3
    assert targets(recorded.graph_module).count(ATEN.mm.default) == 1  # the 16-term product stays a BLAS call
    assert ATEN.bmm.default not in targets(recorded.graph_module)
    assert ATEN.addmm.default not in targets(recorded.graph_module)
    got = recorded.graph_module(*args)
    for u, v in zip(got, expected):
        assert u.shape == v.shape
        torch.testing.assert_close(u, v, rtol=0, atol=8 * torch.finfo(v.dtype).eps * float(v.abs().max()))


def test_the_small_regime_is_chosen_by_the_units_bytes_and_leaves_the_recording_alone(monkeypatch):
    args = inputs()
    recorded, _ = capture.record(products, args)
    size = inductor.unit_bytes(recorded.graph_module)
    assert size >= sum(a.numel() * 8 for a in args)  # every value counted, inputs included
    cpu = torch.device("cpu")
    assert inductor.is_small(recorded.graph_module, cpu)
    graph_module, options = inductor.prepared(recorded.graph_module, cpu)
    assert options["cpp.simdlen"] == 1 and options["force_pointwise_cat"] and options["cpp_wrapper"]
    assert ATEN.bmm.default not in targets(graph_module)
    assert ATEN.bmm.default in targets(recorded.graph_module)  # prepared rewrote a copy
    monkeypatch.setattr(inductor, "SMALL_UNIT_BYTES", size - 1)
    assert not inductor.is_small(recorded.graph_module, cpu)
    graph_module, options = inductor.prepared(recorded.graph_module, cpu)
    assert graph_module is recorded.graph_module and options == inductor.OPTIONS_CPU
    assert inductor.prepared(recorded.graph_module, torch.device("cuda")) == (recorded.graph_module, {})
