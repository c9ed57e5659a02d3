"""Parameter checks shared by the built-in system factories."""
from __future__ import annotations

import math

from suite.errors import InvalidArgumentError


def finite(name: str, value, *, low: float = -math.inf, high: float = math.inf,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, checked to be finite and inside [low, high]."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    allowed = f"a finite number in {lo}{low:g}, {high:g}{hi}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(name, value, allowed) from None
    if isinstance(value, bool) or not math.isfinite(v) or v < low or v > high \
            or (low_open and v == low) or (high_open and v == high):
        raise InvalidArgumentError(name, value, allowed)
    return v


def positive_int(name: str, value, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgumentError(name, value, f"an integer >= {low}")
    return value
