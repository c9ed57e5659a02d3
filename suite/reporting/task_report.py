"""The users' scientific questions, answered from the tasks' computed references.

* RNN tasks: how the spectrum's features (lambda_1, mean exponent, number of
  positive exponents, Kaplan-Yorke dimension; suite.studies.features) relate to the
  task loss across checkpoints (init / mid / end) and across the gain of
  untrained networks;
* training-map tasks: lambda_1 of the training map against the learning
  rate, beside the edge of stability 2 / sharpness.

Rows come from the reference records (tasks.references.read), so the table
shows exactly the numbers the scoring uses; a task without a fresh record is
listed with its status and no numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import tasks
from suite.reporting.plots import plt
from suite.reporting.plots import save_figure as _save

FEATURE_COLUMNS = ["task", "family", "dataset", "checkpoint", "hidden", "gain", "lr", "loss", "score",
                   "lambda1", "lambda1_uncertainty", "mean_exponent", "n_positive", "kaplan_yorke", "k", "dim",
                   "reference", "git_sha"]


def feature_rows(task_ids: List[str], check_fresh: bool = True) -> List[Dict[str, Any]]:
    """One row per task from its reference record (status 'fresh' checked by building it if asked)."""
    rows = []
    for tid in task_ids:
        spec = tasks.get(tid)
        rec = tasks.read(tid)
        row = {c: None for c in FEATURE_COLUMNS}
        row.update(task=tid, family=spec.family, dataset=spec.dataset, checkpoint=spec.checkpoint,
                   hidden=spec.params.get("hidden"), gain=spec.params.get("gain"), lr=spec.params.get("lr"))
        if rec is None:
            row["reference"] = "missing"
        else:
            st = tasks.status(spec, tasks.build(tid, with_reference=False), rec) if check_fresh else "fresh"
            row.update(reference=st, git_sha=rec.get("git_sha"), k=rec.get("k"), dim=rec.get("dim"),
                       lambda1_uncertainty=rec["uncertainty"][0], **(rec.get("features") or {}),
                       **{k: v for k, v in (rec.get("checkpoint") or {}).items() if k in ("loss", "score")})
        rows.append(row)
    return rows


def figures(rows: List[Dict[str, Any]], directory: Path) -> List[Path]:
    """lambda_1 against learning rate, against gain, and features against loss; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    have = [r for r in rows if r["lambda1"] is not None]
    out = []
    lr_rows = [r for r in have if r["lr"] is not None]
    if lr_rows:
        fig, ax = plt.subplots(figsize=(6, 4))
        for family in sorted({r["family"] for r in lr_rows}):
            pts = sorted((r["lr"], r["lambda1"], r["lambda1_uncertainty"]) for r in lr_rows if r["family"] == family)
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                        capsize=3, label=family)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel="learning rate eta", ylabel="lambda_1 of the training map (per step)",
               title="training-map lambda_1 against learning rate")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        out.append(_save(fig, directory / "tasks_lambda1_vs_lr.png"))
    gain_rows = sorted((r for r in have if r["gain"] is not None), key=lambda r: r["gain"])
    if gain_rows:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.errorbar([r["gain"] for r in gain_rows], [r["lambda1"] for r in gain_rows],
                    yerr=[r["lambda1_uncertainty"] for r in gain_rows], marker="o", capsize=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel="gain g", ylabel="lambda_1 (per step)",
               title="untrained tanh RNN driven by inputs: lambda_1 against gain")
        ax.grid(True, alpha=0.3)
        out.append(_save(fig, directory / "tasks_lambda1_vs_gain.png"))
    ckpt_rows = [r for r in have if r["loss"] is not None and r["lr"] is None]
    if ckpt_rows:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4))
        order = {"init": 0, "mid": 1, "end": 2}
        families = sorted({r["task"].rsplit("-", 2)[0] for r in ckpt_rows})
        colours = {fam: f"C{i}" for i, fam in enumerate(families)}
        for (key, label), ax in zip([("lambda1", "lambda_1"), ("mean_exponent", "mean exponent"),
                                     ("kaplan_yorke", "Kaplan-Yorke dimension")], axes):
            for fam in families:
                pts = sorted(((r["loss"], r[key], r["checkpoint"]) for r in ckpt_rows
                              if r["task"].rsplit("-", 2)[0] == fam and r[key] is not None),
                             key=lambda p: order.get(p[2], 3))
                if not pts:
                    continue
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colours[fam],
                        label=fam.replace("rnn/", ""))
                for x, y, c in pts:
                    ax.annotate(c, (x, y), fontsize=6)
            ax.set(xscale="log", xlabel="held-out task loss (init -> mid -> end)", ylabel=label)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle("RNN spectrum features against task loss across checkpoints")
        out.append(_save(fig, directory / "tasks_features_vs_loss.png"))
    return out
