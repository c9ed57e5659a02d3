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
