"""The System contract: batched maps and flows with tangent dynamics.

A system advances a batch of states ``x`` of shape (B, d) and, for the
Lyapunov spectrum, a batch of tangent frames ``V`` of shape (B, d, k):

    x_{t+1} = F(x_t)            (map)       or one RK4 step of x' = f(x)  (flow)
    V_{t+1} = DF(x_t) V_t       (the tangent map, J V, never J^T V)

Rows of a batch never interact.  A random system (a random dynamical system
x_{t+1} = F(x_t, xi_t)) draws xi_t once per step from a per-trajectory
:class:`~reference_systems.noise.TrajectoryRNG` passed as ``generator``; the
state and the tangent are advanced with the same xi_t.

Exponents are in natural log, per step for maps and per unit time for flows
(a flow's dt converts steps to time).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch

from reference_systems.capabilities import Capabilities
from reference_systems.layout import BATCH_LAST_MAX_DIM, batch_last_matvec, is_batch_last, to_batch_last
from reference_systems.noise import TrajectoryRNG
from reference_systems.reference import Reference
from reference_systems.rk4 import rk4_step, rk4_tangent_step
from suite.core.args import check_bool, check_int, check_positive
from suite.core.errors import InvalidArgumentError

KINDS = ("map", "flow")


def _jvp_columns(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                 V: torch.Tensor, rowwise: bool = True) -> torch.Tensor:
    """J_fn(x) @ V (B, d, k) by automatic differentiation (exact, no differences).

    ``fn`` maps (B, d) -> (B, d) row by row.  When the frame is wide
    (d <= 4k), the d x d Jacobian is formed by one reverse-mode pass over the
    states repeated d times (one vector-Jacobian product per row of J) and
    applied with a batched matmul: in torch this costs a fraction of forward
    mode.  Otherwise the k columns are pushed through forward-mode JVPs
    (torch.func.jvp, vmapped over columns), never forming J.  Random maps,
    whose ``fn`` closes over per-trajectory noise of batch size B, cannot
    repeat rows and always take the vmapped JVP.
    """
    B, d, k = V.shape
    if rowwise and d <= 4 * k:
        with torch.enable_grad():
            xs = x.detach().unsqueeze(1).expand(B, d, d).reshape(B * d, d).requires_grad_(True)
            rows = torch.eye(d, dtype=x.dtype, device=x.device).expand(B, d, d).reshape(B * d, d)
            J = torch.autograd.grad(fn(xs), xs, rows)[0].reshape(B, d, d)
        return torch.bmm(J, V)

    def one(v):
        return torch.func.jvp(fn, (x,), (v,))[1]
    try:
        return torch.func.vmap(one, in_dims=2, out_dims=2)(V)
    except RuntimeError:
        # functions vmap cannot trace (data-dependent control flow, .item(),
        # in-place ops) still work column by column
        return torch.stack([one(V[:, :, j]) for j in range(k)], dim=2)


def _checked_jacobian(jacobian: Callable, x: torch.Tensor, name: str) -> torch.Tensor:
    """Call a user's Jacobian and check it is a (B, d, d) tensor of x's dtype and device."""
    J = jacobian(x)
    B, d = x.shape
    if not isinstance(J, torch.Tensor) or J.shape != (B, d, d):
        raise InvalidArgumentError(f"jacobian of {name!r} returned shape", tuple(getattr(J, "shape", ())),
                                   f"({B}, {d}, {d}) for states of shape ({B}, {d})")
    if J.dtype != x.dtype or J.device != x.device:
        raise InvalidArgumentError(f"jacobian of {name!r} returned", f"{J.dtype} on {J.device}",
                                   f"the states' {x.dtype} on {x.device}")
    return J


def call_user(argument: str, fn: Callable, *args):
    """Call a user's ``sample_initial`` or ``noise`` callable; a TypeError from handing the TrajectoryRNG to a
    function that wants a ``torch.Generator`` (``torch.randn(..., generator=generator)``) becomes an
    InvalidArgumentError naming ``argument``, the generator's type and the calls to use instead."""
    try:
        return fn(*args)
    except TypeError as exc:
        text = str(exc)
        if "generator" not in text.lower() and "TrajectoryRNG" not in text:
            raise
        raise InvalidArgumentError(
            argument, getattr(fn, "__name__", repr(fn)),
            "a callable that draws from its generator with generator.normal(*shape) or generator.uniform(*shape) "
            "(each returns (batch, *shape), row b from trajectory b's stream), e.g. "
            "p + 1e-3 * generator.normal(d) instead of p + 1e-3 * torch.randn(batch, d, generator=generator): "
            "the generator is a reference_systems.TrajectoryRNG, not a torch.Generator, so torch's samplers refuse "
            "it; generator.torch_generator() gives a seeded torch.Generator if you accept numbers that depend on "
            f"the batch size. torch said: {text.splitlines()[0] if text else type(exc).__name__}") from exc


class System:
    """Base class of every system; see the module docstring for the contract.

    Subclasses implement :meth:`_step` and :meth:`_tangent`; the public
    :meth:`step` and :meth:`tangent` check shapes first.

    Attributes: ``name``, ``kind`` ('map' | 'flow'), ``dim``, ``dt`` (1 for
    maps), ``params`` (dict), ``reference`` (:class:`Reference` or None),
    ``capabilities`` (typed: symplectic, log_abs_det, validation, batch_invariant,
    ...; :class:`~reference_systems.capabilities.Capabilities`), ``meta`` (the
    keywords as given, ``source`` and anything else free-form), ``is_random``
    (noise drawn per step).
    """

    kind: str = "map"

    def __init__(self, name: str, dim: int, *, dt: float = 1.0, reference: Optional[Reference] = None,
                 sample_initial: Optional[Callable] = None, domain: Optional[Callable] = None,
                 params: Optional[Dict[str, Any]] = None, is_random: bool = False, **meta):
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("name", name, "a non-empty string")
        check_int("dim", dim, 1)
        check_positive("dt", dt)
        if reference is not None and not isinstance(reference, Reference):
            raise InvalidArgumentError("reference", reference, "None or a reference_systems.Reference")
        if reference is not None and len(reference) > dim:
            raise InvalidArgumentError("reference", reference, f"at most dim={dim} values")
        self.name, self.dim, self.dt = name, dim, float(dt)
        self.reference = reference
        self.params = dict(params or {})
        self.is_random = bool(is_random)
        Capabilities.from_meta(meta)  # a declared capability of the wrong type fails here, naming it
        self.meta = meta
        self._sample_initial = sample_initial
        self._domain = domain

    @property
    def capabilities(self) -> Capabilities:
        """What the system declares (symplectic, log_abs_det, validation, ...), typed: see
        :class:`~reference_systems.capabilities.Capabilities`.  Read from ``meta``, where the
        keywords given to the constructor (or :meth:`declare`) are kept."""
        return Capabilities.from_meta(self.meta)

    @property
    def hand_written_tangent(self) -> bool:
        """True where the tangent comes from a Jacobian the system's author wrote (not autodiff)."""
        return getattr(self, "_jac", None) is not None

    def declare(self, **capabilities) -> "System":
        """Declare capabilities after construction (checked like the constructor's keywords)."""
        unknown = set(capabilities) - set(Capabilities.names())
        if unknown:
            raise InvalidArgumentError("capability", sorted(unknown), f"one of {', '.join(Capabilities.names())}")
        Capabilities.from_meta({**self.meta, **capabilities})
        self.meta.update(capabilities)
        return self

    # -- checks ---------------------------------------------------------------
    def _check_state(self, x: torch.Tensor, argument: str = "x") -> None:
        if not isinstance(x, torch.Tensor):
            raise InvalidArgumentError(argument, type(x).__name__, "a torch.Tensor of shape (B, d)")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InvalidArgumentError(f"{argument}.shape", tuple(x.shape),
                                       f"(B, {self.dim}) for system {self.name!r}")
        if x.dtype not in (torch.float32, torch.float64):
            raise InvalidArgumentError(f"{argument}.dtype", x.dtype, "torch.float32 or torch.float64")

    def _check_frame(self, x: torch.Tensor, V: torch.Tensor) -> None:
        if not isinstance(V, torch.Tensor) or V.ndim != 3 or V.shape[:2] != x.shape or V.shape[2] < 1:
            raise InvalidArgumentError("V.shape", tuple(getattr(V, "shape", ())),
                                       f"(B, {self.dim}, k) with B = x.shape[0] = {x.shape[0]}, k >= 1")
        if V.dtype != x.dtype or V.device != x.device:
            raise InvalidArgumentError("V", f"{V.dtype} on {V.device}",
                                       f"the dtype and device of x ({x.dtype} on {x.device})")

    def _check_generator(self, x: torch.Tensor, generator) -> TrajectoryRNG:
        if not self.is_random:
            return generator
        if not isinstance(generator, TrajectoryRNG):
            raise InvalidArgumentError(
                "generator", generator,
                f"a reference_systems.TrajectoryRNG: system {self.name!r} is random and "
                "draws its noise per trajectory from it")
        if generator.batch != x.shape[0]:
            raise InvalidArgumentError("generator.batch", generator.batch,
                                       f"x.shape[0] = {x.shape[0]}")
        if generator.device != x.device:
            # in place: a copy would draw from a counter that never advances in the caller's
            # generator, i.e. the same noise every step (the bug this line once had on CUDA,
            # where torch.device('cuda') != x.device == torch.device('cuda:0'))
            generator.move_(x.device)
        return generator

    # -- public contract -----------------------------------------------------
    def step(self, x: torch.Tensor, generator: Optional[TrajectoryRNG] = None) -> torch.Tensor:
        """One step of the dynamics, (B, d) -> (B, d)."""
        self._check_state(x)
        return self._step(x, self._check_generator(x, generator))

    def tangent(self, x: torch.Tensor, V: torch.Tensor, generator: Optional[TrajectoryRNG] = None):
        """One step of state and tangent frame: returns (x_next, DF(x) V)."""
        self._check_state(x)
        self._check_frame(x, V)
        return self._tangent(x, V, self._check_generator(x, generator))

    def jacobian(self, x: torch.Tensor, generator: Optional[TrajectoryRNG] = None) -> torch.Tensor:
        """The one-step Jacobian DF(x), (B, d, d) (for a flow: of the RK4 step)."""
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
        return self.tangent(x, eye.contiguous(), generator)[1]

    def sample_initial(self, batch: int, generator: Optional[TrajectoryRNG] = None) -> torch.Tensor:
        """``batch`` initial states (B, d), on or near the attractor.

        Drawn per trajectory from ``generator`` (a TrajectoryRNG; seed 0 if
        None), so trajectory b's state does not depend on the batch size.
        Without a system-specific sampler: 0.1 * N(0, 1) in every coordinate.
        """
        check_int("batch", batch, 1)
        if generator is None:
            generator = TrajectoryRNG(0, batch)
        if generator.batch != batch:
            raise InvalidArgumentError("generator.batch", generator.batch, f"batch = {batch}")
        if self._sample_initial is None:
            x = 0.1 * generator.normal(self.dim)
        else:
            x = call_user("sample_initial", self._sample_initial, batch, generator)
        x = torch.as_tensor(x)
        self._check_state(x, "sample_initial(...)")
        if x.shape[0] != batch:
            raise InvalidArgumentError("sample_initial(...).shape", tuple(x.shape), f"({batch}, {self.dim})")
        return x

    def in_domain(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) bool: which states are finite and inside the system's domain."""
        ok = torch.isfinite(x).all(dim=1)
        if self._domain is not None:
            inside = torch.as_tensor(self._domain(x), device=x.device)
            if inside.shape == x.shape:  # a per-coordinate test: every coordinate must pass
                inside = inside.all(dim=1)
            if inside.shape != ok.shape or inside.dtype != torch.bool:
                raise InvalidArgumentError(f"domain of system {self.name!r}", f"{inside.dtype} of shape "
                                           f"{tuple(inside.shape)}", f"a callable returning (B,) or (B, "
                                           f"{self.dim}) booleans for states of shape {tuple(x.shape)}")
            ok = ok & inside
        return ok

    @property
    def label(self) -> str:
        """Name with parameters, e.g. ``gaussian_products(N=8, sigma=1.0)``."""
        if not self.params:
            return self.name
        return f"{self.name}({', '.join(f'{k}={_short(v)}' for k, v in self.params.items())})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}: kind={self.kind}, dim={self.dim}, dt={self.dt}>"

    def _step(self, x, generator):  # pragma: no cover - abstract
        raise NotImplementedError

    def _tangent(self, x, V, generator):  # pragma: no cover - abstract
        raise NotImplementedError


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)) or hasattr(v, "shape"):
        return "<matrix>" if getattr(v, "ndim", 1) > 1 or any(isinstance(r, (list, tuple)) for r in v) else str(list(v))
    return str(v)


class Map(System):
    """A discrete-time system x_{t+1} = step(x_t), exponents per step.

    Parameters
    ----------
    name : str
    step : callable (B, d) -> (B, d), a torch function acting row by row.
        For a random map, ``step(x, xi)`` with ``xi = noise(generator, x)``.
    dim : int
    jacobian : optional callable x -> (B, d, d) (``jacobian(x, xi)`` for a
        random map), the Jacobian DF(x) in the standard orientation
        (row i = d F_i / d x).  Without it the tangent comes from
        forward-mode automatic differentiation (torch.func.jvp).
    reference : optional :class:`Reference`.
    sample_initial : optional callable (batch, generator) -> (B, d).
    noise : optional callable (generator, x) -> xi: makes the map random.
    domain : optional callable x -> (B,) bool, False where a state has left
        the set on which the dynamics is defined (reported, never averaged).
    params : dict of the parameters, shown in tables.
    **meta : anything else (``source``, ``symplectic=True``, ``validation``).
    """

    kind = "map"

    def __init__(self, name: str, step: Callable, dim: int, jacobian: Optional[Callable] = None,
                 reference: Optional[Reference] = None, sample_initial: Optional[Callable] = None, *,
                 noise: Optional[Callable] = None, domain: Optional[Callable] = None,
                 params: Optional[Dict[str, Any]] = None, **meta):
        if not callable(step):
            raise InvalidArgumentError("step", step, "a callable (B, d) -> (B, d)")
        if jacobian is not None and not callable(jacobian):
            raise InvalidArgumentError("jacobian", jacobian, "None or a callable x -> (B, d, d)")
        dt = meta.pop("dt", 1)
        if dt != 1:
            raise InvalidArgumentError("dt", dt, "1 for a Map (its time unit is one step); "
                                       "use Flow for a continuous-time system")
        super().__init__(name, dim, dt=1.0, reference=reference, sample_initial=sample_initial,
                         domain=domain, params=params, is_random=noise is not None, **meta)
        self._f, self._jac, self._noise = step, jacobian, noise

    def draw_noise(self, generator, x):
        """This step's noise xi = noise(generator, x) (None for a deterministic map); a user's noise that hands
        the generator to torch's samplers gets the error of :func:`call_user`."""
        return None if self._noise is None else call_user("noise", self._noise, generator, x)

    def _bind(self, x, generator):
        """The deterministic map of this step: x -> F(x) (noise drawn once)."""
        if self._noise is None:
            return self._f, self._jac
        xi = self.draw_noise(generator, x)
        f = lambda y: self._f(y, xi)  # noqa: E731
        jac = None if self._jac is None else (lambda y: self._jac(y, xi))
        return f, jac

    def _step(self, x, generator):
        f, _ = self._bind(x, generator)
        return f(x)

    def _tangent(self, x, V, generator):
        f, jac = self._bind(x, generator)
        if jac is not None:
            return f(x), torch.bmm(_checked_jacobian(jac, x, self.name), V)
        return f(x), _jvp_columns(f, x, V, rowwise=self._noise is None)


class Flow(System):
    """A continuous-time system x' = rhs(x), advanced by fixed-step RK4.

    Exponents are per unit time: the estimator divides by T = steps * dt.
    The tangent frame is advanced by the exact derivative of the same RK4 step
    (see :mod:`reference_systems.rk4`), using ``jacobian(x) -> (B, d, d)`` of
    the right-hand side when given and forward-mode autodiff otherwise.

    ``batch_last=True`` declares that ``rhs`` and ``jacobian`` accept states
    in batch-last memory layout (``x.stride(0) == 1``) and return their
    results in the layout of their input (:mod:`reference_systems.layout`;
    :func:`~reference_systems.layout.stack_like` stacks components so).  A
    flow of dimension <= ``BATCH_LAST_MAX_DIM`` with a ``jacobian`` then
    advances frames on the CPU in that layout, with J V as d broadcast
    multiply-adds instead of ``torch.bmm`` (Lorenz-63 tangent step, 2-core
    x86: 1.50x and 1.71x at B = 2048 and 4096 on one torch thread, 1.03x and
    1.01x on two, where bmm is threaded and these small ops are not).
    Frames come back in the
    layout they came in (the QR estimators' frames are batch-last, so a run
    stays so); the values are the same up to round-off (bmm's summation
    order may differ).  On CUDA the bmm path is kept (one kernel instead of
    2d - 1).
    """

    kind = "flow"

    def __init__(self, name: str, rhs: Callable, dim: int, dt: float, jacobian: Optional[Callable] = None,
                 reference: Optional[Reference] = None, sample_initial: Optional[Callable] = None, *,
                 domain: Optional[Callable] = None, params: Optional[Dict[str, Any]] = None,
                 batch_last: bool = False, **meta):
        if not callable(rhs):
            raise InvalidArgumentError("rhs", rhs, "a callable (B, d) -> (B, d)")
        if jacobian is not None and not callable(jacobian):
            raise InvalidArgumentError("jacobian", jacobian, "None or a callable x -> (B, d, d)")
        check_bool("batch_last", batch_last)
        super().__init__(name, dim, dt=dt, reference=reference, sample_initial=sample_initial,
                         domain=domain, params=params, **meta)
        self.rhs, self._jac = rhs, jacobian
        self.batch_last = batch_last and jacobian is not None and dim <= BATCH_LAST_MAX_DIM

    def field_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """The Jacobian of the vector field, Df(x) (B, d, d): ``jacobian`` where given, else autodiff."""
        self._check_state(x)
        if self._jac is not None:
            return _checked_jacobian(self._jac, x, self.name)
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape[0], self.dim, self.dim)
        return _jvp_columns(self.rhs, x, eye)

    def _jvp(self, y, W):
        if self._jac is not None:
            return torch.bmm(_checked_jacobian(self._jac, y, self.name), W)
        return _jvp_columns(self.rhs, y, W)

    def _steps_batch_last(self, t: torch.Tensor) -> bool:
        """Whether this flow steps tensors like t in the batch-last layout (opted in, on the CPU)."""
        return self.batch_last and t.device.type == "cpu"

    def _step(self, x, generator):
        if not self._steps_batch_last(x) or is_batch_last(x):
            return rk4_step(self.rhs, x, self.dt)
        return rk4_step(self.rhs, to_batch_last(x), self.dt).contiguous()

    def _jvp_batch_last(self, y, W):
        return batch_last_matvec(_checked_jacobian(self._jac, y, self.name), W)

    def _tangent(self, x, V, generator):
        if not self._steps_batch_last(V):
            return rk4_tangent_step(self.rhs, self._jvp, x, V, self.dt)
        came_batch_last = is_batch_last(V)
        x, V = rk4_tangent_step(self.rhs, self._jvp_batch_last, to_batch_last(x), to_batch_last(V), self.dt)
        return (x, V) if came_batch_last else (x.contiguous(), V.contiguous())
