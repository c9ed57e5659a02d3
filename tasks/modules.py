"""A user's recurrent torch model as a System: ``tasks.from_module(module, inputs)``.

The System is the hidden-state map of the model driven by inputs, x_{t+1} = F(x_t, u_t),
a random dynamical system when u_t is random; exponents per step, natural log.

* ``module``: ``torch.nn.RNN`` (tanh or relu), ``GRU``, ``LSTM`` (any ``num_layers``, either
  ``batch_first``; not bidirectional, no ``proj_size``), ``RNNCell``, ``GRUCell``, ``LSTMCell``,
  or any module with ``forward(u, h) -> h`` (u of shape (B, input_size); h a tensor (B, ...) or a
  tuple of them, probed once at construction).
* State x (B, d): layer 0 h, layer 0 c (LSTM only), layer 1 h, layer 1 c, ...; d = L H (2 L H for
  the LSTM).  A custom module's state: its tensors flattened per trajectory, in tuple order.
  ``system.pack(state)`` / ``system.unpack(x)`` convert from / to torch's own layout.
* ``inputs``: a tensor (..., input_size) whose rows are drawn i.i.d. per step and trajectory
  (index = floor(N U), U = ``generator.uniform(1)``; a single row is a constant input), a callable
  ``(generator, batch) -> (batch, input_size)``, or None (zero input, an autonomous network).
  ``input_noise`` (std) adds ``input_noise * generator.normal(input_size)`` after that draw.
* Step: torch's own cell functions (``torch.rnn_tanh_cell``, ``gru_cell``, ``lstm_cell``), layer by
  layer, so the state equals the module's own forward bit for bit (tested for every kind).
* Tangent: analytic for the standard modules, J V = dF/dx V (J V, never J^T V), layer by layer
  (layer l's input is layer l-1's new h), with PyTorch's equations and gate orders (LSTM i, f, g, o;
  GRU r, z, n, n = tanh(W_in u + b_in + r (W_hn h + b_hn))); automatic differentiation
  (torch.func) through ``forward`` for a custom module.  Dropout is not applied (eval mode).
* Parameters: float64 copies taken at construction (a later change of the module is not seen),
  cast to the state's dtype and device on first use and cached.  ``batch_invariant=False``
  (one weight matrix times the batch: a split batch agrees to round-off).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from reference_systems import Map, TrajectoryRNG
from reference_systems.system import call_user
from suite.core.args import check_number
from suite.core.errors import InvalidArgumentError
from tasks.eval_mode import check_eval_mode, check_materialised

def _standard_kind(module: nn.Module) -> Optional[str]:
    """The cell kind of a torch.nn RNN/GRU/LSTM module or cell, None for a custom module."""
    if isinstance(module, nn.RNNBase):
        return module.mode
    if isinstance(module, nn.RNNCell):
        return "RNN_TANH" if module.nonlinearity == "tanh" else "RNN_RELU"
    if isinstance(module, nn.GRUCell):
        return "GRU"
    if isinstance(module, nn.LSTMCell):
        return "LSTM"
    return None


def _f64(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().clone()
    return t.to(torch.float64) if t.is_floating_point() else t


def _layer_weights(module: nn.Module) -> List[Tuple[torch.Tensor, ...]]:
    """[(W_ih, W_hh, b_ih, b_hh)] per layer, float64 copies (zero biases where bias=False)."""
    suffixes = [f"_l{l}" for l in range(module.num_layers)] if isinstance(module, nn.RNNBase) else [""]
    out = []
    for s in suffixes:
        W_ih, W_hh = _f64(getattr(module, "weight_ih" + s)), _f64(getattr(module, "weight_hh" + s))
        b_ih, b_hh = getattr(module, "bias_ih" + s, None), getattr(module, "bias_hh" + s, None)
        zero = torch.zeros(W_hh.shape[0], dtype=torch.float64)
        out.append((W_ih, W_hh, zero if b_ih is None else _f64(b_ih), zero.clone() if b_hh is None else _f64(b_hh)))
    return out


#: torch's own cell functions (what nn.RNNCell / GRUCell / LSTMCell and, per layer and step, nn.RNN / GRU /
#: LSTM compute): the state is theirs bit for bit
_CELLS = {"RNN_TANH": torch.rnn_tanh_cell, "RNN_RELU": torch.rnn_relu_cell, "GRU": torch.gru_cell,
          "LSTM": torch.lstm_cell}


def _layer(kind: str, p, u, h, c, du=None, dh=None, dc=None):
    """One layer's step (h', c') by torch's cell function and, given tangents (B, ., k), their tangents
    (dh', dc') from the analytic derivative of PyTorch's equations (gates recomputed for it)."""
    if kind == "LSTM":
        h1, c1 = _CELLS[kind](u, (h, c), *p)
    else:
        h1, c1 = _CELLS[kind](u, h, *p), None
    if dh is None:
        return h1, c1, None, None
    W_ih, W_hh, b_ih, b_hh = p
    dgi = 0.0 if du is None else torch.matmul(W_ih, du)
    dgh = torch.matmul(W_hh, dh)
    if kind in ("RNN_TANH", "RNN_RELU"):
        slope = 1.0 - h1 * h1 if kind == "RNN_TANH" else (h1 > 0).to(h1.dtype)
        return h1, None, slope.unsqueeze(-1) * (dgi + dgh), None
    H = h.shape[1]
    gi, gh = F.linear(u, W_ih, b_ih), F.linear(h, W_hh, b_hh)
    if kind == "GRU":  # gates r, z, n; n = tanh(W_in u + b_in + r (W_hn h + b_hn)); h' = (1 - z) n + z h
        ir, iz, in_ = gi.chunk(3, dim=1)
        hr, hz, hn = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        dgi_r, dgi_z, dgi_n = (0.0, 0.0, 0.0) if du is None else (dgi[:, :H], dgi[:, H:2 * H], dgi[:, 2 * H:])
        dgh_r, dgh_z, dgh_n = dgh[:, :H], dgh[:, H:2 * H], dgh[:, 2 * H:]
        dr = (r * (1.0 - r)).unsqueeze(-1) * (dgi_r + dgh_r)
        dz = (z * (1.0 - z)).unsqueeze(-1) * (dgi_z + dgh_z)
        dn = (1.0 - n * n).unsqueeze(-1) * (dgi_n + dr * hn.unsqueeze(-1) + r.unsqueeze(-1) * dgh_n)
        return h1, None, (1.0 - z).unsqueeze(-1) * dn + (h - n).unsqueeze(-1) * dz + z.unsqueeze(-1) * dh, None
    # LSTM: gates i, f, g, o; c' = f c + i g, h' = o tanh(c')
    gi_, gf, gg, go = (gi + gh).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(gi_), torch.sigmoid(gf), torch.tanh(gg), torch.sigmoid(go)
    tc = torch.tanh(c1)
    dgates = dgi + dgh
    di = (i * (1.0 - i)).unsqueeze(-1) * dgates[:, :H]
    df = (f * (1.0 - f)).unsqueeze(-1) * dgates[:, H:2 * H]
    dg = (1.0 - g * g).unsqueeze(-1) * dgates[:, 2 * H:3 * H]
    do = (o * (1.0 - o)).unsqueeze(-1) * dgates[:, 3 * H:]
    dc1 = df * c.unsqueeze(-1) + f.unsqueeze(-1) * dc + di * g.unsqueeze(-1) + i.unsqueeze(-1) * dg
    dh1 = do * tc.unsqueeze(-1) + (o * (1.0 - tc * tc)).unsqueeze(-1) * dc1
    return h1, c1, dh1, dc1


class ModuleMap(Map):
    """x_{t+1} = module(u_t, x_t): see the module docstring.  Built by :func:`from_module`."""

    def __init__(self, name: str, module: nn.Module, input_size: int, draw: Optional[Callable],
                 constant: Optional[torch.Tensor] = None, **meta):
        self.module, self.input_size, self._constant = module, input_size, constant
        self.kind_of_cell = _standard_kind(module)
        self._cast: Dict[Tuple[torch.dtype, torch.device], Any] = {}
        if self.kind_of_cell is not None:
            self._weights = _layer_weights(module)
            self.layers, self.hidden = len(self._weights), self._weights[0][1].shape[1]
            self._parts = 2 if self.kind_of_cell == "LSTM" else 1
            self._shapes = [(self.hidden,)] * (self.layers * self._parts)
            self._tuple = self._parts == 2 or isinstance(module, nn.RNNBase)
            dim = self.layers * self._parts * self.hidden
            meta = {"cell": self.kind_of_cell, "layers": self.layers, "hidden": self.hidden, **meta}
        else:
            self._weights = {k: _f64(v) for k, v in list(module.named_parameters()) + list(module.named_buffers())}
            self._shapes, self._tuple = _probe_state(module, input_size)
            dim = sum(math.prod(s) for s in self._shapes)
        meta.setdefault("batch_invariant", False)  # one shared weight matrix times the batch
        meta.setdefault("source", f"tasks.from_module({type(module).__name__})")
        super().__init__(name, self._forward, dim,
                         jacobian=self._jacobian if self.kind_of_cell is not None else None,
                         noise=draw, **meta)

    # -- parameters -------------------------------------------------------------
    def weights_for(self, x: torch.Tensor):
        """The float64 parameter copies cast to x's dtype and device (cached)."""
        key = (x.dtype, x.device)
        if key not in self._cast:
            def cast(t):
                return t.to(device=x.device, dtype=x.dtype) if t.is_floating_point() else t.to(x.device)
            self._cast[key] = ([tuple(cast(t) for t in p) for p in self._weights] if isinstance(self._weights, list)
                               else {k: cast(v) for k, v in self._weights.items()})
        return self._cast[key]

    # -- state layout -------------------------------------------------------------
    def unpack(self, x: torch.Tensor):
        """(B, d) -> the module's own state: h (and (h, c)) of shape (L, B, H) for RNN/GRU/LSTM, (B, H) for
        a cell; a custom module's tensor or tuple of tensors (B, ...)."""
        B, parts, start = x.shape[0], [], 0
        for s in self._shapes:
            n = math.prod(s)
            parts.append(x[:, start:start + n].reshape((B,) + tuple(s)))
            start += n
        if self.kind_of_cell is not None and isinstance(self.module, nn.RNNBase):
            return tuple(torch.stack(parts[j::self._parts]) for j in range(self._parts)) if self._parts == 2 \
                else torch.stack(parts)
        return tuple(parts) if self._tuple else parts[0]

    def pack(self, state) -> torch.Tensor:
        """The module's own state (as :meth:`unpack` returns it) -> (B, d)."""
        if self.kind_of_cell is not None and isinstance(self.module, nn.RNNBase):
            hc = state if self._parts == 2 else (state,)
            return torch.cat([hc[j][l] for l in range(self.layers) for j in range(self._parts)], dim=1)
        parts = state if self._tuple else (state,)
        return torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1)

    # -- dynamics -----------------------------------------------------------------
    def _input(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        """The step's input: the drawn u, else the constant row (a one-row ``inputs``), else zero."""
        return u if u is not None else _fixed_input(x, self._constant, self.input_size)

    def _forward(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        u = self._input(x, u)
        if self.kind_of_cell is None:
            out = torch.func.functional_call(self.module, self.weights_for(x), (u, self.unpack(x)))
            return self.pack(out)
        return self._advance(x, u)[0]

    def _advance(self, x, u, V=None):
        """(x_next, J V or None) through the layers, the analytic tangent of the standard cells."""
        H, P = self.hidden, self._parts
        new, dnew, inp, dinp = [], [], u, None
        for l, p in enumerate(self.weights_for(x)):
            s = l * P * H
            h, c = x[:, s:s + H], (x[:, s + H:s + 2 * H] if P == 2 else None)
            dh, dc = (None, None) if V is None else (V[:, s:s + H], V[:, s + H:s + 2 * H] if P == 2 else None)
            h1, c1, dh1, dc1 = _layer(self.kind_of_cell, p, inp, h, c, dinp, dh, dc)
            new += [h1] if P == 1 else [h1, c1]
            dnew += [dh1] if P == 1 else [dh1, dc1]
            inp, dinp = h1, dh1
        return torch.cat(new, dim=1), (None if V is None else torch.cat(dnew, dim=1))

    def _jacobian(self, x: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
        return self._advance(x, self._input(x, u), eye)[1]

    def _tangent(self, x, V, generator):
        if self.kind_of_cell is None:
            return super()._tangent(x, V, generator)
        u = self.draw_noise(generator, x)
        return self._advance(x, self._input(x, u), V)


def _fixed_input(x: torch.Tensor, constant: Optional[torch.Tensor], width: int) -> torch.Tensor:
    """The input of every trajectory when none is drawn: the one-row ``inputs`` (constant), else zero."""
    if constant is None:
        return torch.zeros(x.shape[0], width, dtype=x.dtype, device=x.device)
    return constant.to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1)


def _probe_state(module: nn.Module, input_size: int):
    """Per-trajectory state shapes of a custom module and whether its state is a tuple (probed once)."""
    B = 3  # the probe's batch (unlike a layer count of 2: a state that is not batch-first is caught)
    u = torch.zeros(B, input_size, dtype=torch.float64)
    params = {k: _f64(v) for k, v in list(module.named_parameters()) + list(module.named_buffers())}
    want = "a module whose forward(u, h) returns the next state h (a tensor (B, ...) or a tuple of them, " \
           "the same shapes as h)"

    def call(h):
        with torch.no_grad():
            return torch.func.functional_call(module, params, (u, h))

    def shapes(out):
        parts = out if isinstance(out, tuple) else (out,)
        if not parts or not all(isinstance(p, torch.Tensor) and p.ndim >= 1 and p.shape[0] == B
                                and p.is_floating_point() for p in parts):
            return None
        return [tuple(p.shape[1:]) for p in parts], isinstance(out, tuple)

    try:
        template = shapes(call(None))
    except Exception:  # noqa: BLE001 - a forward that does not take h=None: use hidden_size
        template = None
    if template is None:
        hidden = getattr(module, "hidden_size", None)
        if not isinstance(hidden, int) or hidden < 1:
            raise InvalidArgumentError("module", type(module).__name__, want + ", with forward(u, None) returning "
                                       "an initial state or an int attribute hidden_size")
        template = ([(hidden,)], False)
    h = tuple(torch.zeros((B,) + s, dtype=torch.float64) for s in template[0])
    try:
        out = call(h if template[1] else h[0])
    except Exception as exc:  # noqa: BLE001 - reported with what was asked of the module
        raise InvalidArgumentError("module", type(module).__name__, f"{want}; forward(u, h) raised {exc!r}") from exc
    got = shapes(out)
    if got != template:
        raise InvalidArgumentError("module", type(module).__name__, f"{want}; for h of shapes "
                                   f"{[(B,) + s for s in template[0]]} forward returned {_describe(out)}")
    return template


def _describe(out) -> str:
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, tuple):
        return "(" + ", ".join(_describe(o) for o in out) + ")"
    return type(out).__name__


def _module_input_size(module: nn.Module) -> Optional[int]:
    size = getattr(module, "input_size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _inputs_draw(inputs, input_size: Optional[int], input_noise: Optional[float]):
    """(input_size, noise(generator, x) -> u or None, the constant input row or None) for ``inputs``."""
    if isinstance(inputs, torch.Tensor):
        if inputs.ndim < 1 or inputs.numel() == 0 or not (inputs.is_floating_point() or inputs.dtype in
                                                           (torch.int32, torch.int64, torch.bool)):
            raise InvalidArgumentError("inputs", f"a {inputs.dtype} tensor of shape {tuple(inputs.shape)}",
                                       "a non-empty real tensor (..., input_size), a callable (generator, batch) "
                                       "-> (batch, input_size) or None")
        width = inputs.shape[-1]
        if input_size is not None and width != input_size:
            raise InvalidArgumentError("inputs", f"a tensor of shape {tuple(inputs.shape)}",
                                       f"a last dimension equal to the module's input_size = {input_size}")
        samples = _f64(inputs).reshape(-1, width)
        if not torch.isfinite(samples).all():
            raise InvalidArgumentError("inputs", "a tensor with non-finite values", "finite values")
        cache: Dict[Tuple[torch.dtype, torch.device], torch.Tensor] = {}

        def rows(generator, x):
            key = (x.dtype, x.device)
            if key not in cache:
                cache[key] = samples.to(device=x.device, dtype=x.dtype)
            table = cache[key]
            return table[generator.integers(table.shape[0]).to(x.device)]
        base, constant = (rows, None) if samples.shape[0] > 1 else (None, samples)
    elif callable(inputs):
        out = call_user("inputs", inputs, TrajectoryRNG(0, 2), 2)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
            raise InvalidArgumentError("inputs", inputs, f"a callable (generator, batch) -> (batch, input_size); "
                                       f"for batch 2 it returned {_describe(out)}")
        width = out.shape[1]
        if input_size is not None and width != input_size:
            raise InvalidArgumentError("inputs", inputs, f"a callable returning (batch, {input_size}) (the module's "
                                       f"input_size); for batch 2 it returned (2, {width})")

        def base(generator, x):
            u = call_user("inputs", inputs, generator, x.shape[0])
            if not isinstance(u, torch.Tensor) or u.shape != (x.shape[0], width):
                raise InvalidArgumentError("inputs", inputs, f"a callable returning ({x.shape[0]}, {width}); it "
                                           f"returned {_describe(u)}")
            return u.to(device=x.device, dtype=x.dtype)
        constant = None
    elif inputs is None:
        if input_size is None:
            raise InvalidArgumentError("inputs", None, "a tensor or a callable for a module without an int "
                                       "attribute input_size (None means zero input of the module's input_size)")
        width, base, constant = input_size, None, None
    else:
        raise InvalidArgumentError("inputs", type(inputs).__name__, "a tensor (..., input_size), a callable "
                                   "(generator, batch) -> (batch, input_size) or None")
    std = check_number("input_noise", input_noise, low=0.0, allow_none=True) or 0.0
    if base is None and std == 0.0:
        return width, None, constant

    def draw(generator, x):
        u = base(generator, x) if base is not None else _fixed_input(x, constant, width)
        if std:
            u = u + std * generator.normal(width, dtype=x.dtype).to(x.device)
        return u
    return width, draw, None


def from_module(module: nn.Module, inputs, *, name: Optional[str] = None, input_noise: Optional[float] = None,
                **meta) -> Map:
    """The hidden-state map of a recurrent torch ``module`` driven by ``inputs`` (see the module docstring).

    ``name`` defaults to the module's class name; ``**meta`` passes through to the System
    (``validation={...}``, ``reference=...``, ``sample_initial=...``).
    """
    if not isinstance(module, nn.Module):
        raise InvalidArgumentError("module", type(module).__name__, "a torch.nn.Module: RNN, GRU, LSTM, their "
                                   "cells, or a module with forward(u, h) -> h")
    if isinstance(module, nn.RNNBase):
        if module.mode not in ("RNN_TANH", "RNN_RELU", "GRU", "LSTM"):
            raise InvalidArgumentError("module", type(module).__name__, "an RNN (tanh or relu), GRU or LSTM")
        if module.bidirectional:
            raise InvalidArgumentError("module.bidirectional", True, "False: a bidirectional model reads the "
                                       "sequence backwards too and has no forward-in-time state map")
        if getattr(module, "proj_size", 0) > 0:
            raise InvalidArgumentError("module.proj_size", module.proj_size, "0: an LSTM with projections is not "
                                       "supported (its h is a projection of the cell output)")
    check_eval_mode("module", module)
    check_materialised("module", module)
    if name is None:
        name = type(module).__name__
    width, draw, constant = _inputs_draw(inputs, _module_input_size(module), input_noise)
    return ModuleMap(name, module, width, draw, constant, **meta)
