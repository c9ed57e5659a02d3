"""tasks.training_map(model, loss_fn, data, *, lr, ...): a user's training run as a map (tasks/training.py)."""
import math

import numpy as np
import pytest
import torch

import tasks
from batch_checks import assert_batch_equals_single_runs
from reference_systems import TrajectoryRNG
from suite import estimators
from suite.core.errors import InvalidArgumentError

QR = estimators.get("qr")
F = torch.nn.functional
D64 = torch.float64


def _quadratic(mu, seed=0):
    """A linear model without bias and MSE on data whose loss Hessian is H = Q diag(mu) Q^T exactly.

    L(w) = mean_i (x_i . w - y_i)^2 = (1/n) |X w - y|^2, so H = 2 X^T X / n; with n = p rows
    X = sqrt(n / 2) diag(sqrt(mu)) Q^T gives H = Q diag(mu) Q^T.
    """
    p = len(mu)
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(p, p, dtype=D64, generator=g))
    X = math.sqrt(p / 2) * torch.diag(torch.tensor(mu, dtype=D64).sqrt()) @ Q.T
    y = torch.randn(p, 1, dtype=D64, generator=g)
    model = torch.nn.Linear(p, 1, bias=False).to(D64)
    H = Q @ torch.diag(torch.tensor(mu, dtype=D64)) @ Q.T
    return model, (X, y), H


MU = [0.5, 1.0, 2.0, 4.0, 7.0]
LR = 0.2  # 1 - lr mu = 0.9, 0.8, 0.6, 0.2, -0.4: distinct moduli, one negative factor


def _qr_spectrum(system, steps=400, transient=600):
    """The QR estimate of a linear map's spectrum.

    The map is linear with a constant Jacobian, so after the transient the frame is aligned with
    its singular directions to within exp(-gap * transient) (the smallest gap here is >= 0.1 nat,
    so e^-60) and the per-step growth rates are exact: the estimate equals the exponents to round-off.
    """
    return QR.estimate(system, steps, transient=transient, batch=2, k=None, seed=0).exponents


def test_quadratic_loss_gives_exact_gd_spectrum():
    model, data, H = _quadratic(MU)
    m = tasks.training_map(model, F.mse_loss, data, lr=LR)
    assert m.dim == len(MU) and m.kind == "map" and not m.is_random
    exact = np.sort(np.log(np.abs(1.0 - LR * np.array(MU))))[::-1]
    x = m.sample_initial(2, TrajectoryRNG(0, 2))
    # the tangent is I - lr H, at any theta (the Hessian is constant)
    J = m.jacobian(x)
    assert torch.allclose(J, torch.eye(len(MU), dtype=D64) - LR * H, atol=1e-13)
    assert torch.allclose(m.hessian(x), H.expand(2, -1, -1), atol=1e-13)
    np.testing.assert_allclose(_qr_spectrum(m), exact, atol=1e-9)


def test_weight_decay_shifts_the_hessian_eigenvalues():
    wd = 0.25
    model, data, H = _quadratic(MU)
    m = tasks.training_map(model, F.mse_loss, data, lr=LR, weight_decay=wd)
    x = m.sample_initial(2, TrajectoryRNG(0, 2))
    assert torch.allclose(m.jacobian(x), torch.eye(len(MU), dtype=D64) - LR * (H + wd * torch.eye(len(MU), dtype=D64)),
                          atol=1e-13)
    exact = np.sort(np.log(np.abs(1.0 - LR * (np.array(MU) + wd))))[::-1]
    np.testing.assert_allclose(_qr_spectrum(m), exact, atol=1e-9)


def test_heavy_ball_momentum_spectrum_and_block_tangent():
    """State (theta, v): v <- m v - lr grad, theta <- theta + v.  Per Hessian eigenvalue mu the 2x2
    block [[1 - a, m], [-a, m]] (a = lr mu) has characteristic polynomial z^2 - (1 + m - a) z + m."""
    mom, mu = 0.05, [0.5, 1.0, 2.0, 2.8]
    model, data, H = _quadratic(mu, seed=1)
    m = tasks.training_map(model, F.mse_loss, data, lr=LR, momentum=mom)
    p = len(mu)
    assert m.dim == 2 * p and m.n_params == p
    x = m.sample_initial(2, TrajectoryRNG(0, 2))
    assert torch.equal(x[:, p:], torch.zeros(2, p, dtype=D64))  # the velocity starts at 0
    eye = torch.eye(p, dtype=D64)
    block = torch.cat([torch.cat([eye - LR * H, mom * eye], 1), torch.cat([-LR * H, mom * eye], 1)], 0)
    assert torch.allclose(m.jacobian(x), block.expand(2, -1, -1), atol=1e-13)
    roots = np.concatenate([np.roots([1.0, -(1.0 + mom - LR * u), mom]) for u in mu])
    assert np.isreal(roots).all()  # real roots here (|1 + m - a| >= 2 sqrt(m)): every exponent separate
    exact = np.sort(np.log(np.abs(roots.real)))[::-1]
    assert np.diff(exact).max() < -0.05  # distinct, so the aligned QR frame is exact
    np.testing.assert_allclose(_qr_spectrum(m, transient=1000), exact, atol=1e-9)


def _mlp(seed=0, out=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.Tanh(), torch.nn.Linear(5, out)).to(D64)


def _blobs(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, dtype=D64, generator=g)
    return X, (X[:, 0] > X[:, 1]).long() + (X[:, 0] > 0.5).long()


@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.1}, {"momentum": 0.7, "batch_size": 8},
                                {"momentum": 0.3, "weight_decay": 0.05}])
def test_hvp_tangent_equals_autodiff_of_the_whole_step(kw):
    m = tasks.training_map(_mlp(), F.cross_entropy, _blobs(), lr=0.3, **kw)
    B = 2
    x = m.sample_initial(B, TrajectoryRNG(3, B))
    x = x + 0.1 * torch.randn(x.shape, dtype=D64, generator=torch.Generator().manual_seed(0))  # nonzero velocity too

    def rng():
        g = TrajectoryRNG(9, B)
        g.counter = 4
        return g
    V = torch.randn(B, m.dim, 3, dtype=D64, generator=torch.Generator().manual_seed(1))
    x_next, DV = m.tangent(x, V, rng() if m.is_random else None)
    assert torch.equal(x_next, m.step(x, rng() if m.is_random else None))
    J = torch.func.jacrev(lambda y: m.step(y, rng() if m.is_random else None))(x)  # (B, d, B, d)
    J = torch.stack([J[b, :, b, :] for b in range(B)])
    assert torch.allclose(DV, J @ V, rtol=1e-10, atol=1e-12)


def test_gd_map_equals_torch_sgd_with_momentum_and_weight_decay():
    """The convention: torch.optim.SGD(momentum=m, weight_decay=wd) trains the same theta (v = -lr b)."""
    X, y = _blobs()
    model = _mlp(seed=4)
    m = tasks.training_map(model, F.cross_entropy, (X, y), lr=0.2, momentum=0.6, weight_decay=0.01, init_noise=0.0,
                           optimizer="sgd")
    x = m.sample_initial(1)
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert torch.equal(x[0, :m.n_params], theta0)  # init_noise=0: exactly the model's parameters
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.6, weight_decay=0.01)
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
        x = m.step(x)
    assert torch.allclose(x[0, :m.n_params], torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
                          rtol=1e-12, atol=1e-14)
    # building the map did not modify the model; the default start is the parameters plus 1e-3 N(0, 1)
    m2 = tasks.training_map(model, F.cross_entropy, (X, y), lr=0.2)
    x2 = m2.sample_initial(64, TrajectoryRNG(0, 64))
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert 0.8e-3 < float((x2 - theta).std()) < 1.2e-3


@pytest.mark.parametrize("mode", ["batch_size", "batches"])
def test_minibatches_a_batch_of_B_equals_B_single_runs(mode):
    X, y = _blobs(40)
    data = (X, y) if mode == "batch_size" else [(X[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10)]
    m = tasks.training_map(_mlp(), F.cross_entropy, data, lr=0.5, momentum=0.2,
                           batch_size=6 if mode == "batch_size" else None)
    assert m.is_random
    xB = assert_batch_equals_single_runs(m, steps=12, singles=(3,))
    assert not torch.allclose(xB[0], xB[1])  # the draws differ between trajectories (different mini-batches)


def test_bad_inputs_name_the_argument():
    X, y = _blobs()
    model = _mlp()
    with pytest.raises(InvalidArgumentError, match="loss_fn"):
        tasks.training_map(model, lambda out, t: F.cross_entropy(out, t, reduction="none"), (X, y), lr=0.1)
    with pytest.raises(InvalidArgumentError, match="loss_fn"):
        tasks.training_map(model, "cross_entropy", (X, y), lr=0.1)
    with pytest.raises(InvalidArgumentError, match="data"):
        tasks.training_map(model, F.cross_entropy, (X, y[:10]), lr=0.1)   # different sample counts
    with pytest.raises(InvalidArgumentError, match="data"):
        tasks.training_map(model, F.cross_entropy, (X[:, :1], y), lr=0.1)  # the model wants 2 features
    with pytest.raises(InvalidArgumentError, match="data"):
        tasks.training_map(model, F.cross_entropy, (X, y[:, None].float()), lr=0.1)  # targets loss_fn refuses
    with pytest.raises(InvalidArgumentError, match=r"data\[1\]"):
        tasks.training_map(model, F.cross_entropy, [(X[:10], y[:10]), (X[10:], y[10:])], lr=0.1)  # ragged
    with pytest.raises(InvalidArgumentError, match="data"):
        tasks.training_map(model, F.cross_entropy, X, lr=0.1)
    with pytest.raises(InvalidArgumentError, match="optimizer.*adam"):
        tasks.training_map(model, F.cross_entropy, (X, y), lr=0.1, optimizer="adam")
    for bad in (0, -1.0, math.nan):
        with pytest.raises(InvalidArgumentError, match="lr"):
            tasks.training_map(model, F.cross_entropy, (X, y), lr=bad)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(InvalidArgumentError, match="momentum"):
            tasks.training_map(model, F.cross_entropy, (X, y), lr=0.1, momentum=bad)
    with pytest.raises(InvalidArgumentError, match="weight_decay"):
        tasks.training_map(model, F.cross_entropy, (X, y), lr=0.1, weight_decay=-1.0)
    for bad in (0, 2.5):
        with pytest.raises(InvalidArgumentError, match="batch_size"):
            tasks.training_map(model, F.cross_entropy, (X, y), lr=0.1, batch_size=bad)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        tasks.training_map(model, F.cross_entropy, [(X, y), (X, y)], lr=0.1, batch_size=4)
    with pytest.raises(InvalidArgumentError, match="model"):
        tasks.training_map(lambda t: t, F.cross_entropy, (X, y), lr=0.1)
    with pytest.raises(TypeError):
        tasks.training_map(model, F.cross_entropy, (X, y), 0.1)  # lr is keyword-only


def test_outputs_and_accuracy_of_a_classifier():
    """outputs(x): the model's outputs per trajectory on the full data; accuracy(x): argmax against integer
    labels (a linear classifier that reads the label off a one-hot input is exactly right or exactly wrong)."""
    X = torch.eye(3, dtype=D64).repeat(4, 1)                      # 12 one-hot samples
    y = torch.arange(3).repeat(4)
    system = tasks.training_map(torch.nn.Linear(3, 3, bias=False).to(D64), F.cross_entropy, (X, y), lr=0.1,
                                init_noise=0.0)
    right, wrong = torch.eye(3, dtype=D64).reshape(1, 9), torch.eye(3, dtype=D64)[[1, 2, 0]].reshape(1, 9)
    x = torch.cat([right, wrong])
    out = system.outputs(x)
    assert out.shape == (2, 1, 12, 3) and torch.equal(out[0, 0], X @ torch.eye(3, dtype=D64).T)
    assert system.accuracy(x).tolist() == [1.0, 0.0]
    regression = tasks.training_map(torch.nn.Linear(3, 1).to(D64), F.mse_loss, (X, torch.zeros(12, 1, dtype=D64)),
                                    lr=0.1)
    with pytest.raises(InvalidArgumentError, match="integer class labels"):
        regression.accuracy(regression.sample_initial(1, TrajectoryRNG(0, 1)))


def test_batch_norm_in_training_mode_is_refused_before_the_model_is_touched():
    """Batch normalisation in training mode normalises with the batch's statistics and updates its buffers at
    every call: refused, naming the layer, and the model's state is left as it was (building the map had
    advanced num_batches_tracked before the first step failed inside torch); in eval mode it trains."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5), torch.nn.Tanh(),
                                torch.nn.Linear(5, 1))
    X, y = torch.randn(20, 3), torch.randn(20, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InvalidArgumentError, match=r"model='1 \(BatchNorm1d\) in training mode'"):
        tasks.training_map(model, torch.nn.functional.mse_loss, (X, y), lr=0.1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    system = tasks.training_map(model.eval(), torch.nn.functional.mse_loss, (X, y), lr=0.1)
    assert np.isfinite(estimators.get("qr").estimate(system, 20, batch=2, k=2).exponents).all()
