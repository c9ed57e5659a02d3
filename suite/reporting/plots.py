"""Figures (matplotlib, Agg backend: no screen needed), written as PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import matplotlib
import numpy as np

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
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """tight_layout, write PNG (making the folder), close; returns ``path``."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_convergence(ax, curves: List[Dict[str, Any]], summaries: List[Dict[str, Any]], legend: bool = True) -> None:
    """|error| (solid) and 2 stderr (dashed) against T, log-log, one line per (estimator, seed, exponent),
    with each exponent's reference uncertainty as a shaded band from 0."""
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
           ylabel="|error| (solid), 2 stderr (dashed)")
    if legend and ax.lines:
        ax.legend(fontsize=6)
    ax.grid(True, which="both", alpha=0.3)


def convergence_figure(curves: List[Dict[str, Any]], summaries: List[Dict[str, Any]], path: Path,
                       title: str) -> Path:
    """One system's convergence curves (:func:`draw_convergence`) as a PNG."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_convergence(ax, curves, summaries)
    ax.set_title(title)
    return save_figure(fig, path)


def _grid_axes(n: int, width: float = 4.2, height: float = 3.2):
    cols = min(3, max(1, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def convergence_grid_figure(curves: List[Dict[str, Any]], path: Path, title: str, index: int = 1,
                            summaries: List[Dict[str, Any]] = ()) -> Path:
    """Small multiples: one panel per system, exponent ``index`` of every estimator and seed, with the
    reference uncertainty of that exponent (from ``summaries``) as a band."""
    systems = list(dict.fromkeys(r["system"] for r in curves))
    fig, axes = _grid_axes(len(systems))
    for ax, system in zip(axes, systems):
        band = [r for r in summaries if r["system"] == system and r["index"] == index][:1]
        draw_convergence(ax, [r for r in curves if r["system"] == system and r["index"] == index], band,
                         legend=ax is axes[0])
        ax.set_title(system, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def spectra_figure(rows: List[Dict[str, Any]], path: Path, title: str, max_index: int = 8) -> Path:
    """Estimated exponents against the reference: one panel per system, estimate - reference (nats)
    per exponent index with 2 stderr error bars, one colour per estimator; the reference's own
    uncertainty as a grey band, its values in the tick labels."""
    rows = [r for r in rows if r.get("quantity") == "exponent" and r.get("reference") is not None
            and r.get("estimate") is not None and r["index"] <= max_index]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    ests = list(dict.fromkeys(r["estimator"] for r in rows))
    fig, axes = _grid_axes(len(systems))
    for ax, system in zip(axes, systems):
        sr = [r for r in rows if r["system"] == system]
        idx = sorted({r["index"] for r in sr})
        refs = {r["index"]: (r["reference"], r["ref_uncertainty"] or 0.0) for r in sr}
        for j, est in enumerate(ests):
            er = sorted((r for r in sr if r["estimator"] == est), key=lambda r: r["index"])
            if er:
                off = (j - (len(ests) - 1) / 2) * 0.8 / max(len(ests), 1)
                ax.errorbar([r["index"] + off for r in er], [r["estimate"] - r["reference"] for r in er],
                            yerr=[2 * (r["stderr"] or 0.0) for r in er], fmt="o", ms=3, capsize=2,
                            color=plt.cm.tab20(j % 20), label=est)
        for i in idx:
            ax.fill_between([i - 0.45, i + 0.45], -refs[i][1], refs[i][1], color="grey", alpha=0.3, lw=0)
        ax.axhline(0, color="k", lw=0.8)
        # symlog: linear within the typical 2-stderr bar, logarithmic beyond, so a wrong estimator
        # several nats off does not flatten the honest ones to a line
        bars = sorted(2 * r["stderr"] for r in sr if r.get("stderr"))
        lin = max(bars[len(bars) // 2] if bars else 1e-3, 1e-12)
        ax.set_yscale("symlog", linthresh=lin, linscale=2)
        top = max(abs(v) for v in ax.get_ylim())
        decades = [10.0 ** n for n in range(int(np.floor(np.log10(lin))) + 1, int(np.floor(np.log10(top))) + 1)]
        ax.set_yticks(sorted([-d for d in decades] + [0.0] + decades))  # no labels crowding round 0
        ax.set_xticks(idx, [f"λ{i}\n{refs[i][0]:.4g}" for i in idx], fontsize=6)
        ax.set_title(system, fontsize=8)
        ax.set_ylabel("estimate − reference (2 stderr bars)", fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    if systems:
        axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def accuracy_vs_time_figure(points: List[Dict[str, Any]], path: Path, title: str) -> Path:
    """One point per estimator: median error over tolerance (left) and median |error of lambda_1| (right)
    against median wall seconds per cell; the label gives the cells passed of those judged."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, label in ((axes[0], "median_error_over_tol", "median worst |error| / tolerance (> 1 fails)"),
                           (axes[1], "median_lambda1_error", "median |error of λ1| (nats)")):
        for n, p in enumerate(points):
            if p.get(key) is None or p.get("median_wall_seconds") is None:
                continue
            ax.scatter(p["median_wall_seconds"], max(p[key], 1e-16), s=40, color=f"C{n % 10}")
            ax.annotate(f"{p['estimator']} ({p['passed']}/{p['judged']})", (p["median_wall_seconds"],
                        max(p[key], 1e-16)), fontsize=7, xytext=(4, 3), textcoords="offset points")
        if key == "median_error_over_tol":
            ax.axhline(1.0, color="r", lw=0.8, ls="--")
        ax.set(xscale="log", yscale="log", xlabel="median wall seconds per cell", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
