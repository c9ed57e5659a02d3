"""dysts (Gilpin): ``dysts.analysis.find_lyapunov_exponents`` on the dysts twin of a flow."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from reference_systems import System, TrajectoryRNG
from suite.core.args import check_number, check_positive
from suite.core.errors import InvalidArgumentError, NotApplicableError
from suite.core.result import LyapunovResult
from suite.estimators.base import RunConfig
from suite.peers.base import (PeerEstimator, check_finite_estimates, collect_warnings, estimates_result,
                              import_peer)

#: lyapbench flow -> (dysts.flows class, {lyapbench parameter: dysts parameter}).  The dysts model is
#: built with OUR parameter values (dysts's defaults can differ: its Lorenz has beta = 2.667, not 8/3),
#: and its right-hand side is compared with ours numerically before it is used.
TWINS: Dict[str, Tuple[str, Dict[str, str]]] = {
    "lorenz63": ("Lorenz", {"sigma": "sigma", "rho": "rho", "beta": "beta"}),
    "rossler": ("Rossler", {"a": "a", "b": "b", "c": "c"}),
    "lorenz96": ("Lorenz96", {"F": "f"}),
}


class DystsLyapunov(PeerEstimator):
    """The Lyapunov spectrum by ``dysts.analysis.find_lyapunov_exponents``.

    Applies to the flows for which dysts has a model with the same equations
    (:data:`TWINS`: lorenz63 <-> Lorenz, rossler <-> Rossler, lorenz96 <->
    Lorenz96).  The dysts model is instantiated with the system's own
    parameter values, and its right-hand side is checked against the
    system's on a few states (relative 1e-10) before use; a mismatch makes
    the adapter not applicable, naming it.

    Method (dysts, after Christiansen & Rugh 1997): dysts integrates one
    trajectory with scipy's ``solve_ivp`` (``method``, ``rtol``, ``atol``;
    dysts's own default is Radau at 1e-12, slow: the adapter defaults to
    DOP853 at 1e-10), samples it every ``sample_dt`` time units (None: the
    system's dt), and advances an orthonormal frame with a **backward-Euler**
    step (I - J dt)^-1 per sample followed by QR; the exponents are
    sum ln|R_jj| / (dt * n_points), per unit time (dysts works in the
    model's own time units, here the same equations and units as ours).
    Backward Euler is first order: at dt = 0.01 the contracting Lorenz
    exponent comes out near ln(1/(1 + 14.57 dt)) / dt = -13.6 instead of
    -14.57; a smaller ``sample_dt`` reduces it (O(dt)).  dysts divides by
    the number of points n where n - 1 steps were summed (relative bias
    1/n) and sorts the exponents, largest first.  dysts's early stop
    (``tol``: when the smallest local exponent falls below tol, the divisor
    is silently replaced by the step index) is disabled by default (tol=0).

    Protocol: dysts is handed the state after our transient (``init_cond``)
    and T = steps * dt; the trajectory length in points is T / sample_dt + 1
    (``pts_per_period`` is set to make dysts's time grid exactly that).
    dysts returns final values only: batch must be >= 2 for a standard error.
    """

    name = "dysts_lyapunov"
    package = "dysts"
    requires = "tangent"

    def __init__(self, method: str = "DOP853", rtol: float = 1e-10, atol: float = 1e-10,
                 sample_dt: Optional[float] = None, tol: float = 0.0):
        if not isinstance(method, str):
            raise InvalidArgumentError("method", method, "a scipy.integrate.solve_ivp method name")
        self.method = method
        self.rtol, self.atol = check_positive("rtol", rtol), check_positive("atol", atol)
        self.sample_dt = None if sample_dt is None else check_positive("sample_dt", sample_dt)
        self.tol = check_number("tol", tol, low=0.0, allowed="a number >= 0 (0 disables dysts's early stop)")

    # -- the twin ----------------------------------------------------------
    @staticmethod
    def _twin_reason(system: System) -> Optional[str]:
        if system.kind != "flow":
            return (f"dysts.analysis.find_lyapunov_exponents integrates an ODE (backward-Euler tangent); "
                    f"{system.name!r} is a {system.kind}")
        if system.name not in TWINS:
            known = ", ".join(f"{ours} <-> {theirs}" for ours, (theirs, _) in TWINS.items())
            return f"dysts has no model known to lyapbench with the equations of {system.name!r} (twins: {known})"
        return None

    def twin(self, system: System):
        """The dysts model of ``system`` with its parameters; raises NotApplicableError on a mismatch."""
        reason = self._twin_reason(system)
        if reason:
            raise NotApplicableError(reason)
        notes: List[str] = []
        with collect_warnings(notes):  # "Numba not installed. Falling back to no JIT compilation."
            flows = import_peer("dysts.flows", self.package)
        cls_name, mapping = TWINS[system.name]
        cls = getattr(flows, cls_name, None)
        if cls is None:
            raise NotApplicableError(f"this dysts version has no model {cls_name!r} (the twin of {system.name!r})")
        default = cls()
        if set(default.params) != set(mapping.values()):
            raise NotApplicableError(
                f"dysts's {cls_name} has parameters {sorted(default.params)}; lyapbench maps "
                f"{system.name!r}'s {sorted(mapping)} to {sorted(mapping.values())}: parameter mismatch")
        params = {theirs: float(system.params[ours]) for ours, theirs in mapping.items()}
        model = cls(parameters=params)
        # same equations, same parameters: compare the right-hand sides numerically
        x = system.sample_initial(4, TrajectoryRNG(12345, 4)).to(torch.float64)
        ours = system.rhs(x).numpy()
        theirs = np.array([np.asarray(model.rhs(xi.numpy(), 0.0), dtype=np.float64) for xi in x])
        scale = np.abs(ours).max() + 1.0
        if theirs.shape != ours.shape or not np.allclose(theirs, ours, rtol=1e-10, atol=1e-10 * scale):
            diff = np.abs(theirs - ours).max() if theirs.shape == ours.shape else f"shape {theirs.shape}"
            raise NotApplicableError(
                f"dysts's {cls_name}({params}) is not {system.label}: right-hand sides differ by up to {diff} "
                f"(different equations or parameter conventions)")
        differs = {p: default.params[p].tolist() if hasattr(default.params[p], "tolist") else default.params[p]
                   for p in params if not np.allclose(default.params[p], params[p], rtol=1e-12, atol=0)}
        return model, cls_name, params, differs

    def not_applicable(self, system: System) -> Optional[str]:
        reason = self._twin_reason(system)
        if reason:
            return reason
        try:
            self.twin(system)  # imports dysts: NotInstalledError propagates ('not installed')
        except NotApplicableError as exc:
            return str(exc)
        return None

    # -- estimate ------------------------------------------------------------
    def _estimate(self, system: System, cfg: RunConfig) -> LyapunovResult:
        self.check_config(system, cfg)
        if cfg.batch < 2:
            raise InvalidArgumentError("batch", cfg.batch, ">= 2: dysts.find_lyapunov_exponents returns final "
                                       "values only, so the standard error needs independent trajectories")
        with collect_warnings([]):
            analysis = import_peer("dysts.analysis", self.package)
        model, cls_name, params, differs = self.twin(system)
        x0, _ = self.start_states(system, cfg)
        T = cfg.steps * system.dt
        sdt = self.sample_dt or system.dt
        n = int(round(T / sdt)) + 1
        if n < 3:
            raise InvalidArgumentError("steps", cfg.steps, f"a T = steps * dt of at least 2 * sample_dt = {2 * sdt}")
        period = float(model.period)
        ppp = period * n / ((n - 1) * sdt)   # dysts: t_max = period * n / pts_per_period = (n - 1) * sample_dt
        k = cfg.k
        notes: List[str] = []
        per_traj = []
        for b in range(cfg.batch):
            model.ic = x0[b].copy()
            with collect_warnings(notes), np.errstate(all="ignore"):
                lyap = self.call_peer(
                    f"find_lyapunov_exponents on trajectory {cfg.first + b}", analysis.find_lyapunov_exponents,
                    model, n, pts_per_period=ppp, tol=self.tol, init_cond=x0[b].copy(), method=self.method,
                    rtol=self.rtol, atol=self.atol)
            lyap = check_finite_estimates(self.package, lyap, f"trajectory {cfg.first + b}")
            per_traj.append(np.sort(lyap)[::-1][:k])
        res = estimates_result(np.array(per_traj), T)
        return self.finish(res, notes, integrates="flow", dysts_model=cls_name, dysts_parameters=params,
                           dysts_defaults_differ=differs, sample_dt=sdt, n_points=n, integrator=self.method,
                           rtol=self.rtol, atol=self.atol, tol=self.tol)
