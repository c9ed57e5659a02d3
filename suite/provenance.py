"""Where a row came from: git commit and library versions."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=None)
def git_sha() -> str:
    """``git describe --always --dirty`` of the lyapbench checkout, else $LYAPBENCH_GIT_SHA, else 'unknown'.

    The variable serves copies of the tree without ``.git`` (a remote GPU
    machine, a container): set it to the commit the copy was made from.
    """
    fallback = os.environ.get("LYAPBENCH_GIT_SHA", "unknown")
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=root,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return fallback
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else fallback
