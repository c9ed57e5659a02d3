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

from suite.core.errors import InvalidArgumentError


def _parts(value: str) -> List[str]:
    """Every comma-separated part of ``value``, stripped (empty ones too), commas inside parentheses left alone."""
    parts, depth, cur = [], 0, ""
    for ch in value:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [v.strip() for v in parts]


def split_list(value: Optional[str]) -> Optional[List[str]]:
    """Split a comma-separated list, leaving commas inside parentheses alone (empty parts dropped)."""
    if value is None:
        return None
    return [v for v in _parts(value) if v]


def split_flag(value: Optional[str], flag: str) -> Optional[List[str]]:
    """A command-line flag's comma-separated list: None where the flag was not given; an empty list
    (``--estimators ""``) or an empty item (``--seeds 0,,1``) is refused, naming ``flag``."""
    if value is None:
        return None
    parts = _parts(value)
    if not any(parts):
        raise InvalidArgumentError(flag, value, "a non-empty comma-separated list (leave the flag out for "
                                   "the default)")
    if not all(parts):
        raise InvalidArgumentError(flag, value, "a comma-separated list without empty items")
    return parts


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
