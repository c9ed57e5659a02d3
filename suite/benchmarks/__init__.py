"""asv (airspeed velocity) benchmarks of lyapbench: speed, memory and accuracy history.

Run from the repository root (configuration: ``asv.conf.json``)::

    asv run --python=same --set-commit-hash HEAD   # this venv; results saved for HEAD
    asv run --python=same --quick                  # one call each, nothing saved (smoke)
    asv continuous main HEAD                       # exit 1 on a regression

Modules
-------
``bench_estimators``  ``time_estimate``, ``peakmem_estimate`` and ``track_seconds_per_step``
                      over system x estimator x batch x d; ``FlowTangentStep``.
``bench_accuracy``    ``track_abs_error_lambda1`` (nats, seed 0, deterministic).
``bench_race``        the race's lyapbench configuration: its time and its error.

asv counts lower as better for every ``time_*``, ``peakmem_*`` and ``track_*``
benchmark, so only costs and errors are tracked (never rates or accuracies).

Environment variables
---------------------
``LYAPBENCH_ASV_PROFILE``  ``quick`` (default: small sizes, one CPU thread, each call
                           well under a second) or ``full`` (larger sizes, for a GPU
                           or a big CPU).  The profile changes what a benchmark of the
                           same name measures: record ``full`` under its own machine
                           name, and restore ``results/asv/benchmarks.json`` after it.
``LYAPBENCH_ASV_DEVICE``   ``cpu`` (default) or ``cuda``/``cuda:N``.
``LYAPBENCH_ASV_THREADS``  torch CPU threads (default 1 in quick, torch's own in full;
                           ``0`` = torch's default).

Combinations that do not apply are skipped (``NotImplementedError`` in ``setup``).
Profiles' sizes, the commands and where results live: docs/performance.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

# imported here, not in setup: asv's forkserver imports the suite once and forks a
# process per benchmark and parameter set, so they are loaded once (~2 s for torch)
import torch

try:  # torch.func (jvp_qr) imports torch._dynamo on its first call: 1.5-2 s per process otherwise
    import torch._dynamo  # noqa: F401
except Exception:  # noqa: BLE001 - an optimisation only
    pass

import reference_systems as rs
from suite import estimators
from suite.core.specs import parse_spec
from suite.studies.throughput import fixed_settings, probe_steps, sized_seconds_per_step, timed_seconds

PROFILE_ENV = "LYAPBENCH_ASV_PROFILE"
DEVICE_ENV = "LYAPBENCH_ASV_DEVICE"
THREADS_ENV = "LYAPBENCH_ASV_THREADS"

#: estimators timed, as ``estimators.from_spec`` strings
ESTIMATORS = ["qr", "qr(reorth_every=10)", "jvp_qr", "two_trajectory"]
#: fixed-dimension systems and their state dimension
FIXED_DIM = {"henon": 2, "lorenz63": 3}
#: the system whose dimension is a parameter (its factory's N)
SCALABLE = "random_rnn"


@dataclass(frozen=True)
class Profile:
    name: str
    dims: Tuple[int, ...]            # random_rnn sizes
    batches: Tuple[int, ...]
    steps: int                       # estimate(): steps after the transient
    transient: int
    threads: Optional[int]           # torch CPU threads (None: torch's default)
    max_frame_bytes: float           # skip batch x d x d float64 frames beyond this
    tp_min_seconds: float            # track_seconds_per_step: seconds per timed repeat
    tp_repeats: int
    acc_steps: int                   # track_abs_error_lambda1 settings
    acc_transient: int
    acc_batch: int
    acc_estimators: Tuple[str, ...]
    timeout: float                   # asv's per-benchmark timeout (seconds)


PROFILES = {
    "quick": Profile("quick", dims=(16, 64), batches=(1, 16), steps=20, transient=10, threads=1,
                     max_frame_bytes=2 ** 30, tp_min_seconds=0.02, tp_repeats=3,
                     acc_steps=400, acc_transient=100, acc_batch=16,
                     acc_estimators=("qr", "two_trajectory"), timeout=120.0),
    "full": Profile("full", dims=(64, 256, 1024), batches=(1, 256, 4096), steps=50, transient=20,
                    threads=None, max_frame_bytes=4 * 2 ** 30, tp_min_seconds=0.2, tp_repeats=5,
                    acc_steps=20_000, acc_transient=1_000, acc_batch=64,
                    acc_estimators=tuple(ESTIMATORS), timeout=1800.0),
}


def profile() -> Profile:
    """The profile named by ``LYAPBENCH_ASV_PROFILE`` (default ``quick``)."""
    name = os.environ.get(PROFILE_ENV, "quick").strip().lower() or "quick"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r}: allowed {sorted(PROFILES)}")
    return PROFILES[name]


PROFILE = profile()


def device() -> str:
    return os.environ.get(DEVICE_ENV, "cpu").strip() or "cpu"


def threads(p: Profile = PROFILE) -> Optional[int]:
    """torch CPU threads for a benchmark: ``LYAPBENCH_ASV_THREADS`` or the profile's."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        n = int(raw)
        return n if n > 0 else None
    return p.threads


def system_dims(p: Profile = PROFILE) -> list:
    """Values of the ``d`` parameter: the fixed systems' dimensions, then random_rnn's sizes."""
    return sorted(set(FIXED_DIM.values()) | set(p.dims))


def build_system(name: str, d: int):
    """The system ``name`` at state dimension ``d``; NotImplementedError where it has no such d."""
    if name in FIXED_DIM:
        if d != FIXED_DIM[name]:
            raise NotImplementedError(f"{name} has d = {FIXED_DIM[name]} only")
        return rs.get(name)
    if name == SCALABLE:
        if d not in PROFILE.dims:
            raise NotImplementedError(f"{name} runs at d in {PROFILE.dims}")
        return rs.get(name, N=d)
    raise NotImplementedError(f"unknown benchmark system {name!r}")


def build_estimator(spec: str, system):
    """``estimators.from_spec(spec)``; NotImplementedError where it does not apply to ``system``."""
    est = estimators.from_spec(spec)
    reason = getattr(est, "not_applicable", lambda s: None)(system)
    if reason:
        raise NotImplementedError(reason)
    return est


class ThreadsMixin:
    """Sets torch's CPU threads for the benchmark and restores them in teardown."""

    _saved_threads: Optional[int] = None

    def _set_threads(self) -> None:
        n = threads()
        self._saved_threads = torch.get_num_threads()
        if n is not None:
            torch.set_num_threads(n)

    def teardown(self, *params) -> None:
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None


def seconds_per_step(estimator, system, *, batch: int, device: str = "cpu", min_seconds: float = 0.2,
                     repeats: int = 5, max_steps: int = 100_000, seed: int = 0) -> float:
    """Median seconds per step of ``estimate(system, steps, transient=0, batch=B)``.

    The protocol of :func:`suite.studies.throughput.measure`
    (:func:`~suite.studies.throughput.sized_seconds_per_step`) without its GEMM reference
    measurement, which would dominate a small benchmark (asv runs each one in a
    fresh process).
    """
    estimator, _ = fixed_settings(estimator, system, batch=batch, k=None, device=device, dtype=torch.float64,
                                  seed=seed)

    def run(steps: int) -> float:
        return timed_seconds(estimator.estimate(system, steps, transient=0, batch=batch, seed=seed,
                                                device=device))

    return sized_seconds_per_step(run, probe_steps(estimator), min_seconds=min_seconds, max_steps=max_steps,
                                  repeats=repeats)[0]
