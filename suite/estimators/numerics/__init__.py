"""The numerical building blocks of the estimators.

Owns the QR step and its variants (:mod:`~.linalg`), the choice of the
re-orthonormalisation interval (:mod:`~.reorth`), the recorded and replayed
tangent step (:mod:`~.capture`), control variates for the boundary term
(:mod:`~.control_variates`), delay embedding and neighbours
(:mod:`~.embedding`) and the fit of divergence curves (:mod:`~.divergence`).
May import ``suite.core`` and ``reference_systems``, never an estimator.
"""
