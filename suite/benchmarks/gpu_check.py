"""The GPU check of the compiled units (issue 23), in one run, for a session that is lent a GPU.

    python -m suite.benchmarks.gpu_check --out "$OUT"            # on the GPU machine (CUDA)
    python -m suite.benchmarks.gpu_check --device cpu --smoke     # its CPU half, here (a minute)

1. Correctness: ``qr`` and ``jvp_qr`` with ``capture='compile'`` (units compiled by inductor: Triton
   kernels in a CUDA graph) and ``'graph'`` (CUDA graph of the recording) against ``capture='none'`` on
   Lorenz-63, Gaussian products and a random tanh network, float64 and float32: the capture mode that
   ran and the largest |difference|
   of the per-trajectory exponents, written to ``OUT/compile_check_<device>.md`` (a row that did not run
   its mode says why).
2. Throughput (``lyapbench throughput``, tables under ``OUT``): Lorenz-63 at B = 1 and 4,096 eager,
   traced, compiled; the tanh network d = 1,024, full spectrum, float32, B = 1; ``jvp_qr`` d = 4,096,
   k = 64, float32, B = 1 and 16 (issue 23's GPU targets: 50,000 / 1,000 / 10,000 steps/s).

Every step runs under a wall-clock guard of its own (``--budget`` seconds for the throughput part), so a
slow compile cannot eat the session's device time; what finished is written as it finishes.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

import reference_systems as rs
from suite import estimators
from suite.cli import main as cli
from suite.reporting.tables import atomic_write, markdown

#: (system, params, run) of the correctness check: an RK4 flow, a random system, a network
CHECKS = (("lorenz63", {}, dict(steps=400, transient=100, batch=64)),
          ("gaussian_products", {"N": 4}, dict(steps=200, transient=20, batch=16)),
          ("random_rnn", {"N": 64}, dict(steps=200, transient=50, batch=8, k=16)))
MODES = ("trace", "compile", "graph")


def check_rows(device: str, dtypes, smoke: bool) -> List[dict]:
    """One row per (estimator, system, dtype, mode): the mode that ran, why not, the largest difference."""
    rows = []
    for name, params, run in CHECKS[:1] if smoke else CHECKS:
        system = rs.get(name, **params)
        run = dict(run, steps=min(run["steps"], 100) if smoke else run["steps"])
        steps = run.pop("steps")
        for est_name in ("qr", "jvp_qr"):
            for dtype in dtypes:
                eager = estimators.get(est_name, capture="none").estimate(
                    system, steps, device=device, dtype=dtype, seed=1, **run)
                for mode in MODES:
                    if mode == "graph" and device != "cuda":
                        continue
                    t0 = time.perf_counter()
                    res = estimators.get(est_name, capture=mode).estimate(
                        system, steps, device=device, dtype=dtype, seed=1, **run)
                    cap = res.meta["capture"]
                    rows.append({"estimator": est_name, "system": system.label, "dtype": str(dtype)[6:],
                                 "requested": mode, "ran": cap["mode"], "reason": cap.get("reason"),
                                 "max_abs_difference": float(np.max(np.abs(res.per_trajectory
                                                                           - eager.per_trajectory))),
                                 "capture_seconds": round(cap["seconds"], 2),
                                 "wall_seconds": round(time.perf_counter() - t0, 2)})
    return rows


def throughput_commands(device: str, smoke: bool) -> List[List[str]]:
    """The ``lyapbench throughput`` runs of the check (argument lists)."""
    pair = ",".join(f"qr(reorth_every=32, capture='{mode}')" for mode in ("none", "trace", "compile"))
    if smoke:
        return [["--systems", "lorenz63", "--batch", "1,16", "--estimators", pair, "--min-seconds", "0.05",
                 "--repeats", "1"]]
    return [["--systems", "lorenz63", "--batch", "1,4096", "--estimators", pair],
            ["--systems", "random_rnn", "--dims", "1024", "--batch", "1", "--dtype", "float32", "--estimators",
             "qr(capture='none'),qr(capture='compile'),qr(capture='graph')"],
            ["--systems", "random_rnn", "--dims", "4096", "--k", "64", "--batch", "1,16", "--dtype", "float32",
             "--estimators", "jvp_qr(reorth_every='auto', capture='trace'),jvp_qr(reorth_every='auto', "
                             "capture='compile'),jvp_qr(reorth_every='auto', capture='graph')"]]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m suite.benchmarks.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=os.environ.get("OUT", "gpu-check"))
    p.add_argument("--smoke", action="store_true", help="one small system, short runs (the CPU half)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for the CPU half")
        return 2
    slug = "cpu" if device == "cpu" else torch.cuda.get_device_name(0).lower().replace(" ", "-")
    dtypes = (torch.float64,) if args.smoke else (torch.float64, torch.float32)
    rows = check_rows(device, dtypes, args.smoke)
    atomic_write(out / f"compile_check_{slug}.md",
                 f"# Compiled and graphed steps against eager ({slug}, torch {torch.__version__})\n\n"
                 + markdown(rows, list(rows[0])) + "\n")
    print(markdown(rows, list(rows[0])), flush=True)
    status = 0
    for extra in throughput_commands(device, args.smoke):
        status |= cli(["throughput", "--device", device, "--output-dir", str(out), *extra])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
