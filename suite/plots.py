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
