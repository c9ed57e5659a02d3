"""Compiled units against eager steps and against lyapax, side by side in one process.

    python -m suite.studies.compiled [--output-dir results] [--quick]

Rows (CPU, float64, all exponents; the contenders of a row group take turns, ``repeats`` runs each, median):

* ``lorenz63`` and ``lorenz63_autodiff`` (the same flow from its right-hand side alone, its tangent by
  forward-mode autodiff: what a user's flow gets), one trajectory, one torch thread: ``qr(capture='none')``
  (eager steps), ``qr()`` as a long run runs it ('auto' compiles its units,
  :mod:`suite.estimators.numerics.units`; a QR step after every step), ``qr(reorth_every='auto')`` (the
  interval its probe picks, 32 on Lorenz-63: what ``estimate_to_accuracy`` runs), ``two_trajectory`` eager and
  as it comes (the largest exponent only, from the system's step) and ``lyapax_spectrum`` warm (its scan
  compiled by an earlier run of the same length; lyapax renormalises every 10 steps);
* ``lorenz63``, a batch of 4,096, two torch threads: the ``qr`` and ``two_trajectory`` contenders.

Rates are steps of the whole batch per second of ``estimate`` (``transient=0``), less the one-off
recording or compilation (``meta['capture']['seconds']``, its own column); each contender runs a length that
takes it about a second (eager: fewer steps).  ``vs_lyapax``: steps/s over lyapax's in the same row group;
``vs_eager``: over the same estimator's ``capture='none'`` row.  Writes ``compiled_cpu.csv`` / ``.md``
(docs/performance.md).
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

import reference_systems as rs
from reference_systems import Flow, System
from suite import estimators
from suite.core.provenance import git_sha, versions
from suite.estimators.numerics import capture
from suite.reporting import tables
from suite.studies.throughput import timed_seconds

COLUMNS = ["system", "batch", "threads", "contender", "ran", "steps_timed", "repeats", "steps_per_s",
           "traj_steps_per_s", "vs_lyapax", "vs_eager", "one_off_seconds", "message", "git_sha", "versions"]

#: steps of each contender's timed runs: (B = 1, B = 4096) x (eager, compiled or lyapax), about a second each here
STEPS = {1: {"eager": 5_000, "fast": 200_000}, 4096: {"eager": 200, "fast": 4_000}}
QUICK_STEPS = {1: {"eager": 500, "fast": 5_000}, 4096: {"eager": 20, "fast": 400}}


def lorenz63_autodiff() -> Flow:
    """Lorenz-63 from its right-hand side alone (no Jacobian: forward-mode autodiff tangents)."""
    base = rs.get("lorenz63")
    return Flow("lorenz63_autodiff", base.rhs, 3, dt=base.dt, sample_initial=lambda b, g: base.sample_initial(b, g),
                reference=base.reference, symbolic_rhs=base.capabilities.symbolic_rhs)


def contenders(batch: int) -> Dict[str, Any]:
    """qr eager, qr as it comes and with its automatic interval; lyapax for one trajectory (one per call)."""
    out = {"qr(capture='none')": estimators.get("qr", capture="none"), "qr()": estimators.get("qr"),
           "qr(reorth_every='auto')": estimators.get("qr", reorth_every="auto"),
           "two_trajectory(capture='none')": estimators.get("two_trajectory", capture="none"),
           "two_trajectory()": estimators.get("two_trajectory")}
    if batch == 1:
        out["lyapax_spectrum"] = estimators.get("lyapax_spectrum")
    return out


def timed(estimator, system: System, steps: int, batch: int) -> Dict[str, Any]:
    """One run: seconds less the one-off recording or compilation, and what ran."""
    with capture.assume_long_runs():  # 'auto' decides as for a long run (compile the units)
        res = estimator.estimate(system, steps, transient=0, batch=batch, seed=0)
    captured = res.meta.get("capture") or {}
    return {"seconds": timed_seconds(res), "one_off": captured.get("seconds", 0.0), "mode": captured.get("mode")}


def row_group(system: System, batch: int, threads: int, repeats: int, steps: Dict[str, int]) -> List[Dict[str, Any]]:
    torch.set_num_threads(threads)
    runs: Dict[str, List[Dict[str, Any]]] = {}
    named = contenders(batch)
    for name, est in named.items():  # warm-up: compiles (units, lyapax's scan for this length) out of the timing
        try:
            timed(est, system, steps["eager" if "none" in name else "fast"], batch)
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run here gets a row saying why
            runs[name] = [{"error": f"{type(exc).__name__}: {exc}"}]
    for _ in range(repeats):
        for name, est in named.items():
            if runs.get(name) and "error" in runs[name][0]:
                continue
            n = steps["eager" if "none" in name else "fast"]
            runs.setdefault(name, []).append(dict(timed(est, system, n, batch), steps=n))
    rows = []
    for name, rs_ in runs.items():
        if "error" in rs_[0]:
            rows.append({"system": system.name, "batch": batch, "threads": threads, "contender": name,
                         "message": rs_[0]["error"]})
            continue
        per_step = statistics.median(r["seconds"] / r["steps"] for r in rs_)
        rows.append({"system": system.name, "batch": batch, "threads": threads, "contender": name,
                     "steps_timed": rs_[0]["steps"], "repeats": len(rs_), "steps_per_s": 1.0 / per_step,
                     "traj_steps_per_s": batch / per_step,
                     "one_off_seconds": statistics.median(r["one_off"] for r in rs_),
                     "ran": rs_[0]["mode"] or "", "message": ""})
    rate = {r["contender"]: r.get("steps_per_s") for r in rows}
    for r in rows:
        if r.get("steps_per_s"):
            r["vs_lyapax"] = r["steps_per_s"] / rate["lyapax_spectrum"] if rate.get("lyapax_spectrum") else None
            eager = rate.get(r["contender"].split("(")[0] + "(capture='none')")
            r["vs_eager"] = r["steps_per_s"] / eager if eager else None
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="results")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="short runs (a check of the script, not a measurement)")
    args = parser.parse_args(argv)
    steps = QUICK_STEPS if args.quick else STEPS
    rows = []
    for system in (rs.get("lorenz63"), lorenz63_autodiff()):
        rows += row_group(system, 1, 1, args.repeats, steps[1])
    rows += row_group(rs.get("lorenz63"), 4096, 2, args.repeats, steps[4096])
    sha, vers = git_sha(), versions()
    for r in rows:
        r.update(git_sha=sha, versions=vers)
    out = Path(args.output_dir)
    tables.write_csv(rows, out / "compiled_cpu.csv", COLUMNS)
    shown = [c for c in COLUMNS if c not in ("versions",)]
    tables.atomic_write(out / "compiled_cpu.md", "# Compiled units against eager steps and lyapax\n\n"
                        f"`python -m suite.studies.compiled` (git {sha}; CPU, float64, all exponents; medians of "
                        f"{args.repeats} runs taking turns).\n\n" + tables.markdown(rows, shown))
    print(tables.text_table(rows, shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
