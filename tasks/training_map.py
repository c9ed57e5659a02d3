"""Gradient-descent training of a small MLP on Iris as a map in parameter space.

After Danovski, Soriano & Lacasa, "Dynamical stability and chaos in
artificial neural network trajectories along training", Front. Complex Syst.
2, 1367957 (2024), arXiv:2404.05782: training is a discrete-time dynamical
system whose state is the network's parameter vector, and its Lyapunov
exponents (natural log, **per training step**) tell regular training
(lambda_1 <= 0) from chaotic training (lambda_1 > 0) as the learning rate
grows.

Data
----
Fisher's Iris data (``tasks/data/iris.csv``, 150 samples, 4 features, 3
classes), each feature standardised to zero mean and unit variance over the
150 samples (population standard deviation): x_i in R^4, y_i in {0, 1, 2}.

Network and loss
----------------
A 4-H-3 perceptron (H = ``hidden``, default 10) with sigmoid hidden units and
a softmax output,

    a_i = sigma(W1 x_i + b1),    z_i = W2 a_i + b2,    sigma(u) = 1 / (1 + e^-u),

    l_i(theta) = -ln softmax(z_i)_{y_i} = ln sum_c e^{z_ic} - z_{i y_i}    (nats),

    L(theta) = (1/n) sum_i l_i(theta)                  (full batch, n = 150),
    L_w(theta) = sum_i w_i l_i(theta) / sum_i w_i      (per-sample weights w),

plus (weight_decay / 2) |theta|^2 when ``weight_decay`` > 0 (default 0).

The parameters form one flat vector theta in R^d, d = 4H + H + 3H + 3 = 8H + 3
(83 for H = 10), in the order W1 (H x 4, row-major), b1 (H), W2 (3 x H,
row-major), b2 (3).  Losses, gradients and Hessian-vector products act on a
batch of parameter vectors (B, d) at once (one trajectory per row).

The map
-------
Full-batch gradient descent with learning rate eta (dimensionless: L is in
nats and theta is dimensionless),

    theta_{t+1} = F(theta_t) = theta_t - eta grad L(theta_t),

with the tangent map DF(theta) = I - eta Hess L(theta), applied to a frame
V (B, d, k) as V - eta (Hess L) V through Hessian-vector products
(forward-over-reverse: torch.func.jvp of torch.func.grad, vmapped over the k
columns and the B trajectories; the Hessian is never formed for the
dynamics).  Lyapunov exponents are per training step, natural log.

Mini-batch SGD (``sgd_batch = m``) makes the map random: at every step each
trajectory draws m sample indices uniformly with replacement from its own
:class:`~reference_systems.TrajectoryRNG` stream (one ``uniform(m)`` draw per
step), w_i = (number of times i was drawn) / m, and

    theta_{t+1} = theta_t - eta grad L_w(theta_t),    DF = I - eta Hess L_w(theta_t),

with the same draw for the state and the tangent of that step.

Initial parameters are drawn per trajectory like PyTorch's ``nn.Linear``
default: every weight and bias of a layer ~ U(-1/sqrt(fan_in),
1/sqrt(fan_in)), fan_in = 4 for the hidden layer and H for the output layer
(one ``uniform(d)`` draw from the TrajectoryRNG, so trajectory b's
initialisation does not depend on the batch size).

A minimum theta* of L (where one exists) is a linearly stable fixed point of
F iff the eigenvalues 1 - eta mu_i of I - eta Hess L(theta*) lie inside the
unit circle (transversally to the neutral directions Z below), i.e.
eta < 2 / S with S the sharpness, the largest Hessian eigenvalue
(:meth:`GDTrainingMap.sharpness`).  The "edge of stability" is
eta S(theta_t) ~ 2 along the trajectory (Cohen, Kaur, Li, Kolter &
Talwalkar, "Gradient descent on neural networks typically occurs at the
edge of stability", ICLR 2021).

Exact structure of the spectrum
-------------------------------
Softmax is invariant under adding the same number to every logit of a
sample, so L (and every mini-batch loss L_w) is invariant under
W2 -> W2 + 1 c^T, b2 -> b2 + c0 1 (c in R^H, c0 in R): an (H + 1)-dimensional
linear subspace Z of directions with Hess L u = 0 at *every* theta.  Since
the Hessian is symmetric it also maps Z^perp into Z^perp, so DF = I on Z and
at least H + 1 exponents (11 for H = 10) are exactly 0, for every learning
rate, full batch or mini-batch; with weight decay they are exactly
ln|1 - eta weight_decay|.  In particular lambda_1 >= 0 for plain
cross-entropy: a converging ("regular") training run has lambda_1 = 0, not
a negative lambda_1 (finite-time estimates lie slightly above it while the
loss still decreases through non-convex regions, and may lie below it by
the O(1/T) alignment term of the Benettin sum).  The full spectrum at eta = 150
(QR, k = 83) has one large positive exponent (0.24), a few small positive
ones, ~75 within 1e-3 of 0 (the symmetry and the saturated sigmoid units)
and two negative ones.

Measured regimes (hidden = 10, weight_decay = 0)
------------------------------------------------
QR estimator, float64, batch 8, seed 0, transient 1000 training steps from
the initial distribution, then T = 2000 steps; k = 12 (lambda_1 does not
depend on k).  S: sharpness averaged over the 8 trajectories at every 100th
step of the measured window (its distribution is skewed at large eta: mostly
saturated units with S ~ 1e-4, spikes up to ~0.5); S(theta_0) ~ 1.37, i.e.
2 / S ~ 1.5 at initialisation.  "chaotic": trajectories with lambda_1 > 0.01.
Trajectories stayed finite everywhere (eta up to 1000; |theta| ~ 6.5 eta).

    eta    lambda_1 +- stderr   S       2/S    eta*S  P(eta*S>2) chaotic acc
    0.01   2.0e-4 +- 1.3e-5    1.19    1.68   0.01   0.00       0/8    0.909
    0.1    2.1e-4 +- 3.1e-5    0.57    3.5    0.06   0.00       0/8    0.973
    1      1.6e-4 +- 5.1e-5    0.37    5.4    0.37   0.00       0/8    0.987
    2      2.0e-4 +- 5.8e-5    0.35    5.7    0.70   0.00       0/8    0.987
    3      3.9e-4 +- 8.3e-5    0.33    6.2    0.97   0.00       0/8    0.988
    5      5.9e-4 +- 1.9e-4    0.24    8.3    1.21   0.00       0/8    0.994
    7      6.6e-4 +- 2.1e-4    0.18    11     1.24   0.00       0/8    1.000
    10     2.3e-4 +- 5.0e-5    0.105   19     1.05   0.04       0/8    1.000
    15     3.0e-4 +- 2.6e-4    0.092   22     1.39   0.17       0/8    0.998
    20     4.9e-3 +- 2.8e-3    0.068   30     1.36   0.19       1/8    0.997
    30     1.1e-2 +- 3.7e-3    0.048   42     1.44   0.16       4/8    0.994
    50     9.8e-2 +- 6.1e-2    0.029   69     1.46   0.12       3/8    0.991
    100    0.19   +- 0.05      0.025   79     2.54   0.28       6/8    0.936
    150    0.29   +- 0.04      0.023   87     3.46   0.23       8/8    0.928
    200    0.22   +- 0.04      0.0068  295    1.36   0.12       8/8    0.872
    300    0.17   +- 0.04      0.0061  328    1.83   0.09       8/8    0.798
    500    0.098  +- 0.022     0.0030  667    1.50   0.05       7/8    0.799
    1000   0.040  +- 0.013     4.2e-4  4700   0.42   0.02       5/8    0.755

* eta <~ 3, regular (marginal): eta S < 1 along the trajectory, the loss
  decreases monotonically, lambda_1 -> 0+ (the structural zeros).  The
  small positive finite-time values are the slow separation of a
  non-convex gradient flow, not chaos: per unit of gradient-flow time
  (eta t) they decay as training proceeds, 2e-2 at eta t ~ 10-30
  (eta = 0.01) and 1e-4 at eta t ~ 1000-9000 (eta = 1: 1.2e-4 +- 3e-5 over
  steps 1000-3000, 1.1e-4 +- 2e-5 over 1000-9000, two-trajectory
  estimator); at eta = 10, once the loss has reached ~0, 6e-6 +- 9e-6.
* 5 <~ eta <~ 15, edge of stability: the sharpness falls as eta grows so
  that eta S hovers at 1-1.4 on average with excursions above 2 (the loss
  rises on 1 % of the steps at eta = 10, 15 % at eta = 20), while lambda_1
  stays ~0: the edge of stability by itself is not chaotic.
* 20 <~ eta <~ 50, intermittent chaos: some trajectories chaotic, others
  not, and chaotic transients (at eta = 50 the chaotic fraction falls from
  1/2 over steps 1000-3000 to 1/8 over steps 6000-10000).
* 100 <~ eta <~ 500, chaotic: lambda_1 ~ 0.1-0.4 per step in (nearly) every
  trajectory, stationary over 1000-10000 steps at eta = 150-200; the
  training still reaches 80-93 % accuracy.  The onset of chaos is thus at
  eta ~ 15-35 times 2 / S(theta_0), deep inside the edge-of-stability
  regime, not at eta S = 2.  At eta >~ 500 the sigmoid units saturate and
  lambda_1 decreases again (0.04 at eta = 1000).

Mini-batch SGD (sgd_batch = 16): lambda_1 = 2e-4 +- 6e-5 at eta = 1,
3.6e-3 +- 1.2e-3 at eta = 10, 0.129 +- 0.018 at eta = 50 (8/8 chaotic,
accuracy 0.77), 8.6e-3 +- 3.1e-3 at eta = 150 (saturated, |theta| ~ 1700).

With weight_decay = 0.01 a negative lambda_1 appears: -1e-4 +- 1e-4 at
eta = 0.3-3 (converging), -0.0567 +- 0.00002 at eta = 10 (eta S ~ 3: the
minimum is unstable and every trajectory settles on a stable cycle, of
period 26 for seed 0), +0.223 +- 0.003 at eta = 30 (chaotic, 8/8); the
training itself fails there (accuracy 0.65 and 0.58).

Cost (CPU, one thread, batch 8, float64): QR ~0.015-0.02 s per step at
k <= 12 and ~0.1 s per step for the full spectrum (k = 83); the
two-trajectory estimator ~1.2 ms per step.  :data:`REGIMES` lists suggested
settings.

No closed-form value of the exponents is known beyond the structural zeros:
:func:`gd_training_map` carries no Reference; registered as a task
(:func:`training_map_task`, tasks.catalogue) it gets a computed one for its
stated horizon (tasks.references).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from reference_systems import Map, TrajectoryRNG
from suite.core.errors import InvalidArgumentError

#: where the Iris data lives
IRIS_CSV = Path(__file__).parent / "data" / "iris.csv"
N_FEATURES, N_CLASSES = 4, 3


#: Suggested settings per regime (measured; see the module docstring): the
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
        u = generator.uniform(m, dtype=torch.float64).to(x.device)
        idx = torch.clamp((u * n).floor().to(torch.int64), max=n - 1)
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
    d = 8 * hidden + 3; exponents in natural log per training step.  See the
    module docstring for the equations, the exact zero exponents and the
    measured regimes, :data:`REGIMES` for suggested settings, and
    :class:`GDTrainingMap` for the diagnostics (loss, accuracy, sharpness).
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise InvalidArgumentError("lr", lr, "a finite number > 0")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise InvalidArgumentError("hidden", hidden, "an integer >= 1")
    if sgd_batch is not None and (isinstance(sgd_batch, bool) or not isinstance(sgd_batch, int) or sgd_batch < 1):
        raise InvalidArgumentError("sgd_batch", sgd_batch,
                                   "None (full-batch gradient descent) or an integer >= 1 (the mini-batch "
                                   "size; samples are drawn with replacement from the 150)")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) \
            or not math.isfinite(weight_decay) or weight_decay < 0:
        raise InvalidArgumentError("weight_decay", weight_decay, "a finite number >= 0")
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
    system.meta.update(validation=horizon, fixed_horizon=True,
                       reference_run={**horizon, "batch": p.get("reference_batch", 32)},
                       note=f"finite-time exponents over steps {horizon['transient']}..{horizon['transient'] + horizon['steps']} "
                            "of training from the initialisation distribution")
    return system

