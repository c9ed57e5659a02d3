"""``lyapbench report``: report.md and its figures, from the tables the other commands wrote.

Nothing is re-run: the report reads the tables of one folder (by default
``lyapbench-results/``; ``results/`` for the committed ones) and answers at a
glance which estimator is accurate and which is fast.  Each section names the
commit(s) its table came from (the ``git_sha`` column; for the regression check,
``regress.md``) and is flagged **stale** where that commit is older than the
newest one among the tables (commit times from git in this checkout), or
**-dirty** where it was made from a checkout with uncommitted changes:

* estimators: per estimator over ``compare.csv`` and ``tasks_compare.csv``,
  cells passed / failed / inconclusive / not run, median worst |error| over
  tolerance, median max |z|, median wall seconds; figure: median error against
  median wall time, one point per estimator (``report_accuracy_vs_time.png``);
* spectra: the estimated exponents against the reference with 2-stderr error
  bars, one panel per system (``report_spectra.png``, from ``compare_rows.csv``);
* validation: status counts per estimator (``validation.csv``);
* convergence: T_eps per (system, estimator, exponent), median over seeds
  (``convergence_summary.csv``), and lambda_1's |error| against T per system
  (``report_convergence.png``, from ``convergence.csv``);
* throughput: the fastest batch per (system, estimator, dtype) and the
  figure against batch and dimension, per device (``throughput_<device>.csv``);
* regression: the verdict counts of the last ``lyapbench regress`` (``regress.csv``).

A missing table is named with the command that writes it.
"""
from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

from suite.core.provenance import commit_time
from suite.reporting.plots import accuracy_vs_time_figure, convergence_grid_figure, spectra_figure, throughput_figure
from suite.reporting.tables import DEFAULT_OUTPUT, atomic_write, markdown, read_rows
from suite.scoring.rows import summary

ESTIMATOR_COLUMNS = ["estimator", "cells", "pass", "fail", "inconclusive", "not run", "judged", "passed",
                     "median_error_over_tol", "median_max_z", "median_lambda1_error", "median_wall_seconds"]


def _read(results: Path, name: str) -> Optional[List[Dict[str, Any]]]:
    path = results / name
    return read_rows(path) if path.is_file() and path.stat().st_size > 0 else None


def _median(values) -> Optional[float]:
    vals = [float(v) for v in values if v is not None and v != "not reached"]
    return statistics.median(vals) if vals else None


def _commits(rows) -> str:
    shas = _shas(rows)
    return ", ".join(shas) if shas else "commit not recorded"


def _shas(rows: Optional[Iterable[Dict[str, Any]]]) -> List[str]:
    return sorted({str(r.get("git_sha")) for r in rows or () if r.get("git_sha")})


def _regress_commit(results: Path) -> List[str]:
    """The commit of the last regress run: regress.csv has no git_sha column, regress.md names it."""
    path = results / "regress.md"
    m = re.search(r"This run: commit (\S+) on", path.read_text(errors="replace")) if path.is_file() else None
    return [m.group(1)] if m else []


class Commits:
    """The commits of the tables a report reads, which is the newest, and a section's stamp.

    ``time_of(sha)`` is a commit's time (default: git, in this checkout; None if unknown).  The newest
    commit is the one with the latest commit time; a table made at an older one is stale, one made
    at a '-dirty' commit came from a checkout with uncommitted changes.
    """

    def __init__(self, shas: Iterable[str], time_of: Callable[[str], Optional[int]] = None):
        time_of = time_of or commit_time
        self.times = {s: time_of(s) for s in sorted(set(shas))}
        known = [t for t in self.times.values() if t is not None]
        self.newest_time = max(known) if known else None
        self.newest = sorted({s.removesuffix("-dirty") for s, t in self.times.items()
                              if t is not None and t == self.newest_time})
        self.flagged: List[str] = []

    def flags(self, shas: List[str]) -> List[str]:
        out = []
        older = [s for s in shas if self.times.get(s) is not None and self.times[s] < self.newest_time]
        unknown = [s for s in shas if self.times.get(s) is None]
        if older:
            out.append(f"**stale**: {', '.join(f'`{s}`' for s in older)} is older than `{self.newest[0]}`, the "
                       "newest commit among these tables")
        if unknown and len(self.times) > 1:
            out.append(f"**age unknown**: {', '.join(f'`{s}`' for s in unknown)} is not a commit of this checkout")
        if any(s.endswith("-dirty") for s in shas):
            out.append("**-dirty**: made from a checkout with uncommitted changes")
        return out

    def stamp(self, name: str, rows: Optional[Iterable[Dict[str, Any]]] = None,
              shas: Optional[List[str]] = None) -> str:
        """'commit `abc` ⚠ stale: ...' for the table ``name`` (its rows' git_sha, or ``shas``)."""
        shas = _shas(rows) if shas is None else shas
        if not shas:
            return "commit not recorded"
        flags = self.flags(shas)
        if flags:
            self.flagged.append(name)
        return (("commit " if len(shas) == 1 else "commits ") + ", ".join(f"`{s}`" for s in shas)
                + "".join(f"; ⚠ {f}" for f in flags))

    def overview(self) -> str:
        """The line under the title: every commit, the newest, and the flagged tables."""
        if not self.times:
            return "The tables record no commit.\n"
        shas = ", ".join(f"`{s}`" + (" (newest)" if s.removesuffix("-dirty") in self.newest else "")
                         for s in self.times)
        flagged = (f" Flagged: {', '.join(f'`{n}`' for n in self.flagged)}; rerun the command that writes each "
                   "(with `--output-dir` this folder) to bring it up to date." if self.flagged else
                   " Every table comes from the newest commit, without uncommitted changes.")
        return f"Commits of the tables: {shas}.{flagged}\n"


def estimator_summary(summaries: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per estimator over compare summary rows (module docstring)."""
    out = []
    for est in dict.fromkeys(r["estimator"] for r in summaries):
        rs = [r for r in summaries if r["estimator"] == est]
        judged = [r for r in rs if r["status"] in ("pass", "fail", "inconclusive")]
        out.append({
            "estimator": est, "cells": len(rs), "pass": sum(r["status"] == "pass" for r in rs),
            "fail": sum(r["status"] == "fail" for r in rs),
            "inconclusive": sum(r["status"] == "inconclusive" for r in rs),
            "not run": sum(r["status"] in ("error", "not applicable", "not installed", "not run") for r in rs),
            "judged": len(judged), "passed": sum(r["status"] == "pass" for r in judged),
            "median_error_over_tol": _median(r.get("worst_error_over_tol") for r in judged),
            "median_max_z": _median(r.get("max_z") for r in judged),
            "median_lambda1_error": _median(r.get("lambda1_error") for r in judged),
            "median_wall_seconds": _median(r.get("wall_seconds") for r in judged),
        })
    return out


def _status_counts(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rows per status (suite.scoring.rows.summary), one line per estimator."""
    return [{"estimator": est, **summary([r for r in rows if r["estimator"] == est])}
            for est in dict.fromkeys(r["estimator"] for r in rows)]


TABLES = ("compare.csv", "compare_rows.csv", "tasks_compare.csv", "tasks_compare_rows.csv", "validation.csv",
          "convergence.csv", "convergence_summary.csv", "regress.csv")


def build(results_dir: Path = Path(DEFAULT_OUTPUT), output: Optional[Path] = None,
          time_of: Optional[Callable[[str], Optional[int]]] = None) -> Dict[str, Any]:
    """Write ``output`` (default results_dir/report.md) and its figures under results_dir/figures.

    ``time_of``: a commit's time, to tell the newest commit (default: git in this checkout).
    Returns {"report": path, "figures": [paths], "missing": [table names], "flagged": [table names]}."""
    results = Path(results_dir)
    output = Path(output) if output else results / "report.md"
    figdir = results / "figures"
    figures: List[Path] = []
    missing: List[str] = []
    rel = lambda p: Path(p).resolve().relative_to(output.parent.resolve()).as_posix()  # noqa: E731
    tables = {name: _read(results, name) for name in TABLES}
    tp_files = sorted(p for p in results.glob("throughput_*.csv"))
    tp_tables = {p: [r for r in read_rows(p) if r.get("status") == "ok"] for p in tp_files}
    regress_commit = _regress_commit(results) if tables["regress.csv"] is not None else []
    commits = Commits([s for rows in [*tables.values(), *tp_tables.values()] for s in _shas(rows)] + regress_commit,
                      time_of)
    lines = ["# lyapbench report\n",
             "Built by `lyapbench report` from the tables under this folder (nothing re-run; each section "
             "names its table and the commit that produced it, flagged **stale** if older than the newest "
             "commit among the tables, **-dirty** if made with uncommitted changes). Exponents in natural log, "
             "per step for maps and per unit time for flows. Columns are explained in README.md here.\n",
             ""]  # the overview of commits, filled in at the end

    def absent(name: str, command: str) -> None:
        missing.append(name)
        lines.append(f"*Not available: `{name}` is missing; `{command}` writes it.*\n")

    # estimators: accuracy and time
    lines.append("## Which estimator is accurate, and at what cost\n")
    summaries = []
    for name in ("compare.csv", "tasks_compare.csv"):
        rows = tables[name]
        if rows is None:
            absent(name, "lyapbench compare" if name == "compare.csv" else "lyapbench tasks score")
            continue
        summaries += rows
        tidy = tables[name.replace(".csv", "_rows.csv")] or []  # the same run's tidy rows name the commit
        lines.append(f"From `{name}` ({len(rows)} cells; {commits.stamp(name, rows + tidy)}). `judged`: cells "
                     "with a verdict; "
                     "`median_error_over_tol` > 1 fails; `median_max_z` far above 4: a stderr that does not "
                     "cover the error.\n")
        lines.append(markdown(estimator_summary(rows), ESTIMATOR_COLUMNS))
    if summaries:
        figures.append(accuracy_vs_time_figure(estimator_summary(summaries), figdir / "report_accuracy_vs_time.png",
                                               "accuracy against wall time (compare + tasks score)"))
        lines.append(f"![accuracy against wall time]({rel(figures[-1])})\n")

    rows = tables["compare_rows.csv"]
    lines.append("## Estimated spectra against the reference\n")
    if rows is None:
        absent("compare_rows.csv", "lyapbench compare")
    else:
        seed0 = [r for r in rows if r.get("seed") in (0, None)]
        figures.append(spectra_figure(seed0, figdir / "report_spectra.png",
                                      f"estimate − reference with 2 stderr bars; grey: reference uncertainty "
                                      f"({_commits(rows)})"))
        lines.append(f"From `compare_rows.csv` (seed 0; {commits.stamp('compare_rows.csv', rows)}). Grey band: "
                     "the reference's uncertainty; tick labels: the reference values.\n\n"
                     f"![spectra]({rel(figures[-1])})\n")

    lines.append("## Validation of the catalogue\n")
    rows = tables["validation.csv"]
    if rows is None:
        absent("validation.csv", "lyapbench validate")
    else:
        counts = _status_counts(rows)
        cols = ["estimator"] + sorted({k for c in counts for k in c if k != "estimator"})
        lines.append(f"From `validation.csv` ({len(rows)} rows; {commits.stamp('validation.csv', rows)}): rows "
                     "per status.\n")
        lines.append(markdown(counts, cols))

    lines.append("## Convergence in T\n")
    curves = tables["convergence.csv"]
    summ = tables["convergence_summary.csv"]
    if summ is None:
        absent("convergence_summary.csv", "lyapbench convergence")
    else:
        agg: Dict[Any, Dict[str, Any]] = {}
        for r in summ:
            if r.get("status") != "ok":
                continue
            a = agg.setdefault((r["system"], r["estimator"], r["index"]),
                               {"system": r["system"], "estimator": r["estimator"], "index": r["index"],
                                "seeds": 0, "_t": {c: [] for c in ("T_1e-1", "T_1e-2", "T_1e-3")}, "T_max": r["T_max"]})
            a["seeds"] += 1
            for c in a["_t"]:
                a["_t"][c].append(r.get(c))
        table = []
        for a in agg.values():
            row = {k: v for k, v in a.items() if k != "_t"}
            for c, vals in a["_t"].items():
                reached = [v for v in vals if v not in (None, "not reached")]
                row[c] = (_median(reached) if len(reached) == len(vals) else
                          f"reached in {len(reached)} of {len(vals)} seeds")
            table.append(row)
        lines.append(f"From `convergence_summary.csv` ({commits.stamp('convergence_summary.csv', summ)}): T_eps "
                     "(median over seeds), the smallest T from which |error| + 2 stderr < eps.\n")
        lines.append(markdown(table, ["system", "estimator", "index", "seeds", "T_max", "T_1e-1", "T_1e-2", "T_1e-3"]))
    if curves:
        figures.append(convergence_grid_figure(curves, figdir / "report_convergence.png",
                                               f"|error of λ1| (solid) and 2 stderr (dashed) against T "
                                               f"({_commits(curves)}); grey: reference uncertainty",
                                               summaries=summ or []))
        lines.append(f"From `convergence.csv` ({commits.stamp('convergence.csv', curves)}).\n\n"
                     f"![convergence]({rel(figures[-1])})\n")

    lines.append("## Throughput\n")
    if not tp_files:
        absent("throughput_<device>.csv", "lyapbench throughput")
    for path in tp_files:
        rows = tp_tables[path]
        if not rows:
            continue
        best: Dict[Any, Dict[str, Any]] = {}
        for r in rows:
            key = (r["system"], r["estimator"], r["k"], r["dtype"])
            if key not in best or r["traj_steps_per_s"] > best[key]["traj_steps_per_s"]:
                best[key] = r
        device = rows[0].get("device_name") or rows[0].get("device")
        fig = throughput_figure(rows, figdir / f"report_{path.stem}.png", f"throughput on {device}")
        figures.append(fig)
        lines.append(f"From `{path.name}` on {device} ({commits.stamp(path.name, rows)}): the fastest batch per "
                     "system, estimator, k and dtype.\n")
        lines.append(markdown(sorted(best.values(), key=lambda r: (r["system"], r["estimator"], str(r["k"]))),
                              ["system", "estimator", "k", "dtype", "batch", "traj_steps_per_s", "steps_per_s",
                               "fraction_of_gemm", "peak_mem_mb"]))
        lines.append(f"![throughput]({rel(fig)})\n")

    lines.append("## Regression check\n")
    rows = tables["regress.csv"]
    if rows is None:
        absent("regress.csv", "lyapbench regress")
    else:
        counts = []
        for check in ("accuracy", "convergence", "throughput"):
            vs = [r for r in rows if r["check"] == check]
            counts.append({"check": check, **{k: sum(r["verdict"] == k for r in vs)
                                              for k in ("ok", "regression", "not compared")}})
        lines.append(f"From `regress.csv` (details in `regress.md`, which names the run's "
                     f"{commits.stamp('regress.csv', shas=regress_commit)}).\n")
        lines.append(markdown(counts, ["check", "ok", "regression", "not compared"]))
        bad = [r for r in rows if r["verdict"] == "regression"]
        if bad:
            lines.append(markdown(bad, ["check", "system", "estimator", "quantity", "index", "reason"]))
    lines[2] = commits.overview()
    atomic_write(output, "\n".join(lines))
    return {"report": output, "figures": figures, "missing": missing, "flagged": commits.flagged}
