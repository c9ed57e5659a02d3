"""The gradient-descent training map on Iris (tasks.iris_training, built on tasks.training_map)."""
import math

import pytest
import torch

from reference_systems import TrajectoryRNG
from suite import estimators
from suite.core.errors import InvalidArgumentError
from batch_checks import assert_batch_equals_single_runs
from tasks.iris_training import GDTrainingMap, gd_training_map, load_iris, mlp_loss, n_params

QR = estimators.get("qr")


def _fd_tangent(m, x, V, rng_seed=None, counter=0, h=1e-5):
    """Central differences of one step along the columns of V, with the same noise for every evaluation."""
    def F(y):
        g = None
        if rng_seed is not None:
            g = TrajectoryRNG(rng_seed, y.shape[0])
            g.counter = counter
        return m.step(y, g)
    cols = [(F(x + h * V[:, :, j]) - F(x - h * V[:, :, j])) / (2 * h) for j in range(V.shape[2])]
    return torch.stack(cols, dim=2)


def _rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


# ---------------------------------------------------------------------------
# data and network
# ---------------------------------------------------------------------------
def test_iris_is_standardised_and_balanced():
    X, y = load_iris()
    assert X.shape == (150, 4) and X.dtype == torch.float64 and y.dtype == torch.int64
    assert torch.allclose(X.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(X.std(0, unbiased=False), torch.ones(4, dtype=torch.float64), atol=1e-12)
    assert torch.bincount(y).tolist() == [50, 50, 50]
    assert load_iris(torch.float32)[0].dtype == torch.float32


def test_dimension_loss_and_gradient_match_autograd():
    m = gd_training_map(0.5, hidden=10)
    assert m.dim == n_params(10) == 83 and m.kind == "map" and not m.is_random
    x = m.sample_initial(3, TrajectoryRNG(1, 3))
    X, y = load_iris()
    # the batched loss equals a plain per-network evaluation with nn-style layers
    for b in range(3):
        W1, b1 = x[b, :40].reshape(10, 4), x[b, 40:50]
        W2, b2 = x[b, 50:80].reshape(3, 10), x[b, 80:]
        logits = torch.sigmoid(X @ W1.T + b1) @ W2.T + b2
        assert float(m.loss(x)[b]) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-13)
    # the step (torch.func through nn.Sequential) is gradient descent on the independent einsum loss, with
    # weight decay; a mini-batch step on the m drawn samples equals the full loss weighted by draw counts / m
    for wd in (0.0, 0.03):
        xr = x.clone().requires_grad_(True)
        g = torch.autograd.grad(mlp_loss(xr, X, y, 10, None, wd).sum(), xr)[0]
        md = gd_training_map(0.5, weight_decay=wd)
        assert torch.allclose(md.grad(x), g, rtol=1e-12, atol=1e-15)
        assert torch.allclose(md.step(x), x - 0.5 * g, rtol=0, atol=1e-14)
        sgd = gd_training_map(0.5, sgd_batch=16, weight_decay=wd)
        idx = TrajectoryRNG(7, 3).integers(150, 16)
        counts = torch.zeros(3, 150, dtype=torch.float64).scatter_add_(1, idx, torch.ones(3, 16, dtype=torch.float64))
        gw = torch.autograd.grad(mlp_loss(xr, X, y, 10, counts / 16, wd).sum(), xr)[0]
        assert torch.allclose(sgd.step(x, TrajectoryRNG(7, 3)), x - 0.5 * gw, rtol=0, atol=1e-14)
    # nn.Linear's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 4 then 10
    assert float(x[:, :50].abs().max()) < 0.5 and float(x[:, 50:].abs().max()) < 1 / math.sqrt(10)
    assert float(x[:, :50].abs().max()) > 1 / math.sqrt(10)  # the hidden layer's wider range is used


def test_hessian_vector_products_and_sharpness():
    m = gd_training_map(1.0, hidden=4)
    x = m.sample_initial(2, TrajectoryRNG(2, 2))
    X, y = load_iris()
    full = torch.stack([torch.func.hessian(lambda t: mlp_loss(t, X, y, 4))(x[b]) for b in range(2)])
    V = torch.randn(2, m.dim, 5, dtype=torch.float64)
    assert torch.allclose(m.hvp(x, V), full @ V, rtol=1e-11, atol=1e-14)
    assert torch.allclose(m.sharpness(x), torch.linalg.eigvalsh(full)[:, -1], rtol=1e-11)
    # softmax's shift invariance (logits + c for every sample): H + 1 exact zero curvatures, at any theta
    ev = torch.linalg.eigvalsh(m.hessian(x))
    assert ((ev.abs() < 1e-12).sum(1) == 4 + 1).all()
    # weight decay lifts them to weight_decay
    ev_wd = torch.linalg.eigvalsh(gd_training_map(1.0, hidden=4, weight_decay=0.1).hessian(x))
    assert torch.allclose(ev_wd, ev + 0.1, atol=1e-12)


# ---------------------------------------------------------------------------
# the map: tangent, training, batch independence
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("lr", [0.5, 20.0])
def test_gd_tangent_is_derivative_of_one_step(lr):
    m = gd_training_map(lr)
    x = m.sample_initial(2, TrajectoryRNG(3, 2))
    for _ in range(5):  # off the initial distribution
        x = m.step(x)
    V = torch.randn(2, m.dim, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x_next, DV = m.tangent(x, V)
    assert torch.equal(x_next, m.step(x))
    assert _rel(DV, _fd_tangent(m, x, V)) < 1e-6
    # and the dense Jacobian is I - lr * Hessian
    J = m.jacobian(x)
    eye = torch.eye(m.dim, dtype=torch.float64)
    assert torch.allclose(J, eye - lr * m.hessian(x), atol=1e-12)


def test_sgd_tangent_is_derivative_of_one_step_with_the_same_noise():
    m = gd_training_map(2.0, sgd_batch=16)
    assert m.is_random
    x = m.sample_initial(3, TrajectoryRNG(4, 3))
    V = torch.randn(3, m.dim, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g = TrajectoryRNG(5, 3)
    g.counter = 7
    x_next, DV = m.tangent(x, V, g)
    assert g.counter == 8  # one draw per step, shared by state and tangent
    g2 = TrajectoryRNG(5, 3)
    g2.counter = 7
    assert torch.equal(x_next, m.step(x, g2))
    assert _rel(DV, _fd_tangent(m, x, V, rng_seed=5, counter=7)) < 1e-6
    # a different draw is a different map
    g3 = TrajectoryRNG(5, 3)
    g3.counter = 8
    assert not torch.allclose(m.step(x, g3), x_next)
    # a mini-batch: m = 16 Iris samples per trajectory, drawn with replacement
    Xb, yb = m._draw(TrajectoryRNG(0, 3), x)
    X, y = load_iris()
    idx = TrajectoryRNG(0, 3).integers(150, 16)
    assert Xb.shape == (3, 16, 4) and torch.equal(Xb, X[idx]) and torch.equal(yb, y[idx])


def test_training_decreases_loss_and_fits_iris():
    m = gd_training_map(0.5)
    x = m.sample_initial(4, TrajectoryRNG(0, 4))
    losses = [m.loss(x)]
    for _ in range(300):
        x = m.step(x)
        losses.append(m.loss(x))
    L = torch.stack(losses)
    assert bool((L[1:] <= L[:-1] + 1e-12).all())  # monotone at this small lr (lr * sharpness < 1)
    assert float(L[-1].max()) < 0.5 * float(L[0].min())
    assert float(m.accuracy(x).min()) > 0.9


@pytest.mark.parametrize("sgd_batch", [None, 10])
def test_batch_independence(sgd_batch):
    assert_batch_equals_single_runs(gd_training_map(3.0, sgd_batch=sgd_batch), steps=15)


def test_arguments_are_checked():
    for bad in (0, -1.0, math.inf, math.nan, True, "1"):
        with pytest.raises(InvalidArgumentError, match="lr"):
            gd_training_map(bad)
    for bad in (0, 2.5, True):
        with pytest.raises(InvalidArgumentError, match="hidden"):
            gd_training_map(1.0, hidden=bad)
    for bad in (0, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="sgd_batch"):
            gd_training_map(1.0, sgd_batch=bad)
    for bad in (-0.1, math.nan, True):
        with pytest.raises(InvalidArgumentError, match="weight_decay"):
            gd_training_map(1.0, weight_decay=bad)
    m = gd_training_map(1.0, sgd_batch=8)
    x = m.sample_initial(2)
    with pytest.raises(InvalidArgumentError, match="generator"):
        m.step(x)  # a random map needs its TrajectoryRNG
    assert isinstance(m, GDTrainingMap) and "lr=1" in m.label


# ---------------------------------------------------------------------------
# the regimes (slow: about a minute each)
# ---------------------------------------------------------------------------
def _margin(res):
    """t * stderr + 1/T: the suite's tolerance rule for an exact value, with bias_nats = 1."""
    from suite.scoring.tolerance import t_quantile
    return t_quantile(res.meta["stderr_dof"]) * float(res.stderr[0]) + 1.0 / res.meta["T"]


@pytest.mark.slow
def test_lambda1_zero_when_regular_and_positive_when_chaotic():
    """Plain cross-entropy: lambda_1 ~ 0 at lr = 1, lambda_1 > 0 at lr = 150.

    lambda_1 cannot be negative here: H + 1 exponents are exactly 0 at every
    lr (softmax's shift invariance, see the module docstring), so the regular
    regime shows lambda_1 = 0 (measured 1.6e-4 +- 5e-5 over steps 1000-3000,
    within t * stderr + 1/T of 0).  Where the transition sits relative to
    2 / sharpness: along the trajectory lr * S(theta_t) settles at ~1-1.5
    (with excursions above 2, the edge of stability) for every lr >~ 5, and
    lambda_1 is still ~0 at lr = 15 (lr * S = 1.4); chaos appears at
    lr ~ 20-50 (intermittently, some trajectories only) and in nearly every
    trajectory from lr ~ 100 (lambda_1 ~ 0.2-0.3): lr ~ 15-35 times
    2 / S(theta_0) ~ 1.5, well inside the edge-of-stability regime rather
    than at lr * S = 2.  At lr = 150, lr * S = 3.5 on average (S measured
    every 100 steps, skewed: mostly ~1e-4 with spikes) and lambda_1 =
    0.21 +- 0.023 over 32 trajectories (27 of them chaotic).
    """
    T0, T = 1_000, 2_000
    regular = QR.estimate(gd_training_map(1.0), T, transient=T0, batch=8, k=1, seed=0)
    assert abs(regular.exponents[0]) < _margin(regular)
    chaotic = QR.estimate(gd_training_map(150.0), T, transient=T0, batch=32, k=1, seed=0)
    assert chaotic.exponents[0] > _margin(chaotic)
    assert chaotic.exponents[0] > 0.1


@pytest.mark.slow
def test_lambda1_changes_sign_with_weight_decay():
    """weight_decay = 0.01 lifts the zero exponents to ln(1 - lr * 0.01) < 0: lambda_1 < 0 at lr = 10, > 0 at lr = 30.

    Measured (batch 8, steps 1000-3000): lambda_1 = -0.0567 +- 2e-5 at lr = 10,
    where lr * S ~ 3 > 2 (the minimum is unstable and every trajectory settles
    on a stable cycle, period 26 for seed 0), and +0.223 +- 0.003 at lr = 30
    (lr * S ~ 7, 8/8 trajectories chaotic), S the sharpness averaged along
    the measured window.  So with weight decay the sign change sits between
    lr * S ~ 3 and lr * S ~ 7, beyond the edge of stability lr * S = 2:
    past it the trajectories first settle on stable cycles, then turn chaotic.
    """
    T0, T = 1_000, 2_000
    lo = QR.estimate(gd_training_map(10.0, weight_decay=0.01), T, transient=T0, batch=8, k=1, seed=0)
    hi = QR.estimate(gd_training_map(30.0, weight_decay=0.01), T, transient=T0, batch=8, k=1, seed=0)
    assert lo.exponents[0] < -_margin(lo)
    assert hi.exponents[0] > _margin(hi)
