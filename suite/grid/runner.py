"""Run a grid of (system, estimator) cells and keep every finished cell.

Each cell runs one ``estimate`` call and is scored at once; after every
cell the whole table so far is rewritten atomically (temporary file, then
rename), so an interrupted grid never loses a finished cell.  A cell that
raises becomes an ``error`` row (or ``not applicable``) and the grid goes on.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from suite.core.errors import GridInterrupted
from suite.grid.cells import Cell
from suite.grid.executors import InProcess
from suite.grid.journal import Journal, cell_key, decode_result, encode_result
from suite.reporting.tables import atomic_write, markdown, write_csv
from suite.scoring.rows import COLUMNS, first_line

DISPLAY = ["system", "estimator", "quantity", "index", "reference", "estimate_pm", "abs_error", "tolerance", "status"]
DISPLAY_HEADERS = ["system", "estimator", "quantity", "i", "reference", "estimate ± stderr", "abs error", "tolerance", "status"]


def spectrum_text(estimates: Sequence[float], stderrs: Sequence[float], head: int = 3, tail: int = 2) -> str:
    """A run of estimates in a few characters: ``0.118, 0.0953, 0.0712, …, -1.9, -2.31 (stderr 0.0011–0.0042)``
    (all of them up to ``head + tail + 1``; the smallest and largest stderr)."""
    shown = [f"{v:.3g}" for v in estimates]
    if len(shown) > head + tail + 1:
        shown = shown[:head] + ["…"] + shown[-tail:]
    lo, hi = f"{min(stderrs):.2g}", f"{max(stderrs):.2g}"
    return f"{', '.join(shown)} (stderr {lo if lo == hi else f'{lo}–{hi}'})"


def with_display(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rows for reading: ``estimate ± stderr`` in one column, and a run of exponents
    without reference in one cell folded into a single row showing the spectrum compactly
    (:func:`spectrum_text`; the CSV keeps every row)."""
    out: List[Dict[str, Any]] = []
    runs: Dict[int, tuple] = {}  # position in out -> (estimates, stderrs) of a folded run

    def foldable(r):
        return r["status"] == "no reference" and r.get("quantity") == "exponent" and r.get("estimate") is not None

    for r in rows:
        r = dict(r)
        prev = out[-1] if out else None
        if (foldable(r) and prev is not None and foldable(prev)
                and (prev["system"], prev["estimator"]) == (r["system"], r["estimator"])):
            first = str(prev["index"]).split("–")[0]
            prev["index"] = f"{first}–{r['index']}"
            est, se = runs.setdefault(len(out) - 1, ([prev["estimate"]], [prev["stderr"]]))
            est.append(r["estimate"])
            se.append(r["stderr"])
            prev["estimate_pm"] = spectrum_text(est, se)
            continue
        if r.get("estimate") is not None:
            r["estimate_pm"] = f"{r['estimate']:.6g} ± {r['stderr']:.2g}"
        elif r.get("message"):
            r["estimate_pm"] = first_line(r["message"])[:120]
        out.append(r)
    return out


def run_grid(cells: Sequence[Cell], *, csv_path: Optional[Path] = None, md_path: Optional[Path] = None,
             title: str = "", progress: Optional[TextIO] = sys.stderr,
             on_cell: Optional[Callable[[Cell, List[Dict[str, Any]], Any], None]] = None,
             journal: Optional[Journal] = None, executor=None,
             initial_rows: Sequence[Dict[str, Any]] = ()) -> List[Dict[str, Any]]:
    """Run every cell; rewrite the CSV and Markdown tables after each, in grid order.

    ``initial_rows``: rows of an earlier grid the tables start with (``--append``); they are
    written, not returned.
    ``on_cell(cell, rows, result)`` is called after each cell (result None if it raised).
    ``journal`` (:mod:`suite.grid.journal`): every finished cell is saved there at once, and a cell
    already there (``--resume``) is replayed from it instead of run.  ``executor``
    (:mod:`suite.grid.executors`; default in-process) runs the cells, possibly out of order on
    other machines: finished cells are journaled as they arrive and handed to the tables
    and ``on_cell`` in grid order, so the tables do not depend on where or in which order
    cells ran.  Ctrl-C raises :class:`~suite.core.errors.GridInterrupted`, whose message says what
    was saved.
    """
    executor = executor or InProcess()
    state = _GridState(cells, csv_path, md_path, title, progress, on_cell, initial_rows)
    todo = []
    for i, cell in enumerate(cells):
        key = cell_key(cell.system, cell.estimator_name, cell.settings) if journal is not None else None
        stored = journal.get(key) if journal is not None else None
        if stored is not None and not (isinstance(stored, dict) and {"rows", "result"} <= set(stored)):
            print(f"journal: the entry of {cell.label} lacks its rows or result; the cell runs again",
                  file=journal.warn or sys.stderr)
            stored = None
        if stored is not None and _scored_against_another_reference(stored["rows"], cell.system):
            print(f"journal: {cell.label} was scored against another reference than the system's now; the cell "
                  "runs again", file=journal.warn or sys.stderr)
            stored = None
        if stored is not None:
            state.finished(i, stored["rows"], decode_result(stored["result"]), "resumed from the journal")
        else:
            todo.append((i, key))
    keys = dict(todo)
    try:
        for i, rows, result, seconds in executor.run(cells, [i for i, _ in todo]):
            if journal is not None:
                journal.put(keys[i], {"cell": cells[i].label, "rows": rows, "result": encode_result(result)})
            state.finished(i, rows, result, f"{seconds:.1f} s")
    except KeyboardInterrupt as exc:
        saved = [p for p in (csv_path, md_path) if p is not None]
        raise GridInterrupted.after(state.n_done + len(state.pending), len(cells), "cells", saved, journal) from exc
    return state.rows


class _GridState:
    """Hands finished cells to the tables and ``on_cell`` in grid order, with progress lines."""

    def __init__(self, cells, csv_path, md_path, title, progress, on_cell, initial_rows=()):
        self.cells, self.csv_path, self.md_path, self.title = cells, csv_path, md_path, title
        self.progress, self.on_cell = progress, on_cell
        self.initial_rows = list(initial_rows)
        self.rows: List[Dict[str, Any]] = []
        self.pending: Dict[int, tuple] = {}
        self.n_done = 0
        self.t_start = time.perf_counter()

    def finished(self, i: int, rows, result, how: str) -> None:
        self.pending[i] = (rows, result, how)
        while self.n_done in self.pending:
            self._write(self.n_done, *self.pending.pop(self.n_done))
            self.n_done += 1

    def _write(self, i, cell_rows, result, how) -> None:
        cell = self.cells[i]
        self.rows.extend(cell_rows)
        if self.csv_path is not None:
            write_csv(self.initial_rows + self.rows, self.csv_path, COLUMNS)
        if self.md_path is not None:
            atomic_write(self.md_path, self.title + markdown(with_display(self.initial_rows + self.rows), DISPLAY,
                                                             DISPLAY_HEADERS))
        if self.on_cell is not None:
            self.on_cell(cell, cell_rows, result)
        for r in cell_rows:  # an error's traceback, once, in the log (the tables show its first line)
            if r["status"] == "error" and "\n" in str(r.get("message") or ""):
                print(f"{cell.label}: error {r['message']}", file=sys.stderr, flush=True)
        if self.progress is not None:
            n = i + 1
            left = (time.perf_counter() - self.t_start) / n * (len(self.cells) - n)
            statuses = ", ".join(sorted({r["status"] for r in cell_rows}))
            print(f"[{n}/{len(self.cells)}] {cell.label}: {statuses} ({how}; ~{left:.0f} s left)",
                  file=self.progress, flush=True)


def _scored_against_another_reference(rows: Sequence[Dict[str, Any]], system) -> bool:
    """Whether a journal entry's exponent rows name another reference (value or uncertainty, or none) than the
    system has now: the cell key is the run's definition, and a reference recomputed or withdrawn since
    (GlycolyticOscillation's) would otherwise be scored as it was."""
    ref = system.reference
    for row in rows:
        if row.get("quantity") != "exponent" or not isinstance(row.get("index"), int):
            continue
        i = row["index"] - 1
        now = (None, None) if ref is None or i >= len(ref.values) else \
            (float(ref.values[i]), float(ref.uncertainty[i]))
        if (row.get("reference"), row.get("ref_uncertainty")) != now:
            return True
    return False
