"""Computed references: where they live, how they are read, when they are stale.

Where no closed form exists (a trained network, a chaotic random network of
finite size), a reference is *computed* by long runs along independent
routes (:mod:`suite.studies.computed_references`; ``lyapbench references``
for catalogue systems, ``lyapbench tasks reference`` for tasks) and cached as
JSON in ``results/references/<key with '/' as '__'>.json`` (or under
``$LYAPBENCH_REFERENCES``).  Files are written by those commands only.

A record is used only while it still describes the system: its ``spec_key``
equals the system's (a task's definition, a system's label with every
parameter), and its ``probe`` matches :func:`probe` of the freshly built
system within PROBE_RTOL (a few steps of state and tangent from fixed
initial states and noise: a code change that alters the dynamics is caught,
a refactoring is not; 1e-6 relative is far above float64 round-off across
thread counts and far below any real change).  Otherwise the system is built
without it, and its note says why (``missing`` or ``stale: ...``).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from reference_systems.noise import TrajectoryRNG
from reference_systems.reference import Reference
from reference_systems.system import System
from suite.core.errors import InvalidArgumentError

PROBE_RTOL = 1e-6
PROBE_SEED = 20261123
#: fields every record has
REQUIRED = ("key", "spec_key", "probe", "values", "uncertainty", "source")


def references_dir() -> Path:
    """``$LYAPBENCH_REFERENCES`` or the checkout's ``results/references``."""
    env = os.environ.get("LYAPBENCH_REFERENCES")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "results" / "references"


def system_key(system: System) -> str:
    """The record key of a catalogue system: ``systems/`` and its label as a file-name-safe slug."""
    return "systems/" + re.sub(r"[^A-Za-z0-9_.=+-]+", "_", system.label).strip("_")


def reference_path(key: str, directory: Optional[Path] = None) -> Path:
    return Path(directory or references_dir()) / (key.replace("/", "__") + ".json")


@torch.no_grad()
def probe(system: System, steps: int = 8, batch: int = 2, k: int = 3) -> List[float]:
    """Fingerprint of the dynamics: 4 numbers from ``steps`` steps of state and tangent (float64, CPU).

    Initial states and noise come from ``TrajectoryRNG(PROBE_SEED, batch)``; the
    frame starts as the first k unit vectors and is normalised column-wise every
    step.  Returns [sum x, sum x^2, sum V, sum of ln column norms] at the end.
    """
    k = min(k, system.dim)
    rng = TrajectoryRNG(PROBE_SEED, batch)
    x = system.sample_initial(batch, rng).to(torch.float64)
    V = torch.eye(system.dim, k, dtype=torch.float64).expand(batch, -1, -1).contiguous()
    log_norms = torch.zeros((), dtype=torch.float64)
    for _ in range(steps):
        x, V = system.tangent(x, V, rng)
        n = torch.linalg.vector_norm(V, dim=1, keepdim=True)
        log_norms = log_norms + torch.log(n).sum()
        V = V / n
    return [float(x.sum()), float((x * x).sum()), float(V.sum()), float(log_norms)]


def probes_match(a, b, rtol: float = PROBE_RTOL) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= rtol * (1.0 + np.abs(b))))


def read(key: str, directory: Optional[Path] = None, fix: str = "") -> Optional[Dict[str, Any]]:
    """The stored record of ``key`` (None if there is none); a corrupt file raises, saying ``fix``."""
    path = reference_path(key, directory)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError("reference file", str(path), f"a JSON record written by lyapbench; this one "
                                   f"is unreadable or corrupt ({exc}): {fix}") from exc
    if isinstance(record, dict) and "key" not in record and "task" in record:
        record["key"] = record["task"]  # task records name their key 'task'
    for field in REQUIRED:
        if not isinstance(record, dict) or field not in record:
            raise InvalidArgumentError("reference file", str(path), f"a record with the field {field!r} (it is "
                                       f"missing: the file is corrupt): {fix}")
    return record


def status(record: Optional[Dict[str, Any]], key: str, spec_key: str, system: System,
           changed: str = "the system's definition changed") -> str:
    """'fresh', 'missing', or 'stale: <why>' for ``record`` against the built ``system``."""
    if record is None:
        return "missing"
    if record["key"] != key or record["spec_key"] != spec_key:
        return f"stale: {changed}"
    now = probe(system)
    if not probes_match(now, record["probe"]):
        return (f"stale: the dynamics changed (probe {np.round(now, 9).tolist()} != stored "
                f"{np.round(record['probe'], 9).tolist()})")
    return "fresh"


def to_reference(record: Dict[str, Any]) -> Reference:
    return Reference.make(record["values"], record["uncertainty"], "computed", record["source"],
                          bias_nats=float(record.get("bias_nats", 1.0)), note=record.get("note", ""),
                          extra={k: record[k] for k in ("git_sha", "created", "estimator", "confirmation", "routes")
                                 if k in record})


def attach_to_system(system: System, directory: Optional[Path] = None) -> str:
    """Give a catalogue ``system`` (one that declares ``reference_run``) its computed reference if a fresh
    one exists, keeping the reference it was built with (e.g. a mean-field value) in
    ``meta['limit_reference']``; returns the status ('fresh', 'missing', 'stale: ...')."""
    key = system_key(system)
    record = read(key, directory, fix=f"regenerate it with `lyapbench references --systems '{system.label}' --force`")
    st = status(record, key, system.label, system)
    system.meta["reference_status"] = st
    if st == "fresh":
        system.meta["limit_reference"] = system.reference
        system.reference = to_reference(record)
    else:
        hint = f"`lyapbench references --systems '{system.label}'`"
        system.declare(note=(system.capabilities.note + "; " if system.capabilities.note else "")
                       + f"no computed reference for this finite system ({st}); compute it with {hint}")
    return st
