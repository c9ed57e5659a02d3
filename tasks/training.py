"""Training of a user's ``nn.Module`` as a map in parameter space: :func:`training_map`.

    import torch, tasks
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    system = tasks.training_map(model, torch.nn.functional.mse_loss, (X, y), lr=0.1)

The state is the flat vector theta of the model's trainable parameters (``named_parameters()``
order, row-major), and one step of the map is one step of gradient descent,

    theta_{t+1} = theta_t - lr (grad L(theta_t) + wd theta_t),   DF = I - lr (H + wd I),

with L = ``loss_fn(model(X), y)`` and H its Hessian.  With ``momentum`` m > 0 (heavy ball) the
state is (theta, v), theta first: v_{t+1} = m v_t - lr (grad L + wd theta_t), theta_{t+1} =
theta_t + v_{t+1} (torch.optim.SGD's momentum in the coordinates v = -lr b).  The tangent is
applied by Hessian-vector products (torch.func.jvp of torch.func.grad, vmapped over the frame's
columns and the trajectories), never forming the Hessian.  Exponents: natural log, per step.

Data: ``(X, y)`` (full batch; with ``batch_size = m`` each step and trajectory uses m samples
drawn with replacement from its TrajectoryRNG) or a sequence of equal-shaped ``(X_j, y_j)``
batches (one drawn per step and trajectory).  A batch of B trajectories equals B single runs.
Initial states: the model's parameters plus ``init_noise`` * N(0, 1) (default 1e-3; 0 starts
exactly there), velocity 0.  The block form of DF, the conventions and an example:
docs/training_maps.md.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

import torch

from reference_systems import Map, TrajectoryRNG
from suite.core.args import check_int, check_number, check_positive
from suite.core.errors import InvalidArgumentError
from tasks.eval_mode import check_eval_mode, check_materialised

#: optimizer names: both are (mini-batch) gradient descent; mini-batches come from ``batch_size``
OPTIMIZERS = ("gd", "sgd")


def _pairs(data) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """``data`` as a list of (X, y) tensor pairs (one pair: full batch), checked."""
    def pair(item, where):
        if (not isinstance(item, (tuple, list)) or len(item) != 2
                or not all(isinstance(t, torch.Tensor) for t in item)):
            raise InvalidArgumentError("data" + where, type(item).__name__,
                                       "an (X, y) pair of tensors or a sequence of such batches")
        X, y = item
        if X.ndim < 1 or y.ndim < 1 or X.shape[0] != y.shape[0]:
            raise InvalidArgumentError("data" + where, f"X of shape {tuple(X.shape)}, y of shape {tuple(y.shape)}",
                                       "X and y with the same number of samples (their first dimension)")
        if X.shape[0] == 0:
            raise InvalidArgumentError("data" + where, "no samples", "at least one sample")
        return X.detach(), y.detach()

    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return [pair(data, "")]
    if isinstance(data, torch.Tensor) or not hasattr(data, "__iter__"):
        raise InvalidArgumentError("data", type(data).__name__, "an (X, y) pair of tensors or a sequence of such batches")
    batches = [pair(item, f"[{j}]") for j, item in enumerate(data)]
    if not batches:
        raise InvalidArgumentError("data", "an empty sequence", "at least one (X, y) batch")
    for j, (X, y) in enumerate(batches[1:], start=1):
        if X.shape != batches[0][0].shape or y.shape != batches[0][1].shape:
            raise InvalidArgumentError(f"data[{j}]", f"X {tuple(X.shape)}, y {tuple(y.shape)}",
                                       f"the shapes of data[0] (X {tuple(batches[0][0].shape)}, y "
                                       f"{tuple(batches[0][1].shape)}): batches of equal shapes (drop a last "
                                       "partial batch, e.g. DataLoader(..., drop_last=True))")
    return batches


class TrainingMap(Map):
    """Gradient descent (optionally heavy-ball momentum) on a model's flat parameters; see :func:`training_map`.

    Diagnostics: :meth:`loss`, :meth:`grad` (full batch), :meth:`hvp`,
    :meth:`hessian`, :meth:`sharpness`, :meth:`outputs`, :meth:`accuracy`; :meth:`theta` takes theta out of a
    state (with momentum, the first half).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable, data, *, lr: float, batch_size: Optional[int],
                 weight_decay: float, momentum: float, init_noise: float = 1e-3,
                 sample_initial: Optional[Callable] = None, name: str = "training_map", **kw):
        self.model, self.loss_fn = model, loss_fn
        self.lr, self.batch_size = float(lr), batch_size
        self.weight_decay, self.momentum, self.init_noise = float(weight_decay), float(momentum), float(init_noise)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.shapes = [tuple(params[n].shape) for n in self.names]
        self.numels = [math.prod(s) for s in self.shapes]
        self.n_params = sum(self.numels)
        if self.n_params == 0:
            raise InvalidArgumentError("model", type(model).__name__, "an nn.Module with trainable parameters")
        self.theta0 = torch.cat([params[n].detach().reshape(-1) for n in self.names]).to(torch.float64)
        self.fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
        self.fixed.update({n: b.detach() for n, b in model.named_buffers()})
        self.batches = _pairs(data)
        self.n_samples = self.batches[0][0].shape[0]
        self._cast: Dict[Tuple[torch.dtype, torch.device], Tuple[torch.Tensor, torch.Tensor, Dict]] = {}
        random = batch_size is not None or len(self.batches) > 1
        kw.setdefault("batch_invariant", False)  # vmapped products: their BLAS calls depend on the batch
        dim = self.n_params * (2 if self.momentum else 1)
        super().__init__(name, step=self._map, dim=dim, sample_initial=sample_initial or self._init,
                         noise=self._draw if random else None, **kw)
        self._check_loss()

    # -- data per (dtype, device) -------------------------------------------
    def _data(self, x: torch.Tensor):
        """(X (nb, n, ...), y (nb, n, ...), fixed tensors) in x's dtype (floating ones) and device (cached)."""
        key = (x.dtype, x.device)
        if key not in self._cast:
            def cast(t):
                return t.to(device=x.device, dtype=x.dtype if t.is_floating_point() else t.dtype)
            X = torch.stack([cast(b[0]) for b in self.batches])
            y = torch.stack([cast(b[1]) for b in self.batches])
            self._cast[key] = (X, y, {n: cast(t) for n, t in self.fixed.items()})
        return self._cast[key]

    # -- the loss of one network ----------------------------------------------
    def _params(self, theta: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {n: t.reshape(s) for n, t, s in zip(self.names, torch.split(theta, self.numels), self.shapes)}

    def _loss_one(self, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, fixed: Dict) -> torch.Tensor:
        """L(theta) + wd/2 |theta|^2 for one flat theta (d,) on one batch (X, y)."""
        out = torch.func.functional_call(self.model, {**fixed, **self._params(theta)}, (X,))
        L = self.loss_fn(out, y)
        if self.weight_decay:
            L = L + 0.5 * self.weight_decay * (theta * theta).sum()
        return L

    def _check_loss(self) -> None:
        """Evaluate the loss once at the model's parameters: bad data shapes or a non-scalar loss fail here."""
        x = self.theta0[None]
        X, y, fixed = self._data(x)
        m = self.batch_size or self.n_samples
        try:
            out = torch.func.functional_call(self.model, {**fixed, **self._params(self.theta0)}, (X[0, :m],))
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise InvalidArgumentError("data", f"X of shape {tuple(self.batches[0][0].shape)}",
                                       f"inputs the model accepts (model(X) raised: {exc})") from exc
        try:
            L = self.loss_fn(out, y[0, :m])
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise InvalidArgumentError("data", f"y of shape {tuple(self.batches[0][1].shape)}",
                                       f"targets loss_fn accepts with the model's output of shape "
                                       f"{tuple(out.shape)} (loss_fn raised: {exc})") from exc
        if not isinstance(L, torch.Tensor) or L.numel() != 1 or L.ndim > 1:
            raise InvalidArgumentError("loss_fn", f"a result of shape {tuple(getattr(L, 'shape', ())) or type(L).__name__}",
                                       "a callable (model_output, y) -> scalar tensor (e.g. a mean over the batch: "
                                       "reduction='mean')")
        if not L.is_floating_point():
            raise InvalidArgumentError("loss_fn", f"a result of dtype {L.dtype}", "a floating-point scalar tensor")

    # -- noise and initial states -------------------------------------------
    def _draw(self, generator: TrajectoryRNG, x: torch.Tensor):
        """This step's data per trajectory: (X (B, m, ...), y (B, m, ...)), one draw of the TrajectoryRNG."""
        X, y, _ = self._data(x)
        if self.batch_size is None:  # a sequence of batches: one drawn per trajectory
            j = generator.integers(X.shape[0]).to(x.device)
            return X[j], y[j]
        idx = generator.integers(self.n_samples, self.batch_size).to(x.device)  # (B, m), with replacement
        return X[0][idx], y[0][idx]

    def _init(self, batch: int, generator: TrajectoryRNG) -> torch.Tensor:
        theta = self.theta0.to(generator.device).expand(batch, -1)
        if self.init_noise:
            theta = theta + self.init_noise * generator.normal(self.n_params)
        if self.momentum:
            theta = torch.cat([theta, torch.zeros_like(theta)], dim=1)
        return theta.contiguous()

    # -- dynamics -----------------------------------------------------------
    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The parameters theta (B, d) of states x (B, dim)."""
        return x[:, :self.n_params]

    def _batched(self, fn, x: torch.Tensor, batch):
        """vmap ``fn(theta, X, y, fixed, *rest)`` over trajectories, the data shared (full batch) or per trajectory."""
        X, y, fixed = self._data(x)
        if batch is None:
            return fn, (X[0], y[0], fixed), (None, None, None)
        return fn, (batch[0], batch[1], fixed), (0, 0, None)

    def _gradient(self, theta: torch.Tensor, batch=None) -> torch.Tensor:
        g = torch.func.grad(self._loss_one)
        fn, data, dims = self._batched(g, theta, batch)
        return torch.func.vmap(fn, in_dims=(0,) + dims)(theta, *data)

    def hvp(self, theta: torch.Tensor, V: torch.Tensor, batch=None) -> torch.Tensor:
        """(Hess L + wd I)(theta) V, (B, d, k), by forward-over-reverse autodiff (never forming the Hessian).

        torch.func.jvp of torch.func.grad of one network's loss, vmapped over
        the k columns of V and over the B trajectories; ``batch`` is a step's
        drawn data (None: the full batch).
        """
        g = torch.func.grad(self._loss_one)

        def one(th, v, X, y, fixed):
            if not y.is_floating_point():
                return torch.func.jvp(lambda t: g(t, X, y, fixed), (th,), (v,))[1]
            # floating targets enter as primals with a materialised zero tangent: some losses'
            # double-backward formulas (mse_loss in torch 2.x) write into the implicit ZeroTensor
            return torch.func.jvp(lambda t, yy: g(t, X, yy, fixed), (th, y), (v, torch.zeros_like(y)))[1]

        columns = torch.func.vmap(one, in_dims=(None, 1, None, None, None), out_dims=1)
        fn, data, dims = self._batched(columns, theta, batch)
        return torch.func.vmap(fn, in_dims=(0, 0) + dims)(theta, V, *data)

    def _map(self, x: torch.Tensor, batch=None) -> torch.Tensor:
        d = self.n_params
        g = self._gradient(x[:, :d], batch)
        if not self.momentum:
            return x - self.lr * g
        v = self.momentum * x[:, d:] - self.lr * g
        return torch.cat([x[:, :d] + v, v], dim=1)

    def _step(self, x, generator):
        return self._map(x, None if self._noise is None else self._draw(generator, x))

    def _tangent(self, x, V, generator):
        batch = None if self._noise is None else self._draw(generator, x)
        d = self.n_params
        HV = self.hvp(x[:, :d], V[:, :d], batch)
        if not self.momentum:
            return self._map(x, batch), V - self.lr * HV
        dv = self.momentum * V[:, d:] - self.lr * HV
        return self._map(x, batch), torch.cat([V[:, :d] + dv, dv], dim=1)

    # -- diagnostics ----------------------------------------------------------
    def _theta_of(self, x: torch.Tensor) -> torch.Tensor:
        self._check_state(x, "x")
        return x[:, :self.n_params]

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Full-data loss L(theta) + wd/2 |theta|^2, (B,) (the mean over the batches of a sequence)."""
        theta = self._theta_of(x)
        X, y, fixed = self._data(theta)
        per = torch.func.vmap(torch.func.vmap(self._loss_one, in_dims=(0, None, None, None)),
                              in_dims=(None, 0, 0, None))(theta, X, y, fixed)
        return per.mean(dim=0)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs on the full data, (B, nb, n, ...) for states x (B, dim) (nb batches of n samples)."""
        theta = self._theta_of(x)
        X, _, fixed = self._data(theta)

        def one(th, Xj):
            return torch.func.functional_call(self.model, {**fixed, **self._params(th)}, (Xj,))
        return torch.func.vmap(torch.func.vmap(one, in_dims=(None, 0)), in_dims=(0, None))(theta, X)

    def accuracy(self, x: torch.Tensor) -> torch.Tensor:
        """Classification accuracy on the full data, (B,): the fraction of samples whose output's argmax over the
        last dimension equals their integer label y."""
        _, y, _ = self._data(x)
        if y.is_floating_point() or y.is_complex():
            raise InvalidArgumentError("data", f"y of dtype {y.dtype}", "integer class labels for accuracy()")
        out = self.outputs(x)
        return (out.argmax(dim=-1) == y).to(x.dtype).flatten(1).mean(dim=1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """grad (L + wd/2 |theta|^2)(theta), (B, d), on the full data (the mean over the batches of a sequence)."""
        theta = self._theta_of(x)
        X, y, _ = self._data(theta)
        if X.shape[0] == 1:
            return self._gradient(theta)
        B = theta.shape[0]
        return torch.stack([self._gradient(theta, (X[j].expand(B, *X.shape[1:]), y[j].expand(B, *y.shape[1:])))
                            for j in range(X.shape[0])]).mean(dim=0)

    def hessian(self, x: torch.Tensor) -> torch.Tensor:
        """Full-batch Hess (L + wd/2 |theta|^2)(theta), (B, d, d), from d Hessian-vector products (symmetrised)."""
        theta = self._theta_of(x)
        if len(self.batches) > 1:
            raise InvalidArgumentError("data", f"{len(self.batches)} batches", "one (X, y) pair for hessian()")
        eye = torch.eye(self.n_params, dtype=theta.dtype, device=theta.device).expand(theta.shape[0], -1, -1)
        Hm = self.hvp(theta.contiguous(), eye.contiguous())
        return 0.5 * (Hm + Hm.transpose(1, 2))

    def sharpness(self, x: torch.Tensor) -> torch.Tensor:
        """Largest eigenvalue of the full-batch Hessian, (B,): gradient descent is stable at a minimum iff lr < 2 / it."""
        return torch.linalg.eigvalsh(self.hessian(x))[:, -1]


def training_map(model: torch.nn.Module, loss_fn: Callable, data, *, lr: float, optimizer: str = "gd",
                 batch_size: Optional[int] = None, weight_decay: float = 0.0, momentum: float = 0.0,
                 init_noise: float = 1e-3, sample_initial: Optional[Callable] = None,
                 name: str = "training_map", **meta) -> TrainingMap:
    """Training of ``model`` by gradient descent on ``loss_fn(model(X), y)``, as a map (a System).

    ``data``: an ``(X, y)`` pair of tensors (full batch; ``batch_size = m``
    draws m samples with replacement per step and trajectory) or a sequence
    of ``(X_j, y_j)`` batches of equal shapes (one drawn per step and
    trajectory).  ``optimizer``: "gd" or "sgd", the same update (mini-batches
    come from ``batch_size`` or the batches of ``data``); adaptive optimizers
    (Adam, RMSprop) are not maps on the parameters alone and are refused.
    ``weight_decay`` adds wd * theta to the gradient; ``momentum`` m in
    [0, 1) makes the state (theta, v), heavy ball v <- m v - lr grad,
    theta <- theta + v.  ``init_noise``: initial states are the model's
    current parameters plus init_noise * N(0, 1) (0: exactly them), or
    ``sample_initial(batch, generator) -> (B, dim)`` when given (draw with
    ``generator.normal(...)`` / ``generator.uniform(...)``).
    Dimension: the number of trainable parameters (x2 with momentum).
    Exponents in natural log per training step.  The model is not modified.
    ``**meta`` passes through to the System (``validation={...}``,
    ``source=...``, ``note=...``).
    See the module docstring and docs/training_maps.md.
    """
    if not isinstance(model, torch.nn.Module):
        raise InvalidArgumentError("model", type(model).__name__, "a torch.nn.Module")
    check_eval_mode("model", model)
    check_materialised("model", model)
    if not callable(loss_fn):
        raise InvalidArgumentError("loss_fn", loss_fn, "a callable (model_output, y) -> scalar tensor")
    check_positive("lr", lr)
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise InvalidArgumentError("optimizer", optimizer,
                                   "'gd' or 'sgd' (both gradient descent: mini-batches come from batch_size or a "
                                   "sequence of batches in data; momentum and weight_decay are their own arguments). "
                                   "Adaptive optimizers (Adam, RMSprop, ...) carry per-parameter statistics and are "
                                   "not supported")
    check_int("batch_size", batch_size, 1, allow_none=True,
              allowed="None (full batch) or an integer >= 1 (samples drawn with replacement per step and trajectory)")
    check_number("weight_decay", weight_decay, low=0.0)
    check_number("momentum", momentum, low=0.0, high=1.0, high_open=True, allowed="a number in [0, 1)")
    check_number("init_noise", init_noise, low=0.0)
    if sample_initial is not None and not callable(sample_initial):
        raise InvalidArgumentError("sample_initial", sample_initial, "None or a callable (batch, generator) -> (B, dim)")
    if batch_size is not None and not (isinstance(data, (tuple, list)) and len(data) == 2
                                       and all(isinstance(t, torch.Tensor) for t in data)):
        raise InvalidArgumentError("batch_size", batch_size, "None when data is a sequence of batches (each step "
                                   "uses one whole batch); an integer with data = (X, y)")
    params = {"lr": float(lr), "optimizer": optimizer.lower(), "batch_size": batch_size,
              "weight_decay": float(weight_decay), "momentum": float(momentum)}
    return TrainingMap(model, loss_fn, data, lr=float(lr), batch_size=batch_size, weight_decay=float(weight_decay),
                       momentum=float(momentum), init_noise=float(init_noise), sample_initial=sample_initial,
                       name=name, params=params,
                       **{"note": "training map of a user's model; no reference value of the exponents", **meta})


__all__ = ["training_map", "TrainingMap", "OPTIMIZERS"]
