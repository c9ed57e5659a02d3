"""How a recorded unit is handed to inductor: its settings and the rewrites of its graph.

    gm, options = inductor.prepared(graph_module, device, inputs)   # then torch._inductor.compile(gm, inputs)

Two regimes, chosen by the size of the unit's tensors (:func:`is_small`):

* **large** (a batch of trajectories): :data:`OPTIONS_CPU`, a C++ wrapper around the kernels and one
  memory pool for the intermediates; the graph rewritten batch-last where it carries a batch of frames
  (:mod:`suite.estimators.numerics.batch_last`), else as recorded (matrix products stay BLAS calls, which
  thread over the batch).
* **small** (one or a few trajectories of a small system, every tensor a handful of numbers): the
  cost is no longer arithmetic but the wrapper's bookkeeping, so :data:`SMALL_OPTIONS_CPU` adds
  intermediates as C++ stack arrays instead of tensors (each tensor handle costs ~0.2 us; a B = 1
  Lorenz-63 unit of 16 steps and QR steps has ~350 of them), scalar code (vector lanes over 3
  numbers are mostly masked), concatenations as pointwise code, and :func:`unroll_small_matmuls`
  turns matrix products whose contraction has at most :data:`SMALL_CONTRACTION` terms into
  products and a sum that inductor unrolls (a BLAS call for a 3 x 3 product costs more than the
  product).  Measured on the 2-core CPU, B = 1, one thread, float64, ``qr()``, each setting added in
  turn (docs/performance.md): Lorenz-63 81k -> 110k steps/s (pointwise cat) -> 120k (scalar) -> 186-200k
  (stack arrays); the same flow with autodiff tangents (a bmm of 3 x 3 frames per RK4 stage): 87k with
  the three settings, 193k with the products unrolled.  Exponents unchanged to the printed 9 digits.

Stack arrays need inductor's ``CppWrapperCpuArrayRef`` wrapper, which torch registers for the CPU
once per process, when inductor's backends are first registered, if
``aot_inductor.allow_stack_allocation`` is set then (:func:`register_stack_wrapper`).  Where another
compile registered the plain wrapper first, small units keep tensor handles (slower, same numbers);
``meta['capture']['compiled_options']`` says which settings a unit was compiled with.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from suite.core.errors import exception_line
from suite.estimators.numerics import batch_last

#: inductor on the CPU: a C++ wrapper around the kernels and one pool for the intermediate buffers; a unit's Python
#: wrapper otherwise allocates each intermediate (measured, Lorenz-63, 32 steps a call, B = 1, one thread: 68k steps/s
#: Python wrapper, 150k C++ wrapper, 203k C++ wrapper and memory planning)
OPTIONS_CPU = {"cpp_wrapper": True, "memory_planning": True}
#: added for small units (:func:`is_small`): intermediates on the stack (memory planning off: its pools are tensors),
#: scalar C++ code (simdlen 1 matches no vector ISA), concatenations as pointwise code
SMALL_OPTIONS_CPU = {"aot_inductor.allow_stack_allocation": True, "memory_planning": False, "cpp.simdlen": 1,
                     "force_pointwise_cat": True}
#: a unit is small if all its values together (every node's output, an upper bound on the stack arrays) take at most
#: this many bytes: well inside the 8 MiB stack of a Linux thread
SMALL_UNIT_BYTES = 1 << 20
#: matrix products contracting at most this many terms are unrolled in small units (inductor's own threshold for
#: unrolling a reduction, ``unroll_reductions_threshold``)
SMALL_CONTRACTION = 8


def _values(graph_module) -> list:
    return [node.meta.get("val") for node in graph_module.graph.nodes]


def unit_bytes(graph_module) -> int:
    """Bytes of every value the recorded graph computes or reads (its nodes' fake tensors)."""
    return sum(v.numel() * v.element_size() for v in _values(graph_module) if isinstance(v, torch.Tensor))


def is_small(graph_module, device: torch.device) -> bool:
    """Whether a unit on ``device`` is compiled in the small regime: CPU, at most :data:`SMALL_UNIT_BYTES`."""
    return device.type == "cpu" and unit_bytes(graph_module) <= SMALL_UNIT_BYTES


def unroll_small_matmuls(graph_module) -> int:
    """Rewrite, in place, ``mm``, ``bmm`` and ``addmm`` (without scaling factors) whose contracted dimension has at
    most :data:`SMALL_CONTRACTION` entries as ``(a[..., None] * b[..., None, :, :]).sum(-2)`` (plus the bias); the
    number rewritten.  Same products, summed in index order: the result may differ from BLAS's by rounding only
    (the compiled unit is held to :func:`~suite.estimators.numerics.capture.round_off_bound`)."""
    aten = torch.ops.aten
    graph, rewritten = graph_module.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.kwargs:
            continue
        if node.target in (aten.mm.default, aten.bmm.default) and len(node.args) == 2:
            bias, (a, b) = None, node.args
        elif node.target is aten.addmm.default and len(node.args) == 3:
            bias, a, b = node.args
        else:
            continue
        left = a.meta.get("val") if hasattr(a, "meta") else None
        if not isinstance(left, torch.Tensor) or left.shape[-1] > SMALL_CONTRACTION:
            continue
        with graph.inserting_before(node):
            products = graph.call_function(aten.mul.Tensor, (graph.call_function(aten.unsqueeze.default, (a, -1)),
                                                              graph.call_function(aten.unsqueeze.default, (b, -3))))
            out = graph.call_function(aten.sum.dim_IntList, (products, [-2]))
            if bias is not None:
                out = graph.call_function(aten.add.Tensor, (bias, out))
        node.replace_all_uses_with(out)
        graph.erase_node(node)
        rewritten += 1
    if rewritten:
        graph_module.recompile()
    return rewritten


def register_stack_wrapper() -> bool:
    """Register inductor's CPU backends with the wrapper that can put intermediates on the stack, if no compile
    in this process registered them yet; whether the CPU's C++ wrapper is that one."""
    import torch._inductor.config as inductor_config
    from torch._inductor.codegen.common import get_wrapper_codegen_for_device, init_backend_registration
    with inductor_config.patch({"aot_inductor.allow_stack_allocation": True}):
        init_backend_registration()
    wrapper = get_wrapper_codegen_for_device("cpu", cpp_wrapper=True)
    return getattr(wrapper, "__name__", "") == "CppWrapperCpuArrayRef"


def prepared(graph_module, device: torch.device, inputs: Optional[Sequence[torch.Tensor]] = None
             ) -> Tuple[Any, Dict[str, Any]]:
    """The graph to compile and the inductor settings for it; for an accelerator, the recording and no settings
    (inductor's own).  On the CPU: in the small regime a copy with its small matrix products unrolled; in the
    large regime, given the unit's ``inputs``, a batch of frames large enough for
    :func:`~suite.estimators.numerics.batch_last.batch_of`, the graph rewritten batch-last
    (:func:`~suite.estimators.numerics.batch_last.rewritten`; its counts, or why it failed and the graph was
    kept as recorded, in the result's ``meta['batch_last']``)."""
    if device.type != "cpu":
        return graph_module, {}
    options = dict(OPTIONS_CPU)
    if not is_small(graph_module, device):
        batch = batch_last.batch_of(inputs or ())
        if batch:
            try:
                graph_module, counts = batch_last.rewritten(graph_module, inputs, batch)
            except Exception as exc:  # noqa: BLE001 - an operation the rewrite cannot trace: compile as recorded
                graph_module = torch.fx.GraphModule(graph_module, _copied_graph(graph_module))
                counts = {"failed": exception_line(exc)}
            graph_module.meta["batch_last"] = counts
    else:
        graph_module = torch.fx.GraphModule(graph_module, _copied_graph(graph_module))
        unroll_small_matmuls(graph_module)
        options.update(SMALL_OPTIONS_CPU)
        if not register_stack_wrapper():
            options.pop("aot_inductor.allow_stack_allocation")
            options["memory_planning"] = True
    return graph_module, options


def _copied_graph(graph_module):
    graph = torch.fx.Graph()
    out = graph.graph_copy(graph_module.graph, {})
    graph.output(out)
    return graph
