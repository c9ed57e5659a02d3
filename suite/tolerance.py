"""The one rule that turns an estimate into pass or fail.

For exponent i estimated over time T (steps * dt) with standard error s_i on
nu degrees of freedom, against a reference value with uncertainty u_i:

    tolerance_i = u_i + t_{1 - alpha/2, nu} * s_i + b / T

* u_i            the reference's own uncertainty (0 for exact values);
* t * s_i        the statistical error: Student-t quantile for the
                 stderr's degrees of freedom (B - 1 across trajectories,
                 n_blocks - 1 for batch means), two-sided, with
                 alpha = ALPHA = 1e-4 per row, so an honest estimator fails
                 a row by chance once in 10,000 rows;
* b / T          the finite-time bias bound: a Benettin sum over time T
                 carries an O(1) boundary term (alignment of the initial
                 frame, the state's end points), so its bias is at most
                 b / T with b = ``Reference.bias_nats`` (1 nat unless the
                 reference states otherwise: 0 for Gaussian products, whose
                 QR estimate is exactly unbiased; ln cond(P) for linear maps).

Not included: the O(dt^4) difference between the RK4 map's exponents and the
flow's (for Lorenz-63 at dt = 0.01 the sum of the exponents is off by 1.0e-4,
measured in tests/test_qr_estimator.py; below the reference's 5e-4), and
float32 round-off (validation runs float64 unless told otherwise).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 1e-4


def t_quantile(dof: float) -> float:
    """Two-sided Student-t quantile for ALPHA (normal quantile for dof = inf)."""
    if not dof or dof <= 0:
        return float("inf")
    return float(stats.t.ppf(1.0 - ALPHA / 2.0, dof))


def tolerance(uncertainty, stderr, dof: float, T: float, bias_nats: float = 1.0) -> np.ndarray:
    """tolerance = uncertainty + t_{1-alpha/2, dof} * stderr + bias_nats / T (elementwise)."""
    u = np.asarray(uncertainty, dtype=np.float64)
    s = np.asarray(stderr, dtype=np.float64)
    return u + t_quantile(dof) * s + bias_nats / float(T)


RULE = ("tolerance = reference uncertainty + t(1 - 1e-4/2, dof) * stderr + bias_nats / T  "
        "(bias_nats = 1 nat unless the reference states its own)")
