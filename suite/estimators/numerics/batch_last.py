"""A recorded unit rewritten so that the batch is the last dimension of every value: batch-last loops for inductor.

    graph_module, counts = batch_last.rewritten(graph_module, inputs, batch)

Systems see a batch of states as (B, d) and of frames as (B, d, k); the built-in small flows store them
batch-last (``reference_systems.layout``), which eager torch keeps from op to op.  Inductor does not: it lays
out each intermediate buffer contiguously in its logical shape, so a (B, 3) or (B, 3, 3) value is written
batch-first, with stride-3 stores and transposes between loops.  This rewrite moves the batch to the last
logical dimension of every value it can follow (``movedim(value, b, -1)``, a view at the unit's inputs and
outputs, which keep their shapes and strides), so that each loop runs over B contiguous numbers, as a unit
written by hand on (d, B) rows would.  Measured (Lorenz-63 ``qr``, B = 4,096, float64, a 16-step unit
compiled on one thread of the 2-core CPU; docs/performance.md): 8.0e6 -> 1.75e7 trajectory-steps/s.

How: the graph is functionalised (no in-place operations), then each node is rebuilt on its inputs'
batch-last forms by a rule of its kind: elementwise operations (torch's ``pointwise`` tag; broadcasting
inputs aligned by views), select, slice (along the batch too), unsqueeze, permute, transpose, view/reshape
that keep the batch one dimension, expand, reductions and vector norms over other dimensions, all/any, cat
(along the batch too), stack and the functional forms of in-place column updates (select_scatter,
slice_scatter).  Any other node (matrix products, QR, reductions over the batch, an operation on one
trajectory) runs on the original layout, its batched inputs moved back by a view, and its output is moved
batch-last again where one dimension has size B.  Every rule is a relabelling of the same elements, so
elementwise results are bit for bit those of the recording; reductions may sum in another order (the compiled
unit is held to the round-off bound of :func:`~suite.estimators.numerics.capture.round_off_bound` as before).
Applied where a unit carries a batch of frames (:func:`batch_of`).
"""
from __future__ import annotations

import operator
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.fx as fx

ATEN = torch.ops.aten

#: batches from this size on are rewritten (below it a loop over the batch is too short to vectorise)
MIN_BATCH = 64

#: elementwise without torch's pointwise tag (``copy``: the functional form of ``copy_``, src broadcast to self)
_ELEMENTWISE = (ATEN._to_copy.default, ATEN.clone.default, ATEN.alias.default, ATEN.copy.default,
                ATEN.empty_like.default)
_REDUCTIONS = (ATEN.sum.dim_IntList, ATEN.all.dim, ATEN.any.dim, ATEN.amax.default, ATEN.amin.default)
_VIEWS = (ATEN.view.default, ATEN._unsafe_view.default, ATEN.reshape.default)


def batch_of(inputs: Sequence[torch.Tensor]) -> int:
    """The batch a unit with these inputs is rewritten for: the first input's first dimension, if it is at least
    :data:`MIN_BATCH` and some input is a batch of frames (three dimensions or more, batch first); else 0.  Units
    of states alone are compiled as recorded: ``two_trajectory``'s unit ran 0.90x as fast rewritten (Lorenz-63,
    B = 4,096, two threads, side by side), where ``qr``'s ran 1.76x (one QR step a step) and 1.40x (m = 32) and
    ``jvp_qr``'s 1.05x (docs/performance.md)."""
    if not inputs or not inputs[0].dim() or inputs[0].shape[0] < MIN_BATCH:
        return 0
    batch = inputs[0].shape[0]
    frames = any(isinstance(a, torch.Tensor) and a.dim() >= 3 and batch_dim(a, batch) == 0 for a in inputs)
    return batch if frames else 0


def batch_dim(value: Any, batch: int) -> Optional[int]:
    """The dimension of ``value`` that is the batch: its only dimension of size ``batch``, for tensors of at least
    two dimensions; else None (a vector, an unbatched value, or one whose batch cannot be told)."""
    if not isinstance(value, torch.Tensor) or value.dim() < 2:
        return None
    dims = [i for i, size in enumerate(value.shape) if size == batch]
    return dims[0] if len(dims) == 1 else None


def rewritten(graph_module: fx.GraphModule, inputs: Sequence[torch.Tensor], batch: int
              ) -> Tuple[fx.GraphModule, Dict[str, Any]]:
    """``graph_module`` (a recorded unit) as a functional graph whose batched values are batch-last, same inputs
    and outputs (shapes and strides), and counts: nodes moved by a rule, nodes kept in the original layout (by
    operation)."""
    from torch._guards import detect_fake_mode
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    def traced(fn):
        return make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
    functional = traced(torch.func.functionalize(graph_module, remove="mutations"))
    rewriter = _Rewriter(batch)
    out = fx.GraphModule(functional, rewriter.run(functional.graph))
    # the new nodes' values (inductor reads them) in the trace's fake mode: a third of the time of a second trace
    fakes = [node.meta["val"] for node in functional.graph.nodes if node.op == "placeholder"]
    FakeTensorProp(out, detect_fake_mode(fakes)).propagate_dont_convert_inputs(*fakes)
    return out, {"moved": rewriter.moved, "kept": rewriter.kept}


def _primed_order(rank: int, b: int) -> list:
    """The permutation that takes a tensor with its batch at b to its batch-last form."""
    return [j for j in range(rank) if j != b] + [b]


def _position(j: int, b: int) -> int:
    """Where original dimension j (not the batch b) sits in the batch-last form."""
    return j if j < b else j - 1


def _inserted(d: int, b: int) -> Tuple[int, int]:
    """A dimension inserted at d (unsqueeze, stack) of a tensor batched at b: where it goes in the batch-last
    form, and the batch's dimension after it."""
    b_out = b + 1 if d <= b else b
    return (d if d < b_out else d - 1), b_out


def _batch_last_shape(shape, b: int) -> list:
    """``shape`` with its dimension b moved last."""
    return [size for i, size in enumerate(shape) if i != b] + [shape[b]]


class _Rewriter:
    """Builds the batch-last graph: ``env[node] = (new node, b)``, the new node holding ``movedim(value, b, -1)``
    of the old node's value, or the value itself where b is None."""

    def __init__(self, batch: int):
        self.batch, self.env = batch, {}
        self.moved, self.kept = 0, {}
        self.graph = fx.Graph()

    # ---- views between the layouts
    def permute(self, node, order):
        if list(order) == list(range(len(order))):
            return node
        return self.graph.call_function(ATEN.permute.default, (node, list(order)))

    def moved_last(self, node, value, b):
        return node if b is None else self.permute(node, _primed_order(value.dim(), b))

    def original(self, old):
        """The new graph's node holding old's value in its original layout."""
        if not isinstance(old, fx.Node):
            return old
        node, b = self.env[old]
        if b is None:
            return node
        order = _primed_order(_value(old).dim(), b)
        return self.permute(node, sorted(range(len(order)), key=order.__getitem__))

    def batched(self, arg) -> bool:
        return isinstance(arg, fx.Node) and self.env[arg][1] is not None

    # ---- the graph
    def run(self, graph: fx.Graph) -> fx.Graph:
        for node in graph.nodes:
            if node.op == "placeholder":
                new = self.graph.placeholder(node.name)
                new.meta = dict(node.meta)
                value = _value(node)
                b = batch_dim(value, self.batch)
                self.env[node] = (self.moved_last(new, value, b), b)
            elif node.op == "output":
                self.graph.output(fx.node.map_arg(node.args[0], self.original))
            elif node.op == "get_attr":
                self.env[node] = (self.graph.get_attr(node.target), None)
            else:
                self.env[node] = self.call(node)
        self.graph.eliminate_dead_code()
        return self.graph

    def call(self, node):
        flat = []
        fx.node.map_arg((node.args, node.kwargs), flat.append)
        if any(self.batched(a) for a in flat) and node.target is not operator.getitem:
            moved = self.rule(node)
            if moved is not None:
                self.moved += 1
                return moved
            name = str(node.target)
            self.kept[name] = self.kept.get(name, 0) + 1
        # a kept view of an input moved back by a permutation may need a copy: reshape (the graph is functional)
        target = ATEN.reshape.default if node.target in _VIEWS else node.target
        new = self.graph.call_function(target, fx.node.map_arg(node.args, self.original),
                                       fx.node.map_arg(node.kwargs, self.original))
        value = _value(node)
        b = batch_dim(value, self.batch)
        return (self.moved_last(new, value, b), b) if b is not None else (new, None)

    def rule(self, node):
        """(new node, b) for a node with batched inputs that a rule moves, else None."""
        target, args = node.target, node.args
        if torch.Tag.pointwise in getattr(target, "tags", ()) or target in _ELEMENTWISE:
            return self.elementwise(node)
        if target in (ATEN.cat.default, ATEN.stack.default):
            return self.joined(node)
        x = args[0]
        if not self.batched(x):
            return None
        new_x, b = self.env[x]
        rank, value = _value(x).dim(), _value(node)
        if target is ATEN.select.int:
            d = args[1] % rank
            if d != b:
                return self.call_new(target, (new_x, _position(d, b), args[2])), (b if d > b else b - 1)
        elif target is ATEN.slice.Tensor:  # along the batch too (a pair's halves): the batch stays last
            d = (args[1] if len(args) > 1 else 0) % rank
            return self.call_new(target, (new_x, _position(d, b) if d != b else rank - 1) + tuple(args[2:])), b
        elif target is ATEN.unsqueeze.default:
            position, b_out = _inserted(args[1] % (rank + 1), b)
            return self.call_new(target, (new_x, position)), b_out
        elif target in (ATEN.permute.default, ATEN.transpose.int, ATEN.t.default):
            order = _order(target, args, rank)
            b_out = order.index(b)
            new_order = [_position(order[i], b) for i in range(rank) if i != b_out] + [rank - 1]
            return self.permute(new_x, new_order), b_out
        elif target in _VIEWS:
            b_out = _kept_batch(_value(x).shape, b, value.shape)
            if b_out is not None:
                return self.call_new(ATEN.reshape.default, (new_x, _batch_last_shape(value.shape, b_out))), b_out
        elif target is ATEN.expand.default:
            b_out = b + value.dim() - rank
            return self.call_new(target, (new_x, _batch_last_shape(value.shape, b_out))), b_out
        elif target in _REDUCTIONS or target is ATEN.linalg_vector_norm.default:
            return self.reduced(node, new_x, b, rank, 1 if target in _REDUCTIONS else 2)
        elif target in (ATEN.all.default, ATEN.any.default):
            return self.call_new(target, (new_x,)), None
        elif target in (ATEN.select_scatter.default, ATEN.slice_scatter.default) and self.batched(args[1]):
            d = args[2] % rank
            src_b = b - 1 if target is ATEN.select_scatter.default and d < b else b
            if d != b and self.env[args[1]][1] == src_b:
                return self.call_new(target, (new_x, self.env[args[1]][0], _position(d, b)) + tuple(args[3:])), b
        return None

    def joined(self, node):
        """cat or stack of tensors batched at one dimension, along another."""
        tensors, d = node.args[0], (node.args[1] if len(node.args) > 1 else 0)
        dims = {self.env[t][1] if isinstance(t, fx.Node) else None for t in tensors}
        ranks = {_value(t).dim() for t in tensors}
        if len(dims) != 1 or None in dims or len(ranks) != 1:
            return None
        b, rank, new = dims.pop(), ranks.pop(), [self.env[t][0] for t in tensors]
        if node.target is ATEN.cat.default:  # along the batch too (a pair's halves joined)
            d = d % rank
            return self.call_new(node.target, (new, _position(d, b) if d != b else rank - 1)), b
        position, b_out = _inserted(d % (rank + 1), b)
        return self.call_new(node.target, (new, position)), b_out

    def reduced(self, node, new_x, b: int, rank: int, at: int):
        """A reduction (or vector norm) whose dimensions, argument ``at``, leave the batch out."""
        args = node.args
        if len(args) <= at or args[at] is None or "dtype" in node.kwargs:
            return None
        listed = isinstance(args[at], (list, tuple))
        dims = [d % rank for d in (args[at] if listed else [args[at]])]
        if b in dims:
            return None
        keep = args[at + 1] if len(args) > at + 1 else node.kwargs.get("keepdim", False)
        new_dims = [_position(d, b) for d in dims]
        new_args = (new_x,) + tuple(args[1:at]) + (new_dims if listed else new_dims[0],) + tuple(args[at + 1:])
        return self.call_new(node.target, new_args, dict(node.kwargs)), (b if keep else b - sum(d < b for d in dims))

    def call_new(self, target, args, kwargs=None):
        return self.graph.call_function(target, args, kwargs or {})

    def elementwise(self, node):
        """An elementwise operation: each tensor input aligned (broadcast) to the output, batch moved last."""
        rank = _value(node).dim()
        positions = {self.env[a][1] + rank - _value(a).dim() for a in node.args if self.batched(a)}
        if len(positions) != 1:
            return None
        p = positions.pop()

        def aligned(arg):
            if not isinstance(arg, fx.Node):
                return arg
            value = _value(arg)
            new, b = self.env[arg]
            if not isinstance(value, torch.Tensor):
                return new
            r = value.dim()
            if b is not None and b + rank - r == p:
                for _ in range(rank - r):
                    new = self.call_new(ATEN.unsqueeze.default, (new, 0))
                return new
            if b is None and r <= rank - 1 - p:  # unbatched, every dimension after the batch's: append its 1
                return self.call_new(ATEN.unsqueeze.default, (new, -1)) if r else new
            new = self.original(arg)
            if r < rank:
                new = self.call_new(ATEN.reshape.default, (new, [1] * (rank - r) + list(value.shape)))
            return self.permute(new, _primed_order(rank, p))
        kwargs = {k: aligned(v) for k, v in node.kwargs.items() if k != "memory_format"}
        return self.call_new(node.target, tuple(aligned(a) for a in node.args), kwargs), p


def _value(node):
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _order(target, args, rank: int) -> list:
    """The permutation a permute, transpose or t applies."""
    if target is ATEN.permute.default:
        return [d % rank for d in args[1]]
    order = list(range(rank))
    d0, d1 = (args[1] % rank, args[2] % rank) if target is ATEN.transpose.int else (0, rank - 1)
    order[d0], order[d1] = order[d1], order[d0]
    return order


def _kept_batch(shape_in, b: int, shape_out) -> Optional[int]:
    """The batch's dimension after a view from shape_in (batch at b) to shape_out, if the view keeps it one
    dimension with the same elements before it; else None."""
    batch, before = shape_in[b], 1
    for size in shape_in[:b]:
        before *= size
    product = 1
    for i, size in enumerate(shape_out):
        if product == before and size == batch:
            return i
        product *= size
    return None
