"""What a system declares about itself that the suite reads: typed, with defaults, documented once.

A user passes these as keywords to :class:`~reference_systems.Map` /
:class:`~reference_systems.Flow` (``rs.Map(..., symplectic=True,
log_abs_det=0.0)``); they are checked when the system is built and read as
``system.capabilities.<field>``.  Keywords not named here stay free-form in
``system.meta`` (``source``, ``mean_field``, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, Optional

from suite.core.args import check_bool, check_number
from suite.core.errors import InvalidArgumentError

RUN_KEYS = ("steps", "transient", "batch", "k")


@dataclass(frozen=True)
class Capabilities:
    """Declared properties of a system.

    Attributes
    ----------
    symplectic : the map is symplectic: lambda_i + lambda_{d+1-i} = 0 is checked (needs even d).
    log_abs_det : a constant ln|det DF| per step (maps; e.g. Henon ln b): the sum rule's exact value.
    divergence : a constant div f (flows; e.g. Lorenz-63 -(sigma + 1 + beta)): the sum rule for an
        estimator that integrates the flow itself.
    zero_exponent : True / False: the flow has / has no zero exponent; None: decided from the
        trajectories (none at a fixed point).
    batch_invariant : False where a trajectory's rounding depends on the batch it runs in (one
        shared matrix product over the batch): same statistics, not bit-identical rows.
    fixed_horizon : the reference is a finite-time exponent of the ``validation`` horizon only.
    differentiable_step : False where ``step`` is not differentiable (e.g. a map that rounds):
        estimators that differentiate ``step`` say "not applicable".
    validation : the run of ``lyapbench validate``: a dict with some of steps, transient, batch, k.
    reference_run : the run that computes a task's reference (same keys).
    symbolic_rhs : the right-hand side on symbols (jitcode's route), a callable of the state's symbols.
    domain_note : words for the domain, shown when a trajectory leaves it.
    note : anything a user should know, shown in rows without a reference.
    """
    symplectic: bool = False
    log_abs_det: Optional[float] = None
    divergence: Optional[float] = None
    zero_exponent: Optional[bool] = None
    batch_invariant: bool = True
    fixed_horizon: bool = False
    differentiable_step: bool = True
    validation: Optional[Dict[str, int]] = None
    reference_run: Optional[Dict[str, Any]] = None
    symbolic_rhs: Optional[Callable] = None
    domain_note: str = ""
    note: str = ""

    def __post_init__(self):
        for name in ("symplectic", "batch_invariant", "fixed_horizon", "differentiable_step"):
            check_bool(name, getattr(self, name))
        if self.zero_exponent is not None:
            check_bool("zero_exponent", self.zero_exponent, "True, False or None (decided from the trajectories)")
        for name in ("log_abs_det", "divergence"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_number(name, getattr(self, name), finite=True))
        for name in ("validation", "reference_run"):
            run = getattr(self, name)
            if run is None:
                continue
            if not isinstance(run, dict) or not set(run) <= set(RUN_KEYS):
                raise InvalidArgumentError(name, run, f"None or a dict with some of {', '.join(RUN_KEYS)}")
        if self.symbolic_rhs is not None and not callable(self.symbolic_rhs):
            raise InvalidArgumentError("symbolic_rhs", self.symbolic_rhs, "None or a callable of the symbols")
        for name in ("domain_note", "note"):
            if not isinstance(getattr(self, name), str):
                raise InvalidArgumentError(name, getattr(self, name), "a string")

    @classmethod
    def names(cls) -> tuple:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_meta(cls, meta: Dict[str, Any]) -> "Capabilities":
        """The declared fields found in a system's ``meta`` dict (the rest is ignored; None: not declared)."""
        return cls(**{k: meta[k] for k in cls.names() if meta.get(k) is not None})
