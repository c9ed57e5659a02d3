"""Time to accuracy on Lorenz-63: lyapbench against jitcode and lyapynov, side by side in one run.

The question a user asks is not "how many steps per second" but "how long
until the whole spectrum is right to eps".  For each contender the race
runs Lorenz-63 (sigma, rho, beta = 10, 28, 8/3; reference 0.9056, 0,
-14.5723, Sprott 2003, +-5e-4) with trajectory length T = T0, 2 T0, 4 T0,
... and stops at the first run whose every exponent satisfies

    |estimate - reference| + 2 stderr <= eps        (default eps = 2e-3)

(the 2 stderr keeps a lucky short run from counting).  The contender's
time is that run's wall time, the time a user who knows the T needed spends
(earlier, shorter runs are not added); jitcode's one-off compilation of its
C module is added to it.  Load on this shared machine comes and goes
(the same lyapbench run took 5.6, 6.4 and 9.6 s in three races within 15
minutes), so after the search each reaching run of at most
``REPEAT_LIMIT_S`` is run again, the contenders taking turns, and the
median of ``repeats`` runs is the time.  A contender that has not reached
eps when its cumulative time passes ``budget_s`` is reported as not
reached, with the error it got; its time-to-eps is then only bounded below.

Contenders, each in the fastest configuration measured for it on this machine:

* ``lyapbench``: ``qr(reorth_every=10, taper=300, align=1000,
  control_variates=True)`` (re-orthonormalising every 10 RK4 steps, dt =
  0.01, keeps 10 dt (lambda_1 - lambda_3) = 1.5 nats far from round-off;
  the QR of 3 x 3 frames is batched Gram-Schmidt, see
  suite.estimators.numerics.linalg.auto_method; the log growth averaged with a taper of 3 time
  units at each end, see suite.estimators.base.GrowthAccumulator; the
  boundary term regressed out, suite.estimators.numerics.control_variates; the
  first 10 of the 20 transient time units advance the state alone, the
  frame aligning over the last 10: the estimates moved by 4e-6 and 6e-6
  against a frame advanced through the whole transient, seeds 0 and 1,
  against 6e-5 with 5 units of alignment; standard error 6e-4), Lorenz-63
  stepped in the batch-last layout (reference_systems.layout),
  float64, batch 4096 trajectories advanced together, T0 = 12.5.  Why these:
  across trajectories of length T the spread of lambda_1's plain time
  average is var(lambda_1(T)) T = a + c / T with a = 0.021 and c = 2.6 per
  unit time (measured here from 4096 trajectories at T = 25, 50 and 100:
  var T = 0.125, 0.074, 0.047); the c / T part is a boundary term (where on
  the attractor a trajectory starts and ends).  A taper turns it into an
  average over the ends, and control variates, functions of the state and
  the frame there, regress what is left of it out: on 4096 trajectories
  (seed 0) var T fell from 0.159 / 0.027 / 0.070 (lambda_1 / lambda_2 /
  lambda_3, taper alone) to 0.020 / 0.0016 / 0.020 at T = 12.5 with a
  taper of 3 time units, and from 0.069 / 0.0074 / 0.042 to 0.022 /
  0.00012 / 0.022 at T = 25 with a taper of 8: the asymptotic a, so a
  short trajectory costs no more per time unit than a long one, and the
  batch can be as large as the CPU rate likes (1.8e6 trajectory-steps/s at
  B = 4096, 6e5 at B = 512, 2.4e5 at B = 128: each torch op's fixed cost).
  At T = 12.5 and B = 4096 lambda_1's standard error is 6.2e-4, and seeds
  0-3 reached |error| + 2 stderr = 1.68e-3, 1.51e-3, 1.72e-3, 1.82e-3 at
  T0 (4.5-5.2 s each), and of seeds 4-9, not used in choosing, four
  (seeds 4 and 5 reached at T = 25, where jitcode too needed more than at
  seed 0); B = 3072 at T = 25 with a taper of 8 reached on the
  same four seeds in 5.5-6.4 s, B = 4096 at T = 25 in 7-9 s.  The taper
  alone (the previous configuration, ``taper=800`` without control
  variates) needed B = 2048 at T = 50: 8.2 s.  The 20-unit transient is
  still needed: with 10 (5 state-only, 5 aligning) lambda_1 came out 1.4
  standard errors low at T = 25 on two seeds of three even corrected, and
  4e-3 low at T = 12.5 (an ensemble not yet stationary biases more than
  the boundary); with 5 units of alignment at T = 12.5 lambda_2 came out
  3-4 standard errors high (a frame not yet aligned).  float32
  is no faster on the CPU (each op's fixed cost dominates; measured
  B = 4096, T = 50: 11.2 s against 11.4 s).  dt stays 0.01: the RK4 map's
  sum of exponents is off by +1.0e-4 at dt = 0.01, +5.4e-4 at 0.015 and
  +1.8e-3 at 0.02 (measured against -(sigma + 1 + beta)), which would eat
  the error budget.  ``torch.compile`` (inductor, CPU) of one RK4 tangent
  step runs 2.9-4.1e6 trajectory-steps/s at B = 4096 (2.3x eager) but
  takes 12-15 s to compile cold and 4 s from its cache, so it cannot win a
  race that counts compilation; this torch build has no LLVM, so
  TorchScript's CPU fuser is not available either.  Writing Lorenz's J V
  out row by row in the batch-first layout is no faster than bmm (B = 4096:
  420 us against 260 us per product); in the batch-last layout, where each
  row is a contiguous run, three broadcast multiply-adds beat bmm, and the
  whole tangent step runs 1.5x (B = 2048) to 1.7x (B = 4096) faster on one
  thread, but at B = 2048 its ops (18,432 numbers) stay under torch's
  parallel grain of 32,768, so on two threads bmm's threading evens it out
  there and the race time hardly moves (the state-only part of the
  transient, ``align``, saves some 10%).  Splitting the batch over
  two single-threaded processes runs 1.46x the rate of one process on two
  threads (B = 2048 each against 4096), but the peers, single-threaded,
  would gain 2x from the same split, so a race on the same two cores does
  not move in lyapbench's favour by it, and the harness runs every
  contender in one process;
* ``jitcode``: ``jitcode_lyap`` compiled to C, adaptive Dormand-Prince at
  scipy's default tolerances for it (rtol = 1e-6, atol = 1e-12), a QR every
  time unit (``renorm_every=100``), through
  :mod:`suite.peers.jitcode_adapter`, batch 8 trajectories run one after
  another (the cost is B T either way).  Some 3,900 time units per second
  here, several times the adapter's default setting (rtol = atol = 1e-10, a
  QR every 0.1 time units), so the race gives jitcode its faster setting;
* ``lyapynov``: ``lyapynov.LCE`` on a ``ContinuousDS`` given hand-written
  numpy f and Jacobian (its own RK4 with dt = 0.01 and a QR every step, the
  fastest way to call it; through the suite's generic torch adapter it is
  ~6x slower), batch 8.

All start from the suite's initial states (``sample_initial`` with the same
seed) after a transient of ``TRANSIENT_TIME`` = 20 time units.  10 is not
enough for short trajectories: the ensemble drawn near (0, 0, 25) stays
partly in phase for some 30 time units (its mean z is 22.0 after 10, 23.1
after 20, 23.54 +- 0.03 stationary), and lambda_2 then comes out biased
(4096 trajectories, T = 25: +0.0013 and +0.0017 with standard error
0.0005, in two seeds: some 3 standard errors, most of eps); after 20 time
units it is within the standard error (-0.0005, 0.0000, +0.0006 in three
seeds).  Ratios are taken
from this one run on one machine, so load on the machine affects all
contenders alike only to first order: rerun to see the spread.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

import reference_systems as rs
from suite import estimators
from suite.core.errors import NotInstalledError
from suite.core.provenance import PROVENANCE_COLUMNS, git_sha, row_provenance
from suite.core.result import LyapunovResult
from suite.estimators.base import check_run

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


def _lyapynov(system, steps: int, transient: int, batch: int, seed: int) -> LyapunovResult:
    """lyapynov.LCE with numpy Lorenz f and Jacobian, one trajectory after another."""
    try:
        import lyapynov
    except ImportError:
        raise NotInstalledError("lyapynov") from None
    s, r, b = (system.params[k] for k in ("sigma", "rho", "beta"))
    dt = system.dt

    def f(x, t):
        return np.array([s * (x[1] - x[0]), x[0] * (r - x[2]) - x[1], x[0] * x[1] - b * x[2]])

    def jac(x, t):
        return np.array([[-s, s, 0.0], [r - x[2], -1.0, -x[0]], [x[1], x[0], -b]])

    cfg = check_run(system, steps, transient, batch, None, seed, "cpu", torch.float64)
    x0 = system.sample_initial(batch, cfg.rng()).numpy()
    t0 = time.perf_counter()
    per = []
    for i in range(batch):
        ds = lyapynov.ContinuousDS(x0[i].copy(), 0.0, f, jac, dt)
        ds.forward(transient, False)
        per.append(np.asarray(lyapynov.LCE(ds, 3, 0, steps, False)))
    wall = time.perf_counter() - t0
    per = np.array(per)
    stderr = per.std(axis=0, ddof=1) / math.sqrt(batch)
    return LyapunovResult(per.mean(axis=0), stderr, per, np.zeros((0, 3)), np.zeros(0), wall,
                          {"stderr_dof": batch - 1})


CONTENDERS: Dict[str, Dict[str, Any]] = {
    "lyapbench": {"batch": 4096, "T0": 12.5,
                  "config": "qr(reorth_every=10, taper=300, align=1000, control_variates=True)"},
    "jitcode": {"batch": 8, "T0": 100.0,
                "config": "jitcode_lyap(rtol=1e-6, atol=1e-12, renorm_every=100)"},
    "lyapynov": {"run": _lyapynov, "batch": 8, "T0": 100.0, "config": "LCE, RK4 dt=0.01, QR every step"},
}


def _measure(name: str, spec: Dict[str, Any], system, T: float, transient: int, seed: int,
             repeat: int) -> Dict[str, Any]:
    """One run of a contender at length T as a row (compile_seconds as the contender reported it)."""
    ref = system.reference.values
    row = {c: None for c in COLUMNS}
    row.update(contender=name, configuration=spec["config"], T=T, batch=spec["batch"], seed=seed, repeat=repeat,
               git_sha=git_sha())
    try:
        res = _run(spec, system, round(T / system.dt), transient, spec["batch"], seed)
    except NotInstalledError as exc:
        row.update(reached="not installed: " + str(exc))
        return row
    err = np.abs(res.exponents - ref)
    row.update(row_provenance(res.meta))
    row.update(wall_seconds=res.wall_seconds, compile_seconds=float(res.meta.get("compile_seconds", 0.0) or 0.0),
               worst_error_plus_2se=float(np.max(err + 2 * res.stderr)), worst_abs_error=float(err.max()),
               lambda1=float(res.exponents[0]), lambda2=float(res.exponents[1]), lambda3=float(res.exponents[2]))
    return row


def race(eps: float = 2e-3, budget_s: float = 600.0, seed: int = 0, contenders: Optional[List[str]] = None,
         on_row: Optional[Callable[[Dict[str, Any]], None]] = None, repeats: int = 1) -> List[Dict[str, Any]]:
    """Run every contender to ``eps`` (module docstring); one row per run.

    With ``repeats`` = n > 1, each contender's reaching run that took at most
    ``REPEAT_LIMIT_S`` is run n - 1 more times after the search, the
    contenders taking turns (a, b, a, b, ...), so that load on the machine
    that comes and goes falls on all of them alike; the runs repeat the same
    seeded computation (same estimates), only the wall time differs, and
    :func:`time_to_eps` takes the median.  Rows carry ``repeat`` (0: the search).
    """
    system = rs.get("lorenz63")
    transient = round(TRANSIENT_TIME / system.dt)
    rows, reaching = [], {}

    def emit(row):
        rows.append(row)
        if on_row:
            on_row(row)

    for name in contenders or list(CONTENDERS):
        spec = CONTENDERS[name]
        T, spent, compile_s = spec["T0"], 0.0, 0.0
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
