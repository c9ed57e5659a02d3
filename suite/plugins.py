"""Load a user's own systems from a Python file or ``package.module:attribute``."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, List

from reference_systems import System
from .errors import InvalidArgumentError
from .registry import load_object


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
    if spec.endswith(".py") or path.is_file():
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
        systems = _systems_in(load_object(spec), spec)
    if not systems:
        raise InvalidArgumentError("--system-file", spec, "a file defining at least one System "
                                   "(a module-level Map/Flow or a list SYSTEMS)")
    return systems
