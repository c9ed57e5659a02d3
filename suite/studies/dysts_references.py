"""References of the dysts flows from two independent routes, cached per flow (issue 26).

    lyapbench dysts references [--flows 'dysts/*'] [--budget standard|full|quick] [--force | --check]
                               [--executor dask --workers 2]

Per flow (:func:`compute_flow`), at the run sizes of :data:`BUDGETS` (in dysts's dominant periods):

1. **lyapbench**: ``qr(capture='none')`` (:data:`ROUTE_ONE`; the suite's RK4 and its exact tangent, autodiff
   Jacobian of the torch rendering), float64, at the flow's ``dt`` (:mod:`reference_systems.dysts.steps`);
2. **the step check** (:func:`step_check`): ``qr()`` again at 2 dt, or where that differs or diverges at dt / 2;
3. **route two** (:func:`route_two`): ``jitcode_lyap`` (adaptive Dormand-Prince on the variational equations of
   the symbolic rendering, rtol = atol = 1e-10), independent trajectories, its frame aligned over the transient as
   route one's; for a switched flow (a vector field that jumps, :mod:`reference_systems.switched`), which jitcode
   cannot integrate (no events), ``scipy_events_lyap`` (:mod:`suite.peers.scipy_events`: scipy's DOP853, the
   crossings located as events, the saltation matrix written out), where route one splits its RK4 steps at the
   crossings and differentiates the pieces;
4. the time-averaged divergence <tr Df> along route one's trajectories (its seed, batch and T), for the sum rule.

The verdict (:func:`judge`, a function of the recorded numbers) is 'reference' only where (a) the run at 2 dt (or
dt / 2) differs from the run at dt on no exponent by more than the two runs' joint allowance,
t sqrt(s1^2 + s2^2) + 2 b_i / T (no step effect detectable); passed at 2 dt, RK4's order bounds the shift that
halving dt would make by a sixteenth of that allowance, about 1/8 of the uncertainty at most (issue 26 asks a tenth);
passed only at dt / 2, the bias is bounded by the allowance itself (two chaotic runs decorrelate, so their
difference cannot resolve less), (b) the routes agree on every exponent within t sqrt(s1^2 + s2^2) + 2 b_i / T
(the tolerance rule for a difference of two independent estimates), (c) the spectrum's sum agrees with <div f>
within t sqrt(s_sum^2 + s_div^2) + b / T, (d) lambda_1 exceeds its uncertainty (chaotic), (e) the routes'
trajectories leak slowly: a trajectory that escapes (diverges) is replaced by the next start
(:mod:`suite.studies.survival`), and the escape rate's upper bound (:func:`leak_rate`) is at most
:data:`LEAK_MAX` lambda_1 (the reference is then that of the survivors, its source says so), (f) the exponent
closest to 0 lies within its uncertainty of 0 (the flow direction's exponent, exactly 0), and (g) route two
again over :data:`LONG_FACTOR` T (:func:`long_run`, other starts) lands within the reference's uncertainty + its
own t s + b_i / (LONG_FACTOR T) on every exponent (no drift with T that the routes, run over one T, share);
otherwise the verdict names the first check that failed and the record keeps every number.  The boundary
term's bound b_i is :data:`BIAS_NATS`, plus ln(1 + T / A) for an exponent near 0 (:func:`exponent_bias`: a
direction that grows linearly, on an invariant torus or along a Hamiltonian's energy, from a frame aligned over
A).  The reference is the mean of the two routes with uncertainty |difference| / 2 + the larger route uncertainty
(t s + b_i / T, t at 1 - 1e-4 / 2), so it covers both; provenance 'computed'.  A switched flow declared
``filippov`` (its trajectories stick: Filippov sliding, the last exponent -inf) is referenced on its d - 1 finite
exponents, with no sum rule; one not declared so, whose trajectories stick, gets no reference.  The sum rule of
a switched flow holds with each side's divergence where the normal speed grad g . f is continuous across the
surface (det S = 1: SprottMore, FluidTrampoline); otherwise ln |det S| at each crossing would add to it.  Records
live in ``results/references/systems__dysts_*.json`` with the staleness probe of :mod:`reference_systems.computed`
and the fingerprint of the starts both routes drew (:func:`starts_fingerprint`, checked by :func:`status`); a run
skips fresh ones, so an interrupted run resumes; ``--redo-jitcode`` reruns route two and the verdict, keeping
route one (``compute_flow(reuse=)``); ``--redo-divergence`` the divergence and the verdict, keeping both routes;
``--redo-long`` check (g) and the verdict, keeping the rest (a fresh reference without it is 'incomplete' and is
confirmed so); ``--redo-verdict`` the verdict only (after a change of :func:`judge`).
"""
from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

import reference_systems as rs
from reference_systems import System, computed
from reference_systems.noise import TrajectoryRNG
from reference_systems.switched import SwitchedFlow
from suite import estimators
from reference_systems.dysts.build import catalogue, reference_key, row, transient_periods
from suite.core.errors import InvalidArgumentError, SlidingError, TrajectoryError, exception_line
from suite.core.provenance import git_sha, versions
from suite.core.result import LyapunovResult
from suite.peers.base import PeerError
from suite.peers.jitcode_adapter import JitcodeLyap
from suite.peers.scipy_events import ScipyEventsLyap
from suite.reporting.plots import stored_against_computed_figure
from suite.reporting.tables import atomic_write, markdown, write_csv
from suite.scoring.invariants import zero_exponent_index
from suite.scoring.tolerance import derive
from suite.studies.computed_references import REFERENCE_SEED, write
from suite.studies.survival import escape_rate, run_surviving

#: run sizes: T of at least ``periods`` dominant periods and ``lyapunov_times`` Lyapunov times (dysts's stored
#: lambda_1 as the scale only; some flows' period is a twentieth of their Lyapunov time), the transient of
#: :func:`transient_periods` within the bounds given, each capped at ``max_steps`` RK4 steps of the flow's dt; and
#: trajectories (lyapbench's, jitcode's).  'standard' gives the committed references: jitcode is the cheap route
#: (~4 s for 16 trajectories x 200 periods) and at 16 trajectories its interval set the references' uncertainty,
#: so it runs 64; lyapbench's run at dt takes ~10-30 s a flow on one core
BUDGETS = {
    # jitcode 32, not 8: at 8 its t (7 degrees of freedom, 8.0 at 1 - 1e-4 / 2) set Bouali2's uncertainty, 0.0024
    # against route one's 0.0011, for 34 s of its 880
    "full": {"periods": 2000, "lyapunov_times": 500, "max_steps": 10 ** 6, "transient_periods": (100, 300),
             "batch": 32, "jitcode_batch": 32},
    "standard": {"periods": 100, "lyapunov_times": 50, "max_steps": 30_000, "transient_periods": (20, 60),
                 "batch": 64, "jitcode_batch": 64},
    # a flow whose lambda_1 is far below dysts's stored one, so that 'standard' ends within a Lyapunov time
    # (SwingingAtwood: lambda_1 = 0.057 against the stored 1.01, T = 10 at the cap); a record keeps its budget
    "long": {"periods": 600, "lyapunov_times": 50, "max_steps": 600_000, "transient_periods": (20, 60),
             "batch": 32, "jitcode_batch": 32},
    "quick": {"periods": 60, "lyapunov_times": 10, "max_steps": 30_000, "transient_periods": (20, 60), "batch": 8,
              "jitcode_batch": 4},
    "smoke": {"periods": 8, "lyapunov_times": 0, "max_steps": 4_000, "transient_periods": (4, 12), "batch": 4,
              "jitcode_batch": 2},  # the tests' end to end
}
DEFAULT_BUDGET = "standard"
#: route one's hyperparameters beyond the defaults: eager steps (capture 'auto' would compile a long run's unit,
#: a cold compilation of 1-2 minutes per flow that these ~20-60 s runs do not repay, measured on Aizawa: 142 s
#: for the flow against 30 s eager for Arneodo)
ROUTE_ONE = {"capture": "none"}
#: RK4's order: halving the step divides its bias in the exponents by 2^4 (Richardson), so a step effect of at most
#: A between 2 dt and dt bounds the bias at dt by A / (2^4 - 1) and the shift halving dt would make by
#: A / (2^4 - 1) * (1 - 2^-4) = A / 16
RK4_ORDER = 4
#: the divergence <tr Df> is sampled every this many steps.  Every 10th step, CircadianRhythm's sum rule failed:
#: its 64 trajectories share one near-periodic orbit and its phase, so the grid's error is common to all and the
#: standard error misses it (<div f> = -1.45354 +- 4e-7 every 10th step, -1.45285 +- 3e-7 every step, against the
#: spectrum's sums -1.45282 and jitcode's -1.45291; 36 s against 64 s on a shared core)
DIVERGENCE_EVERY = 1
#: what ``compute_flow(reuse=...)`` computes again (the rest is kept from the record)
REDO = ("jitcode", "divergence", "long", "verdict")
#: the confirmation beyond T (check (g)): route two again over LONG_FACTOR x T, LONG_BATCH trajectories (the
#: trajectory time of a 'standard' route two's batch of 64), seed REFERENCE_SEED + 2.  Two routes that agree at
#: one T share its finite-time bias, and the bound b / T assumes a boundary term: SwingingAtwood's jitcode lambda_1
#: rose from 0.105 at T = 197 to 0.157 at T = 2,000 (16 trajectories; docs/dysts.md), a drift neither shows
LONG_FACTOR, LONG_BATCH = 4, 16
#: the verdict of a record written before jitcode's route ran: a run that stops there keeps route one, the step
#: check and the divergence, and the next run (``lyapbench dysts references``) goes on from them
INCOMPLETE = "incomplete: jitcode's route has not run (the run stopped before it)"
#: the sum rule of a flow that sticks: its spectrum's last exponent is -inf, its d - 1 finite ones sum to no
#: divergence of the vector field (in the stick phases the flow lives on the surface)
NO_SUM_RULE = {"value": None, "stderr": None, "why": "a flow that sticks (Filippov sliding): lambda_d = -inf, and "
                                                      "the d - 1 finite exponents are referenced"}
#: the finite-time bias bound b (nats) of every route: the boundary term of a time average over T
BIAS_NATS = 1.0
#: the error probability of each stated interval (per exponent), as the computed references of the catalogue
ALPHA = 1e-4
#: a leaking flow's reference is that of the trajectories that survive (each escape replaced by the next start,
#: :mod:`suite.studies.survival`) where its escape rate kappa (per trajectory and time unit, bounded above at
#: 1 - ALPHA) is at most this fraction of lambda_1.  Kantz & Grassberger (1985): kappa = lambda_1 (1 - D_u), D_u
#: the partial dimension of the saddle along its unstable direction, so the survivors sample a set within 1% of
#: an attractor's D_u = 1, for hundreds of Lyapunov times before they leave
LEAK_MAX = 0.01
#: escapes a run may replace before it counts as failed (a quarter of its batch: a leak that fast fails the
#: rule above anyway)
ESCAPES_MAX_FRACTION = 0.25


#: each second route: its key in a record's ``routes`` and ``escapes``, its estimator, its part of the source
ROUTES_TWO = {
    "jitcode": (JitcodeLyap, "jitcode_lyap (dopri5, rtol = atol = 1e-10"),
    "scipy_events": (ScipyEventsLyap, "scipy_events_lyap (solve_ivp's DOP853, rtol = atol = 1e-10, each crossing an "
                                      "event with its saltation matrix"),
}


def route_two(flow: System) -> str:
    """The key of :data:`ROUTES_TWO` that a flow's second route takes: 'scipy_events' for a switched flow (jitcode
    has no events), else 'jitcode'."""
    return "scipy_events" if isinstance(flow, SwitchedFlow) else "jitcode"


def second(record: Dict[str, Any]) -> str:
    """The key of a record's second route."""
    return "scipy_events" if "scipy_events" in record.get("routes", {}) else "jitcode"


def linear_growth_nats(T: float, aligned_time: float) -> float:
    """ln(1 + T / A): the ln growth over T of a tangent direction growing linearly (exponent 0) from a frame
    aligned over A time units before T starts (:data:`BIAS_NATS`)."""
    return math.log1p(T / aligned_time) if aligned_time > 0 else math.inf


def exponent_bias(values, statistical, T: float, aligned_time: float) -> np.ndarray:
    """Each exponent's boundary-term bound b_i (nats): :data:`BIAS_NATS`, plus :func:`linear_growth_nats` for an
    exponent within (b + that) / T + ``statistical`` (its t s) of 0, which may be a linearly growing direction
    (an invariant torus, the energy direction of a Hamiltonian flow)."""
    linear = linear_growth_nats(T, aligned_time)
    near_zero = np.abs(np.asarray(values, dtype=float)) <= (BIAS_NATS + linear) / T + np.asarray(statistical)
    return np.where(near_zero, BIAS_NATS + linear, BIAS_NATS)


def _statistical(route: Dict[str, Any]) -> np.ndarray:
    return derive(stderr=route["stderr"], dof=route["stderr_dof"], bias_nats=0.0, alpha=ALPHA).total


def _interval(route: Dict[str, Any], T: float, bias) -> np.ndarray:
    """A route's stated interval t s + b_i / T (``route``: values, stderr, stderr_dof)."""
    return derive(stderr=route["stderr"], dof=route["stderr_dof"], T=T, bias_nats=bias, alpha=ALPHA).total


def _difference_allowed(a: Dict[str, Any], b: Dict[str, Any], T: float, bias) -> np.ndarray:
    """The tolerance rule for the difference of two independent estimates over T: t sqrt(s_a^2 + s_b^2) + 2 b / T."""
    return np.asarray(derive(stderr=np.hypot(a["stderr"], b["stderr"]), dof=min(a["stderr_dof"], b["stderr_dof"]),
                             T=T, bias_nats=2 * np.asarray(bias), alpha=ALPHA).total)


def mean_divergence(flow: System, steps: int, transient: int, batch: int, seed: int) -> Dict[str, float]:
    """<tr Df> over ``batch`` trajectories x ``steps`` RK4 steps after ``transient`` (float64, sampled every
    :data:`DIVERGENCE_EVERY` steps), and its standard error across trajectories."""
    rng = TrajectoryRNG(seed, batch)
    x = flow.sample_initial(batch, rng).to(torch.float64)
    total, samples = torch.zeros(batch, dtype=torch.float64), 0
    with torch.no_grad():
        for _ in range(transient):
            x = flow.step(x, rng)
    for n in range(steps):
        with torch.no_grad():
            x = flow.step(x, rng)
        if n % DIVERGENCE_EVERY == 0:
            total = total + torch.diagonal(flow.field_jacobian(x), dim1=1, dim2=2).sum(dim=1).detach()
            samples += 1
    bad = ~torch.isfinite(x).all(dim=1) | ~torch.isfinite(total)
    if bool(bad.any()):  # a trajectory that escaped: named, so that run_surviving replaces it
        raise TrajectoryError(f"system {flow.label!r}: trajectory {int(bad.nonzero()[0])} of the divergence run "
                              "diverged (non-finite state)", system=flow.label,
                              trajectories=bad.nonzero().flatten().tolist(), step=transient + steps)
    per = (total / samples).numpy()
    return {"value": float(per.mean()), "stderr": float(per.std(ddof=1) / math.sqrt(batch)), "dof": batch - 1}


def _at_dt(flow: System, dt: float) -> System:
    return rs.get(flow.name, **dict({k: v for k, v in flow.params.items() if k != "dt"}, dt=dt))


def step_check(flow: System, ours: Dict[str, Any], steps: int, common: Dict[str, Any], T: float,
               excluded=()) -> Dict[str, Any]:
    """Whether the flow's dt is small enough: first against a run at 2 dt (half the cost; where it shows no
    detectable difference, the step effect between 2 dt and dt is below the allowance A, and Richardson bounds the
    bias at dt by A / 15, :data:`RK4_ORDER`), else, where 2 dt differs, diverges or is too coarse, against a run at
    dt / 2 (no detectable difference: the bias is below the allowance).  ``ours``: route one's run at dt (values,
    stderr, stderr_dof); ``excluded``: the starts route one replaced (escaped), left out here too, and a
    trajectory that escapes at the other step replaced as well (its ``escapes``).  The check's record, with
    ``passed``."""
    tried = []
    bias = exponent_bias(ours["values"], _statistical(ours), T, common["transient"] * flow.dt)
    for factor in (2, 0.5):
        other = _at_dt(flow, flow.dt * factor)
        try:
            res, escapes, _ = run_surviving(lambda s: estimators.get("qr", **ROUTE_ONE).estimate(
                s, round(steps / factor), **dict(common, transient=round(common["transient"] / factor))),
                other, common["batch"], _max_escapes(common["batch"]), excluded)
            run = _route(res)
        except ArithmeticError as exc:  # the coarse step diverged: reported in the record, the fine one decides
            tried.append({"dt": other.dt, "error": str(exc)})
            continue
        shifts = np.abs(np.asarray(run["values"]) - ours["values"])
        allowed = _difference_allowed(ours, run, T, bias)
        check = {"dt": other.dt, "values": run["values"], "shifts": shifts.tolist(),
                 "allowed": allowed.tolist(), "passed": bool(np.all(shifts <= allowed)),
                 "wall_seconds": run["wall_seconds"], "escapes": escapes}
        if factor > 1:  # no step effect larger than the allowance went undetected: Richardson's bound on dt's bias
            check["bias_bound_at_dt"] = (allowed / (2 ** RK4_ORDER - 1)).tolist()
        tried.append(check)
        if check["passed"]:
            break
    last = tried[-1]
    return {"passed": bool(last.get("passed", False)), "runs": tried,
            "shifts": last.get("shifts"), "allowed": last.get("allowed"), "dt": last["dt"]}


def wanted_time(name: str, budget: str = DEFAULT_BUDGET) -> float:
    """The T a flow's run at ``budget`` asks before the step cap: ``periods`` dominant periods and
    ``lyapunov_times`` of dysts's stored lambda_1, whichever is longer (time units)."""
    entry, size = row(name), BUDGETS[budget]
    period, lam = float(entry["period"]), entry["stored_lambda1"]
    return max(size["periods"] * period, size["lyapunov_times"] / lam if lam and lam > 0 else 0.0)


def run_steps(flow: System, budget: str = DEFAULT_BUDGET) -> Tuple[int, int]:
    """(steps, transient) of a flow's runs at ``budget`` (:data:`BUDGETS`), both even: the run at 2 dt covers the
    same times."""
    name = flow.name.split("/", 1)[1]
    entry, size = row(name), BUDGETS[budget]
    period = float(entry["period"])
    steps = 2 * math.ceil(min(wanted_time(name, budget) / flow.dt, size["max_steps"]) / 2)
    transient = 2 * math.ceil(min(transient_periods(name, *size["transient_periods"]) * period / flow.dt,
                                  size["max_steps"]) / 2)
    return steps, transient


def starts_fingerprint(flow: System, budget: str = DEFAULT_BUDGET) -> List[float]:
    """[sum x, sum x^2] of the starts each route draws (route one's batch at ``REFERENCE_SEED``, jitcode's at
    ``REFERENCE_SEED + 1``).  The records' probe (:func:`reference_systems.computed.probe`) draws two starts, and
    a change of the sampler in rarer draws passes it unseen (the reflected perturbation: 7 of ItikBanksTumor's 64
    starts, which had made its lambda_1 -0.07 instead of 0.0205)."""
    size, out = BUDGETS[budget], []
    for seed, batch in ((REFERENCE_SEED, size["batch"]), (REFERENCE_SEED + 1, size["jitcode_batch"])):
        x = flow.sample_initial(batch, TrajectoryRNG(seed, batch)).to(torch.float64)
        out += [float(x.sum()), float((x * x).sum())]
    return out


def budget_of(flow: System) -> str:
    """The budget a flow's references are computed at: its record's (a flow moved to 'long' stays there when every
    reference is recomputed), :data:`DEFAULT_BUDGET` where it has none."""
    record = computed.read(reference_key(flow))
    return record.get("budget", DEFAULT_BUDGET) if record else DEFAULT_BUDGET


def status(flow: System) -> str:
    """The flow's record status as built (``meta['reference_status']``: 'fresh', 'missing', 'incomplete',
    'stale: ...'), and 'stale: its starts changed' where a fresh record that ran drew other starts than the flow
    draws now (:func:`starts_fingerprint`; a record without it is stale too)."""
    now = flow.meta.get("reference_status", "missing")
    if now not in ("fresh", "incomplete"):
        return now
    record = computed.read(reference_key(flow))
    if not computed.probes_match(starts_fingerprint(flow, record["budget"]), record.get("starts", [])):
        return "stale: its trajectories' starts changed (or the record predates their fingerprint)"
    if now == "fresh" and unconfirmed(record):
        return UNCONFIRMED
    return now


#: the status of a record whose verdict 'reference' has not had check (g) (:func:`long_run`): ``lyapbench dysts
#: references`` runs that check alone, keeping the rest
UNCONFIRMED = f"incomplete: the confirmation over {LONG_FACTOR} T (route two again) has not run"


def unconfirmed(record: Dict[str, Any]) -> bool:
    """Whether a record says 'reference' without check (g) at today's :data:`LONG_FACTOR` and :data:`LONG_BATCH`."""
    return record.get("verdict") == "reference" and not _long_matches(record.get("checks", {}).get("long_T"), record)


def compute_flow(flow: System, budget: str = DEFAULT_BUDGET, directory=None,
                 reuse: Optional[Dict[str, Any]] = None, redo: str = "jitcode") -> Dict[str, Any]:
    """Both routes, the step check and the sum rule for one dysts flow (``budget`` a key of :data:`BUDGETS`);
    the record, written.  ``reuse``: an earlier record of the flow at the same budget, steps and dt, whose route
    one and step check are kept, and its divergence where sampled as :data:`DIVERGENCE_EVERY` now says; ``redo``
    (one of :data:`REDO`) what is computed again: 'jitcode' route two, 'divergence' the divergence (route two
    kept), 'verdict' nothing (both routes and the divergence kept); the verdict is always judged again.
    ``reuse`` is ignored if it does not match."""
    here = git_sha()  # read (and cached) before the runs: a commit made while they run is not the code they ran
    name = flow.name.split("/", 1)[1]
    entry, size = row(name), BUDGETS[budget]
    steps, transient = run_steps(flow, budget)
    T = steps * flow.dt
    # a flow that sticks (Filippov sliding) has lambda_d = -inf: its d - 1 finite exponents, no sum rule
    k = flow.dim - 1 if getattr(flow, "filippov", False) else flow.dim
    common = dict(transient=transient, batch=size["batch"], seed=REFERENCE_SEED, dtype=torch.float64, k=k)
    if redo not in REDO:
        raise InvalidArgumentError("redo", redo, f"one of {REDO}")
    reused = _reusable(reuse, flow, budget, steps, transient, redo)
    # along route one's trajectories (its seed, batch, transient and T, its escaped starts left out): the time
    # average over a shorter window or fewer trajectories missed Rossler's sum by 0.025 (-5.352 over 10,000 of its
    # 20,000 steps, 16 trajectories; -5.329 over 30,000 steps, 64: the sum was -5.327), its across-trajectory
    # error underestimated
    divergence = lambda excluded: run_surviving(  # noqa: E731
        lambda s: mean_divergence(s, steps, transient, size["batch"], REFERENCE_SEED), flow, size["batch"],
        _max_escapes(size["batch"]), excluded) if k == flow.dim else (NO_SUM_RULE, [], excluded)
    if reused:
        ours, step = reuse["routes"]["lyapbench"], reuse["checks"]["step"]
        rule, escapes = reuse["checks"]["sum_rule"], dict(reuse.get("escapes", {}))
        if rule.get("divergence") is None:
            div = NO_SUM_RULE
        elif redo != "divergence" and rule.get("divergence_run") == {
                "steps": steps, "every": DIVERGENCE_EVERY, "batch": size["batch"]}:
            div = {"value": rule["divergence"], "stderr": rule["divergence_stderr"], "dof": size["batch"] - 1}
        else:  # an older record's window
            div, escapes["divergence"], _ = divergence([i for i, _ in escapes.get("lyapbench", [])])
    else:
        escapes = {}
        try:  # a trajectory that escapes is replaced by the next start (a leaking flow: LEAK_MAX)
            res, escapes["lyapbench"], excluded = run_surviving(
                lambda s: estimators.get("qr", **ROUTE_ONE).estimate(s, steps, **common), flow, size["batch"],
                _max_escapes(size["batch"]))
        except SlidingError as exc:  # a stick phase: the last exponent is -inf, no finite spectrum to refer to
            return _no_run(flow, budget, "no reference: the trajectories stick (Filippov sliding on the switching "
                                         f"surface, route one's trajectories {exc.trajectories}): the perturbation "
                                         f"normal to it is annihilated, lambda_{flow.dim} = -inf", directory, ran=True)
        except ArithmeticError as exc:  # more escapes than a slow leak has, a frame degenerated: recorded
            return _failed(flow, budget, "lyapbench's run at dt", exc, directory)
        ours = _route(res)
        step = step_check(flow, ours, steps, common, T, excluded)
        try:
            div, escapes["divergence"], _ = divergence(excluded)
        except ArithmeticError as exc:
            return _failed(flow, budget, "the divergence run along route one's trajectories", exc, directory)
    key = reference_key(flow)
    two = route_two(flow)
    estimator_two, described = ROUTES_TWO[two]
    keep_jitcode = reused and redo in ("divergence", "long", "verdict") and two in reuse["routes"]
    # where the kept routes were computed (a reused record's), named in the source beside this commit; the field
    # 'jitcode_from' holds route two's, whichever route that is (the name predates scipy_events)
    kept = (("route_one_from", "route one"), ("jitcode_from", two))[:2 if keep_jitcode else 1] if reused else ()
    origins = {field: {k: reuse.get(field, {}).get(k, reuse[k]) for k in ("git_sha", "created")} for field, _ in kept}
    ran_at = "".join(f"{label} at git {origins[field]['git_sha']}, " for field, label in kept) + \
        (f"the rest at git {here}" if kept else f"git {here}")
    record = {
        "key": key, "spec_key": flow.label, "probe": computed.probe(flow), "starts": starts_fingerprint(flow, budget),
        "bias_nats": BIAS_NATS,
        "provenance": "computed", "dim": flow.dim, "T": T, "T_wanted": wanted_time(name, budget), "steps": steps,
        "transient": transient,
        "aligned_time": transient * flow.dt, "budget": budget,
        "source": (f"mean of lyapbench qr(), eager (RK4 dt = {flow.dt:.6g}, autodiff tangent"
                   + (", steps split at each located crossing, its saltation matrix" if two == "scipy_events" else "")
                   + f", {size['batch']} "
                   f"trajectories, seed {REFERENCE_SEED}) and {described}, "
                   f"{size['jitcode_batch']} trajectories, seed {REFERENCE_SEED + 1}), both frames aligned over the "
                   f"transient {transient * flow.dt:.6g}, over T = {T:.6g}; uncertainty |difference| / 2 + "
                   f"max(t s + b / T); {ran_at}; dysts {_version()}"),
        "routes": {"lyapbench": ours}, "escapes": escapes,
        "checks": {"step": step, "sum_rule": {
            "divergence": div["value"], "divergence_stderr": div["stderr"],
            "divergence_run": {"steps": steps, "every": DIVERGENCE_EVERY, "batch": size["batch"]}}
            if div is not NO_SUM_RULE else {"divergence": None, "not_applicable": NO_SUM_RULE["why"]}},
        "dysts": {"stored_lambda1": entry["stored_lambda1"], "stored_spectrum": entry["stored_spectrum"],
                  "version": _version()},
        "git_sha": here, "versions": versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "verdict": INCOMPLETE, "values": [], "uncertainty": [], **origins,
    }
    if not reused:  # route one, the step check and the divergence are kept if the run stops before jitcode's route
        write(record, key, directory)
    try:
        if keep_jitcode:
            theirs = reuse["routes"][two]
        else:
            res, escapes[two], _ = run_surviving(
                lambda s: estimator_two().estimate(s, steps, transient=transient, batch=size["jitcode_batch"], k=k,
                                                 seed=REFERENCE_SEED + 1),
                flow, size["jitcode_batch"], _max_escapes(size["jitcode_batch"]))
            theirs = _route(res)
    except (ArithmeticError, PeerError) as exc:
        record.update(verdict=f"no reference: {two}'s run failed ({exception_line(exc)})")
        write(record, key, directory)
        return record
    record["routes"][two] = theirs
    if escapes.get("lyapbench") or escapes.get(two):
        record["source"] += (f"; conditioned on survival: {len(escapes.get('lyapbench', []))} of route one's and "
                             f"{len(escapes.get(two, []))} of {two}'s starts escaped and were replaced by "
                             "the next (docs/dysts.md, 'Leaking flows')")
    record["wall_seconds"] = round(ours["wall_seconds"] + theirs["wall_seconds"]
                                   + sum(r.get("wall_seconds", 0.0) for r in step["runs"]), 2)
    record.update(judge(record))
    if record["verdict"] == "reference":  # held at T: confirmed beyond it (check (g)), kept where nothing changed
        kept_long = reuse.get("checks", {}).get("long_T") if keep_jitcode and redo != "long" else None
        record["checks"]["long_T"] = kept_long if _long_matches(kept_long, record) else \
            long_run(flow, record, two, transient, k)
        record["wall_seconds"] = round(record["wall_seconds"] + record["checks"]["long_T"].get("wall_seconds", 0), 2)
        record.update(judge(record))
    write(record, key, directory)
    return record


def long_run(flow: System, record: Dict[str, Any], two: str, transient: int, k: int) -> Dict[str, Any]:
    """Route two over :data:`LONG_FACTOR` x the record's T (:data:`LONG_BATCH` trajectories, seed
    ``REFERENCE_SEED + 2``, the record's transient): the raw numbers of check (g), which :func:`judge` compares with
    the reference; a run that fails is recorded with its ``error``."""
    steps, size = LONG_FACTOR * record["steps"], {"factor": LONG_FACTOR, "batch": LONG_BATCH}
    estimator_two = ROUTES_TWO[two][0]
    try:
        res, escapes, _ = run_surviving(
            lambda s: estimator_two().estimate(s, steps, transient=transient, batch=LONG_BATCH, k=k,
                                             seed=REFERENCE_SEED + 2), flow, LONG_BATCH, _max_escapes(LONG_BATCH))
    except (ArithmeticError, PeerError) as exc:
        return dict(size, T=steps * flow.dt, route=two, error=exception_line(exc))
    return dict(size, T=steps * flow.dt, route=two, **_route(res), escapes=escapes)


def _long_matches(long: Optional[Dict[str, Any]], record: Dict[str, Any]) -> bool:
    return bool(long) and long.get("factor") == LONG_FACTOR and long.get("batch") == LONG_BATCH and \
        math.isclose(long.get("T", 0.0), LONG_FACTOR * record["T"], rel_tol=1e-12)


def judge(record: Dict[str, Any]) -> Dict[str, Any]:
    """The verdict, values and uncertainty of a record from its numbers alone (the module docstring's checks (a)-(g),
    each exponent's bias bound :func:`exponent_bias`): ``verdict``, ``values``, ``uncertainty``, ``k``, the
    ``checks`` (the step check's as recorded) and the ``routes`` with their stated intervals; ``record`` is left
    as it was."""
    two = second(record)
    ours, theirs, T = record["routes"]["lyapbench"], record["routes"][two], record["T"]
    a, b = np.asarray(ours["values"]), np.asarray(theirs["values"])
    values = (a + b) / 2
    bias = exponent_bias(values, np.maximum(_statistical(ours), _statistical(theirs)), T, record["aligned_time"])
    u1, u2 = _interval(ours, T, bias), _interval(theirs, T, bias)
    uncertainty = np.abs(a - b) / 2 + np.maximum(u1, u2)
    routes_allowed = _difference_allowed(ours, theirs, T, bias)
    rule = dict(record["checks"]["sum_rule"])
    if rule.get("divergence") is not None:
        sum_stderr = math.hypot(float(np.sum(ours["stderr"])), rule["divergence_stderr"])  # the sum's stderr, bounded
        sum_allowed = float(derive(stderr=sum_stderr, dof=min(ours["stderr_dof"],
                                                              rule["divergence_run"]["batch"] - 1),
                                   T=T, bias_nats=BIAS_NATS, alpha=ALPHA).total)
        rule.update(sum=float(a.sum()), residual=float(a.sum() - rule["divergence"]), allowed=sum_allowed)
    step = record["checks"]["step"]
    leak = leak_rate(record)
    checks = {"step": step, "bias_nats": bias.tolist(),
              "routes": {"differences": np.abs(a - b).tolist(), "allowed": routes_allowed.tolist()},
              "sum_rule": rule, "chaotic": {"lambda1": float(values[0]), "uncertainty": float(uncertainty[0])},
              "leak": leak}
    long = _long_judged(record["checks"].get("long_T"), values, uncertainty, record["aligned_time"])
    if long:
        checks["long_T"] = long
    verdict = "reference"
    if not step["passed"]:
        verdict = "no reference: " + _step_failure(step, a)
    elif not np.all(np.abs(a - b) <= routes_allowed):
        i = int(np.argmax(np.abs(a - b) - routes_allowed))
        verdict = (f"no reference: the routes disagree on exponent {i + 1} ({a[i]:.5g} against "
                   f"{two}'s {b[i]:.5g}, allowed {routes_allowed[i]:.2g})")
    elif rule.get("divergence") is not None and not abs(rule["residual"]) <= rule["allowed"]:
        verdict = (f"no reference: the spectrum's sum {rule['sum']:.5g} misses <div f> = "
                   f"{rule['divergence']:.5g} by more than {rule['allowed']:.2g}")
    elif not values[0] > uncertainty[0]:
        verdict = "no reference: " + _not_chaotic(record, values[0], uncertainty[0])
    elif not leak["rate_upper"] <= LEAK_MAX * values[0] and leak["escaped"] == 0:
        verdict = (f"no reference: no start of the routes' {leak['starts']} escaped, but their exposure "
                   f"({leak['exposure']:.3g} trajectory time units) bounds the escape rate only at "
                   f"{leak['rate_upper']:.2g} at 1 - {ALPHA:g}, above {LEAK_MAX:g} lambda_1 = "
                   f"{LEAK_MAX * values[0]:.2g} (a longer or wider run bounds it lower)")
    elif not leak["rate_upper"] <= LEAK_MAX * values[0]:
        verdict = (f"no reference: the flow leaks ({leak['escaped']} of the routes' {leak['starts']} starts escaped; "
                   f"escape rate <= {leak['rate_upper']:.2g} per trajectory and time unit at 1 - {ALPHA:g}, more "
                   f"than {LEAK_MAX:g} lambda_1 = {LEAK_MAX * values[0]:.2g}: the survivors sample a saddle, not "
                   "an attractor)")
    elif not abs(values[zero := zero_exponent_index(values)]) <= uncertainty[zero]:
        verdict = (f"no reference: exponent {zero + 1}, the zero exponent of a bounded autonomous flow off its "
                   f"equilibria, is {values[zero]:.3g}, further from 0 than its uncertainty {uncertainty[zero]:.2g}: "
                   "a bias every trajectory shares (a common phase, docs/dysts.md), so the others' are in doubt")
    elif long and "error" in long:
        verdict = f"no reference: the confirmation over {LONG_FACTOR} T failed ({long['error']})"
    elif long and not long["passed"]:
        i = int(np.argmax(np.asarray(long["shifts"]) - np.asarray(long["allowed"])))
        verdict = (f"no reference: {long['route']} over {long['factor']} T = {long['T']:.4g} ({long['batch']} "
                   f"trajectories) moves exponent {i + 1} from {values[i]:.5g} to {long['values'][i]:.5g}, more than "
                   f"{long['allowed'][i]:.2g} (the reference's uncertainty, t s and b / T): it drifts with T")
    return {"verdict": verdict, "values": values.tolist(), "uncertainty": uncertainty.tolist(), "k": int(values.size),
            "checks": checks, "routes": {"lyapbench": dict(ours, interval=u1.tolist()),
                                         two: dict(theirs, interval=u2.tolist())}}


def _long_judged(long: Optional[Dict[str, Any]], values, uncertainty, aligned_time: float):
    """Check (g) on the raw run of :func:`long_run` (None where it has not run): each exponent's shift from the
    reference and its allowance, the reference's uncertainty + t s + b_i / (LONG_FACTOR T) (the two intervals'
    union bound), and whether every shift is within it."""
    if not long or "error" in long:
        return long
    bias = exponent_bias(values, _statistical(long), long["T"], aligned_time)
    allowed = derive(stderr=long["stderr"], dof=long["stderr_dof"], uncertainty=uncertainty, T=long["T"],
                     bias_nats=bias, alpha=ALPHA).total
    shifts = np.abs(np.asarray(long["values"]) - values)
    return dict(long, shifts=shifts.tolist(), allowed=allowed.tolist(), passed=bool(np.all(shifts <= allowed)))


def leak_rate(record: Dict[str, Any]) -> Dict[str, Any]:
    """The escape rate of the routes' trajectories from a record's numbers (:func:`~suite.studies.survival.
    escape_rate` at :data:`ALPHA`): route one's and jitcode's escapes (``record['escapes']``, each [start, time]; a
    record without them had none, or its routes would have failed), each route's batch surviving transient + T."""
    size, escapes = BUDGETS[record["budget"]], record.get("escapes", {})
    times = [t for route in ("lyapbench", second(record)) for _, t in escapes.get(route, [])]
    return escape_rate(times, size["batch"] + size["jitcode_batch"], record["T"] + record["aligned_time"], ALPHA)


def _max_escapes(batch: int) -> int:
    return max(1, int(ESCAPES_MAX_FRACTION * batch))


def _not_chaotic(record: Dict[str, Any], lam: float, uncertainty: float) -> str:
    """Why lambda_1 = ``lam`` +- ``uncertainty`` is no reference: within its uncertainty of 0 (not chaotic), or
    below 0 by more (the run's trajectories contract, toward an equilibrium or through a phase longer than T: a
    bounded flow off its equilibria has a zero exponent); and where the step cap cut T short of what the budget
    asks (``T_wanted``), by how much."""
    T, wanted = record["T"], record.get("T_wanted", record["T"])
    if lam >= -uncertainty:
        text = f"not chaotic at dysts's parameters (lambda_1 = {lam:.3g} within its uncertainty {uncertainty:.2g} of 0)"
    else:
        text = (f"not chaotic over T = {T:.4g}: lambda_1 = {lam:.3g} is below 0 by more than its uncertainty "
                f"{uncertainty:.2g}, no zero exponent (the trajectories contract, toward an equilibrium or through a "
                "slow phase longer than T)")
    if T < wanted * (1 - 1e-9):
        text += (f"; T = {T:.4g} is capped at {record['steps']:,} steps, {T / wanted:.2g} of the {wanted:.4g} the "
                 f"{record['budget']!r} budget asks (`--budget full` runs longer)")
    return text


def _reusable(reuse, flow: System, budget: str, steps: int, transient: int, redo: str = "jitcode") -> bool:
    """Whether ``reuse`` holds route one (and, unless ``redo`` is 'jitcode', route two) for this flow, budget and
    run: the probe, the starts of the routes kept (route one's alone where route two runs again, so that a
    budget's route-two batch may change), budget, steps, transient and T."""
    starts, kept = starts_fingerprint(flow, budget), list(reuse.get("starts", [])) if reuse else []
    if redo == "jitcode":
        starts, kept = starts[:2], kept[:2]
    return bool(reuse) and "routes" in reuse and computed.probes_match(computed.probe(flow), reuse["probe"]) and \
        bool(kept) and computed.probes_match(starts, kept) and all(
        reuse.get(k) == v for k, v in (("budget", budget), ("steps", steps), ("transient", transient))) and \
        math.isclose(reuse["T"], steps * flow.dt, rel_tol=1e-12)


def _no_run(flow: System, budget: str, verdict: str, directory, ran: bool = False) -> Dict[str, Any]:
    """The record of a flow that gets no reference without a run (``verdict`` says why; ``ran``: a run was
    tried, so the record keeps the starts it drew)."""
    record = {"key": reference_key(flow), "spec_key": flow.label, "probe": computed.probe(flow),
              **({"starts": starts_fingerprint(flow, budget)} if ran else {}), "verdict": verdict, "values": [],
              "uncertainty": [], "budget": budget,
              "source": f"lyapbench dysts references, budget {budget!r}: {verdict}",
              "dysts": {"version": _version()}, "git_sha": git_sha(),
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    write(record, record["key"], directory)
    return record


def _failed(flow: System, budget: str, route: str, exc: BaseException, directory) -> Dict[str, Any]:
    """The record of a flow whose route failed (no values): its verdict says which and why."""
    return _no_run(flow, budget, f"no reference: {route} failed ({exception_line(exc)})", directory, ran=True)


def _step_failure(step: Dict[str, Any], ours) -> str:
    last = step["runs"][-1]
    if "error" in last:
        return f"the step check's run at dt = {last['dt']:.4g} failed ({last['error']})"
    i = int(np.argmax(np.asarray(last["shifts"]) - np.asarray(last["allowed"])))
    return (f"dt = {last['dt']:.4g} moved exponent {i + 1} from {ours[i]:.5g} to {last['values'][i]:.5g},"
            f" more than {last['allowed'][i]:.2g} (the step is too coarse)")


def _route(res: LyapunovResult) -> Dict[str, Any]:
    return {"values": res.exponents.tolist(), "stderr": res.stderr.tolist(), "stderr_dof": res.meta["stderr_dof"],
            "wall_seconds": round(res.wall_seconds, 2)}


def _version() -> str:
    return catalogue()["dysts_version"]


#: the columns of results/dysts_references.md / .csv
TABLE_COLUMNS = ["flow", "dim", "verdict", "lambda1", "lambda1_uncertainty", "spectrum", "kaplan_yorke",
                 "sum_rule_residual", "dysts_lambda1", "dysts_spectrum", "dysts_lambda1_off_by_se", "dt", "step_check",
                 "shift_at_4T", "T", "budget"]


def kaplan_yorke(values) -> float:
    """The Kaplan-Yorke dimension of a spectrum (sorted descending): j + sum_{i<=j} lambda_i / |lambda_{j+1}|."""
    lam = np.sort(np.asarray(values, dtype=float))[::-1]
    sums = np.cumsum(lam)
    if sums[0] < 0:
        return 0.0
    j = int(np.max(np.nonzero(sums >= 0)[0]))
    return float(lam.size) if j + 1 >= lam.size else float(j + 1 + sums[j] / abs(lam[j + 1]))


def table_row(flow: System) -> Dict[str, Any]:
    """A flow's row: its record (fresh or not, said in ``verdict``) and dysts's stored values beside it."""
    entry = row(flow.name.split("/", 1)[1])
    out = {"flow": flow.name, "dim": flow.dim, "dysts_lambda1": entry["stored_lambda1"],
           "dysts_spectrum": np.round(entry["stored_spectrum"], 4).tolist() if entry["stored_spectrum"] else ""}
    status = flow.meta.get("reference_status", "missing")
    record = computed.read(reference_key(flow)) if status == "fresh" else None
    if record is None:
        return dict(out, verdict=f"no record ({status})")
    if not record["values"]:  # a route failed
        return dict(out, verdict=record["verdict"], budget=record["budget"], dt=flow.dt)
    values, unc = np.asarray(record["values"]), np.asarray(record["uncertainty"])
    se = record["routes"]["lyapbench"]["stderr"][0]
    out.update(verdict=record["verdict"], lambda1=values[0], lambda1_uncertainty=unc[0],
               spectrum=np.round(values, 4).tolist(), kaplan_yorke=kaplan_yorke(values),
               sum_rule_residual=record["checks"]["sum_rule"].get("residual"), T=record["T"], budget=record["budget"],
               dt=flow.dt, step_check=_step_summary(record["checks"]["step"]))
    long = record["checks"].get("long_T")
    if long and "shifts" in long:  # check (g): the largest shift over 4 T in units of its allowance (<= 1 held)
        out["shift_at_4T"] = float(np.max(np.asarray(long["shifts"]) / np.asarray(long["allowed"])))
    if entry["stored_lambda1"] is not None and record["verdict"] == "reference":
        off = abs(entry["stored_lambda1"] - values[0])
        out["dysts_lambda1_off_by_se"] = off / se if off > unc[0] and se > 0 else 0.0
    return out


def _step_summary(step: Dict[str, Any]) -> str:
    """'2 dt: bias <= 1e-03' (the largest Richardson bound), 'dt / 2' (no step effect detectable at dt / 2), or
    'failed'; records of the first references (full budget) checked dt / 2 only."""
    runs = step.get("runs", [{"passed": True}])
    if not runs[-1].get("passed"):
        return "failed"
    if "bias_bound_at_dt" in runs[-1]:  # the allowance / 15 (records of the first run stored the shift / 15)
        return f"2 dt: bias <= {max(runs[-1]['allowed']) / (2 ** RK4_ORDER - 1):.1g}"
    return "dt / 2"


def write_table(flows, output_dir) -> int:
    """results/dysts_references.md / .csv: a row per flow, and dysts_lambda1.png, dysts's stored lambda_1 against
    ours; exit 0."""
    rows = [table_row(f) for f in flows]
    referenced = sum(r["verdict"] == "reference" for r in rows)
    flagged = sum(bool(r.get("dysts_lambda1_off_by_se")) for r in rows)
    out = Path(output_dir)
    write_csv(rows, out / "dysts_references.csv", TABLE_COLUMNS)
    head = (f"# The dysts flows' references (suite/studies/dysts_references.py)\n\n{len(rows)} flows, {referenced} "
            f"with a reference; dysts's stored lambda_1 outside our uncertainty for {flagged} "
            "(`dysts_lambda1_off_by_se`: "
            "by how many of our standard errors, 0 inside). `lyapbench dysts references` then `lyapbench dysts table "
            "--output-dir results`.\n\n")
    atomic_write(out / "dysts_references.md", head + markdown(rows, TABLE_COLUMNS)
                 + "\n![dysts's stored lambda_1 against ours](dysts_lambda1.png)\n")
    stored_against_computed_figure(rows, out / "dysts_lambda1.png")
    print(f"wrote {out / 'dysts_references.md'}, .csv and dysts_lambda1.png: {len(rows)} flows, {referenced} "
          "referenced")
    return 0


def summary(record: Dict[str, Any]) -> str:
    """A record's line for ``lyapbench dysts references``."""
    if not record["values"]:
        return record["verdict"]
    two = second(record)
    j = record["routes"][two]["values"][0]
    return (f"lambda_1 = {record['values'][0]:.5g} +- {record['uncertainty'][0]:.2g} ({two} {j:.5g}): "
            f"{record['verdict']}")
