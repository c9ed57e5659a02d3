"""Lyapunov-exponent estimators behind one contract.

    from suite import estimators
    estimators.names()                       # built-in and entry-point estimators
    est = estimators.get("qr", reorth_every=1)
    res = est.estimate(system, steps, transient=0, batch=1, k=None, seed=0,
                       device="cpu", dtype=torch.float64)      # -> LyapunovResult

Third-party estimators are found by ``package.module:attribute`` (a class,
a factory or an instance) or through the entry-point group
``lyapbench.estimators``.  An estimator is any object with
``estimate(system, steps, *, transient, batch, k, seed, device, dtype)``
returning a :class:`~suite.core.result.LyapunovResult`.
"""
from __future__ import annotations

from typing import Any, List

from suite.core.errors import InvalidArgumentError
from suite.core.registry import Registry
from suite.core.specs import parse_spec
from suite.estimators.base import Estimator, GrowthAccumulator, RunConfig, check_run
from suite.estimators.eckmann import EckmannEstimator
from suite.estimators.jvp_qr import JVPQREstimator
from suite.estimators.kantz import KantzEstimator
from suite.estimators.qr import QREstimator
from suite.estimators.rosenstein import RosensteinEstimator
from suite.estimators.two_trajectory import TwoTrajectoryEstimator

_REGISTRY = Registry("estimator", group="lyapbench.estimators")
_BUILTIN = (QREstimator, JVPQREstimator, TwoTrajectoryEstimator, RosensteinEstimator, KantzEstimator,
            EckmannEstimator)
for _cls in _BUILTIN:
    _REGISTRY.register(_cls.name, _cls)

# peer-library adapters (suite.peers, the `peers` extra), one layer above this package: registered by
# import path, imported when first built (their peer packages only inside estimate)
PEER_ADAPTERS = {
    "nolds_lyap_r": "suite.peers.nolds_adapter:NoldsLyapR",
    "nolds_lyap_e": "suite.peers.nolds_adapter:NoldsLyapE",
    "neurokit2_lyapunov": "suite.peers.neurokit2_adapter:NeuroKit2Lyapunov",
    "lyapynov_lce": "suite.peers.lyapynov_adapter:LyapynovLCE",
    "jitcode_lyap": "suite.peers.jitcode_adapter:JitcodeLyap",
    "dysts_lyapunov": "suite.peers.dysts_adapter:DystsLyapunov",
    "lyapax_spectrum": "suite.peers.lyapax_adapter:LyapaxSpectrum",
}
for _name, _path in PEER_ADAPTERS.items():
    _REGISTRY.register(_name, _path)


def validation_defaults() -> List[str]:
    """Built-in estimators that ``lyapbench validate`` runs when none are named.

    ``jvp_qr`` is left out by default: it computes exactly what ``qr`` does
    (the tests hold them to 1e-12 on every catalogue system) through
    torch.func, at 1.6-2.3x ``qr``'s time a step even with the step recorded and
    replayed (``capture``, :mod:`suite.estimators.numerics.capture`); name it
    with ``--estimators jvp_qr`` to validate it.
    """
    return [c.name for c in _BUILTIN if c.in_default_validation]


def register(name: str, factory=None, *, overwrite: bool = False):
    """Register an estimator class or factory under ``name`` (decorator or call)."""
    return _REGISTRY.register(name, factory, overwrite=overwrite)


def names() -> List[str]:
    return _REGISTRY.names()


def get(name: str, **hyperparameters) -> Any:
    """Build the estimator ``name`` (registered, entry point, or ``module:attr``)."""
    obj = _REGISTRY.factory(name)
    if callable(obj) and not hasattr(obj, "estimate") or isinstance(obj, type):
        try:
            obj = obj(**hyperparameters)
        except TypeError as exc:
            raise InvalidArgumentError(f"hyperparameters of estimator {name!r}", hyperparameters,
                                       f"those its constructor accepts ({exc})") from exc
    elif hyperparameters:
        raise InvalidArgumentError("hyperparameters", hyperparameters,
                                   f"none: {name!r} names an estimator instance")
    if not callable(getattr(obj, "estimate", None)):
        raise InvalidArgumentError("estimator", name, "an object with an estimate(system, steps, ...) method")
    return obj


def from_spec(spec: str) -> Any:
    """Build an estimator from ``name`` or ``name(param=value, ...)`` (command-line form)."""
    name, params = parse_spec(spec, "--estimators")
    return get(name, **(params or {}))


def label(est: Any) -> str:
    """Short display name of an estimator object."""
    return getattr(est, "name", None) or type(est).__name__


__all__ = ["Estimator", "QREstimator", "JVPQREstimator", "TwoTrajectoryEstimator", "RosensteinEstimator",
           "KantzEstimator", "EckmannEstimator", "GrowthAccumulator", "RunConfig", "check_run",
           "register", "names", "get", "from_spec", "label"]
