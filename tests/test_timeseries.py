"""Time-series estimators (Rosenstein, Kantz, Eckmann): recovery, embedding, linear region, errors.

Accuracy is judged by the suite's own rule (suite.scoring.rows.score: reference
uncertainty + t * stderr + 1/T + the estimator's stated method_bias), and the
stated method_bias and the whole tolerance must stay below 10 % of |lambda_1|
and 15 % respectively, so that a biased estimator cannot pass by declaring a
huge systematic error.

Lorenz-63 is observed every 2 RK4 steps (Delta = 0.02 time units), 10000
samples per series (T = 200), 16 series; Henon every step, 5000 samples, 8
series.  The Lorenz series are generated once and shared by the three
estimators (observe is deterministic in its arguments).
"""
import math

import numpy as np
import pytest
import torch

import reference_systems as rs
import suite.estimators.delay as delay_module
from suite.estimators.numerics import divergence
from suite import estimators
from suite.estimators.numerics.embedding import autocorrelation, default_lag, delay_embed, mean_period, neighbours
from suite.core.errors import InvalidArgumentError, SeriesError
from suite.scoring.rows import score

LN_B = math.log(0.3)


@pytest.fixture(scope="module", autouse=True)
def shared_series():
    """Memoise the series generator within this module: the same run arguments give the same series."""
    original = delay_module.observe
    cache = {}

    def cached(system, cfg, n, *, coordinate=0, every=1):
        key = (system.label, cfg, n, coordinate, every)
        if key not in cache:
            cache[key] = original(system, cfg, n, coordinate=coordinate, every=every)
        x, dt = cache[key]
        return x.copy(), dt

    delay_module.observe = cached
    yield
    delay_module.observe = original


HENON = dict(steps=5000, transient=1000, batch=8, seed=0)
LORENZ = dict(steps=10000, transient=1000, batch=16, seed=0)
CASES = [
    ("rosenstein", "henon", {}, HENON),
    ("kantz", "henon", {}, HENON),
    ("eckmann", "henon", {"m": 2, "lag": 1}, HENON),
    ("rosenstein", "lorenz63", {"sample_every": 2}, LORENZ),
    ("kantz", "lorenz63", {"sample_every": 2}, LORENZ),
    ("eckmann", "lorenz63", {"sample_every": 2}, LORENZ),
]


@pytest.mark.parametrize("name,system_name,params,run", CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_recovers_largest_exponent(name, system_name, params, run):
    system = rs.get(system_name)
    est = estimators.get(name, **params)
    res = est.estimate(system, run["steps"], transient=run["transient"], batch=run["batch"], seed=run["seed"])
    row = score(system, name, res)[0]
    lam1 = system.reference.values[0]
    bias = float(np.atleast_1d(res.meta["method_bias"])[0])
    assert row["status"] == "pass", (row, res.meta.get("fit_region_time"), bias)
    assert 0 <= bias < 0.10 * abs(lam1), f"stated method_bias {bias:.4g} is not < 10% of lambda_1"
    assert row["tolerance"] < 0.15 * abs(lam1), f"tolerance {row['tolerance']:.4g} too wide to mean anything"
    # contract: one estimate per series, empty or (n, k) history, T = samples * sample_every * dt
    assert res.per_trajectory.shape[0] == run["batch"] and res.stderr[0] > 0
    assert res.meta["stderr_dof"] == run["batch"] - 1
    assert res.history.shape[1] == res.k and res.times.shape == res.history.shape[:1]
    assert res.meta["T"] == pytest.approx(run["steps"] * params.get("sample_every", 1) * system.dt)
    assert {"m", "lag", "theiler"} <= set(res.meta["embedding"])


def test_eckmann_henon_full_spectrum_from_x_alone():
    """x_{n+1} = 1 - a x_n^2 + b x_{n-1} is an exact 2-D delay map: both exponents, and their sum ln b."""
    system = rs.get("henon")
    res = estimators.get("eckmann", m=2, lag=1).estimate(system, **HENON)
    assert res.k == 2
    rows = score(system, "eckmann", res)
    assert [r["status"] for r in rows] == ["pass", "pass"], rows
    assert np.all(np.asarray(res.meta["method_bias"]) < 0.1 * np.abs(system.reference.values))
    assert abs(res.exponents.sum() - LN_B) < 0.01
    # the local linear model (Eckmann et al.'s original) absorbs the map's curvature into lambda_2
    lin = estimators.get("eckmann", m=2, lag=1, order=1).estimate(system, 2000, transient=500, batch=4)
    assert abs(lin.exponents[0] - 0.41922) < 0.02 and lin.exponents[1] > -1.60


def test_batch_one_stderr_from_blocks():
    res = estimators.get("rosenstein").estimate(rs.get("henon"), 5000, transient=500, batch=1, seed=3)
    assert res.per_trajectory.shape == (1, 1) and res.stderr[0] > 0
    assert res.meta["stderr_method"].startswith("batch means") and res.meta["stderr_dof"] >= 1
    assert row_passes(rs.get("henon"), "rosenstein", res)
    with pytest.raises(InvalidArgumentError) as info:
        estimators.get("rosenstein").estimate(rs.get("henon"), 30, batch=1)
    assert info.value.argument == "steps"


def row_passes(system, name, res):
    return score(system, name, res)[0]["status"] == "pass"


# ---------------------------------------------------------------------------- embedding and neighbours
def test_delay_embedding():
    x = np.arange(10.0)
    Y = delay_embed(x, 3, 2)
    assert Y.shape == (6, 3)
    np.testing.assert_array_equal(Y[0], [0, 2, 4])
    np.testing.assert_array_equal(Y[-1], [5, 7, 9])
    batch = delay_embed(np.stack([x, -x]), 2, 1)
    assert batch.shape == (2, 9, 2) and batch[1, 3, 1] == -4
    with pytest.raises(InvalidArgumentError, match="steps"):
        delay_embed(x, 6, 2)


def test_theiler_window_and_nearest_admissible_neighbours():
    rng = np.random.default_rng(0)
    # a slowly moving point: its temporal neighbours are its nearest ones, which the window must exclude
    t = np.arange(400)
    pts = np.stack([np.sin(0.05 * t), np.cos(0.05 * t)], axis=1) + 0.01 * rng.standard_normal((400, 2))
    w, k = 20, 3
    idx, dist = neighbours(pts, k, w)
    assert np.all(idx >= 0)
    assert np.all(np.abs(idx - t[:, None]) > w)
    # brute force: the k nearest among the admissible points
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    d[np.abs(t[:, None] - t[None]) <= w] = np.inf
    np.testing.assert_allclose(dist, np.sort(d, axis=1)[:, :k])
    # candidates: neighbours must leave room for a future
    idx, _ = neighbours(pts, 1, w, candidates=300)
    assert idx.max() < 300


def test_automatic_lag_and_mean_period():
    t = np.arange(4000)
    x = np.sin(2 * np.pi * t / 100.0)
    assert mean_period(x) == pytest.approx(100.0, rel=0.02)
    acf = autocorrelation(x, 50)
    assert acf[0] == pytest.approx(1.0)
    # cos(2 pi L / 100) < 1 - 1/e first at L = 15
    assert default_lag(x) == 15


# ---------------------------------------------------------------------------- the linear-region rule
def synthetic_curve(slope=0.3, n=100):
    """A divergence curve: a fast initial rise (+1.5 nats, e-folding in 1 sample), a straight part of
    known slope from -14 nats, and a smooth saturation at 0 (softplus), as for a map's neighbours."""
    k = np.arange(n, dtype=float)
    z = -14.0 + slope * k + 1.5 * (1 - np.exp(-k))
    return -np.log1p(np.exp(-z)), 0.0          # = z far below 0, -> 0 at saturation


def test_linear_region_recovers_known_slope():
    curve, ysat = synthetic_curve()
    lo, hi = divergence.linear_region(curve, ysat, 0.01)
    slope = divergence.ols_slope(curve, lo, hi)
    assert lo >= 3, "the initial transient must be left out"
    assert curve[hi] < 0.1 * curve[0] and hi < np.nonzero(curve > -1.0)[0][0], "saturation must be left out"
    assert slope == pytest.approx(0.3, rel=0.01)
    bias = divergence.bias_from_alternatives(divergence.region_alternatives(curve, ysat, 0.01, (lo, hi)))
    assert abs(slope - 0.3) <= bias < 0.05 * 0.3, "the stated bias covers the error and is not vacuous"
    # an exactly straight curve: its slope, zero bias
    line = -8.0 + 0.25 * np.arange(30)
    lo, hi = divergence.linear_region(line, 0.0, 0.01)
    assert (lo, hi) == (0, 29) and divergence.ols_slope(line, lo, hi) == pytest.approx(0.25, abs=1e-12)
    assert divergence.bias_from_alternatives(divergence.region_alternatives(line, 0.0, 0.01, (lo, hi))) < 1e-12


def test_linear_region_bias_grows_with_curvature():
    """A curve bending throughout (no straight part): the stated bias covers the slope's spread."""
    k = np.arange(40, dtype=float)
    curve = -6 + 0.5 * k - 0.004 * k ** 2        # local slope 0.5 -> 0.19
    lo, hi = divergence.linear_region(curve, 5.0, 0.02)
    s = divergence.ols_slope(curve, lo, hi)
    bias = divergence.bias_from_alternatives(divergence.region_alternatives(curve, 5.0, 0.02, (lo, hi)))
    local = 0.5 - 0.008 * np.arange(lo, hi + 1)
    assert bias >= 0.9 * np.max(np.abs(local - s))


def test_linear_region_refuses_flat_or_falling_curves():
    assert divergence.linear_region(np.full(20, -3.0) + 1e-3 * np.arange(20), 0.0, 0.01) is None
    with pytest.raises(SeriesError, match="no room to rise"):
        divergence.linear_region(np.zeros(10), -1.0, 0.01)


# ---------------------------------------------------------------------------- argument checks and data errors
@pytest.mark.parametrize("name,kwargs,argument", [
    ("rosenstein", {"m": 0}, "m"), ("rosenstein", {"m": True}, "m"), ("kantz", {"lag": 0}, "lag"),
    ("eckmann", {"theiler": -1}, "theiler"), ("rosenstein", {"coordinate": -1}, "coordinate"),
    ("kantz", {"sample_every": 0}, "sample_every"), ("rosenstein", {"horizon": 1}, "horizon"),
    ("rosenstein", {"linearity": 0.0}, "linearity"), ("kantz", {"linearity": 0.9}, "linearity"),
    ("kantz", {"n_neighbors": 0}, "n_neighbors"), ("kantz", {"eps": -0.1}, "eps"),
    ("kantz", {"eps": float("nan")}, "eps"), ("eckmann", {"m": 2, "n_neighbors": 5}, "n_neighbors"),
    ("eckmann", {"order": 3}, "order"), ("eckmann", {"evolve": 0}, "evolve"), ("eckmann", {"lag": 1.5}, "lag"),
])
def test_bad_hyperparameters_name_the_argument(name, kwargs, argument):
    with pytest.raises(InvalidArgumentError) as info:
        estimators.get(name, **kwargs)
    assert info.value.argument == argument


def test_bad_run_arguments():
    with pytest.raises(InvalidArgumentError) as info:
        estimators.get("rosenstein", coordinate=2).estimate(rs.get("henon"), 500)
    assert info.value.argument == "coordinate"
    with pytest.raises(InvalidArgumentError) as info:
        estimators.get("kantz").estimate(rs.get("lorenz63"), 500, k=2)  # 1 or None (= dim) only
    assert info.value.argument == "k"


def constant_system():
    return rs.Map("constant", step=lambda x: 0.0 * x + 0.5, dim=1,
                  sample_initial=lambda batch, g: g.uniform(1, low=0.1, high=0.9))


@pytest.mark.parametrize("name", ["rosenstein", "kantz", "eckmann"])
def test_degenerate_series_raise_clear_errors(name):
    est = estimators.get(name)
    with pytest.raises(SeriesError, match="constant"):
        est.estimate(constant_system(), 500, transient=10, batch=2)
    # a stable 3-cycle (logistic r = 3.83): no divergence to fit, never a NaN
    with pytest.raises((SeriesError, InvalidArgumentError)):
        est.estimate(rs.get("logistic", r=3.83), 600, transient=500, batch=2)


def test_registered_but_not_in_default_validation():
    assert {"rosenstein", "kantz", "eckmann"} <= set(estimators.names())
    assert not {"rosenstein", "kantz", "eckmann"} & set(estimators.validation_defaults())
    for name in ("rosenstein", "kantz", "eckmann"):
        assert estimators.get(name).requires == "series"


def test_series_generated_on_device_and_dtype_of_the_run():
    """float32 series are analysed in float64 on CPU; the meta states the run's dtype."""
    res = estimators.get("rosenstein").estimate(rs.get("henon"), 3000, transient=200, batch=4,
                                                dtype=torch.float32)
    assert res.meta["dtype"] == "float32" and res.exponents.dtype == np.float64
    assert abs(res.exponents[0] - 0.41922) < 0.05
