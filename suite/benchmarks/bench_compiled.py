"""Compiled units against eager steps, and lyapax where installed, side by side (issue 23's pairs).

Class ``CompiledUnits``: ``track_seconds_per_step`` of ``estimate(system, steps, transient=0, batch=B)``
less its one-off recording or compilation (``suite.studies.throughput.timed_seconds``), after a warm-up
run that compiles (inductor's units; lyapax's scan for this run length).  Parameters: the system
(``lorenz63``, ``lorenz63_autodiff``: the same flow without its Jacobian), the contender
(``qr`` and ``two_trajectory``, each with ``capture='none'`` and ``'compile'``; ``lyapax_spectrum``: one
trajectory a call, B = 1 only) and B (1 and the profile's largest batch).  The ratio of two contenders in one ``asv run`` is the
speed-up; ``python -m suite.studies.compiled`` writes the same comparison as a table.
"""
from __future__ import annotations

import reference_systems as rs
from suite.benchmarks import PROFILE, ThreadsMixin, build_estimator
from suite.core.errors import NotInstalledError
from suite.studies.compiled import lorenz63_autodiff
from suite.studies.throughput import timed_seconds

#: steps of a timed run, (profile, one trajectory or a batch) -> (eager, compiled or lyapax): at B = 1 an eager step
#: costs 30-40x a compiled one
STEPS = {("quick", True): (200, 5_000), ("quick", False): (20, 400),
         ("full", True): (2_000, 100_000), ("full", False): (200, 4_000)}


class CompiledUnits(ThreadsMixin):
    params = [["lorenz63", "lorenz63_autodiff"],
              ["qr(capture='none')", "qr(capture='compile')", "two_trajectory(capture='none')",
               "two_trajectory(capture='compile')", "lyapax_spectrum"],
              [1, max(PROFILE.batches)]]
    param_names = ["system", "contender", "batch"]
    timeout = max(PROFILE.timeout, 600.0)

    def setup(self, system, contender, batch):
        if contender == "lyapax_spectrum" and batch != 1:
            raise NotImplementedError("lyapax runs one trajectory a call")
        self.system = rs.get("lorenz63") if system == "lorenz63" else lorenz63_autodiff()
        self.est = build_estimator(contender, self.system)
        eager, fast = STEPS[(PROFILE.name, batch == 1)]
        self.steps = eager if "none" in contender else fast
        self._set_threads()
        try:
            self._run(batch)  # warm-up: compiles
        except NotInstalledError as exc:
            raise NotImplementedError(str(exc)) from exc

    def _run(self, batch):
        return self.est.estimate(self.system, self.steps, transient=0, batch=batch, seed=0)

    def track_seconds_per_step(self, system, contender, batch):
        return timed_seconds(self._run(batch)) / self.steps

    track_seconds_per_step.unit = "seconds"
