"""Accuracy history: |lambda_1 - reference| (nats) at fixed settings and seed 0.

Benchmark ``AbsErrorLambda1.track_abs_error_lambda1`` (unit "nats"; asv counts lower
as better): the absolute error of the largest exponent of
``est.estimate(system, steps, transient=..., batch=B, seed=0)`` against the
system's reference value, on

* henon (a=1.4, b=0.3): lambda_1 = 0.41922 (literature),
* lorenz63 (sigma=10, rho=28, beta=8/3, dt=0.01): 0.9056 per unit time (literature),
* logistic (r=4): ln 2 (exact),
* gaussian_products (N=8): 0.97463 (exact).

The run is deterministic given the seed (on a given device and torch build), so a
change in the tracked value is a change in what an estimator computes, and a rise is
an accuracy regression; the value is dominated by the finite run's statistical
error, not by the tolerance ``lyapbench validate`` applies.

Profile (``LYAPBENCH_ASV_PROFILE``): ``quick`` (default) 400 steps after 100, batch
16, estimators qr and two_trajectory (qr(reorth_every=10) and jvp_qr compute the same
exponents as qr to round-off); ``full`` 20,000 steps after 1,000, batch 64, every
estimator.  See ``suite/benchmarks/__init__.py``.
"""
from __future__ import annotations

from suite.benchmarks import PROFILE, ThreadsMixin, build_estimator, device, parse_spec, rs

SYSTEMS = ["henon", "lorenz63", "logistic(r=4)", "gaussian_products(N=8)"]


class AbsErrorLambda1(ThreadsMixin):
    params = [SYSTEMS, list(PROFILE.acc_estimators)]
    param_names = ["system", "estimator"]
    timeout = PROFILE.timeout
    rounds = 1  # deterministic: one run is the value

    def setup(self, system, estimator):
        name, params = parse_spec(system, "system")
        self.system = rs.get(name, **(params or {}))
        self.est = build_estimator(estimator, self.system)
        self.device = device()
        self._set_threads()

    def track_abs_error_lambda1(self, system, estimator):
        res = self.est.estimate(self.system, PROFILE.acc_steps, transient=PROFILE.acc_transient,
                                batch=PROFILE.acc_batch, seed=0, device=self.device)
        return float(abs(res.exponents[0] - self.system.reference.values[0]))

    track_abs_error_lambda1.unit = "nats"
