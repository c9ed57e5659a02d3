"""Studies built from grids: speed, races, regressions over commits, task references.

Owns throughput measurement (:mod:`~.throughput`), the time-to-accuracy race
against peers (:mod:`~.race`), regression checks against a committed
baseline (:mod:`~.regress`), the computed references of tasks
(:mod:`~.task_references`) and spectrum features (:mod:`~.features`).  May
import every package below it; only the CLI and the asv benchmarks import it.
"""
