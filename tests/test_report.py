"""`lyapbench report` from small hand-made tables: commits marked per section, and figures whose data
all show (no empty panel, no point outside the view limits, no legend over the data, no overlapping labels)."""
from itertools import combinations
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection

from suite.core.provenance import commit_time, git_sha
from suite.reporting import plots
from suite.reporting.report import build
from suite.reporting.tables import write_csv

NEW, OLD = "1111111aaaaa", "2222222bbbbb"
DIRTY = NEW + "-dirty"
TIMES = {NEW: 2_000_000_000, OLD: 1_900_000_000}

ESTIMATORS = ["qr", "two_trajectory", "jvp_qr", "wrong", "twin_a", "twin_b"]  # the twins: same time and error
LORENZ = "lorenz63(sigma=10, rho=28, beta=2.66667, dt=0.01)"
HENON = "henon(a=1.4, b=0.3)"


def _tables(folder: Path) -> None:
    """One small table of each kind the report reads, made at the commits above."""
    summaries = []
    for n, est in enumerate(ESTIMATORS):
        wrong = est == "wrong"
        twin = est.startswith("twin")
        summaries.append(dict(system=LORENZ, estimator=est, seed=0, status="fail" if wrong else "pass",
                              lambda1_error=5.0 if wrong else 1e-3 * (n + 1), worst_error=5.0 if wrong else 2e-3,
                              worst_error_over_tol=40.0 if wrong else (0.3 if twin else 0.1 * (n + 1)),
                              max_z=80.0 if wrong else 1.2, wall_seconds=2.0 if twin else 0.5 * (n + 1), T=200,
                              batch=16, git_sha=OLD))
    write_csv(summaries, folder / "compare.csv", list(summaries[0]))
    rows = []
    refs = {LORENZ: ([0.9056, 0.0, -14.5723], [0.0002, 0.0, 0.0002]), HENON: ([0.41922, -1.62319], [1e-5, 1e-5])}
    for system, (values, unc) in refs.items():
        for est in ESTIMATORS:
            for i, (v, u) in enumerate(zip(values, unc), 1):
                off = {1: 5.0, 2: 0.2, 3: -3.0}[i] if est == "wrong" else 1e-3 * (-1) ** i
                rows.append(dict(system=system, estimator=est, quantity="exponent", index=i, reference=v,
                                 ref_uncertainty=u, estimate=v + off, stderr=2e-3, seed=0, status="pass",
                                 git_sha=OLD))
    write_csv(rows, folder / "compare_rows.csv", list(rows[0]))
    write_csv([dict(system=HENON, estimator="qr", quantity="exponent", index=1, status="pass", git_sha=DIRTY)],
              folder / "validation.csv", ["system", "estimator", "quantity", "index", "status", "git_sha"])
    curves, summ = [], []
    for est in ("qr", "two_trajectory"):
        for seed in (0, 1):
            for j, T in enumerate([1, 10, 100, 1000]):
                curves.append(dict(system=HENON, estimator=est, seed=seed, index=1, T=T,
                                   error=0.0 if j == 2 else 0.1 / T ** 0.5, stderr=0.05 / T ** 0.5, git_sha=NEW))
            summ.append({"system": HENON, "estimator": est, "seed": seed, "index": 1, "status": "ok", "T_max": 1000,
                         "T_1e-1": 1, "T_1e-2": 100, "T_1e-3": "not reached", "ref_uncertainty": 1e-5,
                         "git_sha": NEW})
    write_csv(curves, folder / "convergence.csv", list(curves[0]))
    write_csv(summ, folder / "convergence_summary.csv", list(summ[0]))
    common = dict(status="ok", dtype="float64", fraction_of_gemm=0.1, peak_mem_mb=10.0, git_sha=NEW)
    cpu = [dict(common, system=s, estimator=e, k=d, d=d, batch=b, traj_steps_per_s=1e4 * b ** 0.8 / d,
                steps_per_s=1e4 / b ** 0.2, device="cpu", device_name="x86_64")
           for s, d in ((HENON, 2), (LORENZ, 3)) for e in ("qr", "qr(reorth_every=10)") for b in (1, 256, 4096)]
    write_csv(cpu, folder / "throughput_cpu.csv", list(cpu[0]))
    gpu = [dict(common, system=f"random_rnn(N={d}, g=2, sigma_b=0, seed=0)", estimator="qr", k=d, d=d, batch=b,
                traj_steps_per_s=1e6 * b / d, steps_per_s=1e6 / d, device="cuda:0", device_name="GPU")
           for d in (64, 256) for b in (1, 16)]
    write_csv(gpu, folder / "throughput_cuda-gpu.csv", list(gpu[0]))
    verdicts = [dict(check="accuracy", system=HENON, estimator="qr", quantity="exponent", index=1, verdict="ok",
                     reason="")]
    write_csv(verdicts, folder / "regress.csv", list(verdicts[0]))
    (folder / "regress.md").write_text(f"# Regression check\n\nBaseline: commit {OLD} on x. This run: commit {NEW} "
                                       "on x86_64, seed 0.\n")


def _data_artists(ax):
    """(kind, points) of what a panel plots in data coordinates: lines, error bars, scattered points."""
    out = []
    for line in ax.lines:
        if line.get_transform() is ax.transData and len(line.get_xdata()):
            out.append(("line", np.asarray(line.get_xydata(), dtype=float)))
    for c in ax.collections:
        if isinstance(c, LineCollection) and c.get_transform() is ax.transData and c.get_segments():
            out.append(("error bar", np.concatenate([np.asarray(s, dtype=float) for s in c.get_segments()])))
        elif isinstance(c, PathCollection) and len(c.get_offsets()):
            out.append(("scatter", np.asarray(c.get_offsets(), dtype=float)))
    return out


def _inside(points, ax) -> np.ndarray:
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    x, y = points[:, 0], points[:, 1]
    ok = np.isfinite(x) & np.isfinite(y) & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    if ax.get_xscale() == "log":
        ok &= x > 0
    if ax.get_yscale() == "log":
        ok &= y > 0
    return ok


def check_figure(fig, name: str) -> None:
    """No empty panel, no point outside the view limits, legends off the panels, no overlapping labels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes, name
    for ax in axes:
        artists = _data_artists(ax)
        assert artists, f"{name}: the panel {ax.get_title()!r} is empty"
        for kind, points in artists:
            ok = _inside(points, ax)
            assert ok.all(), (f"{name}, {ax.get_title()!r}: {kind} points outside the view "
                              f"{ax.get_xlim()} x {ax.get_ylim()}: {points[~ok]}")
    legends = list(fig.legends) + [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: a legend lies over {ax.get_title()!r}"
    for ax in axes:
        texts = [t for t in ax.texts if t.get_visible() and t.get_text()]
        for a, b in combinations(texts, 2):
            assert not a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)), \
                f"{name}: labels {a.get_text()!r} and {b.get_text()!r} overlap"


@pytest.fixture
def report(tmp_path, monkeypatch):
    """The report of the tables above, with every figure it drew kept open for inspection."""
    _tables(tmp_path)
    kept = {}
    save = plots.save_figure

    def keep(fig, path):
        kept[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    monkeypatch.setattr(plots.plt, "close", lambda *a, **k: None)
    out = build(tmp_path, time_of=lambda sha: TIMES.get(sha.removesuffix("-dirty")))
    yield out, (tmp_path / "report.md").read_text(), kept
    monkeypatch.undo()
    for fig in kept.values():
        plt.close(fig)


def test_each_section_names_its_commit_and_flags_stale_and_dirty_tables(report):
    out, text, _ = report
    line = {name: next(ln for ln in text.splitlines() if ln.startswith(f"From `{name}`"))
            for name in ("compare.csv", "compare_rows.csv", "validation.csv", "convergence_summary.csv",
                         "convergence.csv", "throughput_cpu.csv", "regress.csv")}
    assert f"`{OLD}`" in line["compare.csv"] and "**stale**" in line["compare.csv"] and NEW in line["compare.csv"]
    assert "**stale**" in line["compare_rows.csv"]
    assert f"`{DIRTY}`" in line["validation.csv"] and "**-dirty**" in line["validation.csv"]
    assert "stale" not in line["validation.csv"]  # the newest commit, with uncommitted changes
    for name in ("convergence_summary.csv", "convergence.csv", "throughput_cpu.csv"):
        assert f"commit `{NEW}`" in line[name] and "⚠" not in line[name], line[name]
    assert f"`{NEW}`" in line["regress.csv"] and "⚠" not in line["regress.csv"]  # from regress.md
    overview = next(ln for ln in text.splitlines() if ln.startswith("Commits of the tables"))
    assert f"`{NEW}` (newest)" in overview and f"`{OLD}`" in overview and f"`{OLD}` (newest)" not in overview
    assert out["flagged"] == ["compare.csv", "compare_rows.csv", "validation.csv"]
    assert "Flagged: `compare.csv`, `compare_rows.csv`, `validation.csv`" in text


def test_every_figure_shows_all_its_data_and_keeps_legends_off_it(report):
    out, text, figs = report
    assert set(figs) == {"report_accuracy_vs_time.png", "report_spectra.png", "report_convergence.png",
                         "report_throughput_cpu.png", "report_throughput_cuda-gpu.png"}
    for name, fig in figs.items():
        check_figure(fig, name)
    # no system of the CPU table was run at several d: one panel, not an empty one beside it
    assert len([ax for ax in figs["report_throughput_cpu.png"].axes if ax.get_visible()]) == 1
    assert len([ax for ax in figs["report_throughput_cuda-gpu.png"].axes if ax.get_visible()]) == 2
    # the wrong estimator, 5 nats off on lorenz63's lambda_1, is inside the symlog panel
    lorenz = next(ax for ax in figs["report_spectra.png"].axes if ax.get_title() == LORENZ)
    assert max(lorenz.get_ylim()) > 5.0 + 2 * 2e-3 and min(lorenz.get_ylim()) < -3.0
    # every estimator named once, in a legend beside the panels
    labels = [t.get_text() for lg in figs["report_accuracy_vs_time.png"].legends for t in lg.get_texts()]
    assert sorted(label.split(" (")[0] for label in labels) == sorted(ESTIMATORS)


def test_the_check_sees_an_empty_panel_a_clipped_point_and_a_legend_over_data():
    """The figure checks above can fail."""
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([1, 2], [1, 2], label="x")
    with pytest.raises(AssertionError, match="empty"):
        check_figure(fig, "empty")
    b.plot([1, 2], [3, 4])
    b.set_ylim(0, 3.5)
    with pytest.raises(AssertionError, match="outside the view"):
        check_figure(fig, "clipped")
    b.set_ylim(0, 5)
    a.legend(loc="center")
    with pytest.raises(AssertionError, match="legend lies over"):
        check_figure(fig, "legend")
    plt.close(fig)


def test_commit_time_reads_this_checkout():
    sha = git_sha().removesuffix("-dirty")
    if sha == "unknown" or commit_time(sha) is None:
        pytest.skip("not a git checkout")
    assert commit_time(sha) > 1_500_000_000 and commit_time(sha + "-dirty") == commit_time(sha)
    assert commit_time("unknown") is None and commit_time("--version") is None and commit_time("0" * 12) is None
