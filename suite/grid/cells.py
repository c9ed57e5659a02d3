"""One cell of a grid: a system, an estimator and its run settings; run and scored.

``validation_cells`` builds the cells of ``lyapbench validate`` and ``compare``
(the run lengths come from :func:`validation_settings`); ``run_cell`` runs
one ``estimate`` call, scores it (exponent rows and invariant rows) and turns
an exception into an ``error``, ``not applicable`` or ``not installed`` row.
"""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from reference_systems import System
from suite import estimators as est_registry
from suite.core.devices import resolve_device, resolve_dtype, synchronize
from suite.core.errors import InvalidArgumentError, LyapbenchError, NotApplicableError, NotInstalledError
from suite.core.result import LyapunovResult
from suite.scoring.invariants import invariant_rows
from suite.scoring.rows import failure, score

#: innermost frames of a traceback kept in an error row's message (the grid's own frames left out)
TRACEBACK_FRAMES = 6


@dataclass
class Cell:
    system: System
    estimator_name: str
    estimator: Any
    settings: Dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.system.label} x {self.estimator_name}"


def validation_settings(system: System, quick: bool = False) -> Dict[str, int]:
    """Steps, transient and batch for validating ``system``.

    From ``system.meta['validation']`` where the system states them, else by
    kind: maps 5,000 steps after a 500-step transient, batch 64 (a wide batch
    is nearly free, a long loop is not); flows T = 200 time units after 20,
    batch 16.  ``quick`` divides the measured steps by 10 (at least 200; tolerances
    widen accordingly: they are derived from the run) and keeps the transient: it is
    what the system needs to reach its attractor and align the frame, the premise of
    the finite-time bias bound b / T (a rate network on a slowly attracting limit
    cycle, 2 of its 20 time units, failed 6 of 32 exponents by up to 7 nats / T).
    Not for a system with ``meta['fixed_horizon']`` (a training map, whose reference
    is the finite-time exponent of one stated horizon): it runs as stated,
    since a shorter run has no reference and a smaller batch (a few
    trajectories, a Student-t quantile in the hundreds) a tolerance that
    cannot fail.
    """
    if system.kind == "flow":
        s = {"steps": math.ceil(200 / system.dt), "transient": math.ceil(20 / system.dt), "batch": 16}
    else:
        s = {"steps": 5_000, "transient": 500, "batch": 64}
    caps = system.capabilities
    s.update(caps.validation or {})
    # a system's own k (the leading exponents its reference covers) is a default: an estimator that
    # gives the largest exponent only runs with k = None instead of refusing (see run_cell)
    s["k_is_default"] = "k" in (caps.validation or {})
    if quick and not caps.fixed_horizon:
        s["steps"] = max(200, s["steps"] // 10)
    return s


def with_default_k(settings: Dict[str, Any], call: Callable[[Optional[int]], Any]) -> Any:
    """``call(k)`` with the cell's k; where that k is only the system's default (``k_is_default``)
    and the estimator refuses it (it gives the largest exponent only), ``call(None)``."""
    try:
        return call(settings.get("k"))
    except InvalidArgumentError as exc:
        if not (exc.argument == "k" and settings.get("k_is_default")):
            raise
        return call(None)


def is_plugin(estimator: Any) -> bool:
    """True for an estimator defined outside lyapbench (``module:attr``, an entry point, a registered class)."""
    return not type(estimator).__module__.split(".")[0] == "suite"


def traceback_text(exc: BaseException, limit: int = TRACEBACK_FRAMES) -> str:
    """The innermost ``limit`` frames of ``exc``'s traceback, this module's frames (the cell's call) left out."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    shown = frames[-limit:]
    head = ("Traceback (most recent call last):" if len(shown) == len(frames) else
            f"Traceback (most recent call last; the innermost {len(shown)} of {len(frames)} frames):")
    return "\n".join([head] + [f'  File "{f.filename}", line {f.lineno}, in {f.name}'
                               + (f"\n    {f.line.strip()}" if f.line else "") for f in shown])


def fill_meta(result: LyapunovResult, system: System, settings: Dict[str, Any], device, dtype) -> None:
    """Fill in what the cell asked for where the result's ``meta`` does not say (a plug-in need not):
    steps, transient, T (= steps * dt), batch, seed, device and dtype; what the estimator stated is kept."""
    asked = {"steps": settings["steps"], "transient": settings["transient"], "batch": settings["batch"],
             "seed": settings.get("seed", 0), "device": str(device), "dtype": str(dtype).replace("torch.", "")}
    if "T" not in result.meta:
        asked["T"] = result.meta.get("steps", settings["steps"]) * system.dt
    for key, value in asked.items():
        result.meta.setdefault(key, value)


def run_cell(cell: Cell, keep_result: bool = False):
    """Run, score and check one cell; returns its rows (and the LyapunovResult if asked).

    The estimator is called with ``device`` a ``torch.device``, ``dtype`` a ``torch.dtype`` and ``seed`` an
    int, whatever form the cell's settings hold them in (the rows show them as 'cpu', 'float64').  An
    exception becomes one row; its message is ``Type: message``, followed by the innermost frames of the
    traceback where the exception is not one of lyapbench's own errors or the estimator is a plug-in.
    What a plug-in's result does not state is filled in from the cell (:func:`fill_meta`; a ``wall_seconds``
    of 0, the call's time).
    """
    s = cell.settings
    res = None
    try:
        device, dtype = resolve_device(s.get("device", "cpu")), resolve_dtype(s.get("dtype", "float64"))

        def estimate(k):
            return cell.estimator.estimate(cell.system, s["steps"], transient=s["transient"], batch=s["batch"],
                                           k=k, seed=int(s.get("seed", 0)), device=device, dtype=dtype)
        t0 = time.perf_counter()
        res = with_default_k(s, estimate)
        if not isinstance(res, LyapunovResult):
            raise TypeError(f"estimate returned {type(res).__name__}, not a suite.core.result.LyapunovResult")
        if not res.wall_seconds:  # a plug-in that does not time itself: the call's time
            synchronize(device)
            res.wall_seconds = time.perf_counter() - t0
        fill_meta(res, cell.system, s, device, dtype)
    except NotInstalledError as exc:
        res, rows = None, failure(cell.system, cell.estimator_name, s, exc, status="not installed")
    except NotApplicableError as exc:
        res, rows = None, failure(cell.system, cell.estimator_name, s, exc, status="not applicable")
    except Exception as exc:  # noqa: BLE001 - a failing cell is recorded, the grid goes on
        trace = is_plugin(cell.estimator) or not isinstance(exc, LyapbenchError)
        res, rows = None, failure(cell.system, cell.estimator_name, s, exc,
                                  detail=traceback_text(exc) if trace else None)
    else:
        rows = score(cell.system, cell.estimator_name, res)
        try:
            rows += invariant_rows(cell.system, cell.estimator_name, res, s)
        except Exception as exc:  # noqa: BLE001
            rows += failure(cell.system, cell.estimator_name, s, exc)
    return (rows, res) if keep_result else rows


def validation_cells(systems: Sequence[System], estimator_names: Sequence[str], *, quick: bool = False,
                     seed: int = 0, device: str = "cpu", dtype: str = "float64") -> List[Cell]:
    cells = []
    for name in estimator_names:
        est = est_registry.from_spec(name)
        shown = est_registry.label(est) if ":" in name and "(" not in name else name
        for system in systems:
            settings = dict(validation_settings(system, quick), seed=seed, device=device, dtype=dtype)
            if callable(getattr(est, "run_settings", None)):  # an estimator that needs other run lengths
                settings.update(est.run_settings(system, quick))
            cells.append(Cell(system, shown, est, settings))
    return cells
