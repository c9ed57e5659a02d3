"""The systems a grid runs: catalogue specs, a user's own files or ``module:attribute``, task ids.

``build_systems`` reads the command-line forms (``--systems``, ``--system-file``, ``--tasks``);
``load_systems`` loads a user's file or ``package.module:attribute``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, List, Optional

import reference_systems as rs
import tasks
from reference_systems import System
from suite.core.errors import InvalidArgumentError
from suite.core.registry import load_object
from suite.core.specs import parse_spec


def _systems_in(obj: Any, origin: str) -> List[System]:
    if isinstance(obj, System):
        return [obj]
    if callable(obj) and not isinstance(obj, type):
        return _systems_in(obj(), origin)
    if isinstance(obj, (list, tuple)):
        out: List[System] = []
        for item in obj:
            out.extend(_systems_in(item, origin))
        return out
    raise InvalidArgumentError("--system-file", origin, "a file or module:attribute giving a System, "
                               f"a list of Systems or a factory returning them (got {type(obj).__name__})")


def load_systems(spec: str) -> List[System]:
    """Systems from ``path/to/file.py`` or ``package.module:attribute``.

    A file contributes its list ``SYSTEMS`` if it defines one, otherwise
    every System bound to a module-level name (in definition order).
    """
    path = Path(spec)
    if not spec.endswith(".py") and ":" not in spec:
        raise InvalidArgumentError("--system-file", spec, "a Python file (name ending in .py) or "
                                   "package.module:attribute")
    if spec.endswith(".py"):
        if not path.is_file():
            raise InvalidArgumentError("--system-file", spec, "an existing Python file or package.module:attribute")
        mod_name = f"_lyapbench_user_systems_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001
            raise InvalidArgumentError("--system-file", spec, f"a file that runs without error "
                                       f"({type(exc).__name__}: {exc})") from exc
        if hasattr(module, "SYSTEMS"):
            systems = _systems_in(module.SYSTEMS, spec)
        else:
            systems = [v for k, v in vars(module).items() if isinstance(v, System) and not k.startswith("_")]
    else:
        try:
            obj = load_object(spec)
        except InvalidArgumentError as exc:  # a module that does not import, an attribute it lacks
            raise InvalidArgumentError("--system-file", spec, exc.allowed) from exc
        systems = _systems_in(obj, spec)
    if not systems:
        raise InvalidArgumentError("--system-file", spec, "a file defining at least one System "
                                   "(a module-level Map/Flow or a list SYSTEMS)")
    return systems


def build_systems(systems: Optional[List[str]], system_files: Optional[List[str]] = None,
                  task_patterns: Optional[List[str]] = None) -> list:
    """Systems from command-line specs: catalogue names (every validation variant of a bare name,
    ``name(p=v)`` for one; a shell pattern such as ``'dysts/*'`` for every name it matches, the families
    listed on request included, :func:`reference_systems.names`), user files or ``module:attr`` and task
    ids/globs/tags.  With none of the three given: the catalogue in its validation variants (without the
    families)."""
    out: list = []
    if systems is None and not system_files and not task_patterns:
        systems = rs.names()
    for spec in systems or []:
        if any(c in spec for c in "*?[") and "(" not in spec:  # a pattern: every name it matches, families too
            matched = rs.names(spec)
            if not matched:
                raise InvalidArgumentError("--systems", spec, "a pattern matching a registered system "
                                           "(e.g. 'dysts/*'; `lyapbench list --systems '*'` lists them)")
            out.extend(rs.get(n, **v) for n in matched for v in rs.variants(n))
            continue
        name, params = parse_spec(spec, "--systems")
        if params is not None:
            out.append(rs.get(name, **params))
        elif ":" in name:
            out.append(rs.get(name))
        else:
            out.extend(rs.get(name, **v) for v in rs.variants(name))
    for spec in system_files or []:
        for system in load_systems(spec):
            system.meta.setdefault("system_file", spec)  # a user's: `prepare` checks its tangent once
            out.append(system)
    if task_patterns:
        out.extend(tasks.build(t) for t in tasks.select(task_patterns))
    return out
