"""Running a grid of (system, estimator) cells and keeping every finished one.

Owns the cell (:mod:`~.cells`: run one estimate and score it), the runner
that writes tables after each cell (:mod:`~.runner`), where cells run
(:mod:`~.executors`: in-process or on Dask), the journal that lets a grid
resume (:mod:`~.journal`) and the systems a command line selects
(:mod:`~.selection`).  May import everything below it: ``suite.core``,
systems, tasks, estimators, peers, scoring and reporting.
"""
