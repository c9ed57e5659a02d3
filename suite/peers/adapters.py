"""The adapter classes, in the order they are registered (see suite/estimators/__init__.py)."""
from __future__ import annotations

from .dysts_adapter import DystsLyapunov
from .jitcode_adapter import JitcodeLyap
from .lyapynov_adapter import LyapynovLCE
from .neurokit2_adapter import NeuroKit2Lyapunov
from .nolds_adapter import NoldsLyapE, NoldsLyapR

ADAPTERS = (NoldsLyapR, NoldsLyapE, NeuroKit2Lyapunov, LyapynovLCE, JitcodeLyap, DystsLyapunov)
