"""Where a row came from: git commit and library versions."""
from __future__ import annotations

import functools
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from suite import __version__


@functools.lru_cache(maxsize=None)
def git_sha() -> str:
    """``git describe --always`` of the lyapbench checkout, '-dirty' added where a tracked file outside
    ``results/`` differs from the commit; else $LYAPBENCH_GIT_SHA, else 'unknown'.

    ``results/`` is left out of the test because a long run rewrites the tables and records there itself, which
    made every later record of the same run (the dysts references) say '-dirty' of the code that computed it.
    The variable serves copies of the tree without ``.git`` (a remote GPU machine, a container): set it to the
    commit the copy was made from.
    """
    fallback = os.environ.get("LYAPBENCH_GIT_SHA", "unknown")
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "describe", "--always", "--abbrev=12"], cwd=root,
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0 or not out.stdout.strip():
            return fallback
        diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":(exclude)results"], cwd=root,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return fallback
    return out.stdout.strip() + ("-dirty" if diff.returncode == 1 else "")


@functools.lru_cache(maxsize=None)
def commit_time(sha: str) -> Optional[int]:
    """The committer time (Unix seconds) of ``sha`` (a :func:`git_sha` name; '-dirty' is ignored) in the
    lyapbench checkout; None where there is no git, no checkout or no such commit."""
    rev = sha[:-len("-dirty")] if sha.endswith("-dirty") else sha
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._/+-]*", rev or "") or rev == "unknown":
        return None
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "show", "-s", "--format=%ct", f"{rev}^{{commit}}"], cwd=root,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return int(text) if out.returncode == 0 and text.isdigit() else None


PROVENANCE_COLUMNS = ["dtype", "device", "git_sha", "versions"]


def row_provenance(meta) -> dict:
    """The columns that say what produced a row: dtype, device, git commit and library versions
    (a JSON object), from an estimator run's ``meta`` (or a cell's settings)."""
    meta = meta or {}
    versions = meta.get("versions")
    return {"dtype": None if meta.get("dtype") is None else str(meta["dtype"]).replace("torch.", ""),
            "device": None if meta.get("device") is None else str(meta["device"]),
            "git_sha": git_sha(),
            "versions": json.dumps(versions, sort_keys=True) if isinstance(versions, dict) else versions}


def versions() -> Dict[str, str]:
    """Versions of lyapbench, torch, numpy and Python: a result's ``meta['versions']``."""
    return {"lyapbench": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}
