"""Matrix-free QR spectrum: tangent vectors pushed by Jacobian-vector products."""
from __future__ import annotations

import torch

from reference_systems import System
from suite.estimators.qr import QREstimator


class JVPQREstimator(QREstimator):
    """The QR (Benettin / Shimada-Nagashima) estimator without the Jacobian matrix.

    Same method as :class:`~suite.estimators.qr.QREstimator`, but the k
    tangent vectors are advanced by forward-mode automatic differentiation
    of the system's own ``step`` (torch.func.jvp, vmapped over the k
    columns): V_{t+1} = DF(x_t) V_t costs k JVPs and never forms the d x d
    Jacobian, for high-dimensional systems with k << d.  For a flow the JVP
    goes through the same RK4 step as the state, so the tangent is that
    step's exact derivative.  The state advances by the system's own ``step``
    (a JVP's primal output can differ from it in the last bit, as where the
    step differentiates itself: training maps), at the cost of one step more
    per step.  A random system's noise is the same for both (the draw
    counter is rewound; the vmapped function is traced once).  Needs a ``step`` written in
    differentiable torch operations.

    Cost: the transforms run in Python at every call.  Measured on the CPU
    (torch 2.13, one thread, random_rnn N = 16, k = 4): 1.06 ms a step
    against 46 us for ``qr``'s explicit tangent, and forward-mode AD without
    vmap (torch.autograd.forward_ad on k stacked copies) still 0.35 ms, most
    of it torch's Python decomposition of the dual ``addmm``/``add``.  So in a
    run long enough to pay for it the vmapped JVP is recorded once and
    replayed (``capture``, see
    :class:`~suite.estimators.qr.QREstimator`): 1.5-4.2x faster per step
    (CPU, one thread, B = 1, side by side: Hénon 3.6x, Lorenz-63 4.2x,
    random_rnn N = 16 2.6x, N = 256 with k = 16 2.0x, Gaussian products
    1.5x), and 1.6-2.3x slower than ``qr``'s hand-written tangents then.

    Hyperparameters: those of :class:`~suite.estimators.qr.QREstimator`.
    """

    name = "jvp_qr"
    requires = "step"
    in_default_validation = False  # same numbers as qr, 1.6-2.3x its time a step (see validation_defaults)

    def not_applicable(self, system: System):
        if not callable(getattr(system, "step", None)):
            return f"{self.name} needs the system's step map"
        if not system.capabilities.differentiable_step:
            return (f"{self.name} differentiates the step map, and {system.label!r} states that its step is not "
                    "differentiable (its tangent comes from an analytic Jacobian, or a switched flow's split steps)")
        return None

    def _tangent_step(self, system: System, rng):
        def advance(x: torch.Tensor, Q: torch.Tensor):
            # the state is the system's own step: a JVP's primal output can differ from it in the last
            # bit (autodiff inside the step, e.g. a training map's gradient), which chaos amplifies
            start = getattr(rng, "counter", None)
            x_next = system.step(x, rng)
            if start is not None:
                rng.counter = start  # the tangent sees this step's draws again

            def push(v):
                return torch.func.jvp(lambda y: system.step(y, rng), (x,), (v,))[1]
            return x_next, torch.func.vmap(push, in_dims=2, out_dims=2, randomness="same")(Q)
        return advance
