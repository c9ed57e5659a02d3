"""The QR (Benettin / Shimada-Nagashima) spectrum estimator."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import torch

from reference_systems import System
from suite.core.args import check_bool, check_int
from suite.core.errors import InvalidArgumentError
from suite.estimators.base import (Estimator, GrowthAccumulator, RunConfig, check_finite, check_run, check_taper,
                                   trajectories_ok)
from suite.estimators.numerics import capture as capture_
from suite.estimators.numerics import alignment, reorth, units
from suite.estimators.numerics.control_variates import boundary_features, check_batch
from suite.estimators.numerics.linalg import QR_METHODS, auto_method, qr_positive, qr_unchecked

#: renormalisations between two host synchronisations of a speculative run (QREstimator._phase)
SPECULATE_RENORMALISATIONS = 32


class QREstimator(Estimator):
    """Lyapunov spectrum by propagating and re-orthonormalising k tangent vectors.

    Method (Benettin, Galgani, Giorgilli & Strelcyn, Meccanica 15, 9 (1980);
    Shimada & Nagashima, Prog. Theor. Phys. 61, 1605 (1979)): a random
    orthonormal frame Q_0 (B, d, k) is advanced with the tangent map,
    V_{t+1} = DF(x_t) Q_t, and every ``reorth_every`` steps re-orthonormalised,
    Q R = V with diag(R) > 0; lambda_i = sum of ln R_ii / (steps * dt), natural
    log, per step for maps and per unit time for flows.  The transient aligns
    the frame (its growth is discarded); the B trajectories run batched, with the
    standard error across them (batch means for B = 1) and a running history.

    Parameters
    ----------
    reorth_every : int >= 1 or 'auto'
        Steps m between QR steps; keep m dt (lambda_1 - lambda_k) well below
        ln(1/eps).  'auto': the largest m the frame's measured log condition
        allows (:mod:`suite.estimators.numerics.reorth`, ``meta['reorth_auto']``).
    method : 'auto', 'householder', 'mgs', 'cholqr' or 'cholqr2'
        QR factorisation (:func:`suite.estimators.numerics.linalg.qr_positive`).
    taper : int >= 0, at most steps / 2
        Steps at each end over which the growth's weight rises as sin^2
        (:class:`~suite.estimators.base.GrowthAccumulator`); 0: plain average.
    align : int >= 0 or None
        Transient steps, at its end, that also advance the frame; None: all.
    control_variates : bool
        Regress the boundary term out (:mod:`suite.estimators.numerics.control_variates`;
        the corrected estimates depend on the batch, so the batch checks of
        ``suite.checks.check_estimator`` do not apply).
    capture : 'auto', 'none', 'trace', 'graph' or 'compile'
        'none': one step at a time; otherwise whole intervals run in units of up to 16 steps with
        their QR steps and accumulation (:mod:`suite.estimators.numerics.units`), recorded once and
        replayed (same numbers), or compiled by inductor (within round-off;
        :mod:`suite.estimators.numerics.capture`).

    Measured effects of each hyperparameter: docs/estimators.md.
    """

    name = "qr"
    requires = "tangent"
    #: check renormalisations a chunk at a time (see :meth:`_phase`): None = on CUDA only
    speculate: Optional[bool] = None

    def __init__(self, reorth_every: Union[int, str] = 1, method: str = "auto", taper: int = 0,
                 align: Optional[int] = None, control_variates: bool = False, capture: str = "auto"):
        if reorth_every != "auto":
            check_int("reorth_every", reorth_every, 1, allowed="an integer >= 1, or 'auto' (chosen from the "
                      "spectrum's spread, suite.estimators.numerics.reorth)")
        if method not in QR_METHODS:
            raise InvalidArgumentError("method", method, f"one of {QR_METHODS}")
        check_int("align", align, 0, allow_none=True, allowed="None (the whole transient) or an integer >= 0 "
                  "(steps at the end of the transient over which the frame is advanced)")
        self.reorth_every = reorth_every
        self.method = method
        self.taper = check_taper(taper)
        self.align = align
        self.control_variates = check_bool("control_variates", control_variates)
        if capture not in capture_.CAPTURE_MODES:
            raise InvalidArgumentError("capture", capture, f"one of {capture_.CAPTURE_MODES} "
                                       "(suite.estimators.numerics.capture)")
        self.capture = capture

    def _check_capture(self, device: torch.device) -> None:
        capture_.check_device(self.capture, device)

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
    def alignment_bound(self, system: System, aligned: int, *, k: Optional[int] = None, seed: int = 0,
                        device="cpu", dtype=torch.float64) -> Dict[str, Any]:
        """Bound (nats) on the bias left by a frame aligned over at least ``aligned`` transient steps,
        measured by pairs of frames on the same trajectories over 1.5 ``aligned`` steps
        (:func:`suite.estimators.numerics.alignment.boundary_bound`, which documents the record)."""
        n = alignment.TRAJECTORIES
        cfg = check_run(system, aligned, 0, 2 * n, k, seed, device, dtype)

        def check(x, log_growth, step, since):
            check_finite(system, x, log_growth, step, since, cfg)
        return alignment.boundary_bound(system, cfg.steps, lambda x, Q, rng: self._tangent_step(system, rng)(x, Q),
                                        self._qr, check, k=cfg.k, seed=cfg.seed, device=cfg.device, dtype=cfg.dtype,
                                        trajectories=n)

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
                                control_variates=self.control_variates, frame_dtype=cfg.dtype)

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
        gathered in ``good`` (a 0-dim bool on the device).  Whole intervals go through units
        (:meth:`_units`) unless ``capture='none'``; an interval whose unit fails a check is redone
        step by step, so the numbers and the errors are those of stepping one step at a time."""
        good = torch.ones((), dtype=torch.bool, device=x.device)
        t = start
        while t < stop:
            ends = self._unit_ends(system, offset + t, t, stop, m, acc)
            if ends:
                counter = getattr(rng, "counter", None)
                x1, Q1, passed, accumulated = self._units(system, cfg, x, Q, rng, ends, m, acc)
                if not careful or bool(passed):
                    x, Q, t, last = x1, Q1, ends[-1], offset + ends[-1]
                    if acc is not None:
                        acc.fold(ends, *accumulated)
                    if not careful:
                        good = good & passed
                    continue
                if counter is not None:
                    rng.counter = counter  # redo these intervals step by step, with the checks
            to = ends[-1] if ends else (min(stop, (t // m + 1) * m) if m > 1 else t + 1)
            for t in range(t + 1, to + 1):
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

    def _unit_ends(self, system: System, done: int, t: int, stop: int, m: int, acc: Optional[GrowthAccumulator]):
        """The renormalisations one unit would end after step t of a phase (t % m == 0; ``done`` steps of the
        run), or () where a unit does not apply: ``capture='none'``, units the run decided to run eagerly
        ('auto' where compiling would not repay itself: stepping one step at a time is then as fast), the
        run's first interval (the initial state's memory layout may not be the one a step returns, which
        would record the unit twice), fewer whole intervals left before ``stop``, or more than one block
        boundary."""
        if self.capture == "none" or t % m or not done or not self._steps_as_built:
            return ()
        return units.ends_after(t, m, stop, self._unit_key(system, m), acc)

    def _unit_key(self, system: System, m: int):
        """(kind, r, observes) -> what names a unit of interval m in the run's recordings and in the remembered
        compile times."""
        g = units.unit_shape(m)[0]
        return lambda kind, r, observes: (self.name, self.method, system.label, kind, g, r, observes)

    @property
    def _steps_as_built(self) -> bool:
        """Whether the step and the QR step are this class's own: a subclass that overrides ``_advance`` or
        ``_qr`` (a plug-in's own tangent or factorisation) is stepped one step at a time, as it asks
        (one that overrides ``_tangent_step``, as ``jvp_qr`` does, runs in units)."""
        return type(self)._advance is QREstimator._advance and type(self)._qr is QREstimator._qr

    def _units(self, system: System, cfg: RunConfig, x, Q, rng, ends, m: int, acc: Optional[GrowthAccumulator]):
        """The intervals ending at ``ends`` by :mod:`suite.estimators.numerics.units`, recorded, compiled or
        eager as the run's capture mode decides: x, Q, the 0-dim bool of the checks and what
        :meth:`GrowthAccumulator.fold` takes (a phase without an accumulator, the transient, accumulates
        into zeros it discards)."""
        if acc is not None:
            inputs = acc.fold_inputs(ends)
        else:
            r = len(ends)
            zeros = [torch.zeros(cfg.batch, cfg.k, dtype=torch.float64, device=x.device) for _ in range(3)]
            inputs = dict(zip(("sums", "block", "next_block"), zeros),
                          in_block=torch.ones(r, dtype=torch.bool, device=x.device),
                          weights=torch.ones(r, dtype=torch.float64, device=x.device))

        def ok(x_, log_growth):
            return trajectories_ok(system, x_, log_growth)
        return units.run(self._unit_key(system, m), self._tangent_step(system, rng),
                         lambda x_, V: (x_,) + tuple(qr_unchecked(V, self.method)), ok, m, x, Q, inputs,
                         lambda x_, Q_: boundary_features(system, x_, Q_).to(torch.float64), rng)

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
