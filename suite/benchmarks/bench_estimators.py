"""Speed and memory of one ``estimate`` call, over system x estimator x batch x d.

Benchmarks (class ``Estimate``; asv counts lower as better for all of them):

``time_estimate``           wall time of ``est.estimate(system, steps, transient=...,
                            batch=B, seed=0)`` (a warm-up, then repeated samples;
                            with --quick one timed call);
``peakmem_estimate``        the process's peak resident set after one such call
                            (bytes; includes the interpreter and torch);
``track_seconds_per_step``  seconds per step, median of repeats sized to about
                            ``tp_min_seconds``: the protocol of
                            ``suite.studies.throughput.measure`` without its GEMM
                            reference (see ``suite.benchmarks.seconds_per_step``).

Parameters: system in henon (d = 2), lorenz63 (d = 3), random_rnn (d = N); estimator
in qr, qr(reorth_every=10), jvp_qr, two_trajectory; batch B; d the state dimension.
Sizes, steps and transient come from the profile (``LYAPBENCH_ASV_PROFILE``):
``quick`` (default) d in {2, 3, 16, 64}, B in {1, 16}, 20 steps after 10, one torch
thread; ``full`` d in {2, 3, 64, 256, 1024}, B in {1, 256, 4096}, 50 steps after 20,
frames over 4 GiB skipped.  Combinations that do not exist or do not apply are
skipped (``NotImplementedError`` in ``setup``).

Class ``FlowTangentStep``: ``time_tangent_step``, one Lorenz-63 RK4 tangent step in the
batch-last layout and in the batch-first ``bmm`` layout, side by side, over the profile's B.
Class ``ModuleTangentStep``: ``time_tangent_step``, one tangent step (k = d) of a torch.nn cell
through ``tasks.from_module``, analytic and autodiff side by side.
See docs/performance.md.
"""
from __future__ import annotations

import torch
from torch import nn

import reference_systems as rs
import tasks
from reference_systems.layout import to_batch_last
from suite.benchmarks import (ESTIMATORS, FIXED_DIM, PROFILE, SCALABLE, ThreadsMixin, build_estimator, build_system,
                              device, seconds_per_step, system_dims)


class Estimate(ThreadsMixin):
    params = [list(FIXED_DIM) + [SCALABLE], list(ESTIMATORS), list(PROFILE.batches), system_dims()]
    param_names = ["system", "estimator", "batch", "d"]
    timeout = PROFILE.timeout

    def setup(self, system, estimator, batch, d):
        self.system = build_system(system, d)
        self.est = build_estimator(estimator, self.system)
        # QR estimators carry a d x d frame per trajectory, two_trajectory two states
        frame_bytes = 8.0 * batch * d * (d if hasattr(self.est, "reorth_every") else 2)
        if frame_bytes > PROFILE.max_frame_bytes:
            raise NotImplementedError(f"batch x d x d frames of {frame_bytes / 2 ** 30:.1f} GiB exceed "
                                      f"the profile's {PROFILE.max_frame_bytes / 2 ** 30:.0f} GiB")
        self.device = device()
        self._set_threads()

    def _estimate(self, batch):
        return self.est.estimate(self.system, PROFILE.steps, transient=PROFILE.transient, batch=batch,
                                 seed=0, device=self.device)

    def time_estimate(self, system, estimator, batch, d):
        self._estimate(batch)

    def peakmem_estimate(self, system, estimator, batch, d):
        self._estimate(batch)

    def track_seconds_per_step(self, system, estimator, batch, d):
        return seconds_per_step(self.est, self.system, batch=batch, device=self.device,
                                min_seconds=PROFILE.tp_min_seconds, repeats=PROFILE.tp_repeats)

    track_seconds_per_step.unit = "seconds"


class FlowTangentStep(ThreadsMixin):
    """One RK4 tangent step of Lorenz-63 (k = 3, float64, CPU) in each memory layout.

    ``layout``: 'batch_last' is the built-in flow (``Flow(batch_last=True)``, J V as three
    broadcast multiply-adds on contiguous runs of B numbers); 'bmm' is the same rhs and
    Jacobian in a flow that does not opt in (batch-first, ``torch.bmm``).  One asv run times
    both side by side, so their ratio is the layout's gain on that machine
    (reference_systems/layout.py).
    """

    params = [["batch_last", "bmm"], list(PROFILE.batches)]
    param_names = ["layout", "batch"]

    def setup(self, layout, batch):
        lorenz = rs.get("lorenz63")
        self.flow = lorenz if layout == "batch_last" else rs.Flow("lorenz63_bmm", lorenz.rhs, 3, lorenz.dt,
                                                                  jacobian=lorenz._jac)
        x = lorenz.sample_initial(batch, rs.TrajectoryRNG(0, batch))
        V = rs.TrajectoryRNG(1, batch).normal(3, 3)
        self.x, self.V = (to_batch_last(x), to_batch_last(V)) if layout == "batch_last" else (x, V)
        self._set_threads()

    def time_tangent_step(self, layout, batch):
        self.flow.tangent(self.x, self.V)


class _Autodiff(nn.Module):
    """The cell behind a custom forward(u, h): from_module differentiates it by torch.func."""

    def __init__(self, cell):
        super().__init__()
        self.cell, self.input_size = cell, cell.input_size

    def forward(self, u, h):  # h: a tensor, or the tuple (h, c) of an LSTMCell
        return self.cell(u, h)


class ModuleTangentStep(ThreadsMixin):
    """One tangent step (k = d, float64, CPU) of a torch.nn cell wrapped by ``tasks.from_module``.

    ``tangent``: 'analytic' is the standard cell (PyTorch's equations differentiated by hand,
    tasks/modules.py); 'autodiff' is the same cell behind a custom ``forward(u, h)``, which
    from_module differentiates by torch.func.  One asv run times both side by side, so their
    ratio is the analytic tangent's gain (the registry's RNN tasks use the analytic one).
    """

    params = [["RNNCell", "GRUCell", "LSTMCell"], ["analytic", "autodiff"], list(PROFILE.batches)]
    param_names = ["cell", "tangent", "batch"]

    def setup(self, cell, tangent, batch):
        torch.manual_seed(0)
        module = getattr(nn, cell)(4, 32, dtype=torch.float64)
        if tangent == "autodiff":
            module = _Autodiff(module)
        inputs = torch.randn(64, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        self.system = tasks.from_module(module, inputs)
        self.x = self.system.sample_initial(batch, rs.TrajectoryRNG(0, batch))
        self.V = rs.TrajectoryRNG(1, batch).normal(self.system.dim, self.system.dim)
        self._set_threads()

    def time_tangent_step(self, cell, tangent, batch):
        self.system.tangent(self.x, self.V, rs.TrajectoryRNG(2, self.x.shape[0]))
