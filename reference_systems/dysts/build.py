"""A dysts flow as a :class:`~reference_systems.Flow`: its equations (:mod:`.algebra`) and its catalogue row.

    flow = build("Lorenz", sigma=12.0)      # what rs.get("dysts/Lorenz", sigma=12.0) returns

The flow is advanced by the suite's RK4 with ``dt`` = period / :data:`STEPS_PER_PERIOD` (dysts's dominant period;
overridable), its tangent by forward-mode autodiff of the torch rendering, and jitcode integrates the symbolic
rendering of the same equations (``meta['symbolic_rhs']``).  A flow with a clock (:mod:`.algebra`) carries the
time as its last variable.  Initial states: points at uniform random times along the flow's orbit from dysts's
initial condition (:data:`START_PERIODS` dominant periods of it, :func:`along_orbit`), plus Gaussian
perturbations of the flow's stored size (:mod:`.starts`) times the attractor's standard deviation per variable
(reflected where they would carry a variable of one sign along the orbit across zero), so that trajectories are
independent in phase as well as in amplitude after the transient.  Exponents per unit time.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from functools import lru_cache, partial
from typing import Any, Dict, Optional

import torch

from reference_systems import computed
from reference_systems.dysts.algebra import (EQUATIONS, SYMBOLIC, TORCH, Parameters, sided, switching_function,
                                             symbolic_sided)
from reference_systems.layout import stack_like
from reference_systems.rk4 import rk4_step
from reference_systems.switched import SwitchedFlow
from reference_systems.system import Flow
from suite.core.args import check_number
from suite.core.errors import InvalidArgumentError

#: each flow's RK4 steps per dominant period (dysts's ``period``), chosen by the scan of :mod:`.steps`
STEPS_PATH = os.path.join(os.path.dirname(__file__), "steps.json")
#: the steps per period of a flow the scan has not seen: at 200, 6 of the 129 flows diverged within 50 periods
#: (8 trajectories: AtmosphericRegime, JerkCircuit, LiuChen, MacArthur, and SprottJerk and SprottQ, which escape
#: from perturbed initial states at any step); at 500 none did once the perturbations were 1e-3
STEPS_PER_PERIOD = 500
#: initial perturbations, in units of the attractor's standard deviation per variable (at 1e-2 a quarter of
#: SprottJerk's and SprottQ's trajectories escaped to infinity at any step size; at 1e-3 none of 32 in 100 periods
#: from dysts's initial condition); from the stored orbit, a flow's is this or smaller (:mod:`.starts`)
PERTURBATION = 1e-3
#: where each flow's orbit is stored (:mod:`.starts`): initial states start at uniform random times along the first
#: START_PERIODS dominant periods of it.  Started 1e-3 apart around one point, the trajectories of 19 of the 110
#: referenced flows kept a shared phase through validate's transient (mean pairwise correlation of their oscillating
#: coordinates > 0.3: Rossler's, the forced flows'), which narrowed the spread across them, and every tolerance
#: built on it; from spread starts, of one, by a winding angle's trend (docs/dysts.md, "Phase-coherent
#: trajectories")
STARTS_PATH = os.path.join(os.path.dirname(__file__), "starts.json")
START_PERIODS = 10
#: stored states per dominant period: a start is the stored state before its time, advanced by the rest (at most
#: 1 / STATES_PER_PERIOD of a period, in as many RK4 steps of equal size as the flow's dt needs there)
STATES_PER_PERIOD = 8
#: the orbit's RK4 steps per dominant period: the finest of the step scan's ladder (:mod:`.steps`), so that the
#: orbit does not depend on the scan's choice, which the starts feed (stored at each flow's chosen step, the
#: scan's choice flipped for 3 flows each time the orbit was regenerated)
ORBIT_STEPS_PER_PERIOD = 2000
#: transients last at least this many Lyapunov times (dysts's stored lambda_1 as the scale), so that trajectories
#: whose starts lie close (at nearby times along the orbit, 1e-3 apart) decorrelate: e^15 times 1e-3 is the
#: attractor's size many times over
TRANSIENT_LYAPUNOV_TIMES = 15
#: the family's name prefix: flows are registered as ``dysts/<ClassName>``
PREFIX = "dysts/"
#: ``lyapbench validate``'s run of a dysts flow, in dominant periods (steps, transient), and its trajectories
VALIDATION_PERIODS = {"steps": 40}
#: its transient, in periods: at least, at most (:func:`transient_periods`; the most is for a flow without a
#: reference only, see :func:`validation_run`)
VALIDATION_TRANSIENT = (20, 60)
VALIDATION_BATCH = 16
#: the run's steps are capped at this many RK4 steps, so that the stiff flows (2,000 steps a period) cost what the
#: others do; so is the transient of a flow without a reference (its cells have nothing to be scored against)
VALIDATION_MAX_STEPS = 10_000
#: the transient of a referenced flow is capped at this many steps only: :data:`TRANSIENT_LYAPUNOV_TIMES` of its
#: reference's lambda_1 needs 43,864 for NoseHoover (lambda_1 = 0.0058), the longest; at 10,000 the 16
#: trajectories of 62 of the 109 referenced flows were not independent (WindmiReduced's lambda_3 failed)
VALIDATION_MAX_TRANSIENT = 100_000


@lru_cache(maxsize=1)
def catalogue() -> Dict[str, Any]:
    """The table generated from dysts (:mod:`.generate`): version, and a row per flow."""
    with open(os.path.join(os.path.dirname(__file__), "catalogue.json")) as handle:
        return json.load(handle)


def row(name: str) -> Dict[str, Any]:
    flows = catalogue()["flows"]
    if name not in flows:
        raise InvalidArgumentError("name", name, f"one of dysts's {len(flows)} flows (e.g. 'Lorenz')")
    return flows[name]


def transient_periods(name: str, at_least: float, at_most: float) -> float:
    """A transient, in dominant periods: :data:`TRANSIENT_LYAPUNOV_TIMES` Lyapunov times (dysts's stored lambda_1
    as the scale only), within [``at_least``, ``at_most``] (a flow whose stored lambda_1 is near 0, e.g. Torus,
    would otherwise ask for thousands of periods)."""
    entry = row(name)
    lam = entry["stored_lambda1"]
    if lam is None or not lam > 0:
        return at_least
    return min(at_most, max(at_least, TRANSIENT_LYAPUNOV_TIMES / (lam * float(entry["period"]))))


def validation_run(name: str, dt: float, lambda1: Optional[float] = None) -> Dict[str, int]:
    """``lyapbench validate``'s run of flow ``name`` at step ``dt``: :data:`VALIDATION_PERIODS` periods, capped at
    :data:`VALIDATION_MAX_STEPS`, after a transient of :data:`TRANSIENT_LYAPUNOV_TIMES` Lyapunov times, so that
    the trajectories, whose starts along the orbit may lie close, are independent and the standard error across
    them is honest.  The transient is sized from dysts's stored lambda_1 within :data:`VALIDATION_TRANSIENT`
    periods and :data:`VALIDATION_MAX_STEPS`; ``lambda1``, the reference's largest exponent where the flow has
    one, lengthens it to its Lyapunov times where those are short of them (at most :data:`VALIDATION_MAX_TRANSIENT`
    steps)."""
    period_steps = float(row(name)["period"]) / dt
    transient = min(transient_periods(name, *VALIDATION_TRANSIENT) * period_steps, VALIDATION_MAX_STEPS)
    if lambda1 is not None:
        transient = max(transient, min(TRANSIENT_LYAPUNOV_TIMES / (lambda1 * dt), VALIDATION_MAX_TRANSIENT))
    return {"steps": min(math.ceil(VALIDATION_PERIODS["steps"] * period_steps), VALIDATION_MAX_STEPS),
            "transient": math.ceil(transient), "batch": VALIDATION_BATCH}


@lru_cache(maxsize=1)
def steps_table() -> Dict[str, Dict[str, Any]]:
    """The scan's rows by flow (:mod:`.steps`; {} before it has run)."""
    if not os.path.exists(STEPS_PATH):
        return {}
    with open(STEPS_PATH) as handle:
        return json.load(handle)["flows"]


@lru_cache(maxsize=1)
def starts_table() -> Dict[str, Dict[str, Any]]:
    """Each flow's stored orbit (:mod:`.starts`: ``spacing``, its time between states, and ``states``; {} before
    it has run)."""
    if not os.path.exists(STARTS_PATH):
        return {}
    with open(STARTS_PATH) as handle:
        return json.load(handle)["flows"]


@torch.no_grad()
def along_orbit(rhs, states: torch.Tensor, spacing: float, dt: float, u: torch.Tensor) -> torch.Tensor:
    """States at times ``u`` (B, 1) in units of the stored orbit's span: stored state floor(u M) of the M
    ``states`` (M, d), ``spacing`` time units apart, advanced by the rest of its time in ceil(spacing / dt) RK4
    steps of equal size (at most ``dt``; each trajectory its own)."""
    position = u[:, 0] * states.shape[0]
    index = torch.clamp(position.floor().to(torch.int64), max=states.shape[0] - 1)
    x, n = states[index], max(1, math.ceil(spacing / dt * (1 - 1e-12)))
    h = ((position - index) * (spacing / n)).unsqueeze(1).to(x.dtype)
    for _ in range(n):
        x = rk4_step(rhs, x, h)
    return x


def initial_condition(name: str, dim: int) -> torch.Tensor:
    """dysts's initial condition of flow ``name``, with a clock (its time, 0) where ``dim`` has one more variable."""
    ic = list(row(name)["initial_conditions"])
    return torch.tensor(ic + [0.0] * (dim - len(ic)), dtype=torch.float64)


def attractor_scale(name: str, dim: int) -> torch.Tensor:
    """The attractor's standard deviation per variable (1 where dysts has none), 0 for a clock: the unit of the
    initial perturbations."""
    std = [s if s and math.isfinite(s) else 1.0 for s in row(name)["std"]]
    return torch.tensor(std + [0.0] * (dim - len(std)), dtype=torch.float64)


def spread_starts(rhs, states: torch.Tensor, spacing: float, dt: float, scale: torch.Tensor, perturbation: float,
                  g) -> torch.Tensor:
    """A dysts flow's initial states: :func:`along_orbit` at a uniform random time of each trajectory, plus
    ``perturbation`` times ``scale`` (the attractor's standard deviation per variable) times N(0, 1), that
    perturbation reflected (its sign flipped) in a variable it would carry across zero where the stored orbit
    keeps one sign: such a variable's zero is often an invariant set (a population, a concentration) that the
    orbit approaches (ItikBanksTumor's effector cells reach 5e-7), and a start beyond it lies in another flow."""
    states = states.to(g.device)
    start = along_orbit(rhs, states, spacing, dt, g.uniform(1))
    step = perturbation * scale.to(g.device) * g.normal(states.shape[1])
    sign = torch.where((states > 0).all(0), 1.0, torch.where((states < 0).all(0), -1.0, 0.0)).to(start.dtype)
    crosses = (sign != 0) & ((start + step) * sign <= 0)
    return start + torch.where(crosses, -step, step)


def steps_per_period(name: str) -> int:
    """RK4 steps per dominant period of the flow's default ``dt``: the scan's choice, else :data:`STEPS_PER_PERIOD`."""
    return int(steps_table().get(name, {}).get("steps_per_period", STEPS_PER_PERIOD))


def default_dt(name: str) -> float:
    return float(row(name)["period"]) / steps_per_period(name)


def _parameters(name: str, given: Dict[str, Any]) -> Dict[str, Any]:
    defaults = row(name)["parameters"]
    for key, value in given.items():
        if key not in defaults:
            raise InvalidArgumentError(f"dysts/{name} parameter {key!r}", value,
                                       f"parameters {sorted(defaults) + ['dt']}")
        given[key] = _like(f"dysts/{name} parameter {key!r}", value, defaults[key])
    return dict(defaults, **given)


def _like(argument: str, value: Any, default: Any) -> Any:
    """``value`` checked to have the shape of ``default``: a number, or a list (of lists) of numbers."""
    if not isinstance(default, list):
        return check_number(argument, value)
    if not isinstance(value, (list, tuple)) or len(value) != len(default):
        raise InvalidArgumentError(argument, value, f"a list of {len(default)} "
                                   + ("lists" if default and isinstance(default[0], list) else "numbers"))
    return [_like(f"{argument}[{i}]", v, d) for i, (v, d) in enumerate(zip(value, default))]


def build(name: str, dt: Optional[float] = None, **params) -> Flow:
    """dysts's flow ``name`` with its default parameters overridden by ``params`` (and ``dt``)."""
    entry, eq = row(name), EQUATIONS.get(name)
    if eq is None:
        raise InvalidArgumentError("name", name, "a dysts flow whose equations are written "
                                   "(reference_systems/dysts/flows_*.py)")
    values = _parameters(name, params)
    p = Parameters.of(values)
    dt = default_dt(name) if dt is None else check_number("dt", dt, low=0.0, low_open=True)
    d = int(entry["dim"])
    dim = d + 1 if eq.clock else d

    def field(s, m):
        out = eq.fn(s[:d], p, m, t=s[d]) if eq.clock else eq.fn(s, p, m)
        out = list(out) + ([1.0] if eq.clock else [])
        if len(out) != dim:
            raise ValueError(f"dysts/{name}: the equations return {len(out)} components, not {dim}")
        return out

    def columns(x):
        return [x[:, i] for i in range(dim)]

    def rendered(x, m):
        """The field at states x (B, d) in the torch namespace m, stacked (a constant component broadcast)."""
        return stack_like(x, [c if isinstance(c, torch.Tensor) else torch.full_like(x[:, 0], float(c))
                              for c in field(columns(x), m)])

    def rhs(x):
        return rendered(x, TORCH)

    def symbolic_rhs(ys):
        return field(list(ys), SYMBOLIC)

    center, scale = initial_condition(name, dim), attractor_scale(name, dim)

    orbit = starts_table().get(name)
    states = None if orbit is None else torch.tensor(orbit["states"], dtype=torch.float64)

    def sample_initial(batch, g):
        if states is None:
            return center.to(g.device) + PERTURBATION * scale.to(g.device) * g.normal(dim)
        return spread_starts(rhs, states, float(orbit["spacing"]), dt, scale, orbit["perturbation"], g)

    def sided_rhs(x, side):
        return rendered(x, sided(side))

    def switching(x):
        return switching_function(lambda m: field(columns(x), m), name)

    def symbolic_sided_rhs(ys, side):
        return field(list(ys), symbolic_sided(side))

    def symbolic_switching(ys):
        return switching_function(lambda m: field(list(ys), m), name, symbolic=True)

    kind, how = (partial(SwitchedFlow, field=sided_rhs, switching=switching, symbolic_sided_rhs=symbolic_sided_rhs,
                         symbolic_switching=symbolic_switching, filippov=eq.filippov), "; switched across "
                 + eq.discontinuous) if eq.discontinuous else (partial(Flow, rhs=rhs), "")
    flow = kind(PREFIX + name, dim=dim, dt=dt, sample_initial=sample_initial,
                params=dict(values, dt=dt), symbolic_rhs=symbolic_rhs, validation=validation_run(name, dt),
                note=(f"dysts {catalogue()['dysts_version']} flow {name}" + (" (time as its last variable)"
                      if eq.clock else "") + how + f"; dysts's stored largest exponent "
                      f"{entry['stored_lambda1']:.4g}"))
    attach_reference(flow)
    if flow.reference is not None:  # its transient sized from the reference's lambda_1
        flow.declare(validation=validation_run(name, dt, float(flow.reference.values[0])))
    if eq.filippov:  # its trajectories stick: lambda_d = -inf, the d - 1 finite exponents are validated
        flow.declare(validation=dict(flow.capabilities.validation, k=dim - 1))
    return flow


def reference_key(flow: Flow) -> str:
    """The record key of a dysts flow: ``systems/dysts_<Name>`` at dysts's parameters and the default dt, with a
    digest of its label otherwise (labels with every parameter are too long for file names)."""
    name = flow.name[len(PREFIX):]
    defaults = dict(row(name)["parameters"], dt=default_dt(name))
    digest = "" if flow.params == defaults else "_" + hashlib.sha1(flow.label.encode()).hexdigest()[:12]
    return f"systems/dysts_{name}{digest}"


def attach_reference(flow: Flow, directory=None) -> str:
    """Give a dysts flow its computed reference where a fresh record with the verdict 'reference' exists
    (``lyapbench dysts references``, :mod:`suite.studies.dysts_references`); otherwise its note says why it has
    none.  Returns the record's status ('fresh', 'missing', 'stale: ...', or 'incomplete': a run stopped before
    its second route)."""
    key = reference_key(flow)
    hint = f"`lyapbench dysts references --flows '{flow.name}'`"
    record = computed.read(key, directory, fix=f"regenerate it with {hint} --force")
    status = computed.status(record, key, flow.label, flow)
    verdict = record.get("verdict") if status == "fresh" else None
    if verdict and verdict.startswith("incomplete"):  # stopped before its second route: to be computed on
        status = "incomplete"
    flow.meta["reference_status"] = status
    if verdict == "reference":
        flow.reference = computed.to_reference(record)
    else:
        why = verdict or f"{status}; compute it with {hint}"
        flow.declare(note=flow.capabilities.note + f"; no reference ({why})")
    return status
