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
C module is added to it.  A contender that has not reached eps when its
cumulative time passes ``budget_s`` is reported as not reached, with the
error it got; its time-to-eps is then only bounded below.

Contenders, each in the fastest configuration measured for it on this machine:

* ``lyapbench``: ``qr(reorth_every=10)`` (re-orthonormalising every 10 RK4
  steps, dt = 0.01, keeps 10 dt (lambda_1 - lambda_3) = 1.5 nats far from
  round-off; the QR of 3 x 3 frames is batched Gram-Schmidt, see
  suite.linalg.auto_method), float64, batch 4096 trajectories advanced
  together, T0 = 25.  Why these: the spread of lambda_1's estimate is about
  sqrt(0.05 / T) per trajectory (std 0.022 at T = 100), so the target needs
  B T of order 1e5 time units; lambda_2's spread falls like 1 / T instead
  (ln|f(x_T)| - ln|f(x_0)| over T), which penalises very short
  trajectories.  4096 is where the CPU rate of Lorenz-63 trajectory-steps
  levels off (results/throughput_cpu.md).  float32 is no faster on the CPU
  (each op's fixed cost dominates; measured B = 4096, T = 50: 11.2 s against
  11.4 s).  dt stays 0.01: RK4's error in lambda_3 grows like dt^4,
  ~ (dt lambda_3)^5 / (120 dt) = 6e-5 at dt = 0.01 but 9e-4 at dt = 0.02,
  half the target;
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
seed) after a transient of 10 time units; ratios are taken from this one
run on one machine, so load on the machine affects all contenders alike
only to first order: rerun to see the spread.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

import reference_systems as rs
from .errors import NotInstalledError
from .provenance import PROVENANCE_COLUMNS, git_sha, row_provenance
from .estimators.base import check_run
from .result import LyapunovResult

COLUMNS = ["contender", "configuration", "T", "batch", "wall_seconds", "compile_seconds", "worst_error_plus_2se",
           "worst_abs_error", "lambda1", "lambda2", "lambda3", "reached"]
DISPLAY = [c for c in COLUMNS if c != "configuration"]
COLUMNS = COLUMNS + ["seed", *PROVENANCE_COLUMNS]
TRANSIENT_TIME = 10.0


def _run(spec: Dict[str, Any], system, steps: int, transient: int, batch: int, seed: int) -> LyapunovResult:
    """A contender's run: its own ``run`` function, or the suite estimator its ``config`` names."""
    if "run" in spec:
        return spec["run"](system, steps, transient, batch, seed)
    from . import estimators
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
    "lyapbench": {"batch": 4096, "T0": 25.0, "config": "qr(reorth_every=10)"},
    "jitcode": {"batch": 8, "T0": 100.0,
                "config": "jitcode_lyap(rtol=1e-6, atol=1e-12, renorm_every=100)"},
    "lyapynov": {"run": _lyapynov, "batch": 8, "T0": 100.0, "config": "LCE, RK4 dt=0.01, QR every step"},
}


def race(eps: float = 2e-3, budget_s: float = 600.0, seed: int = 0, contenders: Optional[List[str]] = None,
         on_row: Optional[Callable[[Dict[str, Any]], None]] = None) -> List[Dict[str, Any]]:
    """Run every contender to ``eps`` (module docstring); one row per run."""
    system = rs.get("lorenz63")
    ref = system.reference.values
    transient = round(TRANSIENT_TIME / system.dt)
    rows = []
    for name in contenders or list(CONTENDERS):
        spec = CONTENDERS[name]
        T, spent, compile_s = spec["T0"], 0.0, 0.0
        while True:
            row = {c: None for c in COLUMNS}
            row.update(contender=name, configuration=spec["config"], T=T, batch=spec["batch"], seed=seed,
                       git_sha=git_sha())
            try:
                res = _run(spec, system, round(T / system.dt), transient, spec["batch"], seed)
            except NotInstalledError as exc:
                row.update(reached="not installed: " + str(exc))
                rows.append(row)
                if on_row:
                    on_row(row)
                break
            compile_s = max(compile_s, float(res.meta.get("compile_seconds", 0.0) or 0.0))
            err = np.abs(res.exponents - ref)
            worst = float(np.max(err + 2 * res.stderr))
            spent += res.wall_seconds
            reached = worst <= eps
            row.update(row_provenance(res.meta))
            row.update(wall_seconds=res.wall_seconds, compile_seconds=compile_s, worst_error_plus_2se=worst,
                       worst_abs_error=float(err.max()), lambda1=float(res.exponents[0]),
                       lambda2=float(res.exponents[1]), lambda3=float(res.exponents[2]),
                       reached="yes" if reached else ("no (budget spent)" if spent > budget_s else "no"))
            rows.append(row)
            if on_row:
                on_row(row)
            if reached or spent > budget_s:
                break
            T *= 2
    return rows


def time_to_eps(rows: List[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """Wall time (compilation included) of each contender's first run that reached eps; None if none."""
    out: Dict[str, Optional[float]] = {}
    for r in rows:
        if r["reached"] == "yes":
            out[r["contender"]] = r["wall_seconds"] + (r["compile_seconds"] or 0.0)
        else:
            out.setdefault(r["contender"], None)
    return out
