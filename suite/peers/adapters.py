"""The adapter classes, in the order they are registered (see suite/estimators/__init__.py)."""
from __future__ import annotations

from suite.peers.dysts_adapter import DystsLyapunov
from suite.peers.jitcode_adapter import JitcodeLyap
from suite.peers.lyapax_adapter import LyapaxSpectrum
from suite.peers.lyapynov_adapter import LyapynovLCE
from suite.peers.neurokit2_adapter import NeuroKit2Lyapunov
from suite.peers.nolds_adapter import NoldsLyapE, NoldsLyapR

ADAPTERS = (NoldsLyapR, NoldsLyapE, NeuroKit2Lyapunov, LyapynovLCE, JitcodeLyap, DystsLyapunov, LyapaxSpectrum)
