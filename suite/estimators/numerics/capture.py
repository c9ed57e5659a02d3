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
``'compile'`` the units (:func:`call` with ``compilable=True``: many steps, their QR steps
             and their accumulation, :mod:`suite.estimators.numerics.units`) compiled by
             inductor (:func:`compile_recorded`: C++ kernels and wrapper on the CPU,
             Triton kernels captured in a CUDA graph on CUDA; no dynamo, no guards: the
             recording is already a fixed aten graph; a large CPU batch of frames in shards,
             one per thread, :mod:`suite.estimators.numerics.shards`), each used if it reproduces the
             recording within :func:`round_off_bound` on the first state (bit for bit
             where inductor keeps the operations; the difference is recorded), else
             ``'trace'`` with the reason; single steps are traced.  Compiling costs
             seconds (a Lorenz-63 unit: 15-62 s cold, 2-6 s from inductor's
             on-disk cache).
``'auto'``   a unit is compiled where the time it would save exceeds the time compiling
             it is predicted to take (:func:`_should_compile`,
             :mod:`suite.estimators.numerics.compile_cost`; scaled by the machine's load,
             :func:`load_slowdown`), and kept only if it timed
             faster than the eager unit; otherwise a recording is replayed where it timed
             faster (:func:`race`, by :data:`AUTO_MARGIN`) in a run that would take at
             least :data:`AUTO_MIN_RUN_SECONDS` eagerly; otherwise eager.

A recording lives for one run (:func:`scope`) and replays tensor operations
only.  Measured speed-ups: docs/estimators.md, docs/performance.md.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch

from reference_systems.noise import TrajectoryRNG
from suite.core.errors import InvalidArgumentError, exception_line
from suite.estimators.numerics import compile_cost, inductor, shards

CAPTURE_MODES = ("auto", "none", "trace", "graph", "compile")

#: a compiled unit is used if it reproduces the recorded one to COMPILE_ULPS units of round-off (relative: largest
#: |difference| over the largest |value|, per output, on the first state), units scaled by the unit's own
#: conditioning (:func:`round_off_bound`): fused loops and vectorised sqrt / log may round differently
COMPILE_ULPS = 64
COMPILE_RTOL = COMPILE_ULPS * torch.finfo(torch.float64).eps
#: 'auto' compiles a unit where (1 - 1 / AUTO_ASSUMED_SPEEDUP) of the eager time left exceeds the predicted compile
#: time: a lower bound of the measured speed-ups (CPU, Lorenz-63: 3x at B = 4096, 15-40x at B = 1), so a unit is
#: compiled only where it repays itself; after compiling, the unit is kept only if it timed faster
AUTO_ASSUMED_SPEEDUP = 2.0
#: environment variable: ``off`` turns compilation off on a machine (:func:`compiling_allowed`)
COMPILE_ENV = "LYAPBENCH_COMPILE"
#: 'auto' replays a recording only if its step took less than this fraction of the eager step's
AUTO_MARGIN = 0.9
#: 'auto' records only in a run whose remaining steps would take at least this long eagerly (seconds):
#: a recording costs 0.02-0.5 s (CPU, catalogue systems), and the first in a process some 2 s more
AUTO_MIN_RUN_SECONDS = 5.0
#: calls of each, eager and replayed, that 'auto' times (:func:`race`)
RACE_REPEATS = 5

_TLS = threading.local()


class _Scope:
    """The recorded steps of one run and the record of what was used: ``record`` for the units
    (:func:`call` with ``compilable=True``: the bulk of a run), ``record['single_steps']`` for single
    steps (a probe, a partial interval), which are recorded but never compiled."""

    def __init__(self, mode: str, planned_steps: Optional[int] = None):
        self.mode, self.planned_steps, self.calls = mode, planned_steps, 0
        self.steps: Dict[Any, Optional[Callable]] = {}
        self.record: Dict[str, Any] = {"requested": mode, "mode": "none" if mode == "none" else None,
                                       "reason": "not requested" if mode == "none" else None,
                                       "recordings": 0, "seconds": 0.0}

    def record_for(self, compilable: bool) -> Dict[str, Any]:
        if compilable:
            return self.record
        return self.record.setdefault("single_steps", {"mode": None, "reason": None})

    def close(self) -> None:
        """A run whose steps were all single steps reports their mode at the top."""
        single = self.record.get("single_steps")
        if self.record["mode"] is None and single is not None:
            self.record.update(single)


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
        current.close()
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


def load_slowdown(wall: float, cpu: float, device: torch.device) -> float:
    """How busy the CPU is, as a slowdown >= 1: the larger of the timed call's wall over its CPU seconds (the
    time it waited for a core) and the 1-minute load average per core (runnable threads, this process's
    included: about 1 for a run alone on every core); 1 off the CPU (a CUDA call's wall time is the device's).
    'auto' scales the compile time it predicts (from an idle machine) by it, since a compilation there waits
    too: eager steps timed 15x slow beside other jobs had been set against an idle prediction of 35 s, and
    compiled a unit for 143 s that runs 3 s eagerly.  (Its CPU time alone does not show the load: OpenMP
    threads spin while they wait for each other.)"""
    if device.type != "cpu":
        return 1.0
    waited = wall / cpu if cpu > 0.0 else 1.0
    try:
        queued = os.getloadavg()[0] / (os.cpu_count() or 1)
    except (AttributeError, OSError):  # no load average on this platform
        queued = 1.0
    return max(1.0, waited, queued)


def check_device(mode: str, device: torch.device) -> None:
    """Refuse ``capture='graph'`` (a CUDA graph) on a device other than CUDA, naming the argument."""
    if mode == "graph" and device.type != "cuda":
        raise InvalidArgumentError("capture", mode, f"'auto', 'none', 'trace' or 'compile' on device {str(device)!r} "
                                   "('graph' captures a CUDA graph: CUDA devices only)")


def call(key: Any, fn: Callable, args: Sequence[torch.Tensor], rng: Optional[TrajectoryRNG] = None, *,
         steps: int = 1, compilable: bool = False):
    """``fn(*args)``, from the recording made at the first call with this key and this layout of
    inputs if the run's :func:`scope` asks for one and the recording passed its checks; eager
    otherwise (and outside a scope).  ``rng``: the run's generator, which ``fn`` may draw from;
    ``steps``: the steps one call advances (for 'auto''s prediction of the time left);
    ``compilable``: whether 'compile' and 'auto' may compile it (the units of a run; a single step
    is only ever recorded)."""
    current: Optional[_Scope] = getattr(_TLS, "scope", None)
    if current is None or current.mode == "none":
        return fn(*args)
    current.calls += steps
    sig = (key,) + tuple((tuple(a.shape), a.stride(), a.dtype, a.device) for a in args)
    if sig not in current.steps:
        record = current.record_for(compilable)
        compile_it = compilable and current.mode == "compile"
        if current.mode == "auto":
            start = getattr(rng, "counter", None)
            eager_left = None  # seconds the rest of the run would take eagerly (None: a long run of unknown length)
            if current.planned_steps is not None:
                cpu0 = time.process_time()
                out, seconds = _timed(fn, args)
                cpu = time.process_time() - cpu0
                left = max(0, current.planned_steps - current.calls)
                if left * seconds / steps >= AUTO_MIN_RUN_SECONDS:  # a first call may pay one-off costs
                    if start is not None:                           # (torch.func's transforms): time it again
                        rng.counter = start
                    cpu0 = time.process_time()
                    out, again = _timed(fn, args)
                    if again < seconds:
                        seconds, cpu = again, time.process_time() - cpu0
                eager_left = left * seconds / steps
                record.update(load_slowdown=load_slowdown(seconds, cpu, args[0].device))
                if eager_left < AUTO_MIN_RUN_SECONDS:
                    current.steps[sig] = None
                    record.update(mode="none", reason=(
                        f"too short to pay for a recording ({left} steps left at {seconds / steps * 1e6:.0f} us a "
                        f"step eagerly: under {AUTO_MIN_RUN_SECONDS:g} s)"))
                    return out
            if compilable:  # a unit is recorded to be compiled, and only where compiling repays itself
                compile_it = _should_compile(sig, steps, eager_left, record)
                if not compile_it:
                    current.steps[sig] = None
                    record.update(mode="none", reason=record.get("compile_reason", "not compiled"))
                    return out if eager_left is not None else fn(*args)
            if start is not None and eager_left is not None:
                rng.counter = start  # this step again, from the recording
        current.steps[sig] = _build(fn, args, rng, current, compilable, compile_it, sig)
    step = current.steps[sig]
    # None: eager, with this call's fn (a recording is generic in the generator, an fn is not:
    # reorth's probe steps a copy of the run's generator)
    return fn(*args) if step is None else step(args, rng)


def _build(fn: Callable, args: Sequence[torch.Tensor], rng, current: _Scope, compilable: bool, compile_it: bool,
           identity) -> Optional[Callable]:
    """The step to replay for these inputs (None: eager), its recording and checks timed."""
    step, seconds = _timed(lambda *a: _recorded_step(fn, a, rng, current, compilable, compile_it, identity), args)
    current.record["recordings"] += 1
    current.record["seconds"] += seconds
    return step


def compiling_allowed() -> bool:
    """False where ``LYAPBENCH_COMPILE`` is ``off`` (or ``0``, ``no``, ``never``): this machine never compiles
    ('compile' then replays the recording, 'auto' never compiles; the reason is recorded)."""
    return os.environ.get(COMPILE_ENV, "auto").strip().lower() not in ("off", "0", "no", "never")


def _compiling_off() -> str:
    """Why nothing is compiled where :func:`compiling_allowed` is False."""
    return f"compilation is turned off ({COMPILE_ENV}={os.environ.get(COMPILE_ENV)})"


def _should_compile(identity, steps: int, eager_left: Optional[float], record: Dict[str, Any]) -> bool:
    """'auto', before recording a unit: compile where compiling is allowed and the predicted saving,
    (1 - 1 / AUTO_ASSUMED_SPEEDUP) of the eager time left (``eager_left``; None: a long run), exceeds the
    predicted compile time (:mod:`suite.estimators.numerics.compile_cost`).  Otherwise the unit is not
    recorded: the estimator steps one step at a time (:func:`replayed` says so)."""
    if not compiling_allowed():
        record.update(compile_reason=_compiling_off())
        return False
    if eager_left is None:
        return True
    record.update(eager_left_s=eager_left, steps_per_unit=steps)
    return _repays(compile_cost.predicted_seconds(identity, steps), record)


def _still_worth_compiling(identity, recorded: "Recorded", record: Dict[str, Any]) -> bool:
    """'auto', once the unit is recorded: the prediction of :func:`_should_compile` again, from the recording's
    aten operations (:func:`~suite.estimators.numerics.compile_cost.predicted_seconds`); a unit that no longer repays
    its compilation is replayed uncompiled where that is faster."""
    if "eager_left_s" not in record:  # a long run of unknown length: compiled
        return True
    operations = sum(1 for node in recorded.graph_module.graph.nodes if node.op == "call_function")
    return _repays(compile_cost.predicted_seconds(identity, record["steps_per_unit"], operations), record)


def _repays(prediction: Tuple[float, str], record: Dict[str, Any]) -> bool:
    """Whether (1 - 1 / AUTO_ASSUMED_SPEEDUP) of the eager time left (``record['eager_left_s']``) exceeds the
    predicted compile seconds (``prediction``: seconds and their source); the prediction, and the reason where it
    does not, recorded."""
    predicted, source = prediction
    slowdown = record.get("load_slowdown", 1.0)
    if slowdown > 1.0:  # the eager time left was timed on a busy machine: compiling would run as slowly
        predicted, source = predicted * slowdown, f"{source}, x {slowdown:.3g} for the machine's load"
    eager_left = record["eager_left_s"]
    saving = eager_left * (1.0 - 1.0 / AUTO_ASSUMED_SPEEDUP)
    record.update(predicted_compile_s=predicted, predicted_compile_source=source)
    if saving > predicted:
        return True
    record.update(compile_reason=(
        f"not compiled: {eager_left:.3g} s of eager steps left would save about {saving:.3g} s, less than "
        f"the {predicted:.3g} s compiling is predicted to take ({source})"))
    return False


def replayed(key: Any) -> Optional[bool]:
    """In the current run: True if a call with ``key`` replays a recording, False if such calls run eagerly
    (or there is no run, or capture is 'none'), None if none was made yet."""
    current: Optional[_Scope] = getattr(_TLS, "scope", None)
    if current is None or current.mode == "none":
        return False
    decided = [step for sig, step in current.steps.items() if sig[0] == key]
    return (any(step is not None for step in decided)) if decided else None


def _recorded_step(fn: Callable, args: Sequence[torch.Tensor], rng, current: _Scope, compilable: bool = False,
                   compile_it: bool = False, identity=None) -> Optional[Callable]:
    record_ = current.record_for(compilable)
    recorded, reason = record(fn, args, rng)
    if recorded is None:
        record_.update(mode="none", reason=reason)
        return None
    if compile_it and not compiling_allowed():
        record_.update(mode="trace", reason=_compiling_off())
        return recorded
    if compile_it and current.mode == "auto":
        compile_it = _still_worth_compiling(identity, recorded, record_)
    if compile_it:
        compiled, outcome = compile_recorded(recorded, args, rng, identity, fn)
        if compiled is not None and current.mode == "auto":
            eager_s, compiled_s = race(fn, compiled, args, rng)
            record_.update(eager_step_s=eager_s, replay_step_s=compiled_s)
            if not compiled_s < AUTO_MARGIN * eager_s:
                compiled, outcome = None, (f"the compiled step was not faster ({compiled_s * 1e6:.0f} us a call "
                                           f"against {eager_s * 1e6:.0f} us eagerly)")
        if compiled is not None:
            record_.update(mode="compile", reason=None, compiled_max_relative_difference=outcome["difference"],
                           compiled_bound=outcome["bound"], compile_seconds=outcome["seconds"],
                           compiled_cuda_graph=outcome["graph"], compiled_options=outcome["options"],
                           compiled_batch_last=outcome["batch_last"], compiled_shards=outcome["shards"])
            return compiled
        record_.update(compile_reason=outcome)
        if current.mode == "compile":
            record_.update(mode="trace", reason=outcome)
            return recorded
    if current.mode == "graph":
        graphed, reason = graph(recorded, args, rng)
        if graphed is None:
            record_.update(mode="trace", reason=reason)
            return recorded
        record_.update(mode="graph", reason=None)
        return graphed
    if current.mode == "auto":
        eager_s, replay_s = race(fn, recorded, args, rng)
        record_.update(eager_step_s=eager_s, replay_step_s=replay_s)
        if not replay_s < AUTO_MARGIN * eager_s:
            record_.update(mode="none", reason=f"the replay was not faster ({replay_s * 1e6:.0f} us a call "
                                               f"against {eager_s * 1e6:.0f} us eagerly)")
            return None
    record_.update(mode="trace", reason=None)
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


def _distinct(inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """``inputs`` with a copy in place of a tensor met before: make_fx maps one tensor to one placeholder, so an
    input passed twice would be recorded as the same input, and read from one of them on replay."""
    seen, out = set(), []
    for a in inputs:
        out.append(a.clone() if id(a) in seen else a)
        seen.add(id(a))
    return tuple(out)


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
            *_distinct(recorded.inputs(args, rng)))
    except Exception as exc:  # noqa: BLE001 - any failure to trace means: step eagerly, and say why
        return None, f"the step could not be traced ({exception_line(exc)})"
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
        return None, f"CUDA graph capture failed ({exception_line(exc)})"
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


def _perturbed(inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """``inputs`` with every floating entry moved by one unit of round-off (times 1 +- eps, signs from a
    fixed generator): what round-off in the step before could have done to them."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for a in inputs:
        if a.is_floating_point():
            sign = torch.randint(0, 2, a.shape, generator=gen).to(a.device, a.dtype) * 2 - 1
            a = a * (1 + torch.finfo(a.dtype).eps * sign)
        out.append(a)
    return tuple(out)


def round_off_bound(graph_module: Callable, inputs: Sequence[torch.Tensor], expected) -> float:
    """The largest relative difference a compiled ``graph_module`` may show on ``inputs`` (see
    :func:`compile_recorded`): COMPILE_ULPS times the larger of the outputs' eps and the relative change
    of the recording's own outputs when its inputs move by one unit of round-off (:func:`_perturbed`);
    the second term is the conditioning of the unit (a frame of condition c loses c eps in Gram-Schmidt,
    Bjorck 1967), which a different rounding of one operation inside it is amplified by as well."""
    outputs = expected if isinstance(expected, (tuple, list)) else (expected,)
    eps = max((torch.finfo(o.dtype).eps for o in outputs if isinstance(o, torch.Tensor) and o.is_floating_point()),
              default=0.0)
    moved = graph_module(*_perturbed(inputs))
    moved = moved if isinstance(moved, (tuple, list)) else (moved,)
    # outputs that are exactly 0 (nothing to scale by) are left to the comparison, which then wants them exact
    pairs = [(u, v) for u, v in zip(moved, outputs) if isinstance(v, torch.Tensor) and v.is_floating_point()
             and bool((v != 0).any())]
    return COMPILE_ULPS * max([eps] + [_relative_difference(u, v) for u, v in pairs])


def compile_recorded(recorded: Recorded, args: Sequence[torch.Tensor], rng=None, identity=None,
                     fn: Optional[Callable] = None):
    """``recorded`` compiled by inductor (``torch._inductor.compile`` on its aten graph, the first inputs'
    shapes and strides, the graph and settings of :func:`suite.estimators.numerics.inductor.prepared`; on CUDA
    then captured as a CUDA graph, one launch a call, where the capture reproduces the compiled call bit for bit)
    and a record ``{'difference', 'bound', 'seconds', 'graph', 'options', 'batch_last', 'shards'}``, or None and
    the reason it failed or differs from the recording on ``args`` by more than :func:`round_off_bound`
    (relative, per output; boolean outputs must be equal).  Given the unit's ``fn``, a large CPU batch is
    first tried in shards (:func:`_sharded`, :mod:`suite.estimators.numerics.shards`), held to the same bound;
    where that fails, ``'shards'`` says why and the whole unit is compiled.  The compile time is remembered
    under ``identity`` (:mod:`suite.estimators.numerics.compile_cost`).  Leaves ``rng`` where it found it."""
    start = getattr(rng, "counter", None)
    inputs = list(recorded.inputs(args, rng))
    device = args[0].device
    plan, sharding = shards.planned(inputs, device) if fn is not None else (None, "not sharded: no unit to record")
    t0 = time.perf_counter()
    try:
        expected = recorded.graph_module(*inputs)
        bound = round_off_bound(recorded.graph_module, inputs, expected)
        compiled, difference = None, None
        if plan is not None:
            try:
                compiled, options, counts = _sharded(fn, recorded, args, rng, plan, expected)
                difference = _relative_difference(compiled(args, rng), expected)
                sharding = {"shards": plan.shards, "size": plan.size}
            except Exception as exc:  # noqa: BLE001 - the shards cannot be recorded or put together: the whole unit
                compiled, sharding = None, f"not sharded: {exception_line(exc)}"
            if start is not None:
                rng.counter = start
            if compiled is not None and not difference <= bound:
                compiled, sharding = None, f"not sharded: the shards differ from the recording by {difference:.2g}"
        if compiled is None:
            unit, options, counts = _inductor_compiled(recorded.graph_module, inputs, device)
            compiled = Recorded(unit, recorded.draws)
            difference = _relative_difference(compiled(args, rng), expected)
        seconds = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - no compiler, an unsupported operation: replay the recording
        return None, f"inductor could not compile the step ({exception_line(exc)})"
    finally:
        if start is not None:
            rng.counter = start
    if identity is not None:  # as on an idle machine: a prediction is scaled by the load of its own time
        compile_cost.remember(identity, seconds / load_slowdown(1.0, 1.0, device))
    if not difference <= bound:
        return None, (f"the compiled step differs from the recorded one by {difference:.2g} (relative) on the "
                      f"first state, more than {bound:.2g} ({COMPILE_ULPS} units of round-off, times the unit's "
                      "conditioning)")
    outcome = {"difference": difference, "bound": bound, "seconds": seconds, "graph": None, "options": options,
               "batch_last": counts, "shards": sharding}
    if args[0].is_cuda:
        graphed, reason = graph(compiled, args, rng)
        outcome["graph"] = reason or "captured"
        if graphed is not None:
            compiled = graphed
    return compiled, outcome


def _inductor_compiled(graph_module, inputs: Sequence[torch.Tensor], device: torch.device,
                       extra_options: Optional[Dict[str, Any]] = None):
    """``graph_module`` compiled by inductor for ``inputs`` (:func:`inductor.prepared`'s graph and settings, plus
    ``extra_options``): the callable, the settings and the batch-last rewrite's counts."""
    import torch._inductor.config as inductor_config
    from torch._inductor import compile as inductor_compile
    prepared, options = inductor.prepared(graph_module, device, inputs)
    options.update(extra_options or {})
    with inductor_config.patch(options):
        return inductor_compile(prepared, inputs), options, prepared.meta.get("batch_last")


@contextmanager
def _first_shard_streams(rng: Optional[TrajectoryRNG], plan: "shards.Plan"):
    """Within: the run's generator (which the unit's ``fn`` draws from) holds the first shard's streams only."""
    if rng is None:
        yield
        return
    keys, batch = rng.keys, rng.batch
    rng.keys, rng.batch = keys[:plan.size], plan.size
    try:
        yield
    finally:
        rng.keys, rng.batch = keys, batch


def _sharded(fn: Callable, recorded: Recorded, args: Sequence[torch.Tensor], rng, plan: "shards.Plan", expected):
    """The unit as a :class:`~suite.estimators.numerics.shards.ShardedUnit`: ``fn`` recorded on the first shard's
    inputs (and generator streams) and compiled for one thread; with the settings and the rewrite's counts."""
    if not isinstance(expected, (tuple, list)):
        raise ValueError("the unit returns a single tensor")
    shard_args = shards.shard_of(args, shards.batched(args, plan.batch), plan, 0)
    with _first_shard_streams(rng if recorded.draws else None, plan):
        shard_recorded, reason = record(fn, shard_args, rng)
        if shard_recorded is None:
            raise RuntimeError(reason)
        shard_inputs = list(shard_recorded.inputs(shard_args, rng))
    dims = shards.output_dims(expected, shard_recorded.graph_module(*shard_inputs), plan)
    unit, options, counts = _inductor_compiled(shard_recorded.graph_module, shard_inputs, args[0].device,
                                               {"cpp.threads": 1})
    inputs = recorded.inputs(args, rng)
    return Recorded(shards.ShardedUnit(unit, plan, shards.batched(inputs, plan.batch), dims, expected),
                    recorded.draws), options, counts


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
