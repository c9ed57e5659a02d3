"""Convergence in T: the bias/noise fit and T_eps on curves with known terms, and on Gaussian products."""
import math

import numpy as np
import pytest
from scipy.special import polygamma

import reference_systems as rs
from suite import estimators
from suite.scoring.convergence import fit_bias_noise, t_epsilon
from suite.core.errors import InvalidArgumentError

T = np.unique(np.geomspace(10, 1e5, 60).round())


def test_fit_recovers_known_terms_exactly_without_noise():
    fit = fit_bias_noise(T, 2.0 / T, 0.5 / np.sqrt(T))
    assert fit.bias == pytest.approx(2.0, rel=1e-9) and fit.noise == pytest.approx(0.5, rel=1e-12)
    assert fit.noise_stderr < 1e-12 and fit.n_points == T.size


def test_fit_on_a_simulated_running_mean():
    """A running mean of white noise (sd 0.5 per step, 400 trajectories) plus a bias 2/T: both terms within 4 se."""
    rng = np.random.default_rng(0)
    B, steps, a, sd = 400, int(T[-1]), 2.0, 0.5
    xi = rng.normal(0.0, sd, size=(steps, B)).cumsum(axis=0)[T.astype(int) - 1] / T[:, None]
    running = xi + a / T[:, None]
    err, se = running.mean(1), running.std(1, ddof=1) / math.sqrt(B)
    fit = fit_bias_noise(T, err, se)
    assert abs(fit.bias - a) < 4 * fit.bias_stderr
    assert abs(fit.noise - sd / math.sqrt(B)) < 4 / math.sqrt(2 * (B - 1)) * sd / math.sqrt(B)


def test_t_epsilon_on_a_known_curve():
    """|a/T| + 2 c/sqrt(T) < eps from T* = 1/u^2, u the positive root of a u^2 + 2 c u - eps = 0."""
    a, c, eps = 1.0, 0.3, 0.01
    u = (-2 * c + math.sqrt(4 * c * c + 4 * a * eps)) / (2 * a)
    expected = T[T > 1 / u ** 2][0]
    assert t_epsilon(T, a / T, c / np.sqrt(T), eps) == expected
    assert t_epsilon(T, a / T, c / np.sqrt(T), 1e-4) is None          # not reached within the run
    bumpy = a / T + np.where(T == expected, 1.0, 0.0)                  # an excursion pushes T_eps past it
    assert t_epsilon(T, bumpy, c / np.sqrt(T), eps) > expected
    with pytest.raises(InvalidArgumentError, match="eps"):
        t_epsilon(T, a / T, c / np.sqrt(T), 0)
    with pytest.raises(InvalidArgumentError, match="increasing"):
        t_epsilon(T[::-1], a / T, c / np.sqrt(T), eps)


def test_noise_term_on_gaussian_products_is_newmans_variance():
    """QR on products of 4 x 4 Gaussian matrices: stderr(T) = sqrt(psi'((N-i+1)/2) / (4 B T)) exactly, no bias.

    The fitted noise amplitude must match within 4 relative standard errors of a stderr
    from B trajectories, 4 / sqrt(2 (B - 1)); the bias must be 0 within 4 of its stderr.
    """
    N, B = 4, 1024
    system = rs.get("gaussian_products", N=N)
    res = estimators.get("qr").estimate(system, 4000, batch=B, seed=3)
    se = res.meta["history_stderr"]
    assert se.shape == res.history.shape
    for i in range(N):
        fit = fit_bias_noise(res.times, res.history[:, i] - system.reference.values[i], se[:, i])
        exact = math.sqrt(polygamma(1, (N - i) / 2) / (4 * B))
        assert abs(fit.noise / exact - 1) < 4 / math.sqrt(2 * (B - 1)), (i, fit.noise, exact)
        assert abs(fit.bias) < 4 * fit.bias_stderr, (i, fit)


def test_convergence_command_writes_tables_and_figures(tmp_path):
    from suite import cli
    import pandas as pd
    code = cli.main(["convergence", "--systems", "gaussian_products(N=4)", "--estimators", "qr", "--steps", "400",
                     "--batch", "32", "--seeds", "0,1", "--quiet", "--output-dir", str(tmp_path)])
    assert code == 0
    curves = pd.read_csv(tmp_path / "convergence.csv")
    assert set(curves.seed) == {0, 1} and set(curves["index"]) == {1, 2, 3}
    assert np.allclose(curves.error, curves.estimate - curves.reference)
    md = (tmp_path / "convergence.md").read_text()
    assert md.count("| ok |") == 6
    assert (tmp_path / "figures" / "convergence_gaussian_products_N_4__sigma_1.png").stat().st_size > 10_000
    assert cli.main(["convergence", "--systems", "henon", "--estimators", "qr", "--steps", "400", "--batch", "1",
                     "--quiet", "--output-dir", str(tmp_path)]) == 0
    assert "no stderr history" in (tmp_path / "convergence.md").read_text()
