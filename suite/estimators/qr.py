"""The QR (Benettin / Shimada-Nagashima) spectrum estimator."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import torch

from reference_systems import System
from suite.core.errors import InvalidArgumentError
from suite.estimators.base import (Estimator, GrowthAccumulator, RunConfig, check_finite, check_run, check_taper,
                                   trajectories_ok)
from suite.estimators.numerics import capture as capture_
from suite.estimators.numerics import reorth
from suite.estimators.numerics.control_variates import boundary_features, check_batch, check_flag
from suite.estimators.numerics.linalg import QR_METHODS, auto_method, qr_positive, qr_unchecked

#: renormalisations between two host synchronisations of a speculative run (QREstimator._phase)
SPECULATE_RENORMALISATIONS = 32


class QREstimator(Estimator):
    """Lyapunov spectrum by propagating and re-orthonormalising k tangent vectors.

    Method (Benettin, Galgani, Giorgilli & Strelcyn, Meccanica 15, 9 (1980);
    Shimada & Nagashima, Prog. Theor. Phys. 61, 1605 (1979)): a random
    orthonormal frame Q_0 (B, d, k) is advanced with the tangent map,
    V_{t+1} = DF(x_t) Q_t, and every ``reorth_every`` steps re-orthonormalised
    by a QR factorisation with positive diagonal, Q R = V.  Then

        lambda_i = (1 / (steps * dt)) * sum over renormalisations of ln R_ii

    (natural log; per step for maps, per unit time for flows).  The transient
    advances both the state and the frame (so the frame aligns with the
    Lyapunov vectors) and its growth is discarded.  All B trajectories run
    together as one batched computation; the mean, the standard error
    (across trajectories, or batch means along one trajectory for B = 1) and
    a running history on a log grid of T are returned.

    On CUDA the run is checked a chunk of renormalisations at a time (see
    :meth:`_phase`): the host waits on the device once per
    ``SPECULATE_RENORMALISATIONS`` instead of twice per renormalisation, with
    the same numbers and errors bit for bit.

    Hyperparameters
    ---------------
    reorth_every : int >= 1 or 'auto'
        Steps between re-orthonormalisations, m.  Keep m * dt * (lambda_1 -
        lambda_k) well below ln(1/eps) (36 in float64, 16 in float32), or the
        lower directions are lost to round-off: Henon (lambda_1 - lambda_2 =
        2.04) with m = 10 in float32 collapses its frame, which is reported
        as a TrajectoryError; a direction that is only partly lost is not
        detected.  'auto': the largest m that keeps the frame's measured
        log condition within half the dtype's digits and the QR method's
        range, from a probe of the per-step log growth
        (:mod:`suite.estimators.numerics.reorth`); the choice and what limited it are
        in ``meta['reorth_auto']``.
    method : 'auto', 'householder', 'mgs', 'cholqr' or 'cholqr2'
        QR factorisation (see :func:`suite.estimators.numerics.linalg.qr_positive`): Householder
        reflections (LAPACK / cuSOLVER), modified Gram-Schmidt, or
        CholeskyQR in one pass or two, with a Householder fallback for
        ill-conditioned frames (one pass leaves Q orthonormal only to
        eps cond(V)^2, which the exponents do not feel beyond a boundary
        term: the R factors telescope); 'auto' (default) takes one-pass
        CholeskyQR on CUDA and, on the CPU, modified Gram-Schmidt for
        d <= 4 and Householder otherwise (:func:`suite.estimators.numerics.linalg.auto_method`).
    taper : int >= 0, at most steps / 2
        Steps at each end of the run over which the weight of the log growth
        rises from 0 to 1 as sin^2 (a weighted Birkhoff average, see
        :class:`~suite.estimators.base.GrowthAccumulator`).  0 (default): the
        plain time average.  A taper of a few correlation times removes the
        boundary term of the finite-time estimate: on Lorenz-63 (T = 50,
        4096 trajectories, taper 8 time units) the spread across trajectories
        fell from var * T = 0.072 / 0.013 / 0.041 to 0.039 / 0.0025 / 0.029
        for lambda_1 / lambda_2 / lambda_3, so the same standard error needs
        some half the trajectories.  It also weights down the start, where a
        frame that is not yet aligned biases the estimate; it does not replace
        the transient (a state ensemble that is not yet stationary biases the
        middle of the run too).
    align : int >= 0 or None
        Steps at the end of the transient over which the frame is advanced
        with the state; before them the state alone is (``system.step``, the
        same trajectory bit for bit, without the tangent product).  None
        (default): the whole transient.  The transient serves two purposes at
        different rates: the state ensemble must become stationary (Lorenz-63
        from its initial box: some 20 time units), the frame must align with
        the Lyapunov vectors, which its i-th direction does like
        exp(-(lambda_i - lambda_{i+1}) t) (Lorenz-63: 0.9 per unit time, so
        5 time units leave 1%).  A state step costs a fraction of a tangent
        step (Lorenz-63, batch-last: some 1/4), so ``align`` of a few
        alignment times saves most of a long transient's cost.
    control_variates : bool
        Regress the boundary term out of the per-trajectory estimates
        (:mod:`suite.estimators.numerics.control_variates`): functions of the state and
        the frame at the run's ends (and over the taper) are zero-mean
        control variates for a stationary run.  False (default): the plain
        estimate.  Needs a batch of at least 20 trajectories per feature
        (Lorenz-63, k = 3: p = 28 features, batch >= 560), and a corrected
        trajectory's estimate depends on the rest of the batch (the fitted
        coefficients), so the contract checks of ``lyapbench check`` that run
        batches of 1 to 4 do not apply to it.  With a taper, on
        Lorenz-63 at T = 25 the spread var * T fell to 0.022 / 0.00012 /
        0.022 for lambda_1 / lambda_2 / lambda_3 against 0.069 / 0.0074 /
        0.042 tapered alone: the same standard error from a third of the
        trajectory time.
    capture : 'auto', 'none', 'trace' or 'graph'
        How the tangent step (state and frame) runs
        (:mod:`suite.estimators.numerics.capture`): as Python at every step ('none'),
        or its aten operations recorded at the first step (fake tensors, so a
        branch on a value fails the recording instead of being baked in) and
        replayed ('trace'), or, on CUDA only, that recording captured as a
        CUDA graph ('graph', opt-in: not yet measured on a GPU).  'auto'
        (default): in a run that would take at least
        ``capture.AUTO_MIN_RUN_SECONDS`` (5 s) eagerly, replays where the
        recording's replay timed faster than the eager step: a tangent made
        by torch.func (``jvp_qr``; a system without an analytic Jacobian,
        like the GRU and LSTM tasks), not a hand-written one.  A step that
        cannot be replayed faithfully (untraceable, or a replay that differs
        from the eager step on the first state) runs eagerly.  The numbers
        do not depend on it: a replay runs the eager step's operations on
        the same inputs, and the run's random streams are inputs of the
        recording.  ``meta['capture']`` says which mode ran and why.
    """

    name = "qr"
    requires = "tangent"
    #: check renormalisations a chunk at a time (see :meth:`_phase`): None = on CUDA only
    speculate: Optional[bool] = None

    def __init__(self, reorth_every: Union[int, str] = 1, method: str = "auto", taper: int = 0,
                 align: Optional[int] = None, control_variates: bool = False, capture: str = "auto"):
        if reorth_every != "auto" and (isinstance(reorth_every, bool) or not isinstance(reorth_every, int)
                                       or reorth_every < 1):
            raise InvalidArgumentError("reorth_every", reorth_every, "an integer >= 1, or 'auto' (chosen from "
                                       "the spectrum's spread, suite.estimators.numerics.reorth)")
        if method not in QR_METHODS:
            raise InvalidArgumentError("method", method, f"one of {QR_METHODS}")
        if align is not None and (isinstance(align, bool) or not isinstance(align, int) or align < 0):
            raise InvalidArgumentError("align", align, "None (the whole transient) or an integer >= 0 (steps at "
                                       "the end of the transient over which the frame is advanced)")
        self.reorth_every = reorth_every
        self.method = method
        self.taper = check_taper(taper)
        self.align = align
        self.control_variates = check_flag(control_variates)
        if capture not in capture_.CAPTURE_MODES:
            raise InvalidArgumentError("capture", capture, f"one of {capture_.CAPTURE_MODES} "
                                       "(suite.estimators.numerics.capture)")
        self.capture = capture

    def _check_capture(self, device: torch.device) -> None:
        if self.capture == "graph" and device.type != "cuda":
            raise InvalidArgumentError("capture", self.capture, f"'auto', 'none' or 'trace' on device "
                                       f"{str(device)!r} ('graph' captures a CUDA graph: CUDA devices only)")

    def interval_for(self, system: System, steps: int, **run) -> Tuple[int, Optional[Dict[str, Any]]]:
        """The re-orthonormalisation interval ``estimate(system, steps, **run)`` would use, and for
        'auto' the record of its choice (None for a fixed interval).  Costs the transient and the
        probe, not the run (``lyapbench throughput`` times the interval 'auto' picks this way)."""
        if self.reorth_every != "auto":
            return self.reorth_every, None
        cfg = check_run(system, steps, run.get("transient", 0), run.get("batch", 1), run.get("k"),
                        run.get("seed", 0), run.get("device", "cpu"), run.get("dtype", torch.float64))
        self._check_capture(cfg.device)
        with capture_.scope(self.capture, cfg.transient + reorth.PROBE_STEPS):
            *_, m, info, _ = self._start(system, cfg)
        return m, info

    @torch.no_grad()
    def _start(self, system: System, cfg: RunConfig):
        """Initial state and frame through the transient: x, Q, the random streams, the interval m,
        the record of an 'auto' choice (or None) and the last step checked."""
        rng = cfg.rng()
        auto = self.reorth_every == "auto"
        m = 1 if auto else self.reorth_every
        x = system.sample_initial(cfg.batch, rng).to(cfg.device, cfg.dtype)
        Q, _ = qr_positive(rng.normal(system.dim, cfg.k, dtype=cfg.dtype), self.method)
        check_finite(system, x, None, 0, 0, cfg)

        def check(x_, log_growth, step, since):
            check_finite(system, x_, log_growth, step, since, cfg)

        last = 0
        state_only = 0 if self.align is None else max(0, cfg.transient - self.align)
        for t in range(1, state_only + 1):
            x = system.step(x, rng)
            if t % m == 0 or t == state_only:
                check_finite(system, x, None, t, last, cfg)
                last = t
        aligned_from, auto_info = state_only, None
        if auto and cfg.transient - state_only >= reorth.PROBE_STEPS:  # in place, in the transient
            x, Q, last, growth = reorth.probe(lambda x_, Q_: self._advance(system, x_, Q_, rng), self._qr, check,
                                              x, Q, state_only, last)
            aligned_from = state_only + reorth.PROBE_STEPS
            m, auto_info = self._choose_interval(growth, Q, cfg)
        x, Q, last = self._phase(system, cfg, x, Q, rng, aligned_from, cfg.transient, 0, m, last)
        if auto and auto_info is None:  # on copies after the transient: the run is the same trajectory
            probe_rng = rng.to(rng.device)
            *_, growth = reorth.probe(lambda x_, Q_: self._advance(system, x_, Q_, probe_rng), self._qr, check,
                                      x.clone(), Q.clone(), cfg.transient, last)
            m, auto_info = self._choose_interval(growth, Q, cfg)
        return x, Q, rng, m, auto_info, last

    def _estimate(self, system: System, cfg: RunConfig):
        self._check_capture(cfg.device)
        probe = reorth.PROBE_STEPS if self.reorth_every == "auto" else 0
        with capture_.scope(self.capture, cfg.transient + probe + cfg.steps) as recorded:
            res = self._run(system, cfg)
        res.meta["capture"] = dict(recorded.record)
        return res

    @torch.no_grad()
    def _run(self, system: System, cfg: RunConfig):
        if self.control_variates:
            check_batch(system, cfg.k, cfg.batch)
        x, Q, rng, m, auto_info, last = self._start(system, cfg)
        acc = GrowthAccumulator(cfg.batch, cfg.k, cfg.steps, m, system.dt, cfg.device, taper=self.taper,
                                control_variates=self.control_variates)

        if self.control_variates:
            acc.observe(0, lambda: boundary_features(system, x, Q))
        x, Q, last = self._phase(system, cfg, x, Q, rng, 0, cfg.steps, cfg.transient, m, last, acc)
        res = acc.result()
        if auto_info is not None:
            res.meta["reorth_auto"] = auto_info
        return res

    def _qr(self, V: torch.Tensor):
        return qr_positive(V, self.method)

    def _phase(self, system: System, cfg: RunConfig, x, Q, rng, start: int, end: int, offset: int, m: int,
               last: int, acc: Optional[GrowthAccumulator] = None):
        """Steps start+1 .. end of a phase (the transient, offset 0, or the run, offset = transient),
        renormalising where t % m == 0 and at ``end``, feeding ``acc`` if given.

        Speculative on CUDA (``speculate``): :data:`SPECULATE_RENORMALISATIONS` renormalisations
        at a time with no host synchronisation (:func:`~suite.estimators.numerics.linalg.qr_unchecked`, the checks
        of diverged trajectories and of frames the QR method must redo gathered on the device),
        then one read of the result: if anything needs attention the chunk is rolled back (state,
        frame, random streams, accumulator) and redone checking every renormalisation, which
        redoes the frames and raises the errors exactly as a run that never speculated.  So the
        numbers do not depend on speculating; only the host waits on the device fewer times.
        Returns x, Q and the last step checked.
        """
        speculate = self.speculate if self.speculate is not None else cfg.device.type == "cuda"
        if not speculate:
            return self._span(system, cfg, x, Q, rng, start, end, end, offset, m, last, acc, careful=True)[:3]
        t = start
        while t < end:
            stop = min(end, (t // m + SPECULATE_RENORMALISATIONS) * m)
            saved = (x.clone(), Q.clone(), rng.counter, last, None if acc is None else acc.snapshot())
            try:
                x1, Q1, last1, good = self._span(system, cfg, x, Q, rng, t, stop, end, offset, m, last, acc,
                                                 careful=False)
                good = bool(good)  # the chunk's one synchronisation
            except Exception:  # noqa: BLE001 - e.g. a plug-in step refusing a diverged state: redo with checks
                good = False
            if good:
                x, Q, last = x1, Q1, last1
            else:
                x, Q, rng.counter, last, snapshot = saved
                if acc is not None:
                    acc.restore(snapshot)
                x, Q, last = self._span(system, cfg, x, Q, rng, t, stop, end, offset, m, last, acc,
                                        careful=True)[:3]
            t = stop
        return x, Q, last

    def _span(self, system: System, cfg: RunConfig, x, Q, rng, start: int, stop: int, end: int, offset: int,
              m: int, last: int, acc: Optional[GrowthAccumulator], careful: bool):
        """Steps start+1 .. stop of a phase that ends at ``end`` (see :meth:`_phase`); careful: the
        QR's fallback and :func:`check_finite` at every renormalisation, else their conditions
        gathered in ``good`` (a 0-dim bool on the device)."""
        good = torch.ones((), dtype=torch.bool, device=x.device)
        for t in range(start + 1, stop + 1):
            x, Q = self._advance(system, x, Q, rng)
            if t % m == 0 or t == end:
                if careful:
                    Q, log_growth = self._qr(Q)
                    check_finite(system, x, log_growth, offset + t, last, cfg)
                else:
                    Q, log_growth, ok = qr_unchecked(Q, self.method)
                    good = good & trajectories_ok(system, x, log_growth)
                    if ok is not None:
                        good = good & ok.all()
                last = offset + t
                if acc is not None:
                    acc.add(log_growth, t)
                    if self.control_variates:
                        acc.observe(t, lambda: boundary_features(system, x, Q))
        return x, Q, last, good

    def _choose_interval(self, growth: torch.Tensor, Q: torch.Tensor, cfg: RunConfig):
        method = auto_method(Q) if self.method == "auto" else self.method
        return reorth.choose_interval(growth, dtype=cfg.dtype, method=method,
                                      cap=reorth.interval_cap(cfg.steps, self.taper))

    def _advance(self, system: System, x: torch.Tensor, Q: torch.Tensor, rng):
        """One step of state and frame, replayed from a recording where ``capture`` asks for one."""
        return capture_.call(self.name, self._tangent_step(system, rng), (x, Q), rng)

    def _tangent_step(self, system: System, rng):
        """(x, Q) -> (F(x), DF(x) Q): the system's tangent map."""
        return lambda x, Q: system.tangent(x, Q, rng)
