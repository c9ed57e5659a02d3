"""The race's lyapbench configuration (suite/studies/race.py) over commits: its time and its error.

``lyapbench race`` times lyapbench's fastest Lorenz-63 configuration against jitcode
and lyapynov once; this keeps that configuration's history, so that a commit that
slows it down or costs it accuracy shows.  Class ``RaceLorenz63`` (asv counts lower
as better for both):

``time_estimate``               wall time of one ``estimate`` call of the race's
                                configuration at its first T (seed 0);
``track_worst_error_plus_2se``  the race's criterion for that run, max over the
                                three exponents of |lambda_i - reference_i| + 2
                                stderr_i (unit "nats"; the race needs <= 2e-3);
                                deterministic given the seed, so any change is real.

The configuration comes from ``suite.studies.race.CONTENDERS['lyapbench']`` (one place).
Profile (``LYAPBENCH_ASV_PROFILE``): ``full``, the race's own run (4,096 trajectories
of T = 12.5 after the 20-unit transient, some 3-5 s on 2 CPU cores); ``quick``, the
same estimator at 600 trajectories (control variates need 560 on Lorenz-63), T = 2.5
after 2 time units, with the taper and the alignment scaled to 50 and 100 steps: a
smoke check of the path well under a second, its error far above the race's eps.
"""
from __future__ import annotations

from suite.benchmarks import PROFILE, ThreadsMixin, device, estimators, parse_spec, rs
from suite.studies.race import CONTENDERS, TRANSIENT_TIME

QUICK_RUN = {"batch": 600, "T": 2.5, "transient_time": 2.0, "taper": 50, "align": 100}


def race_run():
    """(estimator, system, steps, transient, batch) of the race's lyapbench run in this profile."""
    spec = CONTENDERS["lyapbench"]
    system = rs.get("lorenz63")
    name, params = parse_spec(spec["config"], "estimator")
    params = dict(params or {})
    if PROFILE.name == "full":
        batch, T, transient_time = spec["batch"], spec["T0"], TRANSIENT_TIME
    else:
        batch, T, transient_time = QUICK_RUN["batch"], QUICK_RUN["T"], QUICK_RUN["transient_time"]
        params.update(taper=QUICK_RUN["taper"], align=QUICK_RUN["align"])
    est = estimators.get(name, **params)
    return est, system, round(T / system.dt), round(transient_time / system.dt), batch


class RaceLorenz63(ThreadsMixin):
    timeout = PROFILE.timeout
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0.0

    def setup(self):
        self.est, self.system, self.steps, self.transient, self.batch = race_run()
        self.device = device()
        self._set_threads()

    def _estimate(self):
        return self.est.estimate(self.system, self.steps, transient=self.transient, batch=self.batch, seed=0,
                                 device=self.device)

    def time_estimate(self):
        self._estimate()

    def track_worst_error_plus_2se(self):
        res = self._estimate()
        return float(max(abs(res.exponents - self.system.reference.values) + 2 * res.stderr))

    track_worst_error_plus_2se.unit = "nats"
