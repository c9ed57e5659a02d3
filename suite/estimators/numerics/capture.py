"""Record a step once, replay it every step: torch.func's host cost paid once per run.

``jvp_qr`` advances its frame with ``torch.func.vmap(torch.func.jvp(step))``,
whose transforms run in Python at every call and only decide which aten
operations run.  For a step without data-dependent control flow those
operations are the same at every step, so they are recorded once
(``torch.fx.experimental.proxy_tensor.make_fx``, with fake tensors: a branch
on a value, ``.item()`` or a NumPy round trip fails the trace instead of
being baked in), unused results are dropped, and the recorded graph is
called at every step.  A recording is used only if the trace succeeded and,
on the first state, the replay equals the eager step bit for bit.  The run's
:class:`~reference_systems.TrajectoryRNG` keys and draw counter are inputs of
the recording, so every replayed step draws the numbers the eager step would.
A step that fails a check runs eagerly; the outcome is in ``meta['capture']``
(``requested``, ``mode``, ``reason``, ``recordings``, ``seconds``; for 'auto'
also ``eager_step_s`` and ``replay_step_s``).

Modes (the ``capture`` hyperparameter, :data:`CAPTURE_MODES`):

``'none'``   the step's Python (transforms included) at every step.
``'trace'``  the recorded aten graph at every step.
``'graph'``  CUDA only, opt-in: the recording captured as a CUDA graph
             (:class:`GraphedStep`), falling back to ``'trace'`` with the reason.
``'compile'`` the recording compiled by inductor (:func:`compile_recorded`: fused C++
             loops on the CPU, Triton kernels on CUDA; no dynamo, no guards: the
             recording is already a fixed aten graph), used if it reproduces the
             recording within :data:`COMPILE_ULPS` units of round-off on the first state (bit for bit
             where inductor keeps the operations; the difference is recorded),
             else ``'trace'`` with the reason.  Compiling costs seconds (3-4 s for a
             Lorenz-63 step with inductor's on-disk cache warm, 15-30 s cold).
``'auto'``   ``'compile'`` in a run that would take at least
             :data:`AUTO_COMPILE_MIN_RUN_SECONDS` eagerly (kept only if it timed
             faster than the eager step), else ``'trace'`` where the replay timed
             faster (:func:`race`, by :data:`AUTO_MARGIN`) in a run that would take
             at least :data:`AUTO_MIN_RUN_SECONDS` eagerly; otherwise eager.

A recording lives for one run (:func:`scope`) and replays tensor operations
only.  Measured speed-ups: docs/estimators.md, docs/performance.md.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch

from reference_systems.noise import TrajectoryRNG

CAPTURE_MODES = ("auto", "none", "trace", "graph", "compile")

#: a compiled step is used if it reproduces the recorded one to COMPILE_ULPS units of round-off of its outputs'
#: dtype, as a relative difference (largest |difference| over the largest |value|, per output) on the first
#: state: fused arithmetic may round differently; COMPILE_RTOL is that bound in float64
COMPILE_ULPS = 64
COMPILE_RTOL = COMPILE_ULPS * torch.finfo(torch.float64).eps
#: 'auto' compiles only in a run whose remaining steps would take at least this long eagerly (seconds): a
#: compiled step saves at least half of the eager one where it is used, which then repays a cold compilation
AUTO_COMPILE_MIN_RUN_SECONDS = 120.0

#: 'auto' replays a recording only if its step took less than this fraction of the eager step's
AUTO_MARGIN = 0.9
#: 'auto' records only in a run whose remaining steps would take at least this long eagerly (seconds):
#: a recording costs 0.02-0.5 s (CPU, catalogue systems), and the first in a process some 2 s more
AUTO_MIN_RUN_SECONDS = 5.0
#: calls of each, eager and replayed, that 'auto' times (:func:`race`)
RACE_REPEATS = 5

_TLS = threading.local()


class _Scope:
    """The recorded steps of one run and the record of what was used."""

    def __init__(self, mode: str, planned_steps: Optional[int] = None):
        self.mode, self.planned_steps, self.calls = mode, planned_steps, 0
        #: 'auto': whether this run is long enough to compile (decided at the first call)
        self.compile = mode == "compile"
        self.steps: Dict[Any, Optional[Callable]] = {}
        self.record: Dict[str, Any] = {"requested": mode, "mode": "none" if mode == "none" else None,
                                       "reason": "not requested" if mode == "none" else None,
                                       "recordings": 0, "seconds": 0.0}


@contextmanager
def scope(mode: str, planned_steps: Optional[int] = None):
    """Record and replay steps for the duration of one run (``mode`` one of :data:`CAPTURE_MODES`)
    of about ``planned_steps`` steps (None: unknown, taken as long).

    Yields the scope; its ``record`` is what ``meta['capture']`` reports."""
    previous = getattr(_TLS, "scope", None)
    if getattr(_TLS, "long_runs", False):
        planned_steps = None
    _TLS.scope = current = _Scope(mode, planned_steps)
    try:
        yield current
    finally:
        _TLS.scope = previous


@contextmanager
def assume_long_runs():
    """Within: 'auto' decides as for a run too long for the recording's cost to matter (what
    ``lyapbench throughput`` times, the recording being a fixed cost it leaves out)."""
    previous = getattr(_TLS, "long_runs", False)
    _TLS.long_runs = True
    try:
        yield
    finally:
        _TLS.long_runs = previous


def _timed(fn: Callable, args: Sequence[torch.Tensor]):
    """``fn(*args)`` and the seconds it took, the device synchronised around it."""
    device = args[0].device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def call(key: Any, fn: Callable, args: Sequence[torch.Tensor], rng: Optional[TrajectoryRNG] = None):
    """``fn(*args)``, from the recording made at the first call with this key and this layout of
    inputs if the run's :func:`scope` asks for one and the recording passed its checks; eager
    otherwise (and outside a scope).  ``rng``: the run's generator, which ``fn`` may draw from."""
    current: Optional[_Scope] = getattr(_TLS, "scope", None)
    if current is None or current.mode == "none":
        return fn(*args)
    current.calls += 1
    sig = (key,) + tuple((tuple(a.shape), a.stride(), a.dtype, a.device) for a in args)
    if sig not in current.steps:
        if current.mode == "auto" and current.planned_steps is not None:
            start = getattr(rng, "counter", None)
            out, seconds = _timed(fn, args)
            left = max(0, current.planned_steps - current.calls)
            if left * seconds < AUTO_MIN_RUN_SECONDS:
                current.steps[sig] = None
                current.record.update(mode="none", reason=(
                    f"too short to pay for a recording ({left} steps left at {seconds * 1e6:.0f} us a step "
                    f"eagerly: under {AUTO_MIN_RUN_SECONDS:g} s)"))
                return out
            current.compile = left * seconds >= AUTO_COMPILE_MIN_RUN_SECONDS
            if start is not None:
                rng.counter = start  # this step again, from the recording
        current.steps[sig] = _build(fn, args, rng, current)
    step = current.steps[sig]
    # None: eager, with this call's fn (a recording is generic in the generator, an fn is not:
    # reorth's probe steps a copy of the run's generator)
    return fn(*args) if step is None else step(args, rng)


def _build(fn: Callable, args: Sequence[torch.Tensor], rng, current: _Scope) -> Optional[Callable]:
    """The step to replay for these inputs (None: eager), its recording and checks timed."""
    step, seconds = _timed(lambda *a: _recorded_step(fn, a, rng, current), args)
    current.record["recordings"] += 1
    current.record["seconds"] += seconds
    return step


def _recorded_step(fn: Callable, args: Sequence[torch.Tensor], rng, current: _Scope) -> Optional[Callable]:
    recorded, reason = record(fn, args, rng)
    if recorded is None:
        current.record.update(mode="none", reason=reason)
        return None
    if current.compile:
        compiled, outcome = compile_recorded(recorded, args, rng)
        if compiled is not None and current.mode == "auto":
            eager_s, compiled_s = race(fn, compiled, args, rng)
            current.record.update(eager_step_s=eager_s, replay_step_s=compiled_s)
            if not compiled_s < AUTO_MARGIN * eager_s:
                compiled, outcome = None, (f"the compiled step was not faster ({compiled_s * 1e6:.0f} us a step "
                                           f"against {eager_s * 1e6:.0f} us eagerly)")
        if compiled is not None:
            current.record.update(mode="compile", reason=None, compiled_max_relative_difference=outcome)
            return compiled
        current.record.update(compile_reason=outcome)
        if current.mode == "compile":
            current.record.update(mode="trace", reason=outcome)
            return recorded
    if current.mode == "graph":
        graphed, reason = graph(recorded, args, rng)
        if graphed is None:
            current.record.update(mode="trace", reason=reason)
            return recorded
        current.record.update(mode="graph", reason=None)
        return graphed
    if current.mode == "auto":
        eager_s, replay_s = race(fn, recorded, args, rng)
        current.record.update(eager_step_s=eager_s, replay_step_s=replay_s)
        if not replay_s < AUTO_MARGIN * eager_s:
            current.record.update(mode="none", reason=f"the replay was not faster ({replay_s * 1e6:.0f} us a step "
                                                      f"against {eager_s * 1e6:.0f} us eagerly)")
            return None
    current.record.update(mode="trace", reason=None)
    return recorded


def race(fn: Callable, recorded: "Recorded", args: Sequence[torch.Tensor], rng=None,
         repeats: int = RACE_REPEATS) -> Tuple[float, float]:
    """Seconds a step, eager and replayed: the fastest of ``repeats`` calls of each, taking turns
    on the same inputs (the device synchronised around each call; ``rng`` left where it was)."""
    start = getattr(rng, "counter", None)
    times: Tuple[list, list] = ([], [])
    for _ in range(repeats):
        for which, step in enumerate((fn, lambda *a: recorded(a, rng))):
            times[which].append(_timed(step, args)[1])
            if start is not None:
                rng.counter = start
    return min(times[0]), min(times[1])


def _same(a, b) -> bool:
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    return len(a) == len(b) and all(
        isinstance(u, torch.Tensor) and isinstance(v, torch.Tensor) and u.shape == v.shape
        and u.dtype == v.dtype and torch.equal(u, v) for u, v in zip(a, b))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


class Recorded:
    """A recorded step: ``graph_module(*args)``, or for a step that draws ``draws`` times from the
    run's generator ``graph_module(*args, rng.keys, counter)`` with the counter advanced by
    ``draws`` afterwards (the numbers are a stateless hash of keys and counter,
    :mod:`reference_systems.noise`, so the recording holds neither)."""

    def __init__(self, graph_module: Callable, draws: int):
        self.graph_module, self.draws = graph_module, draws

    def inputs(self, args: Sequence[torch.Tensor], rng) -> Tuple[torch.Tensor, ...]:
        if not self.draws:
            return tuple(args)
        return tuple(args) + (rng.keys, torch.full((), rng.counter, dtype=torch.int64, device=rng.keys.device))

    def __call__(self, args: Sequence[torch.Tensor], rng=None):
        out = self.graph_module(*self.inputs(args, rng))
        if self.draws:
            rng.counter += self.draws
        return out


def record(fn: Callable, args: Sequence[torch.Tensor], rng: Optional[TrajectoryRNG] = None
           ) -> Tuple[Optional[Recorded], Optional[str]]:
    """``fn`` recorded (a torch.fx GraphModule of aten operations, :class:`Recorded`) and None, or
    None and the reason it cannot be replayed faithfully.  Leaves ``rng`` where it found it."""
    from torch.fx.experimental.proxy_tensor import make_fx

    streams = isinstance(rng, TrajectoryRNG)
    start = rng.counter if streams else None
    expected = fn(*args)  # the eager step: what the replay must reproduce, and how many draws it makes
    draws = rng.counter - start if streams else 0
    if streams:
        rng.counter = start

    def with_streams(*inputs):
        keys, counter = rng.keys, rng.counter
        rng.keys, rng.counter = inputs[-2], inputs[-1]
        try:
            return fn(*inputs[:-2])
        finally:
            rng.keys, rng.counter = keys, counter

    traced_fn = with_streams if draws else fn
    recorded = Recorded(None, draws)
    try:
        recorded.graph_module = make_fx(traced_fn, tracing_mode="fake", _allow_non_fake_inputs=True)(
            *recorded.inputs(args, rng))
    except Exception as exc:  # noqa: BLE001 - any failure to trace means: step eagerly, and say why
        return None, f"the step could not be traced ({_first_line(exc)})"
    finally:
        if streams:
            rng.counter = start
    recorded.graph_module.graph.eliminate_dead_code()
    recorded.graph_module.recompile()
    same = _same(recorded(args, rng), expected)
    if streams:
        rng.counter = start
    if not same:
        return None, "the traced step differs from the eager step on the first state"
    return recorded, None


def graph(recorded: Recorded, args: Sequence[torch.Tensor], rng=None, capture: Optional[Callable] = None
          ) -> Tuple[Optional[Callable], Optional[str]]:
    """``recorded`` replayed from a :class:`GraphedStep` and None, or None and the reason it could
    not be captured or did not reproduce ``recorded`` bit for bit on ``args``.  Leaves ``rng``
    where it found it."""
    start = getattr(rng, "counter", None)
    try:
        expected = recorded.graph_module(*recorded.inputs(args, rng))
        graphed = Recorded(GraphedStep(recorded.graph_module, recorded.inputs(args, rng), capture),
                           recorded.draws)
        ok = _same(graphed(args, rng), expected)
    except Exception as exc:  # noqa: BLE001 - capture failed: replay the traced step instead
        return None, f"CUDA graph capture failed ({_first_line(exc)})"
    finally:
        if start is not None:
            rng.counter = start
    if not ok:
        return None, "the CUDA graph's replay differs from the traced step on the first state"
    return graphed, None


def _relative_difference(a, b) -> float:
    """The largest over outputs of max |a - b| / max |b| (0 where both are 0; inf on a shape or dtype mismatch)."""
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    if len(a) != len(b):
        return float("inf")
    worst = 0.0
    for u, v in zip(a, b):
        if not (isinstance(u, torch.Tensor) and isinstance(v, torch.Tensor)) or u.shape != v.shape \
                or u.dtype != v.dtype:
            return float("inf")
        if torch.equal(u, v):
            continue
        if not v.is_floating_point():
            return float("inf")
        scale = float(v.abs().max())
        worst = max(worst, float((u - v).abs().max()) / scale if scale > 0 else float("inf"))
    return worst


def compile_recorded(recorded: Recorded, args: Sequence[torch.Tensor], rng=None):
    """``recorded`` compiled by inductor (``torch._inductor.compile`` on its aten graph, the first inputs'
    shapes and strides) and the relative difference of its output from the recording's on ``args`` (0.0:
    bit for bit), or None and the reason it failed or differs by more than :data:`COMPILE_RTOL`.  Leaves
    ``rng`` where it found it."""
    start = getattr(rng, "counter", None)
    inputs = list(recorded.inputs(args, rng))
    try:
        from torch._inductor import compile as inductor_compile
        compiled = Recorded(inductor_compile(recorded.graph_module, inputs), recorded.draws)
        expected = recorded.graph_module(*inputs)
        got = compiled(args, rng)
    except Exception as exc:  # noqa: BLE001 - no compiler, an unsupported operation: replay the recording
        return None, f"inductor could not compile the step ({_first_line(exc)})"
    finally:
        if start is not None:
            rng.counter = start
    difference = _relative_difference(got, expected)
    outputs = expected if isinstance(expected, (tuple, list)) else (expected,)
    bound = COMPILE_ULPS * max((torch.finfo(o.dtype).eps for o in outputs
                                if isinstance(o, torch.Tensor) and o.is_floating_point()), default=0.0)
    if not difference <= bound:
        return None, (f"the compiled step differs from the recorded one by {difference:.2g} (relative) on the "
                      f"first state, more than {bound:.2g} ({COMPILE_ULPS} units of round-off)")
    return compiled, difference


def cuda_capture(fn: Callable, inputs: Sequence[torch.Tensor]):
    """Capture ``fn(*inputs)`` as a CUDA graph (after warm-up on a side stream, as the CUDA
    graphs section of torch's notes prescribes): the replay function and the static outputs."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # lazy initialisation (cuBLAS workspaces, ...) outside the capture
            fn(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    cuda_graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cuda_graph):
        outputs = fn(*inputs)
    return cuda_graph.replay, outputs


class GraphedStep:
    """A step replayed from static buffers: inputs are copied into the buffers the capture read,
    the capture is replayed, and the outputs it wrote are returned as copies (the next replay
    overwrites the buffers, and a caller may keep a step's result, e.g. to roll a chunk back).

    ``capture(fn, inputs) -> (replay, outputs)``: :func:`cuda_capture` by default; the tests
    pass one that re-runs ``fn`` into the same buffers, to check the buffer handling on the CPU.
    """

    def __init__(self, fn: Callable, args: Sequence[torch.Tensor], capture: Optional[Callable] = None):
        self.inputs = [a.clone() for a in args]
        self.replay, outputs = (capture or cuda_capture)(fn, self.inputs)
        self.tuple_out = isinstance(outputs, (tuple, list))
        self.outputs = tuple(outputs) if self.tuple_out else (outputs,)

    def __call__(self, *args: torch.Tensor):
        for buffer, a in zip(self.inputs, args):
            buffer.copy_(a)
        self.replay()
        out = tuple(o.clone() for o in self.outputs)
        return out if self.tuple_out else out[0]
