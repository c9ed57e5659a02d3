"""Figures (matplotlib, Agg backend: no screen needed), written as PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def throughput_figure(rows: List[Dict[str, Any]], path: Path, title: str) -> Path:
    """Trajectory-steps per second against batch (left) and steps per second against d (right).

    One line per (system, estimator, dtype) on the left; per (estimator,
    dtype, batch) over the systems that scale with d on the right.
    """
    ok = [r for r in rows if r.get("status") == "ok"]
    fig, (ax_b, ax_d) = plt.subplots(1, 2, figsize=(12, 4.5))
    lines: Dict[Any, list] = {}
    for r in ok:
        lines.setdefault((r["system"], r["estimator"], r["dtype"], r["k"]), []).append((r["batch"], r["traj_steps_per_s"]))
    for (system, est, dtype, k), pts in sorted(lines.items(), key=str):
        if len(pts) > 1:
            pts.sort()
            ax_b.plot(*zip(*pts), marker="o", label=f"{system} {est} k={k} {dtype}")
    ax_b.set(xscale="log", yscale="log", xlabel="batch B (trajectories)", ylabel="trajectory-steps / s",
             title="throughput against batch")
    by_d: Dict[Any, list] = {}
    for r in ok:
        by_d.setdefault((r["system"].split("(")[0], r["estimator"], r["dtype"], r["batch"], r["k"] == r["d"]),
                        []).append((r["d"], r["steps_per_s"]))
    for (system, est, dtype, b, full), pts in sorted(by_d.items(), key=str):
        if len({p[0] for p in pts}) > 1:
            pts.sort()
            ax_d.plot(*zip(*pts), marker="s", label=f"{system} {est} B={b} {'k=d' if full else 'k<d'} {dtype}")
    ax_d.set(xscale="log", yscale="log", xlabel="dimension d", ylabel="steps / s (whole batch)",
             title="throughput against dimension")
    for ax in (ax_b, ax_d):
        if ax.lines:
            ax.legend(fontsize=6)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def convergence_figure(curves: List[Dict[str, Any]], summaries: List[Dict[str, Any]], path: Path,
                       title: str) -> Path:
    """|error| (solid) and 2 stderr (dashed) against T, log-log, one line per (estimator, exponent),
    with each exponent's reference uncertainty as a shaded band from 0."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines: Dict[Any, list] = {}
    for r in curves:
        lines.setdefault((r["estimator"], r["seed"], r["index"]), []).append(r)
    for n, ((est, seed, i), pts) in enumerate(sorted(lines.items(), key=str)):
        T = [p["T"] for p in pts]
        colour = f"C{n % 10}"
        ax.plot(T, [abs(p["error"]) for p in pts], color=colour, label=f"{est} λ{i} (seed {seed})")
        ax.plot(T, [2 * p["stderr"] for p in pts], color=colour, ls="--", lw=0.8)
    for s in summaries:
        if s.get("ref_uncertainty"):
            ax.axhspan(0, s["ref_uncertainty"], color="grey", alpha=0.08)
    ax.set(xscale="log", yscale="log", xlabel="T (steps for maps, time for flows)",
           ylabel="|error| (solid), 2 stderr (dashed)", title=title)
    if ax.lines:
        ax.legend(fontsize=6)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
