"""Errors raised by lyapbench.

Every error names the argument (or the trajectory and step) at fault and,
where there is a closed set of allowed values, lists them.  All derive from
:class:`LyapbenchError` so a caller can catch the suite's own errors at once;
argument errors also derive from :class:`ValueError` (or :class:`KeyError`
for unknown names) so ordinary Python handling keeps working.
"""
from __future__ import annotations

import difflib
from typing import Iterable


def exception_line(exc: BaseException) -> str:
    """An exception as one line for a result's metadata: its type and the first line of its message (160
    characters at most)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


class LyapbenchError(Exception):
    """Base class of every error the suite raises on purpose."""

    def __reduce__(self):
        # an error raised on a Dask worker travels back pickled; the subclasses' constructors take other
        # arguments than the message, so it is rebuilt from its type, message and attributes
        return _rebuilt, (type(self), str(self), dict(self.__dict__))


def _rebuilt(cls, message: str, state: dict) -> LyapbenchError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class InvalidArgumentError(LyapbenchError, ValueError):
    """An argument is out of its allowed range or of the wrong kind."""

    def __init__(self, argument: str, value, allowed: str):
        self.argument, self.value, self.allowed = argument, value, allowed
        super().__init__(f"invalid {argument}={value!r}: allowed {allowed}")


class UnknownNameError(LyapbenchError, KeyError):
    """A name that is not registered; the message suggests close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        folded = [k for k in known if k.lower() == str(name).lower() and k not in close]  # 'QR' for 'qr'
        close = (folded + close)[:3]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "(none registered)"
        self.message = f"unknown {kind} {name!r}.{hint} Known {kind}s: {listing}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class DeviceError(LyapbenchError, ValueError):
    """A device that cannot be used on this machine."""


class TrajectoryError(LyapbenchError, ArithmeticError):
    """A trajectory or its tangent frame became unusable.

    Raised when a state or a tangent vector becomes non-finite, a state leaves
    the system's domain, or the tangent frame collapses (a singular Jacobian),
    instead of letting a NaN or an infinity reach a reported exponent.
    ``trajectories`` are the offending batch indices, ``step`` the step counted
    from the start of the run (transient included) at which it was detected;
    ``rank``, where the frame collapsed, the most directions the Jacobian kept
    there (the exponents beyond it are -inf).
    """

    def __init__(self, message: str, *, system: str | None = None,
                 trajectories: list[int] | None = None, step: int | None = None, rank: int | None = None):
        self.system, self.trajectories, self.step, self.rank = system, trajectories, step, rank
        super().__init__(message)


class SlidingError(TrajectoryError):
    """A trajectory of a switched flow entered Filippov sliding (a stick phase) on its switching surface, where
    the perturbation normal to it is annihilated (the last exponent is -inf): a property of the flow, not an
    escape, so a run conditioned on survival does not replace it (:mod:`reference_systems.switched`)."""


class SeriesError(LyapbenchError, ArithmeticError):
    """An observed time series cannot support a time-series estimate.

    Raised by the delay-embedding estimators for a constant or non-finite
    series, a series whose points have no neighbour at a positive distance
    (e.g. an orbit settled on a periodic cycle), or a divergence curve with no
    rise to fit (no positive exponent to detect), instead of reporting a NaN.
    """


class NotApplicableError(LyapbenchError, TypeError):
    """An estimator cannot run on a system (it lacks what the estimator needs)."""


class NotInstalledError(LyapbenchError, ImportError):
    """An optional package that an estimator (a peer-library adapter) needs is not installed."""

    def __init__(self, package: str, extra: str = "peers"):
        self.package, self.extra = package, extra
        super().__init__(f"the package {package!r} is not installed; install it with "
                         f"`pip install lyapbench[{extra}]` (or `pip install {package}`)")


class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C during a grid: the message says what was saved and how to resume."""

    @classmethod
    def after(cls, done: int, total: int, unit: str, saved=(), journal=None) -> "GridInterrupted":
        """``done`` of ``total`` ``unit`` finished, saved in the files ``saved`` and the ``journal``."""
        where = (f" in {', '.join(map(str, saved))}" if saved else "") + (
            f" and the journal {journal.directory}" if journal is not None else "")
        hint = "; run the same command with --resume to go on" if journal is not None else ""
        return cls(f"interrupted after {done} of {total} {unit}; the finished {unit} are saved{where}{hint}")
