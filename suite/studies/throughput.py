"""Throughput of estimators: steps per second over batch, dimension and k, with the
fraction of the hardware limit.

One measurement (:func:`measure`) runs ``estimator.estimate`` with
``transient=0`` and the given batch B, number of exponents k, device and
dtype, in the manner of ``torch.utils.benchmark`` (:func:`sized_seconds_per_step`):
one warm-up call, a probe (:func:`probe_steps`: long enough for units) that sizes
each repeat to about ``min_seconds``, one untimed call of that length, then
``repeats`` timed calls; the time per step is the median of ``wall_seconds / steps`` (the
device synchronised), less the run's one-off recording time
(``meta['capture']['seconds']``, :mod:`suite.estimators.numerics.capture`), which
is stated in its own column, ``capture_seconds`` (the median over the timed runs:
for ``capture='compile'`` the inductor compilation a run pays once).
``capture='auto'`` is timed in the mode it picks for a long run
(:func:`fixed_capture`); the row's ``message`` says which.  Where lyapax is
installed, B = 1 CPU float64 flow cases get a :data:`PEER` row beside them
(:func:`peer_cases`), timed in its steady state over runs of n and 2n steps
(:func:`marginal_seconds_per_step`, n from :func:`pair_steps`), and every row its
``vs_peer`` ratio (:func:`peer_ratios`).

Rates: ``steps_per_s`` (the whole batch), ``traj_steps_per_s`` (B x that),
``exponent_steps_per_s`` (B x k x that).  Peak memory: the CUDA allocator's
peak, or on the CPU the process's peak resident set (``VmHWM``, interpreter
and torch included).

Fraction of the hardware limit: the work counted per step and trajectory is
the dense tangent product plus Householder QR re-orthonormalisation,

    flops = s * 2 d^2 k + (4 d k^2 - 4/3 k^3) / m

(s = 1 for maps, 4 for RK4 flows; m the re-orthonormalisation interval, for
'auto' the one its probe picks; Golub & Van Loan, Matrix Computations, 4th
ed., sec. 5.2).  ``fraction_of_gemm``: achieved model flops over a large
dense matrix product measured in the same run; ``fraction_of_nominal``: over
the datasheet peak where known (:data:`NOMINAL_PEAK`).  Measured figures and
the commands that reproduce them: docs/performance.md.
"""
from __future__ import annotations

import importlib.util
import inspect
import math
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

import reference_systems as rs
import tasks
from reference_systems import System
from suite import estimators as est_registry
from suite.core.devices import resolve_device, resolve_dtype, synchronize
from suite.core.errors import InvalidArgumentError
from suite.core.provenance import git_sha, versions
from suite.core.specs import parse_spec
from suite.estimators.numerics import capture, units

COLUMNS = ["system", "estimator", "d", "k", "batch", "device", "device_name", "dtype", "status",
           "seconds_per_step", "steps_per_s", "traj_steps_per_s", "exponent_steps_per_s", "steps_timed",
           "repeats", "model_gflop_per_step", "achieved_gflop_per_s", "gemm_gflop_per_s", "fraction_of_gemm",
           "fraction_of_nominal", "peak_mem_mb", "capture_seconds", "vs_peer", "message", "git_sha", "versions"]

#: the peer each row's rate is set against where it is installed (:func:`peer_cases`, :func:`peer_ratios`): lyapax
#: (JAX, a jit-compiled scan, the fastest single-trajectory code measured here); it runs one trajectory a call on the
#: CPU in float64, so it gets a row beside each B = 1, CPU, float64 case of a flow it applies to
PEER = "lyapax_spectrum"
PEER_MODULE = "lyapax"

# Nominal dense peaks (flop/s) without sparsity.  float32 is plain FP32 (torch
# leaves TF32 off for matmul by default); float64 is the FP64 tensor-core peak
# that cuBLAS DGEMM uses.  Source: NVIDIA H100 Tensor Core GPU datasheet
# (SXM5 / PCIe columns); H200 datasheet (same compute as H100 SXM5).
NOMINAL_PEAK = {
    "H100 80GB HBM3": {"float32": 67e12, "float64": 67e12},
    "H100 PCIe": {"float32": 51e12, "float64": 51e12},
    "H200": {"float32": 67e12, "float64": 67e12},
}


DISPLAY = ["system", "estimator", "k", "batch", "dtype", "status", "steps_per_s", "traj_steps_per_s",
           "achieved_gflop_per_s", "fraction_of_gemm", "fraction_of_nominal", "peak_mem_mb", "vs_peer"]
README = ("Median of timed repeats after a warm-up; `estimate` synchronises the device. Rates: steps of the whole "
          "batch, trajectory-steps (x B) per second. `fraction_of_gemm`: model flops per step (dense tangent "
          "product s*2d^2k + Householder QR (4dk^2 - 4k^3/3)/m) over the time, against a dense matrix product "
          "measured in the same run; `fraction_of_nominal`: against the datasheet peak where known. "
          "Peak memory: CUDA allocator peak, or the process's peak resident set on the CPU. "
          f"`vs_peer`: steps per second over {PEER}'s in the same run (same system, k and batch; B = 1, CPU, "
          "float64, where it is installed; the peer's steady-state rate over runs of n and 2n steps, its fixed "
          "cost per call left out as ours leave out their one-off recording). "
          "See suite/studies/throughput.py.\n\n")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} torch threads)"


def nominal_peak(device: torch.device, dtype: torch.dtype) -> Optional[float]:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in NOMINAL_PEAK.items():
        if key in name:
            return peaks[str(dtype).replace("torch.", "")]
    return None


_GEMM_CACHE: Dict[Any, float] = {}


def gemm_rate(device: torch.device, dtype: torch.dtype, n: Optional[int] = None, repeats: int = 5) -> float:
    """Measured flop/s of an n x n matrix product (median of ``repeats``), cached per device and dtype."""
    key = (str(device), dtype)
    if key in _GEMM_CACHE:
        return _GEMM_CACHE[key]
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - t0)
    _GEMM_CACHE[key] = 2.0 * n ** 3 / statistics.median(times)
    return _GEMM_CACHE[key]


def model_flops_per_step(system: System, k: int, reorth_every: int = 1) -> float:
    """Dense tangent product + Householder QR per step and trajectory (module docstring)."""
    d = system.dim
    stages = 4 if system.kind == "flow" else 1
    return stages * 2.0 * d * d * k + (4.0 * d * k * k - 4.0 / 3.0 * k ** 3) / max(1, reorth_every)


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current resident set (Linux >= 4.0)
        except OSError:
            pass


def _peak_memory_mb(device: torch.device) -> Optional[float]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def fixed_interval(estimator, system: System, *, batch: int, k: Optional[int], device, dtype, seed: int = 0,
                   steps: int = 100_000):
    """``estimator``, or for ``reorth_every='auto'`` the same estimator with the interval its probe
    picks for a run of ``steps`` here (the probe is a fixed cost, like the transient, and is not
    timed), and a note of the choice (None for a fixed interval)."""
    if getattr(estimator, "reorth_every", None) != "auto":
        return estimator, None
    m, info = estimator.interval_for(system, steps, batch=batch, k=k, seed=seed, device=device, dtype=dtype)
    fixed = type(estimator)(**dict(estimator.get_params(), reorth_every=m))
    return fixed, f"reorth_every='auto' chose m = {m} (limited by {info['limited_by']})"


def fixed_capture(estimator, system: System, *, batch: int, k: Optional[int], device, dtype, seed: int = 0):
    """``estimator``, or for ``capture='auto'`` the same estimator with the mode 'auto' picks for a
    long run here (:func:`suite.estimators.numerics.capture.assume_long_runs`: what ``measure`` times is
    the steady state, the recording being a fixed cost it leaves out), and a note of what ran
    (None if the estimator has no ``capture``).  The run is :func:`probe_steps` long, so that it uses
    units as the timed runs do."""
    if getattr(estimator, "capture", None) is None:
        return estimator, None
    with capture.assume_long_runs():
        res = estimator.estimate(system, probe_steps(estimator), transient=0, batch=batch, k=k, seed=seed,
                                 device=device, dtype=dtype)
    captured = res.meta.get("capture")
    if not captured:
        return estimator, None
    if estimator.capture == "auto" and captured.get("mode"):
        estimator = type(estimator)(**dict(estimator.get_params(), capture=captured["mode"]))
    return estimator, capture_note(captured)


def fixed_settings(estimator, system: System, **run):
    """:func:`fixed_interval` then :func:`fixed_capture`: the estimator that ``measure`` times and
    the notes of what 'auto' chose (None if nothing was chosen)."""
    estimator, interval_note = fixed_interval(estimator, system, **run)
    estimator, capture_note_ = fixed_capture(estimator, system, **run)
    return estimator, "; ".join(filter(None, [interval_note, capture_note_])) or None


def timed_seconds(res) -> float:
    """A run's wall time less its recording of the step (``meta['capture']['seconds']``)."""
    return res.wall_seconds - (res.meta.get("capture") or {}).get("seconds", 0.0)


def capture_note(captured: Dict[str, Any]) -> str:
    """How a run's step was executed (``meta['capture']``, :mod:`suite.estimators.numerics.capture`)."""
    note = f"capture={captured['requested']!r} ran {captured['mode']!r}"
    split = captured.get("compiled_shards")
    if isinstance(split, dict):  # suite.estimators.numerics.shards
        note += f" in {split['shards']} shards of {split['size']}"
    reason = captured.get("reason") if captured["requested"] != "none" else None
    return note + (f" ({reason})" if reason else "")


def renormalisation_interval(estimator) -> int:
    """Steps between an estimator's renormalisations: ``reorth_every`` (ours) or ``renorm_every`` (ours and the
    peer adapters'), else 1."""
    for name in ("reorth_every", "renorm_every"):
        value = getattr(estimator, name, None)
        if isinstance(value, int) and value >= 1:
            return value
    return 1


#: renormalisation intervals in a run long enough for units (:mod:`suite.estimators.numerics.units`): a unit of
#: UNIT_STEPS intervals folds into the accumulator only across at most one of its 20 blocks' boundaries
#: (``GrowthAccumulator.foldable``), so shorter runs step one step at a time whatever their capture mode
UNIT_RUN_INTERVALS = 20 * units.UNIT_STEPS


def probe_steps(estimator) -> int:
    """Steps of the runs that settle and size a measurement: two renormalisation intervals (B = 1's batch
    means need them) and at least 10; for an estimator that runs in units (``capture`` other than 'none'),
    :data:`UNIT_RUN_INTERVALS` intervals, so the probe runs as the timed runs do."""
    m = renormalisation_interval(estimator)
    steps = max(10, 2 * m)
    if getattr(estimator, "capture", "none") != "none":
        steps = max(steps, UNIT_RUN_INTERVALS * m)
    return steps


def sized_seconds_per_step(run: Callable[[int], float], probe: int, *, min_seconds: float, max_steps: int,
                           repeats: int, before_repeats: Optional[Callable[[], None]] = None,
                           steps: Optional[int] = None) -> Tuple[float, int]:
    """The measuring protocol: ``run(steps)`` returns a run's timed seconds.  Unless ``steps`` is given, a
    warm-up and a probe of ``probe`` steps size the run to about ``min_seconds`` (at most ``max_steps``); one
    untimed run of that length (a JIT peer compiles for each run length); then the median over ``repeats`` runs
    of seconds per step, and the length."""
    if steps is None:
        run(probe)  # warm-up
        t_probe = run(probe) / probe
        steps = int(min(max_steps, max(probe, math.ceil(min_seconds / max(t_probe, 1e-9)))))
    run(steps)
    if before_repeats is not None:
        before_repeats()
    return statistics.median(run(steps) / steps for _ in range(repeats)), steps


def marginal_seconds_per_step(run: Callable[[int], float], steps: int, *, repeats: int) -> float:
    """Seconds per step in the steady state: (median time of runs of 2n steps - median of runs of n) / n, each
    length run once untimed first (a JIT compiles per run length).  A fixed cost per call cancels, as our own rows
    leave out their one-off recording; used for :data:`PEER`."""
    run(steps)
    run(2 * steps)
    short, long = [], []
    for _ in range(repeats):  # taking turns, so that the machine's load weighs on both alike
        short.append(run(steps))
        long.append(run(2 * steps))
    return max(statistics.median(long) - statistics.median(short), 1e-12) / steps


def measure(estimator, system: System, *, batch: int, k: Optional[int] = None, device="cpu",
            dtype=torch.float64, min_seconds: float = 0.2, repeats: int = 5, max_steps: int = 100_000,
            seed: int = 0, steps: Optional[int] = None, marginal: bool = False) -> Dict[str, Any]:
    """Time ``estimator`` on ``system`` (see the module docstring); returns one row.  ``steps``: the run length
    to time instead of sizing one; ``marginal``: the steady-state rate over runs of ``steps`` and twice that
    (:func:`marginal_seconds_per_step`; a peer, :func:`pair_steps`)."""
    if marginal and not steps:
        raise InvalidArgumentError("steps", steps, "a run length >= 1 with marginal=True")
    dev, dt_ = resolve_device(device), resolve_dtype(dtype)
    # an estimator of the largest exponent alone runs at k = 1 (it refuses more)
    k = 1 if getattr(estimator, "largest_only", False) else system.dim if k is None else k
    estimator, note = fixed_settings(estimator, system, batch=batch, k=k, device=dev, dtype=dt_, seed=seed)
    interval = renormalisation_interval(estimator)

    one_off = []  # each run's recording or compilation of its step, which the timing leaves out

    def run(steps):
        res = estimator.estimate(system, steps, transient=0, batch=batch, k=k, seed=seed, device=dev, dtype=dt_)
        one_off.append((res.meta.get("capture") or {}).get("seconds", 0.0))
        return timed_seconds(res)

    if marginal:
        per_step = marginal_seconds_per_step(run, steps, repeats=repeats)
    else:
        per_step, steps = sized_seconds_per_step(run, probe_steps(estimator), min_seconds=min_seconds,
                                                 max_steps=max_steps, repeats=repeats,
                                                 before_repeats=lambda: _reset_peak_memory(dev), steps=steps)
    peak_mb = _peak_memory_mb(dev)  # before the GEMM below allocates its own buffers
    model = model_flops_per_step(system, k, interval) * batch
    achieved = model / per_step
    gemm = gemm_rate(dev, dt_)
    nominal = nominal_peak(dev, dt_)
    return {
        "d": system.dim, "k": k, "batch": batch, "device": str(dev), "device_name": device_name(dev),
        "dtype": str(dt_).replace("torch.", ""), "status": "ok", "seconds_per_step": per_step,
        "steps_per_s": 1.0 / per_step, "traj_steps_per_s": batch / per_step,
        "exponent_steps_per_s": batch * k / per_step, "steps_timed": steps, "repeats": repeats,
        "model_gflop_per_step": model / 1e9, "achieved_gflop_per_s": achieved / 1e9,
        "gemm_gflop_per_s": gemm / 1e9, "fraction_of_gemm": achieved / gemm,
        "fraction_of_nominal": achieved / nominal if nominal else None,
        "peak_mem_mb": peak_mb, "capture_seconds": statistics.median(one_off[-repeats:]), "message": note,
    }


def scales_with_dimension(name: str) -> bool:
    """A catalogue system whose factory takes ``N``, its state dimension (random_rnn, lorenz96, ...)."""
    try:
        factory = rs.registry.factory(name)
    except Exception:  # noqa: BLE001
        return False
    return callable(factory) and "N" in inspect.signature(factory).parameters


def cases(systems: Sequence[str], estimators: Sequence[str], batches: Sequence[int], dims: Sequence[int],
          ks: Sequence[Optional[int]]) -> List[Dict[str, Any]]:
    """The grid: every system (at every d in ``dims`` if it scales) x estimator x batch x k (k <= d)."""
    out = []
    for spec in systems:
        if spec.startswith("task:"):  # a registered task, at its own size
            out.extend({"system": spec, "params": {}, "estimator": est, "batch": b, "k": k}
                       for est in estimators for b in batches for k in ks)
            continue
        name, params = parse_spec(spec, "--systems")
        variants = ([dict(params or {}, N=d) for d in dims] if scales_with_dimension(name) and
                    "N" not in (params or {}) else [params or {}])
        for p in variants:
            for est in estimators:
                for b in batches:
                    for k in ks:
                        out.append({"system": name, "params": p, "estimator": est, "batch": b, "k": k})
    return out


def peer_cases(grid: Sequence[Dict[str, Any]], device, dtype) -> List[Dict[str, Any]]:
    """One :data:`PEER` case beside each distinct (system, params, k) of ``grid``'s B = 1 cases, where the run is
    on the CPU in float64, the peer is installed and it applies to the system (catalogue systems; tasks are not
    flows it can read)."""
    if torch.device(device).type != "cpu" or dtype != torch.float64 or importlib.util.find_spec(PEER_MODULE) is None:
        return []
    peer = est_registry.get(PEER)
    out, seen = [], set()
    for case in grid:
        key = (case["system"], repr(sorted(case["params"].items())), case["k"])
        if case["batch"] != 1 or case["estimator"] == PEER or case["system"].startswith("task:") or key in seen:
            continue
        seen.add(key)
        if peer.not_applicable(rs.get(case["system"], **case["params"])) is None:
            out.append(dict(case, estimator=PEER))
    return out


def _pair(row: Dict[str, Any]) -> tuple:
    return (row["system"], row["k"], row["batch"], row["device"], row["dtype"])


#: shortest run a peer's steady-state rate is taken over (:func:`pair_steps`): lyapax's adapter costs ~0.15 s a call
#: here, and the rate is the difference of runs of n and 2n steps, which must stand well above the timing noise
PEER_MIN_STEPS = 100_000


def pair_steps(peer_case: Dict[str, Any], measured: Sequence[Tuple[Dict[str, Any], Dict[str, Any]]]) -> int:
    """The n for :data:`PEER`'s case: the longest run timed among the ``measured`` (case, row) pairs of the same
    system, params, k and batch, and at least :data:`PEER_MIN_STEPS`."""
    def same(case):
        return all(case[key] == peer_case[key] for key in ("system", "params", "k", "batch"))
    timed = [row["steps_timed"] for case, row in measured
             if case["estimator"] != PEER and row["status"] == "ok" and same(case)]
    return max(timed + [PEER_MIN_STEPS])


def peer_ratios(rows: Sequence[Dict[str, Any]]) -> None:
    """Fill each row's ``vs_peer`` in place: its steps per second over :data:`PEER`'s row of the same system, k,
    batch, device and dtype in ``rows`` (None where either was not measured)."""
    peers = {_pair(r): r["steps_per_s"] for r in rows if r["estimator"] == PEER and r["status"] == "ok"}
    for r in rows:
        peer = peers.get(_pair(r))
        r["vs_peer"] = r["steps_per_s"] / peer if peer and r["status"] == "ok" else None


def run_case(case: Dict[str, Any], device, dtype, **kw) -> Dict[str, Any]:
    """Measure one case; a failure (k > d, out of memory, not applicable) becomes a row with its message."""
    row: Dict[str, Any] = {c: None for c in COLUMNS}
    row.update(estimator=case["estimator"], batch=case["batch"], device=str(device),
               dtype=str(dtype).replace("torch.", ""), git_sha=git_sha(), versions=str(versions()))
    try:
        if case["system"].startswith("task:"):
            system = tasks.build(case["system"][5:], with_reference=False)
        else:
            system = rs.get(case["system"], **case["params"])
        row.update(system=system.label, d=system.dim)
        k = case["k"]
        if k is not None and k > system.dim:
            row.update(status="skipped", k=k, message=f"k={k} > d={system.dim}")
            return row
        est = est_registry.from_spec(case["estimator"])
        row.update(measure(est, system, batch=case["batch"], k=k, device=device, dtype=dtype,
                           steps=case.get("steps"), marginal=case["estimator"] == PEER, **kw))
    except torch.cuda.OutOfMemoryError as exc:  # pragma: no cover - GPU only
        row.update(status="out of memory", message=str(exc).splitlines()[0])
        torch.cuda.empty_cache()
    except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
        row.update(status="error", message=f"{type(exc).__name__}: {exc}")
    return row


def slug(device: torch.device) -> str:
    """File-name part naming the device: 'cpu' or e.g. 'cuda-nvidia-h100-80gb-hbm3'."""
    if device.type != "cuda":
        return "cpu"
    return "cuda-" + "".join(c if c.isalnum() else "-" for c in torch.cuda.get_device_name(device).lower()).strip("-")
