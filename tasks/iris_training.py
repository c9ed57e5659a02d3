"""Gradient-descent training of a small MLP on Iris as a map in parameter space.

After Danovski, Soriano & Lacasa, "Dynamical stability and chaos in
artificial neural network trajectories along training", Front. Complex Syst.
2, 1367957 (2024), arXiv:2404.05782: training is a discrete-time dynamical
system on the network's parameter vector, and its Lyapunov exponents
(natural log, **per training step**) tell regular training (lambda_1 <= 0)
from chaotic training (lambda_1 > 0) as the learning rate grows.

A 4-H-3 perceptron (H = ``hidden``, default 10; ``nn.Linear``, sigmoid,
``nn.Linear``; softmax cross-entropy in nats) on the 150 standardised Iris
samples (``tasks/data/iris.csv``); theta is the flat parameter vector,
d = 8H + 3 (83 for H = 10), in the order W1, b1, W2, b2.  The map is
:func:`tasks.training_map` on that model (one path for the registry's
training runs and a user's): full-batch gradient descent

    theta_{t+1} = theta_t - eta grad L(theta_t),    DF = I - eta Hess L(theta_t),

plus (weight_decay / 2) |theta|^2 in L when ``weight_decay`` > 0, the
tangent by Hessian-vector products (never the Hessian).  Mini-batch SGD
(``sgd_batch = m``) draws m samples with replacement per step and
trajectory from the TrajectoryRNG (a random map).  Initial parameters are
drawn per trajectory like ``nn.Linear`` (:func:`linear_init`).
:func:`mlp_loss` is an independent einsum implementation of the same loss,
for tests.

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
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from reference_systems import TrajectoryRNG
from suite.core.args import check_int
from tasks.training import TrainingMap, training_map

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
#: the training map's class (the name this module used before it was rebuilt on tasks.training_map)
GDTrainingMap = TrainingMap


def iris_mlp(hidden: int = 10) -> nn.Sequential:
    """The 4-``hidden``-3 network, nn.Linear, Sigmoid, nn.Linear, float64, its parameters zero (initial
    states come from :func:`linear_init`; no global random number is drawn)."""
    model = nn.Sequential(nn.Linear(N_FEATURES, hidden, dtype=torch.float64, device="meta"), nn.Sigmoid(),
                          nn.Linear(hidden, N_CLASSES, dtype=torch.float64, device="meta")).to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


def linear_init(hidden: int = 10) -> Callable[[int, TrajectoryRNG], torch.Tensor]:
    """``sample_initial(batch, generator)``: nn.Linear's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every
    weight and bias (fan_in = 4, then ``hidden``), one ``uniform(d)`` draw per trajectory."""
    fan_in = torch.cat([torch.full((N_FEATURES * hidden + hidden,), float(N_FEATURES)),
                        torch.full((N_CLASSES * hidden + N_CLASSES,), float(hidden))])
    bound = (1.0 / fan_in.sqrt()).to(torch.float64)

    def sample(batch: int, generator: TrajectoryRNG) -> torch.Tensor:
        return generator.uniform(bound.numel(), low=-1.0, high=1.0) * bound.to(generator.device)
    return sample


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
    :class:`tasks.training.TrainingMap` for the diagnostics (loss, accuracy,
    sharpness).
    """
    check_int("hidden", hidden, 1)
    check_int("sgd_batch", sgd_batch, 1, allow_none=True,
              allowed="None (full-batch gradient descent) or an integer >= 1 (the mini-batch size; samples are "
                      "drawn with replacement from the 150)")
    # lr and weight_decay are checked (same names, same rules) by training_map
    system = training_map(iris_mlp(hidden), nn.functional.cross_entropy, load_iris(), lr=lr,
                          batch_size=sgd_batch, weight_decay=weight_decay, init_noise=0.0,
                          sample_initial=linear_init(hidden), name="gd_training_map",
                          source="Danovski, Soriano & Lacasa, Front. Complex Syst. 2, 1367957 (2024), "
                                 "arXiv:2404.05782",
                          note="training map on Iris; no reference value of the exponents")
    system.params = {"lr": float(lr), "hidden": hidden, "sgd_batch": sgd_batch, "weight_decay": float(weight_decay)}
    return system


def training_map_task(spec) -> TrainingMap:
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

