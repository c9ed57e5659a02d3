"""Gradient-descent training of a small MLP on Iris as a map in parameter space.

After Danovski, Soriano & Lacasa, "Dynamical stability and chaos in
artificial neural network trajectories along training", Front. Complex Syst.
2, 1367957 (2024), arXiv:2404.05782: training is a discrete-time dynamical
system on the network's parameter vector, and its Lyapunov exponents
(natural log, **per training step**) tell regular training (lambda_1 <= 0)
from chaotic training (lambda_1 > 0) as the learning rate grows.

A 4-H-3 perceptron (H = ``hidden``, default 10; sigmoid hidden units,
softmax output, cross-entropy in nats) on the 150 standardised Iris samples
(``tasks/data/iris.csv``); theta is the flat parameter vector, d = 8H + 3
(83 for H = 10), in the order W1, b1, W2, b2.  The map is full-batch
gradient descent,

    theta_{t+1} = theta_t - eta grad L(theta_t),    DF = I - eta Hess L(theta_t),

plus (weight_decay / 2) |theta|^2 in L when ``weight_decay`` > 0; the
tangent is applied by Hessian-vector products (forward-over-reverse
torch.func, never the Hessian).  Mini-batch SGD (``sgd_batch = m``) draws m
samples with replacement per step and trajectory from the TrajectoryRNG (a
random map).  Initial parameters are drawn per trajectory like ``nn.Linear``.

Softmax's shift invariance makes at least H + 1 exponents exactly 0 at every
theta (ln|1 - eta weight_decay| with weight decay), so lambda_1 >= 0 for
plain cross-entropy.  No closed-form value is known beyond these zeros:
:func:`gd_training_map` carries no Reference; as a task
(:func:`training_map_task`) it gets a computed one for its horizon.  The
equations, the measured regimes (eta = 0.01 ... 1000, SGD, weight decay)
and costs: docs/tasks.md; suggested settings: :data:`REGIMES`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from reference_systems import Map, TrajectoryRNG
from suite.core.args import check_int, check_number, check_positive

#: where the Iris data lives
IRIS_CSV = Path(__file__).parent / "data" / "iris.csv"
N_FEATURES, N_CLASSES = 4, 3


#: Suggested settings per regime (measured; see docs/tasks.md): the
#: factory's arguments, the estimator horizons, and what was measured with
#: the QR estimator (float64, seed 0) at those horizons.
REGIMES: Dict[str, Dict] = {
    "regular": {"lr": 1.0, "transient": 1_000, "steps": 2_000, "batch": 8,
                "measured": "lambda_1 = 1.6e-4 +- 5.1e-5 (-> 0: the H + 1 structural zeros), eta*S = 0.37, "
                            "monotone loss, accuracy 0.987"},
    "edge_of_stability": {"lr": 10.0, "transient": 1_000, "steps": 2_000, "batch": 8,
                          "measured": "lambda_1 = 2.3e-4 +- 5.0e-5, eta*S = 1.05 on average, above 2 on 4 % of "
                                      "the samples (1.6-1.9 over steps 100-1000), accuracy 1.0"},
    "chaotic": {"lr": 150.0, "transient": 1_000, "steps": 2_000, "batch": 8,
                "measured": "lambda_1 = 0.290 +- 0.040 (batch 8; 0.210 +- 0.023 over batch 32), "
                            "8/8 trajectories chaotic at batch 8, 27/32 at batch 32, accuracy 0.93"},
    "sgd_chaotic": {"lr": 50.0, "sgd_batch": 16, "transient": 1_000, "steps": 2_000, "batch": 16,
                    "measured": "lambda_1 = 0.129 +- 0.018 (batch 8, 8/8 chaotic), 0.096 +- 0.016 "
                                "(batch 16, two-trajectory), accuracy 0.77"},
    "regular_weight_decay": {"lr": 10.0, "weight_decay": 0.01, "transient": 1_000, "steps": 2_000, "batch": 8,
                             "measured": "lambda_1 = -0.0567 +- 0.00002 (a stable cycle)"},
    "chaotic_weight_decay": {"lr": 30.0, "weight_decay": 0.01, "transient": 1_000, "steps": 2_000, "batch": 8,
                             "measured": "lambda_1 = 0.223 +- 0.003 (8/8 chaotic)"},
}


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def load_iris(dtype: torch.dtype = torch.float64) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fisher's Iris data: X (150, 4) standardised per feature, y (150,) int64 in {0, 1, 2}.

    Standardised to zero mean and unit (population, ddof = 0) variance per
    feature; classes 0, 1, 2 are setosa, versicolor, virginica.
    """
    raw = np.loadtxt(IRIS_CSV, delimiter=",", comments="#", skiprows=2)
    X = raw[:, :N_FEATURES]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = raw[:, N_FEATURES].astype(np.int64)
    return torch.as_tensor(X, dtype=dtype), torch.as_tensor(y, dtype=torch.int64)


# ---------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------
def n_params(hidden: int = 10) -> int:
    """d = 4H + H + 3H + 3, the number of parameters of the 4-H-3 network."""
    return (N_FEATURES + 1) * hidden + (hidden + 1) * N_CLASSES


def unflatten(theta: torch.Tensor, hidden: int = 10):
    """(W1 (..., H, 4), b1 (..., H), W2 (..., 3, H), b2 (..., 3)) from theta (..., d)."""
    H = hidden
    lead = theta.shape[:-1]
    i1 = N_FEATURES * H
    i2 = i1 + H
    i3 = i2 + N_CLASSES * H
    return (theta[..., :i1].reshape(*lead, H, N_FEATURES), theta[..., i1:i2],
            theta[..., i2:i3].reshape(*lead, N_CLASSES, H), theta[..., i3:])


def _forward(theta: torch.Tensor, X: torch.Tensor, hidden: int):
    """Hidden activations a (..., n, H) and logits z (..., n, 3) for parameters (..., d)."""
    W1, b1, W2, b2 = unflatten(theta, hidden)
    a = torch.sigmoid(torch.einsum("...hf,nf->...nh", W1, X) + b1.unsqueeze(-2))
    z = torch.einsum("...ch,...nh->...nc", W2, a) + b2.unsqueeze(-2)
    return a, z


def _sample_weights(weights: Optional[torch.Tensor], n: int, like: torch.Tensor) -> torch.Tensor:
    """Normalised per-sample weights (..., n) summing to 1 (uniform 1/n when None)."""
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)
    return weights / weights.sum(dim=-1, keepdim=True)


def _loss(theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, hidden: int,
          weights: Optional[torch.Tensor] = None, weight_decay: float = 0.0) -> torch.Tensor:
    """L_w(theta) + weight_decay/2 |theta|^2, (...,), with Y the one-hot labels (n, 3)."""
    _, z = _forward(theta, X, hidden)
    per_sample = -(torch.log_softmax(z, dim=-1) * Y).sum(dim=-1)  # (..., n)
    L = (per_sample * _sample_weights(weights, X.shape[0], theta)).sum(dim=-1)
    if weight_decay:
        L = L + 0.5 * weight_decay * (theta * theta).sum(dim=-1)
    return L


def _grad(theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, hidden: int,
          weights: Optional[torch.Tensor] = None, weight_decay: float = 0.0) -> torch.Tensor:
    """grad (L_w(theta) + weight_decay/2 |theta|^2), (B, d), by hand-written backpropagation, batched over B."""
    a, z = _forward(theta, X, hidden)
    _, _, W2, _ = unflatten(theta, hidden)
    w = _sample_weights(weights, X.shape[0], theta)
    dz = (torch.softmax(z, dim=-1) - Y) * w.unsqueeze(-1)          # (B, n, 3)
    gW2 = torch.einsum("bnc,bnh->bch", dz, a)
    gb2 = dz.sum(dim=-2)
    du = torch.einsum("bnc,bch->bnh", dz, W2) * a * (1.0 - a)       # (B, n, H)
    gW1 = torch.einsum("bnh,nf->bhf", du, X)
    gb1 = du.sum(dim=-2)
    B = theta.shape[0]
    g = torch.cat([gW1.reshape(B, -1), gb1, gW2.reshape(B, -1), gb2], dim=1)
    return g + weight_decay * theta if weight_decay else g


def mlp_loss(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, hidden: int = 10,
             weights: Optional[torch.Tensor] = None, weight_decay: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy (nats) of the 4-H-3 sigmoid/softmax network, (B,) for theta (B, d).

    ``X`` (n, 4), ``y`` (n,) integer labels in {0, 1, 2}; ``weights`` None
    (plain mean over the n samples) or (B, n) non-negative per-sample weights
    (the loss is sum_i w_i l_i / sum_i w_i, e.g. draw counts of a mini-batch).
    ``weight_decay`` adds weight_decay/2 |theta|^2.  Vectorised over B (no
    loop over trajectories); also accepts theta (d,).
    """
    Y = torch.nn.functional.one_hot(y, N_CLASSES).to(theta.dtype)
    return _loss(theta, X.to(theta.dtype), Y, hidden, weights, weight_decay)


# ---------------------------------------------------------------------------
# the training map
# ---------------------------------------------------------------------------
class GDTrainingMap(Map):
    """theta_{t+1} = theta_t - eta grad L(theta_t) on Iris; see :func:`gd_training_map`.

    State: the flat parameter vectors (B, d) of B independently trained
    networks.  Tangent map I - eta Hess L applied by Hessian-vector products
    (never forming the Hessian).  With ``sgd_batch = m`` the loss of each step
    is the mini-batch loss L_w of m indices drawn with replacement per
    trajectory from the TrajectoryRNG (the map is then random).
    """

    def __init__(self, lr: float, hidden: int = 10, sgd_batch: Optional[int] = None,
                 weight_decay: float = 0.0, name: str = "gd_training_map", **kw):
        self.lr, self.hidden, self.sgd_batch = float(lr), int(hidden), sgd_batch
        self.weight_decay = float(weight_decay)
        X, y = load_iris(torch.float64)
        self.X64, self.y = X, y
        self.n_samples = X.shape[0]
        self._cast: Dict[Tuple[torch.dtype, torch.device], Tuple[torch.Tensor, torch.Tensor]] = {}
        fan_in = torch.cat([torch.full((N_FEATURES * hidden + hidden,), float(N_FEATURES)),
                            torch.full((N_CLASSES * hidden + N_CLASSES,), float(hidden))])
        self._init_bound = (1.0 / fan_in.sqrt()).to(torch.float64)
        kw.setdefault("batch_invariant", False)  # vmapped products: their BLAS calls depend on the batch
        super().__init__(name, step=self._map, dim=n_params(hidden),
                         sample_initial=self._init, noise=None if sgd_batch is None else self._draw, **kw)

    # -- data per (dtype, device) -------------------------------------------
    def data(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(X (n, 4), one-hot Y (n, 3)) in x's dtype and device (cached)."""
        key = (x.dtype, x.device)
        if key not in self._cast:
            self._cast[key] = (self.X64.to(device=x.device, dtype=x.dtype),
                               torch.nn.functional.one_hot(self.y, N_CLASSES).to(device=x.device, dtype=x.dtype))
        return self._cast[key]

    # -- noise and initial states -------------------------------------------
    def _draw(self, generator: TrajectoryRNG, x: torch.Tensor) -> torch.Tensor:
        """Per-trajectory mini-batch weights (B, n): draw counts of m indices (with replacement) / m."""
        m, n = self.sgd_batch, self.n_samples
        idx = generator.integers(n, m).to(x.device)
        counts = torch.zeros(x.shape[0], n, dtype=x.dtype, device=x.device)
        counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=x.dtype))
        return counts / m

    def _init(self, batch: int, generator: TrajectoryRNG) -> torch.Tensor:
        """nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every weight and bias."""
        return generator.uniform(self.dim, low=-1.0, high=1.0) * self._init_bound.to(generator.device)

    # -- dynamics -----------------------------------------------------------
    def _map(self, x: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        X, Y = self.data(x)
        return x - self.lr * _grad(x, X, Y, self.hidden, weights, self.weight_decay)

    def hvp(self, theta: torch.Tensor, V: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Hess L_w(theta) V, (B, d, k), by forward-over-reverse autodiff (never forming the Hessian).

        torch.func.jvp of torch.func.grad of the single-trajectory loss,
        vmapped over the k columns of V and over the B trajectories.
        """
        X, Y = self.data(theta)
        H, wd = self.hidden, self.weight_decay

        def one(th, v, w):  # th (d,), v (d,), w (n,) -> Hess L_w(th) v, (d,)
            g = torch.func.grad(lambda t: _loss(t, X, Y, H, w, wd))
            return torch.func.jvp(g, (th,), (v,))[1]

        w_dim = None if weights is None else 0
        columns = torch.func.vmap(one, in_dims=(None, 1, None), out_dims=1)
        return torch.func.vmap(columns, in_dims=(0, 0, w_dim))(theta, V, weights)

    def _step(self, x, generator):
        w = None if self.sgd_batch is None else self._draw(generator, x)
        return self._map(x, w)

    def _tangent(self, x, V, generator):
        w = None if self.sgd_batch is None else self._draw(generator, x)
        return self._map(x, w), V - self.lr * self.hvp(x, V, w)

    # -- diagnostics ----------------------------------------------------------
    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """Full-batch mean cross-entropy L(theta), (B,) in nats."""
        self._check_state(theta, "theta")
        X, Y = self.data(theta)
        return _loss(theta, X, Y, self.hidden, None, self.weight_decay)

    def grad(self, theta: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """grad L_w(theta), (B, d) (full batch when ``weights`` is None)."""
        self._check_state(theta, "theta")
        X, Y = self.data(theta)
        return _grad(theta, X, Y, self.hidden, weights, self.weight_decay)

    def accuracy(self, theta: torch.Tensor) -> torch.Tensor:
        """Fraction of the 150 samples classified correctly (argmax of the logits), (B,)."""
        self._check_state(theta, "theta")
        X, _ = self.data(theta)
        _, z = _forward(theta, X, self.hidden)
        return (z.argmax(dim=-1) == self.y.to(theta.device)).to(theta.dtype).mean(dim=-1)

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """Full-batch Hess L(theta), (B, d, d), from d Hessian-vector products (symmetrised)."""
        self._check_state(theta, "theta")
        eye = torch.eye(self.dim, dtype=theta.dtype, device=theta.device).expand(theta.shape[0], -1, -1)
        Hm = self.hvp(theta, eye.contiguous())
        return 0.5 * (Hm + Hm.transpose(1, 2))

    def sharpness(self, theta: torch.Tensor) -> torch.Tensor:
        """Largest eigenvalue of the full-batch Hessian, (B,) (torch.linalg.eigvalsh).

        Gradient descent is linearly stable at a minimum iff eta < 2 / sharpness.
        """
        return torch.linalg.eigvalsh(self.hessian(theta))[:, -1]


def gd_training_map(lr: float, hidden: int = 10, sgd_batch: Optional[int] = None,
                    weight_decay: float = 0.0) -> GDTrainingMap:
    """Training of a 4-``hidden``-3 sigmoid MLP on Iris by gradient descent, as a map.

    theta_{t+1} = theta_t - lr * grad L(theta_t) with L the mean
    cross-entropy over the 150 standardised Iris samples (full batch) or,
    with ``sgd_batch = m``, over m samples drawn with replacement per step
    and per trajectory (a random map), plus weight_decay/2 |theta|^2 when
    ``weight_decay`` > 0 (default 0: plain cross-entropy).  Dimension
    d = 8 * hidden + 3; exponents in natural log per training step.  See
    docs/tasks.md for the equations, the exact zero exponents and the
    measured regimes, :data:`REGIMES` for suggested settings, and
    :class:`GDTrainingMap` for the diagnostics (loss, accuracy, sharpness).
    """
    check_positive("lr", lr)
    check_int("hidden", hidden, 1)
    check_int("sgd_batch", sgd_batch, 1, allow_none=True,
              allowed="None (full-batch gradient descent) or an integer >= 1 (the mini-batch size; samples are "
                      "drawn with replacement from the 150)")
    check_number("weight_decay", weight_decay, low=0.0)
    return GDTrainingMap(float(lr), hidden, sgd_batch, float(weight_decay),
                         params={"lr": float(lr), "hidden": hidden, "sgd_batch": sgd_batch,
                                 "weight_decay": float(weight_decay)},
                         source="Danovski, Soriano & Lacasa, Front. Complex Syst. 2, 1367957 (2024), "
                                "arXiv:2404.05782",
                         note="training map on Iris; no reference value of the exponents")


def training_map_task(spec) -> GDTrainingMap:
    """Builder of the training-map tasks (tasks.catalogue): ``spec.params`` = lr, hidden, sgd_batch,
    weight_decay, validation (steps, transient, batch, k).

    The training map is not stationary (training converges, chaos can be
    transient), so a task's exponents are the finite-time exponents of one
    stated horizon, averaged over the initialisation distribution: the
    estimator runs exactly ``validation``'s transient and steps
    (``meta['fixed_horizon']``), and the computed reference uses the same
    horizon with more trajectories.
    """
    p = spec.params
    system = gd_training_map(p["lr"], hidden=p["hidden"], sgd_batch=p.get("sgd_batch"),
                             weight_decay=p.get("weight_decay", 0.0))
    system.name, system.params = spec.id, {}
    horizon = dict(p["validation"])
    system.declare(validation=horizon, fixed_horizon=True,
                   reference_run={**horizon, "batch": p.get("reference_batch", 32)},
                   note=f"finite-time exponents over steps {horizon['transient']}..{horizon['transient'] + horizon['steps']} "
                        "of training from the initialisation distribution")
    return system

