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

plus the estimator's own stated systematic-error bound where it gives one
(``result.meta['method_bias']``, per exponent: the time-series estimators
state how far their fitted slope moves over the admissible fit regions; the
Benettin estimators state none, i.e. 0), and a floating-point round-off bound (:func:`roundoff`), which matters only
for exactly-known quantities estimated with zero spread (tent map, sum rules).

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


def roundoff(dtype, scale: float, n: int, dt: float = 1.0, steps: int = 0) -> float:
    """Floating-point bound for a quantity that should hold exactly (sum rule, ln mu).

    Each renormalisation computes ln R_ii of a frame whose entries are O(1)
    with a backward-stable QR: an error of O(d eps) per step, i.e. O(d eps / dt)
    per unit time, on top of O(eps) relative to the exponents' scale; and the
    float64 running sums over ``steps`` renormalisations add up to
    steps * eps64 relative error (naive summation).  Bound:
    100 n eps (scale + 1/dt) + n steps eps64 scale, the factor 100 a safety
    margin over the Householder backward-error constant.
    """
    eps = float(np.finfo(np.float32 if str(dtype).endswith("float32") else np.float64).eps)
    eps64 = float(np.finfo(np.float64).eps)
    return 100.0 * n * eps * (scale + 1.0 / dt) + n * steps * eps64 * scale


RULE = ("tolerance = reference uncertainty + t(1 - 1e-4/2, dof) * stderr + bias_nats / T + method_bias + round-off  "
        "(method_bias: the estimator's stated systematic bound, 0 for tangent/two-trajectory methods; bias_nats = 1 nat unless the reference states its own)")
