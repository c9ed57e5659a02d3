"""From a LyapunovResult to judged rows: the referee.

Owns the tolerance rule (:mod:`~.tolerance`, the one place every term is
computed), exponent rows (:mod:`~.rows`), invariant rows such as sum rules and
zero exponents (:mod:`~.invariants`), convergence in T
(:mod:`~.convergence`), the per-cell comparison summary (:mod:`~.compare`)
and the conformance checks any estimator can run (:mod:`~.checks`, public as
``suite.checks``).  May import ``suite.core``, ``reference_systems``,
``tasks`` and ``suite.estimators``; never the grid, reporting or the CLI.
"""
from suite.scoring.rows import COLUMNS, FAILING, base_row, failed, failure, judge, score, summary

__all__ = ["COLUMNS", "FAILING", "base_row", "failed", "failure", "judge", "score", "summary"]
