"""lyapbench: a benchmark suite for Lyapunov-exponent estimators.

Subpackages are imported on demand: ``suite.estimators``, ``suite.tolerance``,
``suite.scoring``, ``suite.tables``, ``suite.runner``, ``suite.cli``.
"""
__version__ = "0.1.0"
