"""A grid's journal: each finished cell saved at once, so an interrupted grid resumes where it stopped.

Layout: ``<output-dir>/.journal/<table stem>/`` holds one JSON file per finished
cell, named by the cell's key (:func:`cell_key`: a SHA-256 of what defines the
cell: the system's label, kind, dimension, dt and parameters, the estimator as
named, and the run settings, seed included).  Each file is written atomically
(a temporary file, then a rename), so a process killed at any moment (SIGKILL
included) loses at most the cell in flight: a half-written cell leaves no
file.

With ``--resume`` a cell whose file exists is not run again: its stored rows
and result are handed to the same callbacks as a fresh cell's, so the final
tables equal an uninterrupted run's (wall times are the ones recorded when the
cell ran).  Without ``--resume`` a grid starts a new journal.  A cell whose
definition changed (other steps, seed, estimator hyperparameters) has another
key and runs again.  A journal file that cannot be read (a disk error, an edit)
is reported and its cell re-run, never trusted.

Floats round-trip exactly (JSON writes the shortest repr); numpy arrays are
stored as nested lists with their dtype.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

from suite.core.errors import InvalidArgumentError
from suite.core.result import LyapunovResult
from suite.reporting.tables import atomic_write


def _default(obj):
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "detach"):  # a torch tensor (a system parameter such as linear_map's A)
        return obj.detach().cpu().numpy()
    return {"__repr__": repr(obj)}  # torch dtypes and devices in meta: kept as their text


def _hook(obj):
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    if set(obj) == {"__repr__"}:
        return obj["__repr__"]
    return obj


def dumps(payload: Any) -> str:
    return json.dumps(payload, default=_default, sort_keys=True)


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_hook)


def key_of(definition: Any) -> str:
    """SHA-256 (32 hex digits) of a JSON-able definition."""
    return hashlib.sha256(dumps(definition).encode()).hexdigest()[:32]


def cell_key(system, estimator_name: str, settings: Dict[str, Any], extra: str = "") -> str:
    """SHA-256 of the cell's definition (see the module docstring)."""
    definition = {"system": system.label, "kind": system.kind, "dim": system.dim, "dt": system.dt,
                  "params": system.params,
                  "task": spec.key() if (spec := system.meta.get("task_spec")) is not None else None,
                  "estimator": estimator_name, "settings": settings, "extra": extra}
    return key_of(definition)


def encode_result(res) -> Optional[Dict[str, Any]]:
    if res is None:
        return None
    return {k: getattr(res, k) for k in ("exponents", "stderr", "per_trajectory", "history", "times",
                                         "wall_seconds", "meta")}


def decode_result(data: Optional[Dict[str, Any]]):
    if data is None:
        return None
    return LyapunovResult(**data)


class Journal:
    """One grid's finished cells, keyed by :func:`cell_key`; ``resume=False`` starts afresh."""

    def __init__(self, directory: Path, resume: bool = False, warn=sys.stderr):
        self.directory = Path(directory)
        self.warn = warn
        try:
            if not resume and self.directory.exists():
                shutil.rmtree(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgumentError("output directory", str(self.directory.parent.parent),
                                       f"a writable directory ({exc.strerror})") from exc
        self.resumed = 0

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> Optional[Any]:
        """The stored payload, or None (not finished, or unreadable: then reported and re-run)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            payload = loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            if self.warn is not None:
                print(f"journal: {path} is unreadable ({exc}); its cell runs again", file=self.warn)
            return None
        self.resumed += 1
        return payload

    def put(self, key: str, payload: Any) -> None:
        atomic_write(self._path(key), dumps(payload))

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """The stored payload for ``key``, else ``compute()``, stored before it is returned."""
        payload = self.get(key)
        if payload is None:
            payload = compute()
            self.put(key, payload)
        return payload


def journal_for(output_dir: Optional[Path], stem: str, resume: bool) -> Optional[Journal]:
    """The journal of table ``stem`` under ``output_dir`` (None when nothing is written)."""
    if output_dir is None:
        return None
    return Journal(Path(output_dir) / ".journal" / stem, resume=resume)
