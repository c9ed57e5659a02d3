"""One registry mechanism for systems, estimators and tasks.

Modelled on Gymnasium's ``registration.py``: entries are registered under a
name with a factory, built with ``make(name, **kwargs)``, listed with
``names()``; a typo gets a "did you mean" error.  Third-party entries are
found through an entry-point group, and any entry can also be addressed as
``package.module:attribute`` without registering it.  A factory may be
registered as such a string (Gymnasium's ``entry_point``): it is imported
when first built, so a registry never imports the packages it lists.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any, Callable, Dict, List

from suite.core.errors import InvalidArgumentError, UnknownNameError


def load_object(spec: str) -> Any:
    """Import ``package.module:attribute`` (attribute may be dotted)."""
    module_name, attr = _split_spec(spec)
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - report any import failure clearly
        raise InvalidArgumentError(
            "spec", spec, f"an importable module (importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc})") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise InvalidArgumentError(
                "spec", spec, f"an attribute of module {module_name!r} "
                f"({part!r} not found)") from exc
    return obj


class Registry:
    """Name -> factory mapping with entry-point discovery.

    ``kind`` is the word used in messages ("system", "estimator", "task");
    ``group`` the entry-point group scanned lazily on first lookup.
    """

    def __init__(self, kind: str, group: str | None = None):
        self.kind, self.group = kind, group
        self._factories: Dict[str, Callable[..., Any]] = {}
        self._entry_points_loaded = group is None

    def register(self, name: str, factory: Callable[..., Any] | str | None = None, *,
                 overwrite: bool = False):
        """Register ``factory`` (a callable, or ``'package.module:attribute'`` imported when first
        built) under ``name``; usable as a decorator."""
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("name", name, "a non-empty string")

        def _do(f: Callable[..., Any] | str):
            if isinstance(f, str):
                f = _LazyObject(f)
            elif not callable(f):
                raise InvalidArgumentError("factory", f, "a callable or 'package.module:attribute'")
            if name in self._factories and not overwrite and self._factories[name] != f:
                raise InvalidArgumentError(
                    "name", name, f"a {self.kind} name not yet registered "
                    "(pass overwrite=True to replace it)")
            self._factories[name] = f
            return f

        return _do if factory is None else _do(factory)

    def unregister(self, name: str) -> None:
        self._factories.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=self.group):
            if ep.name not in self._factories:
                self._factories[ep.name] = _LazyEntryPoint(ep)

    def names(self) -> List[str]:
        self._load_entry_points()
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._factories

    def factory(self, name: str) -> Callable[..., Any]:
        """The registered factory for ``name`` (or the object ``module:attr`` names)."""
        self._load_entry_points()
        if name in self._factories:
            f = self._factories[name]
            return f.load() if isinstance(f, (_LazyEntryPoint, _LazyObject)) else f
        if isinstance(name, str) and ":" in name:
            return load_object(name)
        raise UnknownNameError(self.kind, name, self._factories)

    def make(self, name: str, **kwargs) -> Any:
        return self.factory(name)(**kwargs)


class _LazyEntryPoint:
    def __init__(self, ep):
        self.ep = ep

    def load(self):
        try:
            return self.ep.load()
        except Exception as exc:  # noqa: BLE001
            raise InvalidArgumentError(
                "entry point", f"{self.ep.name} = {self.ep.value}",
                f"an importable object ({type(exc).__name__}: {exc})") from exc


class _LazyObject:
    """A factory registered as ``'package.module:attribute'``, imported by :meth:`load`."""

    def __init__(self, spec: str):
        _split_spec(spec)
        self.spec = spec

    def __eq__(self, other) -> bool:
        return isinstance(other, _LazyObject) and other.spec == self.spec

    __hash__ = None

    def load(self):
        return load_object(self.spec)


def _split_spec(spec: str):
    """(module, attribute) of ``package.module:attribute``; raise on any other form (nothing is imported)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidArgumentError("spec", spec, "'package.module:attribute'")
    return module_name, attr
