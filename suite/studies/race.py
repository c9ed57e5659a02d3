"""Time to accuracy: lyapbench against lyapax, jitcode and lyapynov, side by side in one run.

The question a user asks is not "how many steps per second" but "how long
until the whole spectrum is right to eps".  On each system of
:data:`RACE_SYSTEMS` (Lorenz-63, Rössler and the Hénon map, their literature
references, Sprott 2003) each contender runs trajectory length T = T0,
2 T0, 4 T0, ... and stops at the first run whose every exponent satisfies

    |estimate - reference| + 2 stderr <= eps        (default eps = 2e-3)

(the 2 stderr keeps a lucky short run from counting).  The contender's time
is that run's wall time (earlier, shorter runs are not added); jitcode's
one-off compilation is added to it.  Reaching runs of at most
``REPEAT_LIMIT_S`` are run again, the contenders taking turns, and the median
of ``repeats`` runs is the time, since load on a shared machine comes and
goes.  A contender that has not reached eps when its cumulative time passes
``budget_s`` is reported as not reached, its time bounded below.

Contenders (:data:`CONTENDERS`), each in the fastest configuration measured
for it: ``lyapbench`` (Lorenz-63 only: tuned by hand for it), ``qr(reorth_every=10,
taper=300, align=1000, control_variates=True)`` on 4096 trajectories in float64, T0 = 12.5;
``jitcode``, ``jitcode_lyap`` compiled to C at scipy's default tolerances
with a QR every time unit, batch 8; ``lyapynov``, ``lyapynov.LCE`` on a
``ContinuousDS`` with hand-written numpy f and Jacobian, batch 8; ``lyapax``,
``lyapax.lyapunov_spectrum`` (JAX, jit-compiled, RK4 dt = 0.01, QR every 10
steps, the configuration of its own documentation), batch 4, its JIT
compilation inside the wall time of the first trajectory; ``lyapbench_defaults``,
what a user gets without choosing anything: one call of
:func:`suite.studies.accuracy.estimate_to_accuracy` (default ``qr()``, its own
batch, length and transient; the time is that of all its attempts).  It is
judged by its own promise, checked against the truth: it stopped on proven
half-widths <= eps and every exponent lies within eps.  The peers have no
stopping rule, so the race tells them when |error| + 2 stderr <= eps (an
oracle a user does not have); the column ``worst_error_plus_2se`` shows the
defaults' value of that criterion too.  The others start
from the suite's initial states after the system's race transient (Lorenz-63:
``TRANSIENT_TIME`` = 20 time units, as 10 is not enough: lambda_2 comes out
biased by some 3 standard errors).  A peer that cannot run a system (jitcode
and lyapax integrate flows only) is reported as not applicable.

Why these configurations, what was measured and rejected (torch.compile,
float32, other layouts, a larger dt), and the last results with the
commands that reproduce them: docs/performance.md.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

import reference_systems as rs
from suite import estimators
from suite.core.errors import InvalidArgumentError, NotApplicableError, NotInstalledError
from suite.core.provenance import PROVENANCE_COLUMNS, git_sha, row_provenance
from suite.core.result import LyapunovResult
from suite.estimators.base import check_run
from suite.studies.accuracy import AccuracyWarning, estimate_to_accuracy

COLUMNS = ["contender", "configuration", "T", "batch", "repeat", "wall_seconds", "compile_seconds",
           "worst_error_plus_2se", "worst_abs_error", "lambda1", "lambda2", "lambda3", "reached"]
DISPLAY = [c for c in COLUMNS if c != "configuration"]
COLUMNS = COLUMNS + ["seed", *PROVENANCE_COLUMNS]
TRANSIENT_TIME = 20.0
REPEAT_LIMIT_S = 60.0  # reaching runs longer than this (lyapynov's 7 minutes) are not repeated


def _run(spec: Dict[str, Any], system, steps: int, transient: int, batch: int, seed: int) -> LyapunovResult:
    """A contender's run: its own ``run`` function, or the suite estimator its ``config`` names."""
    if "run" in spec:
        return spec["run"](system, steps, transient, batch, seed)
    return estimators.from_spec(spec["config"]).estimate(system, steps, transient=transient, batch=batch, seed=seed)


def _lorenz63_numpy(p):
    s, r, b = p["sigma"], p["rho"], p["beta"]
    return (lambda x, t: np.array([s * (x[1] - x[0]), x[0] * (r - x[2]) - x[1], x[0] * x[1] - b * x[2]]),
            lambda x, t: np.array([[-s, s, 0.0], [r - x[2], -1.0, -x[0]], [x[1], x[0], -b]]))


def _rossler_numpy(p):
    a, b, c = p["a"], p["b"], p["c"]
    return (lambda x, t: np.array([-x[1] - x[2], x[0] + a * x[1], b + x[2] * (x[0] - c)]),
            lambda x, t: np.array([[0.0, -1.0, -1.0], [1.0, a, 0.0], [x[2], 0.0, x[0] - c]]))


def _henon_numpy(p):
    a, b = p["a"], p["b"]
    return (lambda x, t: np.array([1.0 - a * x[0] ** 2 + x[1], b * x[0]]),
            lambda x, t: np.array([[-2.0 * a * x[0], 1.0], [b, 0.0]]))


#: the race's systems: the numpy f and Jacobian lyapynov is given, the peers' first T (time units for flows,
#: steps for maps; a contender's own T0 overrides it) and the transient they run first (time units, default
#: TRANSIENT_TIME; lyapbench_defaults chooses its own)
RACE_SYSTEMS: Dict[str, Dict[str, Any]] = {
    "lorenz63": {"numpy": _lorenz63_numpy, "T0": 100.0},  # transient: TRANSIENT_TIME
    "rossler": {"numpy": _rossler_numpy, "T0": 500.0, "transient_time": 80.0},
    "henon": {"numpy": _henon_numpy, "T0": 1000.0, "transient_time": 100.0},
}


def _lyapynov(system, steps: int, transient: int, batch: int, seed: int) -> LyapunovResult:
    """lyapynov.LCE with the system's numpy f and Jacobian (:data:`RACE_SYSTEMS`), one trajectory after another."""
    try:
        import lyapynov
    except ImportError:
        raise NotInstalledError("lyapynov") from None
    f, jac = RACE_SYSTEMS[system.name]["numpy"](system.params)
    d = system.dim
    cfg = check_run(system, steps, transient, batch, None, seed, "cpu", torch.float64)
    x0 = system.sample_initial(batch, cfg.rng()).numpy()
    t0 = time.perf_counter()
    per = []
    for i in range(batch):
        ds = (lyapynov.ContinuousDS(x0[i].copy(), 0.0, f, jac, system.dt) if system.kind == "flow"
              else lyapynov.DiscreteDS(x0[i].copy(), 0, f, jac))
        ds.forward(transient, False)
        per.append(np.asarray(lyapynov.LCE(ds, d, 0, steps, False)))
    wall = time.perf_counter() - t0
    per = np.array(per)
    stderr = per.std(axis=0, ddof=1) / math.sqrt(batch)
    return LyapunovResult(per.mean(axis=0), stderr, per, np.zeros((0, d)), np.zeros(0), wall,
                          {"stderr_dof": batch - 1})


CONTENDERS: Dict[str, Dict[str, Any]] = {
    "lyapbench": {"batch": 4096, "T0": 12.5, "systems": ("lorenz63",),
                  "config": "qr(reorth_every=10, taper=300, align=1000, control_variates=True)"},
    "jitcode": {"batch": 8, "config": "jitcode_lyap(rtol=1e-6, atol=1e-12, renorm_every=100)"},
    "lyapynov": {"run": _lyapynov, "batch": 8, "config": "LCE, the suite's dt (RK4 for flows), QR every step"},
    "lyapax": {"batch": 4, "config": "lyapax_spectrum(renorm_every=10)"},
    # what a user gets without choosing anything: one call, batch and T chosen by the call itself
    "lyapbench_defaults": {"accuracy": True, "batch": None, "T0": None,
                           "config": "estimate_to_accuracy(system, eps): qr() with default settings"},
}


def _measure(name: str, spec: Dict[str, Any], system, T: float, transient: int, seed: int,
             repeat: int) -> Dict[str, Any]:
    """One run of a contender at length T as a row (compile_seconds as the contender reported it)."""
    row = _row(name, spec, T, spec["batch"], seed, repeat)
    try:
        res = _run(spec, system, round(T / system.dt), transient, spec["batch"], seed)
    except NotInstalledError as exc:
        row.update(reached="not installed: " + str(exc))
        return row
    except NotApplicableError as exc:
        row.update(reached="not applicable: " + str(exc))
        return row
    return _filled(row, system, res, res.wall_seconds)


def _row(name: str, spec: Dict[str, Any], T: float, batch: int, seed: int, repeat: int) -> Dict[str, Any]:
    """A contender's row before its run: every column None but who, what and which repeat."""
    row = {c: None for c in COLUMNS}
    row.update(contender=name, configuration=spec["config"], T=T, batch=batch, seed=seed, repeat=repeat,
               git_sha=git_sha())
    return row


def _filled(row: Dict[str, Any], system, res: LyapunovResult, wall: float) -> Dict[str, Any]:
    err = np.abs(res.exponents - system.reference.values)
    row.update(row_provenance(res.meta))
    row.update(wall_seconds=wall, compile_seconds=float(res.meta.get("compile_seconds", 0.0) or 0.0),
               worst_error_plus_2se=float(np.max(err + 2 * res.stderr)), worst_abs_error=float(err.max()),
               **{f"lambda{i + 1}": float(v) for i, v in enumerate(res.exponents)})
    return row


def _measure_accuracy(name: str, spec: Dict[str, Any], system, eps: float, budget_s: float, seed: int,
                      repeat: int) -> Dict[str, Any]:
    """The defaults contender: one :func:`estimate_to_accuracy` call (all its attempts timed), judged by its own
    promise (module docstring); T and batch are those of its last attempt."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AccuracyWarning)  # an unreached accuracy shows in 'reached'
        res = estimate_to_accuracy(system, eps, seed=seed, max_seconds=budget_s)
    acc = res.meta["accuracy"]
    row = _filled(_row(name, spec, res.meta["T"], res.meta["batch"], seed, repeat), system, res, acc["seconds"])
    # judged by its own promise, checked against the truth: it stopped on its proven half-widths (<= eps, which
    # contain t(1 - a/2k) > 2 standard errors and the bias bound) and every exponent lies within eps; the peers,
    # which have no such stopping rule, are told by the race when |error| + 2 stderr <= eps
    ok = acc["reached"] and row["worst_abs_error"] <= eps
    row["reached"] = "yes" if ok else ("no (budget spent)" if not acc["reached"] else "no (missed eps)")
    return row


def race(eps: float = 2e-3, budget_s: float = 600.0, seed: int = 0, contenders: Optional[List[str]] = None,
         on_row: Optional[Callable[[Dict[str, Any]], None]] = None, repeats: int = 1,
         system_name: str = "lorenz63") -> List[Dict[str, Any]]:
    """Run every contender to ``eps`` on ``system_name`` (one of :data:`RACE_SYSTEMS`; module docstring); one
    row per run (contenders tuned for other systems only are skipped).

    With ``repeats`` = n > 1, each contender's reaching run that took at most
    ``REPEAT_LIMIT_S`` is run n - 1 more times after the search, the
    contenders taking turns (a, b, a, b, ...), so that load on the machine
    that comes and goes falls on all of them alike; the runs repeat the same
    seeded computation (same estimates), only the wall time differs, and
    :func:`time_to_eps` takes the median.  Rows carry ``repeat`` (0: the search).
    """
    if system_name not in RACE_SYSTEMS:
        raise InvalidArgumentError("system", system_name, f"one of {sorted(RACE_SYSTEMS)}")
    system = rs.get(system_name)
    setup = RACE_SYSTEMS[system_name]
    transient = round(setup.get("transient_time", TRANSIENT_TIME) / system.dt)
    rows, reaching = [], {}

    def emit(row):
        rows.append(row)
        if on_row:
            on_row(row)

    for name in contenders or list(CONTENDERS):
        spec = CONTENDERS[name]
        if system_name not in spec.get("systems", (system_name,)):
            continue
        if spec.get("accuracy"):
            row = _measure_accuracy(name, spec, system, eps, budget_s, seed, 0)
            emit(row)
            if row["reached"] == "yes":
                reaching[name] = (None, 0.0, row["wall_seconds"])
            continue
        T, spent, compile_s = spec.get("T0") or setup["T0"], 0.0, 0.0
        while True:
            row = _measure(name, spec, system, T, transient, seed, 0)
            if row["wall_seconds"] is None:  # not installed
                emit(row)
                break
            compile_s = max(compile_s, row["compile_seconds"])
            spent += row["wall_seconds"]
            reached = row["worst_error_plus_2se"] <= eps
            row.update(compile_seconds=compile_s,
                       reached="yes" if reached else ("no (budget spent)" if spent > budget_s else "no"))
            emit(row)
            if reached:
                reaching[name] = (T, compile_s, row["wall_seconds"])
            if reached or spent > budget_s:
                break
            T *= 2
    again = [n for n, (_, _, wall) in reaching.items() if wall <= REPEAT_LIMIT_S]
    for r in range(1, repeats):
        for name in again:
            T, compile_s, _ = reaching[name]
            if CONTENDERS[name].get("accuracy"):
                emit(_measure_accuracy(name, CONTENDERS[name], system, eps, budget_s, seed, r))
                continue
            row = _measure(name, CONTENDERS[name], system, T, transient, seed, r)
            # a repeat's module is already compiled: the search run's compile time is the one a user pays
            row.update(compile_seconds=compile_s, reached="yes" if row["worst_error_plus_2se"] <= eps else "no")
            emit(row)
    return rows


def _reaching(rows: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """Each contender's rows that reached eps (its reaching run and that run's repeats), [] if none."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["contender"], [])
        if r["reached"] == "yes":
            out[r["contender"]].append(r)
    return out


def time_to_eps(rows: List[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """Each contender's time to eps: the median wall time over its reaching run and that run's
    repeats, plus its compile time; None if it never reached eps."""
    return {name: (float(np.median([r["wall_seconds"] for r in runs])) + (runs[0]["compile_seconds"] or 0.0)
                   if runs else None)
            for name, runs in _reaching(rows).items()}


def repeat_counts(rows: List[Dict[str, Any]]) -> Dict[str, int]:
    """How many reaching runs each contender's time to eps is the median of."""
    return {name: len(runs) for name, runs in _reaching(rows).items()}
