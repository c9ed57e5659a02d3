"""Rows to files a person reads: CSV and Markdown tables, figures, the report.

Owns table writing (:mod:`~.tables`, atomic so an interrupted run keeps what
it wrote), figures (:mod:`~.plots`), the report of a results folder
(:mod:`~.report`) and the task figures (:mod:`~.task_report`).  May import
``suite.core``, ``reference_systems``, ``tasks`` and ``suite.scoring``.
"""
