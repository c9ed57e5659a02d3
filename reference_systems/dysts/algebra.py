"""One definition of a flow's equations, two renderings: batched torch and symbolic (jitcode).

    @equation("Lorenz")
    def lorenz(s, p, m):
        x, y, z = s
        return p.sigma * (y - x), x * (p.rho - z) - y, x * y - p.beta * z

An equation takes the state's components ``s`` (a list of d numbers: (B,) torch tensors, or SymEngine symbols),
the parameters ``p`` (attribute access, ``p["name"]`` too; list parameters as Python lists) and a math namespace
``m`` (:data:`TORCH` or :data:`SYMBOLIC`: pi, sin, cos, tan, sinh, cosh, tanh, exp, log, sqrt, abs, sign,
heaviside, minimum, maximum, arctan, switch), and returns the d components of the vector field, written with
``+ - * / **`` and ``m``'s functions only, so that the same code runs in both renderings.  An equation of a
periodically forced or explicitly time-dependent flow declares ``clock=True`` and takes the time as ``t=``:
the flow is made autonomous with t as an extra state variable (t' = 1, one more exponent, exactly 0).  A vector
field that jumps writes its jump with ``m.switch(g)`` (sign g, once per equation, g smooth): the flow is then a
:class:`~reference_systems.switched.SwitchedFlow` across g = 0 (:func:`sided`, :func:`switching_function`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, Mapping

import torch

#: every equation written, by dysts class name (the modules of reference_systems.dysts register theirs on import)
EQUATIONS: Dict[str, "Equation"] = {}


@dataclass(frozen=True)
class Equation:
    """A flow's equations (``fn(s, p, m[, t=])``), whether they read the time, and where the vector field jumps
    ('' where it is continuous)."""
    name: str
    fn: Callable
    clock: bool = False
    discontinuous: str = ""
    filippov: bool = False


def equation(name: str, *, clock: bool = False, discontinuous: str = "",
             filippov: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn`` as the equations of dysts's flow ``name``; ``discontinuous`` names the jump of a
    vector field that is not continuous (a sign or step of a term that does not vanish there), written with
    ``m.switch``: its tangent jumps at each crossing (the saltation matrix of
    :mod:`reference_systems.switched`); ``filippov``: its trajectories stick to the surface (Filippov sliding),
    which the flow follows (``SwitchedFlow(filippov=True)``)."""
    def register(fn: Callable) -> Callable:
        if name in EQUATIONS:
            raise ValueError(f"equations of {name!r} written twice")
        EQUATIONS[name] = Equation(name, fn, clock, discontinuous, filippov)
        return fn
    return register


class Parameters(SimpleNamespace):
    """A flow's parameters: ``p.sigma`` or ``p["sigma"]``."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> "Parameters":
        return cls(**dict(values))


def _either(tensor_fn: Callable, number_fn: Callable) -> Callable:
    """A function of tensors that also takes plain numbers (a term constant in the state)."""
    return lambda *a: tensor_fn(*a) if any(isinstance(v, torch.Tensor) for v in a) else number_fn(*a)


def _sign(v: float) -> float:
    return float((v > 0) - (v < 0))


def _tensor_pair(fn: Callable) -> Callable:
    def pair(a, b):
        if not isinstance(a, torch.Tensor):
            a = torch.full_like(b, a)
        if not isinstance(b, torch.Tensor):
            b = torch.full_like(a, b)
        return fn(a, b)
    return pair


#: the torch rendering (batched, autodiff-able, device and dtype of the state)
TORCH = SimpleNamespace(
    pi=math.pi, sin=_either(torch.sin, math.sin), cos=_either(torch.cos, math.cos), tan=_either(torch.tan, math.tan),
    sinh=_either(torch.sinh, math.sinh), cosh=_either(torch.cosh, math.cosh), tanh=_either(torch.tanh, math.tanh),
    exp=_either(torch.exp, math.exp), log=_either(torch.log, math.log), sqrt=_either(torch.sqrt, math.sqrt),
    abs=_either(torch.abs, abs), sign=_either(torch.sign, _sign), arctan=_either(torch.atan, math.atan),
    heaviside=lambda v: (1 + TORCH.sign(v)) / 2, switch=_either(torch.sign, _sign),
    minimum=_either(_tensor_pair(torch.minimum), min), maximum=_either(_tensor_pair(torch.maximum), max),
)


def _symbolic():
    """SymEngine's functions, with |v| written sqrt(v^2) and sign(v) as v / sqrt(v^2) (min and max through |v|):
    jitcode differentiates the equations symbolically, and with SymEngine's Abs, sign, Min and Max it cannot
    (Colpitts, StickSlipOscillator: "Can't calculate derivative") or its compiled code crashes the process
    (segmentation faults on Chua, MultiChua, AnishchenkoAstakhov, CellularNeuralNetwork, FluidTrampoline,
    SanUmSrisuchinwong, SprottMore).  The values are the same away from v = 0 (a set of measure zero), the
    derivatives those of the torch rendering's autodiff (sign' = 0 there)."""
    import symengine as se

    def absolute(v):
        return se.sqrt(v ** 2)

    def sign(v):
        return v / se.sqrt(v ** 2)
    ns = SimpleNamespace(
        pi=math.pi, sin=se.sin, cos=se.cos, tan=se.tan, sinh=se.sinh, cosh=se.cosh, tanh=se.tanh, exp=se.exp,
        log=se.log, sqrt=se.sqrt, abs=absolute, sign=sign, arctan=se.atan,
        minimum=lambda a, b: (a + b - absolute(a - b)) / 2, maximum=lambda a, b: (a + b + absolute(a - b)) / 2)
    ns.heaviside = lambda v: (1 + sign(v)) / 2
    ns.switch = sign
    return ns


class _Lazy:
    """:data:`SYMBOLIC`: SymEngine is imported at first use (it comes with the ``peers`` extra)."""
    _ns = None

    def __getattr__(self, name: str):
        if _Lazy._ns is None:
            _Lazy._ns = _symbolic()
        return getattr(_Lazy._ns, name)


#: the symbolic rendering (SymEngine, as jitcode takes it)
SYMBOLIC = _Lazy()


def sided(side: torch.Tensor) -> SimpleNamespace:
    """:data:`TORCH` with ``switch(g)`` = ``side`` (B,): the smooth field of one side of the switching surface."""
    return SimpleNamespace(**dict(vars(TORCH), switch=lambda v: side))


def symbolic_sided(side) -> SimpleNamespace:
    """:data:`SYMBOLIC` with ``switch(g)`` = ``side`` (a SymEngine symbol or number)."""
    SYMBOLIC.sin  # noqa: B018 - imports SymEngine
    return SimpleNamespace(**dict(vars(_Lazy._ns), switch=lambda v: side))


def switching_function(evaluate: Callable[[SimpleNamespace], Any], name: str, symbolic: bool = False):
    """g, the argument of the one ``m.switch`` the equations call, from ``evaluate(m)`` (the equations in a
    namespace ``m``, :data:`TORCH`'s or, ``symbolic``, :data:`SYMBOLIC`'s)."""
    seen = []

    def record(v):
        seen.append(v)
        return 0 if symbolic else torch.zeros_like(v)
    base = vars(symbolic_sided(0)) if symbolic else vars(TORCH)
    evaluate(SimpleNamespace(**dict(base, switch=record)))
    if len(seen) != 1:
        raise ValueError(f"dysts/{name}: the equations call m.switch {len(seen)} times; a switched flow has one "
                         "switching surface")
    return seen[0]
