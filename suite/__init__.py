"""lyapbench: a benchmark suite for Lyapunov-exponent estimators.

The packages follow the flow of data, and each imports only those before it
(``docs/architecture.md``; ``tests/test_architecture.py`` checks it):

    suite.core        errors, registry, result, devices, argument checks, provenance, specs
    reference_systems systems with known exponents          tasks   network scenarios as systems
    suite.estimators  qr, jvp_qr, two_trajectory, time-series estimators; numerics/
    suite.peers       adapters that run other LE libraries as estimators
    suite.scoring     tolerance, rows, invariants, convergence, compare, checks
    suite.reporting   tables, plots, reports
    suite.grid        cells, runner, executors, journal, system selection
    suite.studies     throughput, race, regress, task references
    suite.cli         one module per ``lyapbench`` command;  suite.benchmarks: asv

Modules that moved in the reorganisation stay importable under their old
names (``suite.errors``, ``suite.runner``, ...; :data:`MOVED`): the old name is
the same module object, so ``isinstance`` and monkeypatching see one module.
``suite.checks`` is the public name of :mod:`suite.scoring.checks`;
``suite.estimate_to_accuracy`` (:mod:`suite.studies.accuracy`) is an attribute of
the top-level package (:data:`PUBLIC`).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

#: old module path -> where it lives now
MOVED = {
    "suite.errors": "suite.core.errors",
    "suite.registry": "suite.core.registry",
    "suite.result": "suite.core.result",
    "suite.provenance": "suite.core.provenance",
    "suite.specs": "suite.core.specs",
    "suite.plugins": "suite.grid.selection",
    "suite.linalg": "suite.estimators.numerics.linalg",
    "suite.embedding": "suite.estimators.numerics.embedding",
    "suite.divergence": "suite.estimators.numerics.divergence",
    "suite.series": "suite.estimators.series",
    "suite.estimators.reorth": "suite.estimators.numerics.reorth",
    "suite.estimators.capture": "suite.estimators.numerics.capture",
    "suite.estimators.control_variates": "suite.estimators.numerics.control_variates",
    "suite.tolerance": "suite.scoring.tolerance",
    "suite.invariants": "suite.scoring.invariants",
    "suite.convergence": "suite.scoring.convergence",
    "suite.compare": "suite.scoring.compare",
    "suite.checks": "suite.scoring.checks",
    "suite.features": "suite.studies.features",
    "suite.runner": "suite.grid.runner",
    "suite.executors": "suite.grid.executors",
    "suite.journal": "suite.grid.journal",
    "suite.throughput": "suite.studies.throughput",
    "suite.race": "suite.studies.race",
    "suite.regress": "suite.studies.regress",
    "suite.task_references": "suite.studies.task_references",
    "suite.tables": "suite.reporting.tables",
    "suite.plots": "suite.reporting.plots",
    "suite.report": "suite.reporting.report",
    "suite.task_report": "suite.reporting.task_report",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old module path as the module it moved to (one module object under two names)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        self._spec = module.__spec__  # the import system sets __spec__ to the alias's: put it back
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())

#: public functions of the higher layers, as attributes of ``suite`` (imported on first use, so that
#: ``import suite`` stays light and the layers below never import them)
PUBLIC = {"estimate_to_accuracy": "suite.studies.accuracy"}


def __getattr__(name):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'suite' has no attribute {name!r}")
