"""The foundation every other part of lyapbench stands on.

Owns the error types (:mod:`~suite.core.errors`), the one registry mechanism
(:mod:`~suite.core.registry`), the result every estimator returns
(:mod:`~suite.core.result`), device and dtype resolution
(:mod:`~suite.core.devices`), argument checks (:mod:`~suite.core.args`),
provenance of a row (:mod:`~suite.core.provenance`) and command-line specs
(:mod:`~suite.core.specs`).  It imports nothing of lyapbench's own; it is the
only part of ``suite`` that ``reference_systems`` and ``tasks`` may import.
"""
