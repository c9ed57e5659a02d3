"""Adapters that run other Lyapunov libraries as lyapbench estimators (the ``peers`` extra).

    pip install lyapbench[peers]
    from suite import estimators
    estimators.get("nolds_lyap_r").estimate(rs.get("henon"), 4000, transient=100, batch=4)

Each adapter is registered in :mod:`suite.estimators` by import path
(``PEER_ADAPTERS``), whether or not its package is installed; the package is imported only inside ``estimate``, and
a missing one raises :class:`~suite.core.errors.NotInstalledError` (status
``not installed`` in a grid).  None runs in the default validation.

======================  =====================================  ===========================================
name                    peer                                   applies to
======================  =====================================  ===========================================
``nolds_lyap_r``        nolds.lyap_r (Rosenstein), lambda_1    any system, through a scalar series
``nolds_lyap_e``        nolds.lyap_e (Eckmann), spectrum       any system, through a scalar series
``neurokit2_lyapunov``  neurokit2.complexity_lyapunov          any system, through a scalar series
``lyapynov_lce``        lyapynov.LCE (QR), spectrum            maps and flows (step / rhs and Jacobian)
``jitcode_lyap``        jitcode.jitcode_lyap (compiled C)      flows with ``meta['symbolic_rhs']``
``dysts_lyapunov``      dysts.analysis.find_lyapunov_exponents flows with a dysts twin (same equations)
``lyapax_spectrum``     lyapax.lyapunov_spectrum (JAX, jit)    flows with ``meta['symbolic_rhs']``
======================  =====================================  ===========================================
"""
from __future__ import annotations

from suite.peers.adapters import (ADAPTERS, DystsLyapunov, JitcodeLyap, LyapaxSpectrum, LyapynovLCE, NeuroKit2Lyapunov,
                                  NoldsLyapE, NoldsLyapR)
from suite.peers.base import PeerError, PeerEstimator, PeerImportError, import_peer

__all__ = ["ADAPTERS", "PeerEstimator", "PeerError", "PeerImportError", "import_peer", "NoldsLyapR", "NoldsLyapE",
           "NeuroKit2Lyapunov", "LyapynovLCE", "JitcodeLyap", "DystsLyapunov", "LyapaxSpectrum"]
