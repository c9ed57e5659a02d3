"""Matrix-free QR spectrum: tangent vectors pushed by Jacobian-vector products."""
from __future__ import annotations

from typing import Optional, Union

import torch

from reference_systems import System
from ..errors import InvalidArgumentError
from . import capture as capture_
from .base import RunConfig
from .qr import QREstimator


class JVPQREstimator(QREstimator):
    """The QR (Benettin / Shimada-Nagashima) estimator without the Jacobian matrix.

    Same method as :class:`~suite.estimators.qr.QREstimator`, but the k
    tangent vectors are advanced by forward-mode automatic differentiation
    of the system's own ``step`` (torch.func.jvp, vmapped over the k
    columns): V_{t+1} = DF(x_t) V_t costs k JVPs and never forms the d x d
    Jacobian, for high-dimensional systems with k << d.  For a flow the JVP
    goes through the same RK4 step as the state, so the tangent is that
    step's exact derivative.  A random system draws its noise once per step
    (the vmapped function is traced once).  Needs a ``step`` written in
    differentiable torch operations.

    Cost: the transforms run in Python at every call.  Measured on the CPU
    (torch 2.13, one thread, random_rnn N = 16, k = 4): 1.06 ms a step
    against 46 us for ``qr``'s explicit tangent, and forward-mode AD without
    vmap (torch.autograd.forward_ad on k stacked copies) still 0.35 ms, most
    of it torch's Python decomposition of the dual ``addmm``/``add``.  So the
    step is recorded once per run and replayed (``capture``).

    Hyperparameters: those of :class:`~suite.estimators.qr.QREstimator`, and

    capture : 'auto', 'none', 'trace' or 'graph'
        How the vmapped JVP is run (:mod:`suite.estimators.capture`): the
        transforms at every step ('none'); their aten operations recorded at
        the first step and replayed ('trace'; 'auto', the default); or, on
        CUDA only, that recording captured as a CUDA graph ('graph').  A step
        that cannot be replayed faithfully (data-dependent control flow,
        noise drawn from the run's generator, a replay that differs from the
        eager step on the first state) runs eagerly; ``meta['capture']`` says
        which mode ran and why.  The numbers do not depend on it: a replay is
        the eager step's operations on the same inputs.
    """

    name = "jvp_qr"
    requires = "step"
    in_default_validation = False  # same numbers as qr, ~10x the per-step overhead (see validation_defaults)

    def __init__(self, reorth_every: Union[int, str] = 1, method: str = "auto", taper: int = 0,
                 align: Optional[int] = None, control_variates: bool = False, capture: str = "auto"):
        super().__init__(reorth_every, method, taper, align, control_variates)
        if capture not in capture_.CAPTURE_MODES:
            raise InvalidArgumentError("capture", capture, f"one of {capture_.CAPTURE_MODES} "
                                       "(suite.estimators.capture)")
        self.capture = capture

    def _check_capture(self, device: torch.device) -> None:
        if self.capture == "graph" and device.type != "cuda":
            raise InvalidArgumentError("capture", self.capture, f"'auto', 'none' or 'trace' on device "
                                       f"{str(device)!r} ('graph' captures a CUDA graph: CUDA devices only)")

    def interval_for(self, system: System, steps: int, **run):
        self._check_capture(torch.device(run.get("device", "cpu")))
        with capture_.scope(self.capture):
            return super().interval_for(system, steps, **run)

    def _estimate(self, system: System, cfg: RunConfig):
        self._check_capture(cfg.device)
        with capture_.scope(self.capture) as recorded:
            res = super()._estimate(system, cfg)
        res.meta["capture"] = dict(recorded.record)
        return res

    def not_applicable(self, system: System):
        if not callable(getattr(system, "step", None)):
            return f"{self.name} needs the system's step map"
        if system.meta.get("differentiable_step") is False:
            return (f"{self.name} differentiates the step map, and {system.label!r} states that its step is not "
                    "differentiable (its tangent comes from an analytic Jacobian)")
        return None

    def _advance(self, system: System, x: torch.Tensor, Q: torch.Tensor, rng):
        def advance(x, Q):
            def push(v):
                return torch.func.jvp(lambda y: system.step(y, rng), (x,), (v,))
            return torch.func.vmap(push, in_dims=2, out_dims=(None, 2), randomness="same")(Q)
        return capture_.call(self.name, advance, (x, Q), rng)
