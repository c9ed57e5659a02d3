"""Command-line specs of systems and estimators: ``name`` or ``name(param=value, ...)``.

    split_list("henon,lorenz63(dt=0.04, rho=28)")  -> ["henon", "lorenz63(dt=0.04, rho=28)"]
    parse_spec("lorenz63(dt=0.04)", "--systems")   -> ("lorenz63", {"dt": 0.04})
    parse_spec("qr", "--estimators")               -> ("qr", None)

Values are Python literals (numbers, strings, booleans, tuples), read with
``ast.literal_eval``, never evaluated as code.
"""
from __future__ import annotations

import ast
import re
from typing import Any, Dict, List, Optional, Tuple

from .errors import InvalidArgumentError


def split_list(value: Optional[str]) -> Optional[List[str]]:
    """Split a comma-separated list, leaving commas inside parentheses alone."""
    if value is None:
        return None
    parts, depth, cur = [], 0, ""
    for ch in value:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [v.strip() for v in parts if v.strip()]


def parse_spec(spec: str, argument: str) -> Tuple[str, Optional[Dict[str, Any]]]:
    """``name`` -> (name, None); ``name(p=v, ...)`` -> (name, {p: v, ...})."""
    m = re.fullmatch(r"([^()]+)\((.*)\)", spec.strip())
    if not m:
        return spec.strip(), None
    params: Dict[str, Any] = {}
    for item in filter(None, (i.strip() for i in split_list(m.group(2)) or [])):
        key, sep, val = item.partition("=")
        try:
            params[key.strip()] = ast.literal_eval(val.strip())
        except (ValueError, SyntaxError):
            sep = ""
        if not sep or not key.strip().isidentifier():
            raise InvalidArgumentError(argument, spec, "name or name(param=value, ...) with Python literal "
                                       "values, e.g. lorenz63(dt=0.04) or qr(reorth_every=10)")
    return m.group(1).strip(), params


def build_systems(systems: Optional[List[str]], system_files: Optional[List[str]] = None,
                  task_patterns: Optional[List[str]] = None) -> list:
    """Systems from command-line specs: catalogue names (every validation variant of a bare name,
    ``name(p=v)`` for one), user files or ``module:attr`` and task ids/globs/tags.  With none of the
    three given: the whole catalogue in its validation variants."""
    import reference_systems as rs
    out: list = []
    if systems is None and not system_files and not task_patterns:
        systems = rs.names()
    for spec in systems or []:
        name, params = parse_spec(spec, "--systems")
        if params is not None:
            out.append(rs.get(name, **params))
        elif ":" in name:
            out.append(rs.get(name))
        else:
            out.extend(rs.get(name, **v) for v in rs.variants(name))
    for spec in system_files or []:
        from .plugins import load_systems
        out.extend(load_systems(spec))
    if task_patterns:
        import tasks
        out.extend(tasks.build(t) for t in tasks.select(task_patterns))
    return out
