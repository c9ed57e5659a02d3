"""Argument checks shared by every constructor and call: one error, naming the argument and what is allowed.

Each check returns the value normalised (``int`` for numpy integers, ``float``
for numbers) or raises :class:`~suite.core.errors.InvalidArgumentError`.  A
``bool`` is never accepted where a number is asked for (``True`` is an ``int``
in Python, and ``steps=True`` is a bug, not one step).
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

from suite.core.errors import InvalidArgumentError

#: seeds lyapbench takes on the command line and in ``estimate``: 0 .. 2**63 - 1 (an int64, as the tables
#: store it; the random streams take up to 2**64 - 1, room for the derived seeds such as seed + 1)
SEED_MAX = 2 ** 63 - 1


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value, low: Optional[int] = None, high: Optional[int] = None, *,
              allow_none: bool = False, unit: str = "", allowed: Optional[str] = None) -> Optional[int]:
    """``value`` as an int in [low, high] (either bound optional); None (automatic) where ``allow_none``.

    ``unit`` is shown after the bound in the error (" (samples)"); ``allowed`` replaces the
    generated description of what is allowed.
    """
    if value is None and allow_none:
        return None
    if not _is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        if allowed is None:
            allowed = ("an integer" if low is None and high is None else f"an integer >= {low}" if high is None
                       else f"an integer <= {high}" if low is None else f"an integer in {low}..{high}")
            allowed += unit + (" or None (automatic)" if allow_none else "")
        raise InvalidArgumentError(name, value, allowed)
    return int(value)


def check_number(name: str, value, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                 high_open: bool = False, allow_none: bool = False, allowed: Optional[str] = None,
                 finite: bool = True) -> Optional[float]:
    """``value`` as a finite float in the interval given by ``low``/``high`` (open ends where asked)."""
    if value is None and allow_none:
        return None
    if allowed is None:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        allowed = ("a finite number" if finite else "a number") + (
            "" if math.isinf(low) and math.isinf(high) else
            f" > {low:g}" if math.isinf(high) and low_open else
            f" >= {low:g}" if math.isinf(high) else f" in {lo}{low:g}, {high:g}{hi}")
        allowed += " or None (automatic)" if allow_none else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(name, value, allowed)
    v = float(value)
    if (finite and not math.isfinite(v)) or math.isnan(v) or v < low or v > high \
            or (low_open and v == low) or (high_open and v == high):
        raise InvalidArgumentError(name, value, allowed)
    return v


def check_positive(name: str, value, *, allow_none: bool = False, allowed: Optional[str] = None) -> Optional[float]:
    """A finite number > 0 (or None where allowed)."""
    return check_number(name, value, low=0.0, low_open=True, allow_none=allow_none, allowed=allowed)


def check_bool(name: str, value, allowed: str = "True or False") -> bool:
    """``True`` or ``False`` exactly (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(name, value, allowed)
    return value


def check_choice(name: str, value, choices, allowed: Optional[str] = None):
    """One of ``choices`` (compared with ==; a bool never matches a number)."""
    if isinstance(value, bool) and not any(isinstance(c, bool) for c in choices) or value not in choices:
        raise InvalidArgumentError(name, value, allowed or "one of " + ", ".join(map(repr, choices)))
    return value


def check_seed(name: str, value) -> int:
    """A seed: an integer in 0..2**63 - 1 (:data:`SEED_MAX`); a negative one would alias another stream."""
    return check_int(name, value, 0, SEED_MAX, allowed="an integer in 0..2**63 - 1")


def check_int_list(name: str, items, low: Optional[int] = None, high: Optional[int] = None, *,
                   allowed: Optional[str] = None) -> list:
    """Command-line items (strings) as ints, each in [low, high]; an error naming ``name`` and the whole list."""
    out = []
    for item in items:
        try:
            value = int(item)
        except (TypeError, ValueError):
            value = None
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            if allowed is None:
                allowed = ("comma-separated integers" + (f" >= {low}" if high is None and low is not None else
                                                         f" in {low}..{high}" if low is not None else ""))
            raise InvalidArgumentError(name, ",".join(map(str, items)), allowed)
        out.append(value)
    return out
