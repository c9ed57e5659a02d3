"""The catalogue of systems: register, get, names, variants (one generic registry, suite.core.registry)."""
from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from reference_systems.system import System
from suite.core.errors import InvalidArgumentError
from suite.core.registry import Registry

_REGISTRY = Registry("system", group="lyapbench.systems")
_VARIANTS: Dict[str, List[Dict[str, Any]]] = {}
_FAMILIES: Dict[str, str] = {}


def register(name: str, system_or_factory: Union[System, Callable[..., System], None] = None, *,
             variants: Optional[Sequence[Dict[str, Any]]] = None, overwrite: bool = False,
             family: Optional[str] = None):
    """Register a System instance or a factory ``(**params) -> System`` under ``name``.

    ``variants`` lists the parameter sets that ``lyapbench validate`` runs
    (default: one run with the factory's defaults).  ``family``: a large
    family listed only on request (``names('dysts/*')``; e.g. the dysts
    catalogue's flows, registered as ``dysts/<ClassName>``), not in
    ``names()``.  Usable as a decorator.
    """
    def _do(obj):
        factory = _constant_factory(obj) if isinstance(obj, System) else obj
        _REGISTRY.register(name, factory, overwrite=overwrite)
        _VARIANTS[name] = [dict(v) for v in (variants or [{}])]
        if family is None:
            _FAMILIES.pop(name, None)
        else:
            _FAMILIES[name] = family
        return obj

    return _do if system_or_factory is None else _do(system_or_factory)


def _constant_factory(system: System) -> Callable[[], System]:
    def factory() -> System:
        return system
    factory.__doc__ = f"The user-defined system {system.name!r}."
    return factory


def names(pattern: Optional[str] = None) -> List[str]:
    """Names of the registered systems (built-in, registered, entry points) outside the families listed on
    request; with ``pattern`` (shell-style, e.g. ``'dysts/*'``, ``'*'``), every name it matches, families
    included."""
    if pattern is None:
        return [n for n in _REGISTRY.names() if n not in _FAMILIES]
    return [n for n in _REGISTRY.names() if fnmatch.fnmatchcase(n, pattern)]


def family(name: str) -> Optional[str]:
    """The family ``name`` was registered in (None: the catalogue's own systems)."""
    return _FAMILIES.get(name)


def get(name: str, **params) -> System:
    """Build the system ``name`` with parameters overriding its defaults.

    ``name`` may also be ``package.module:attribute`` naming a System or a
    factory.  Unknown names get a "did you mean" error; unknown parameters an
    error listing the allowed ones.
    """
    factory = _REGISTRY.factory(name)
    if isinstance(factory, System):
        if params:
            raise InvalidArgumentError("params", params, f"none: {name!r} names a fixed System instance")
        return factory
    _check_params(name, factory, params)
    system = factory(**params)
    if not isinstance(system, System):
        raise InvalidArgumentError("system", name, f"a factory returning a System, got {type(system).__name__}")
    return system


def _check_params(name: str, factory: Callable, params: Dict[str, Any]) -> None:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    allowed = [n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in params:
        if key not in allowed:
            raise InvalidArgumentError(f"{name} parameter {key!r}", params[key],
                                       f"parameters {allowed}" if allowed else "no parameters")


def variants(name: str) -> List[Dict[str, Any]]:
    """Parameter sets that ``lyapbench validate`` runs for ``name``."""
    _REGISTRY.factory(name)  # raise the usual error for unknown names
    return [dict(v) for v in _VARIANTS.get(name, [{}])]


def catalogue(pattern: Optional[str] = None) -> List[System]:
    """Every system of :func:`names` (``pattern`` as there) in every validation variant, built."""
    return [get(n, **v) for n in names(pattern) for v in variants(n)]


def factory(name: str) -> Callable[..., System]:
    """The factory registered under ``name`` (a System instance is wrapped in a constant factory)."""
    return _REGISTRY.factory(name)


def unregister(name: str) -> None:
    """Remove ``name`` from the catalogue (no error if it is not there)."""
    _REGISTRY.unregister(name)
    _VARIANTS.pop(name, None)
    _FAMILIES.pop(name, None)
