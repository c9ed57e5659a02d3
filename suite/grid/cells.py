"""One cell of a grid: a system, an estimator and its run settings; run and scored.

``validation_cells`` builds the cells of ``lyapbench validate`` and ``compare``
(the run lengths come from :func:`validation_settings`); ``run_cell`` runs
one ``estimate`` call, scores it (exponent rows and invariant rows) and turns
an exception into an ``error``, ``not applicable`` or ``not installed`` row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from reference_systems import System
from suite import estimators as est_registry
from suite.core.errors import InvalidArgumentError, NotApplicableError, NotInstalledError
from suite.scoring.invariants import invariant_rows
from suite.scoring.rows import failure, score


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
    batch 16.  ``quick`` divides steps and transient by 10
    (tolerances widen accordingly: they are derived from the run), except for
    a system with ``meta['fixed_horizon']`` (a training map, whose reference
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
        s["transient"] = s["transient"] // 10
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


def run_cell(cell: Cell, keep_result: bool = False):
    """Run, score and check one cell; returns its rows (and the LyapunovResult if asked)."""
    s = cell.settings
    res = None

    def estimate(k):
        return cell.estimator.estimate(cell.system, s["steps"], transient=s["transient"], batch=s["batch"],
                                       k=k, seed=s.get("seed", 0), device=s.get("device", "cpu"),
                                       dtype=s.get("dtype", torch.float64))
    try:
        res = with_default_k(s, estimate)
    except NotInstalledError as exc:
        rows = failure(cell.system, cell.estimator_name, s, exc, status="not installed")
    except NotApplicableError as exc:
        rows = failure(cell.system, cell.estimator_name, s, exc, status="not applicable")
    except Exception as exc:  # noqa: BLE001 - a failing cell is recorded, the grid goes on
        rows = failure(cell.system, cell.estimator_name, s, exc)
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
