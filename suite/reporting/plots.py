"""Figures (matplotlib, Agg backend: no screen needed), written as PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def throughput_figure(rows: List[Dict[str, Any]], path: Path, title: str) -> Path:
    """Trajectory-steps per second against batch (left) and steps per second against d (right).

    One line per (system, estimator, dtype, k) in the first panel (a single batch: one point); per
    (estimator, dtype, batch) over the systems that scale with d in the second, a panel drawn only where
    some system was run at several d.  Each panel's legend sits right of it, off the data.
    """
    ok = [r for r in rows if r.get("status") == "ok"]
    by_d: Dict[Any, list] = {}
    for r in ok:
        by_d.setdefault((r["system"].split("(")[0], r["estimator"], r["dtype"], r["batch"], r["k"] == r["d"]),
                        []).append((r["d"], r["steps_per_s"]))
    by_d = {key: pts for key, pts in by_d.items() if len({p[0] for p in pts}) > 1}
    fig, axes = plt.subplots(2 if by_d else 1, 1, figsize=(11, 9 if by_d else 4.8), squeeze=False,
                             layout="constrained")
    axes = [row[0] for row in axes]
    ax_b = axes[0]
    lines: Dict[Any, list] = {}
    for r in ok:
        lines.setdefault((r["system"], r["estimator"], r["dtype"], r["k"]), []).append((r["batch"], r["traj_steps_per_s"]))
    for (system, est, dtype, k), pts in sorted(lines.items(), key=str):
        pts.sort()
        ax_b.plot(*zip(*pts), marker="o", label=f"{system} {est} k={_whole(k)} {dtype}")
    ax_b.set(xscale="log", yscale="log", xlabel="batch B (trajectories)", ylabel="trajectory-steps / s",
             title="throughput against batch")
    if by_d:
        ax_d = axes[1]
        for (system, est, dtype, b, full), pts in sorted(by_d.items(), key=str):
            pts.sort()
            ax_d.plot(*zip(*pts), marker="s", label=f"{system} {est} B={b} {'k=d' if full else 'k<d'} {dtype}")
        ax_d.set(xscale="log", yscale="log", xlabel="dimension d", ylabel="steps / s (whole batch)",
                 title="throughput against dimension")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title + ("" if by_d else " (no system in this table was run at several dimensions d)"),
                 fontsize=9)
    return save_figure(fig, path)


def _whole(v):
    """A whole number read back as a float (``64.0`` from a column with empty cells) as an int."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def save_figure(fig, path: Path) -> Path:
    """Lay out (tight_layout unless the figure has its own layout engine), write PNG (making the folder),
    close; returns ``path``."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_convergence(ax, curves: List[Dict[str, Any]], summaries: List[Dict[str, Any]], legend: bool = True,
                     colours: Optional[Dict[Any, Any]] = None) -> None:
    """|error| (solid) and 2 stderr (dashed) against T, log-log, one line per (estimator, seed, exponent),
    with each exponent's reference uncertainty as a shaded band from 0.  Values of 0 (which a log axis
    cannot show) are left out; ``legend``: a legend beside the axes, off the data; ``colours``: the colour
    of each (estimator, seed, exponent) (default: in turn)."""
    lines: Dict[Any, list] = {}
    for r in curves:
        lines.setdefault((r["estimator"], r["seed"], r["index"]), []).append(r)
    for n, ((est, seed, i), pts) in enumerate(sorted(lines.items(), key=str)):
        colour = (colours or {}).get((est, seed, i), f"C{n % 10}")
        err = [(p["T"], abs(p["error"])) for p in pts if p["T"] and p["T"] > 0 and p["error"]]
        two_se = [(p["T"], 2 * p["stderr"]) for p in pts if p["T"] and p["T"] > 0 and p["stderr"]]
        if err:
            ax.plot(*zip(*err), color=colour, label=f"{est} λ{i} (seed {seed})")
        if two_se:
            ax.plot(*zip(*two_se), color=colour, ls="--", lw=0.8)
    for s in summaries:
        if s.get("ref_uncertainty"):
            ax.axhspan(0, s["ref_uncertainty"], color="grey", alpha=0.08)
    ax.set(xscale="log", yscale="log", xlabel="T (steps for maps, time for flows)",
           ylabel="|error| (solid), 2 stderr (dashed)")
    if legend and ax.lines:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.grid(True, which="both", alpha=0.3)


def convergence_figure(curves: List[Dict[str, Any]], summaries: List[Dict[str, Any]], path: Path,
                       title: str) -> Path:
    """One system's convergence curves (:func:`draw_convergence`) as a PNG."""
    fig, ax = plt.subplots(figsize=(8.5, 4.5), layout="constrained")
    draw_convergence(ax, curves, summaries)
    ax.set_title(title)
    return save_figure(fig, path)


def _grid_axes(n: int, width: float = 4.2, height: float = 3.2):
    cols = min(3, max(1, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 2.2, height * rows), squeeze=False,
                             layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _figure_legend(fig, axes) -> None:
    """One legend for the figure, right of the panels (never over data), from every panel's labelled lines."""
    entries: Dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper", fontsize=6, frameon=False)


def convergence_grid_figure(curves: List[Dict[str, Any]], path: Path, title: str, index: int = 1,
                            summaries: List[Dict[str, Any]] = ()) -> Path:
    """Small multiples: one panel per system, exponent ``index`` of every estimator and seed, with the
    reference uncertainty of that exponent (from ``summaries``) as a band; one legend beside them."""
    curves = [r for r in curves if r["index"] == index]
    systems = list(dict.fromkeys(r["system"] for r in curves))
    keys = sorted({(r["estimator"], r["seed"], r["index"]) for r in curves}, key=str)
    colours = {key: plt.cm.tab20(n % 20) if len(keys) > 10 else f"C{n}" for n, key in enumerate(keys)}
    fig, axes = _grid_axes(len(systems))
    for ax, system in zip(axes, systems):
        band = [r for r in summaries if r["system"] == system and r["index"] == index][:1]
        draw_convergence(ax, [r for r in curves if r["system"] == system], band, legend=False, colours=colours)
        ax.set_title(system, fontsize=8)
    _figure_legend(fig, axes)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def _symlog_limit(ax, extent: float) -> float:
    """The y limit that shows ``extent`` (the largest |value| plotted) with a margin of 8% of the half
    axis, measured on the axis's own (symlog) scale."""
    tr = ax.yaxis.get_transform()
    scaled = tr.transform(np.array([[extent]]))[0, 0]
    return float(tr.inverted().transform(np.array([[1.08 * scaled]]))[0, 0])


def spectra_figure(rows: List[Dict[str, Any]], path: Path, title: str, max_index: int = 8) -> Path:
    """Estimated exponents against the reference: one panel per system, estimate - reference (nats)
    per exponent index with 2 stderr error bars, one colour per estimator; the reference's own
    uncertainty as a grey band, its values in the tick labels.  The y axis is symlog and symmetric,
    its limit set from the points and their bars (an estimator several nats off is shown, not clipped);
    the legend sits right of the panels."""
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
        extent = max([abs(r["estimate"] - r["reference"]) + 2 * (r["stderr"] or 0.0) for r in sr]
                     + [refs[i][1] for i in idx] + [lin])
        top = _symlog_limit(ax, extent)
        decades = [10.0 ** n for n in range(int(np.floor(np.log10(lin))) + 1, int(np.floor(np.log10(top))) + 1)]
        ax.set_yticks(sorted([-d for d in decades] + [0.0] + decades))  # no labels crowding round 0
        ax.set_ylim(-top, top)
        ax.set_xlim(min(idx) - 0.5, max(idx) + 0.5)
        ax.set_xticks(idx, [f"λ{i}\n{refs[i][0]:.4g}" for i in idx], fontsize=6)
        ax.set_title(system, fontsize=8)
        ax.set_ylabel("estimate − reference (2 stderr bars)", fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    _figure_legend(fig, axes)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


MARKERS = "osD^vP*Xh<>p"


def accuracy_vs_time_figure(points: List[Dict[str, Any]], path: Path, title: str) -> Path:
    """One point per estimator: median error over tolerance (left) and median |error of lambda_1| (right)
    against median wall seconds per cell.  Each estimator has its own colour and marker, named (with the
    cells passed of those judged) in one legend beside the panels instead of labels that would overlap."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    for ax, key, label in ((axes[0], "median_error_over_tol", "median worst |error| / tolerance (> 1 fails)"),
                           (axes[1], "median_lambda1_error", "median |error of λ1| (nats)")):
        for n, p in enumerate(points):
            if p.get(key) is None or p.get("median_wall_seconds") is None:
                continue
            ax.scatter(p["median_wall_seconds"], max(p[key], 1e-16), s=40, color=plt.cm.tab20(n % 20),
                       marker=MARKERS[n % len(MARKERS)], label=f"{p['estimator']} ({p['passed']}/{p['judged']})")
        if key == "median_error_over_tol":
            ax.axhline(1.0, color="r", lw=0.8, ls="--")
        ax.set(xscale="log", yscale="log", xlabel="median wall seconds per cell", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    _figure_legend(fig, axes)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def history_figure(times, history, history_stderr, path: Path, title: str, max_index: int = 5) -> Path:
    """The running estimate of the leading ``max_index`` exponents against T, each with its 2-stderr band
    (a spectrum without reference: how settled each exponent is at the end of the run)."""
    times = np.asarray(times, dtype=float)
    history = np.asarray(history, dtype=float)
    se = None if history_stderr is None else np.asarray(history_stderr, dtype=float)
    fig, ax = plt.subplots(figsize=(8.5, 4.5), layout="constrained")
    for i in range(min(max_index, history.shape[1])):
        line, = ax.plot(times, history[:, i], marker=".", label=f"λ{i + 1}")
        if se is not None and se.shape == history.shape:
            ax.fill_between(times, history[:, i] - 2 * se[:, i], history[:, i] + 2 * se[:, i],
                            color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("T (steps · dt)")
    ax.set_ylabel("running estimate (nats per unit)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return save_figure(fig, path)


def stored_against_computed_figure(rows: List[Dict[str, Any]], path: Path) -> Path:
    """A catalogue's stored lambda_1 (y) against our computed reference (x, with its uncertainty), y = x drawn:
    one point per flow with a reference (rows of ``suite.studies.dysts_references.table_row``)."""
    pts = [r for r in rows if r.get("verdict") == "reference" and r.get("dysts_lambda1") is not None]
    fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    if pts:
        x = np.array([r["lambda1"] for r in pts])
        ax.errorbar(x, [r["dysts_lambda1"] for r in pts], xerr=[r["lambda1_uncertainty"] for r in pts], fmt="o",
                    ms=4, label="dysts's stored lambda_1")
        for r in pts:
            ax.annotate(r["flow"].split("/", 1)[-1], (r["lambda1"], r["dysts_lambda1"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        top = 1.1 * max(x.max(), max(r["dysts_lambda1"] for r in pts))
        ax.plot([0, top], [0, top], color="grey", lw=0.8, label="y = x")
        ax.legend(loc="upper left")
    ax.set(xlabel="lambda_1, lyapbench reference (two routes)", ylabel="lambda_1 stored by dysts",
           title=f"dysts: stored against computed lambda_1 ({len(pts)} flows)")
    return save_figure(fig, path)
