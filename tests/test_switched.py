"""Switched flows (reference_systems.switched): RK4 steps split at the switching surface, the saltation matrix in
the tangent, Filippov sliding reported; route two of their references (suite.peers.scipy_events)."""
import numpy as np
import pytest
import torch

import reference_systems as rs
from reference_systems import computed
from reference_systems.dysts.build import reference_key, row
from reference_systems.noise import TrajectoryRNG
from reference_systems.switched import SwitchedFlow
from suite.core.errors import SlidingError
from suite.studies.survival import run_surviving

#: central differences of the map with step EPS: truncation O(EPS^2) ~ 1e-12 and round-off ~ 1e-16 / EPS = 1e-10
#: relative to the map's derivative, times the growth along half a period (ln growth < 1 nat here): agreement
#: to FD_RTOL leaves a factor 100 over the largest seen (6.5e-9), while a tangent without the saltation matrix is
#: off by the field's jump over the normal speed, O(1) (checked below)
EPS, FD_RTOL = 1e-6, 1e-6
#: a state of StickSlipOscillator 1e-6 below v = vs where it sticks: at x = 1, theta = pi / 2 both sides' fields
#: point at the surface (v' = 0.021 below, -0.009 above; v'' = -0.9), which it meets within 5e-5 time units and
#: would still be across at the step's end (dt = 0.008) without the stick
STICKING = [1.0, 0.4 - 1e-6, 1.5707963267948966]


def _map_and_tangent(flow, x, steps):
    """(the derivative of ``steps`` steps from x by central differences, by the tangent, crossings seen)."""
    def run(y):
        for _ in range(steps):
            y = flow.step(y)
        return y
    y, crossed = x.clone(), torch.zeros(x.shape[0])
    V = torch.eye(flow.dim, dtype=x.dtype).expand(x.shape[0], flow.dim, flow.dim).contiguous()
    for _ in range(steps):
        side = flow.side(y)
        y, V = flow.tangent(y, V)
        crossed += (flow.side(y) != side).double()
    J = torch.stack([(run(x + EPS * e) - run(x - EPS * e)) / (2 * EPS)
                     for e in torch.eye(flow.dim, dtype=x.dtype)], dim=2)
    return J, V, crossed


def _error(J, V):
    return ((J - V).abs().amax(dim=(1, 2)) / J.abs().amax(dim=(1, 2))).max().item()


@pytest.mark.parametrize("name", ["SprottMore", "FluidTrampoline"])
def test_the_tangent_is_the_derivative_of_the_split_steps(name, monkeypatch):
    """Over half a dominant period, crossings included, the tangent (each side's autodiff Jacobian through the
    RK4 pieces, the saltation matrix at each crossing) is the derivative of the split-step map itself (central
    differences); without the saltation matrix it is not."""
    flow = rs.get("dysts/" + name)
    assert isinstance(flow, SwitchedFlow)
    x = flow.sample_initial(6, TrajectoryRNG(3, 6)).double()
    for _ in range(500):
        x = flow.step(x)
    steps = round(0.5 * float(row(name)["period"]) / flow.dt)
    J, V, crossed = _map_and_tangent(flow, x, steps)
    assert (crossed >= 1).sum() >= 4
    assert _error(J, V) < FD_RTOL
    eye = torch.eye(flow.dim, dtype=x.dtype)
    transition = SwitchedFlow._transition
    monkeypatch.setattr(SwitchedFlow, "_transition", lambda self, mode, xc, rest: (
        transition(self, mode, xc, rest)[0], eye.expand(xc.shape[0], -1, -1)))
    _, V, _ = _map_and_tangent(flow, x, steps)
    assert _error(J, V) > 1e-2


def test_a_crossing_is_located_on_the_surface():
    """A step that crosses z = 0 (SprottMore) is split where the trajectory meets it: the state at the located
    time lies on the surface to round-off, and both pieces together equal one step from the start."""
    flow = rs.get("dysts/SprottMore")
    x = torch.tensor([[0.2, 0.1, 1e-3], [0.5, 1.2, -2e-3]], dtype=torch.float64)  # z' = y^2 - exp(-x^2) < 0, > 0
    side = flow.side(x)
    h = torch.full((2, 1), 0.05, dtype=torch.float64)
    from reference_systems.rk4 import rk4_step
    tau = flow._event_time(side, x, h, flow._event(side, rk4_step(flow._mode_field(side), x, h)))
    assert ((tau > 0) & (tau < h)).all()
    xc = rk4_step(flow._mode_field(side), x, tau)
    assert flow.switching(xc).abs().max().item() < 1e-15


def _not_following(flow):
    """``flow`` (StickSlipOscillator) as a SwitchedFlow that does not follow sliding."""
    return rs.SwitchedFlow("stick_slip", flow.field, flow.switching, dim=flow.dim, dt=flow.dt,
                           symbolic_sided_rhs=flow.meta["symbolic_sided_rhs"],
                           symbolic_switching=flow.meta["symbolic_switching"])


def test_sliding_not_followed_is_reported_not_stepped_through_nor_replaced():
    """StickSlipOscillator without ``filippov`` at the state where it sticks (both fields point at v = vs): the
    step is a SlidingError naming the trajectory; a run conditioned on survival raises it again (a property of
    the flow, not an escape)."""
    flow = _not_following(rs.get("dysts/StickSlipOscillator"))
    x = torch.tensor([STICKING, [0.9, -0.3, 1.0]], dtype=torch.float64)
    with pytest.raises(SlidingError, match=r"trajectories \[0\] enter Filippov sliding") as info:
        for _ in range(10):
            x = flow.step(x)
    assert info.value.trajectories == [0]

    def run(view):
        raise SlidingError("sticks", trajectories=[1])
    with pytest.raises(SlidingError):
        run_surviving(run, flow, 8, max_escapes=4)


def test_route_two_reports_sliding_not_followed():
    pytest.importorskip("symengine")
    from suite.peers.scipy_events import ScipyEventsLyap
    flow = _not_following(rs.get("dysts/StickSlipOscillator"))
    with pytest.raises(SlidingError, match="enters Filippov sliding"):
        ScipyEventsLyap().estimate(flow, 40_000, transient=0, batch=2, seed=0, dtype=torch.float64)


def test_a_stick_is_followed_and_differentiated():
    """StickSlipOscillator (``filippov=True``) from states just below v = vs: the first sticks (slides on the
    surface, v = vs to round-off) and is released, the others cross; the tangent through stick, release and
    crossings is the derivative of the map (central differences), and the stick annihilated the first's normal
    direction (rank d - 1)."""
    flow = rs.get("dysts/StickSlipOscillator")
    x = torch.tensor([[1.0, 0.4 - 1e-4, 1.5707963267948966], [1.0, 0.4 - 3e-4, 1.6], [0.98, 0.4 - 2e-4, 1.5]],
                     dtype=torch.float64)
    y, V, modes = x.clone(), torch.eye(3, dtype=torch.float64).expand(3, 3, 3).contiguous(), []
    for _ in range(60):
        y, V = flow.tangent(y, V)
        modes.append(flow.mode(y))
        if bool((modes[-1] == 0).any()):
            assert (y[modes[-1] == 0, 1] - 0.4).abs().max().item() < 1e-14
    seen = torch.stack(modes)
    assert (seen[:, 0] == 0).any() and seen[-1, 0] != 0  # the first stuck and was released (the others cross)
    assert torch.linalg.svdvals(V[0]).min().item() < 1e-12 < torch.linalg.svdvals(V[1]).min().item()
    J, V60, _ = _map_and_tangent(flow, x, 60)
    assert _error(J, V60) < FD_RTOL


def test_the_routes_agree_through_sticks():
    """Route one (split RK4 steps, autodiff, saltation) and route two (DOP853, events, Filippov's f_s written
    out) on StickSlipOscillator's two finite exponents (lambda_3 = -inf), same starts: within the tolerance rule
    for a difference, t sqrt(s1^2 + s2^2) + 2 b / T."""
    pytest.importorskip("symengine")
    from suite import estimators
    from suite.peers.scipy_events import ScipyEventsLyap
    from suite.scoring.tolerance import derive
    flow = rs.get("dysts/StickSlipOscillator")
    run = dict(transient=500, batch=3, seed=1, k=2, dtype=torch.float64)
    one = estimators.get("qr", capture="none").estimate(flow, 2000, **run)
    two = ScipyEventsLyap().estimate(flow, 2000, **run)
    assert two.meta["events"] > 0
    allowed = derive(stderr=(one.stderr ** 2 + two.stderr ** 2) ** 0.5, dof=2, T=2000 * flow.dt,
                     bias_nats=2.0).total
    assert (abs(one.exponents - two.exponents) <= allowed).all()


def test_a_switched_flows_references_run_both_routes(tmp_path, monkeypatch):
    """SprottMore on the smoke budget: route one (qr on the split RK4 steps) and route two (scipy_events_lyap:
    DOP853, events, saltation written out) agree within the tolerance rule on every exponent, the sum rule holds
    with each side's divergence (the normal speed z' = y^2 - exp(-x^2) is continuous, det S = 1), and the record
    names route two."""
    pytest.importorskip("symengine")
    from suite.studies import dysts_references
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    monkeypatch.setitem(dysts_references.BUDGETS, "smoke", dict(dysts_references.BUDGETS["smoke"], max_steps=1500))
    flow = rs.get("dysts/SprottMore")
    record = dysts_references.compute_flow(flow, "smoke")
    assert set(record["routes"]) == {"lyapbench", "scipy_events"} and "scipy_events_lyap (" in record["source"]
    checks = record["checks"]
    assert all(d <= a for d, a in zip(checks["routes"]["differences"], checks["routes"]["allowed"]))
    assert abs(checks["sum_rule"]["residual"]) <= checks["sum_rule"]["allowed"]
    assert checks["step"]["passed"]
    assert computed.read(reference_key(flow))["verdict"] == record["verdict"]
    assert dysts_references.second(record) == "scipy_events"


def test_a_flow_that_sticks_gets_no_reference(tmp_path, monkeypatch):
    """Route one meeting a stick phase (a SlidingError, as StickSlipOscillator's trajectory 41 of the references'
    run) is the flow's recorded reason: no finite spectrum to refer to."""
    from suite import estimators
    from suite.studies import dysts_references

    class Sticking:
        def estimate(self, *args, **kwargs):
            raise SlidingError("sticks", trajectories=[41])
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    monkeypatch.setattr(estimators, "get", lambda *a, **k: Sticking())
    flow = rs.get("dysts/StickSlipOscillator")
    record = dysts_references.compute_flow(flow, "smoke")
    assert record["verdict"] == ("no reference: the trajectories stick (Filippov sliding on the switching surface, "
                                 "route one's trajectories [41]): the perturbation normal to it is annihilated, "
                                 "lambda_3 = -inf")
    assert computed.read(reference_key(flow))["verdict"] == record["verdict"]


def test_an_estimator_that_differentiates_the_step_says_not_applicable():
    """jvp_qr pushes tangents through torch.func.jvp of ``step``, which cannot trace the located crossings: it
    says so (the estimators that use the flow's tangent, or its step alone, run)."""
    from suite import estimators
    from suite.core.errors import NotApplicableError
    flow = rs.get("dysts/SprottMore")
    assert not flow.capabilities.differentiable_step
    with pytest.raises(NotApplicableError, match="a switched flow's split steps"):
        estimators.get("jvp_qr").estimate(flow, 10, batch=1)


def test_the_symbolic_peers_say_not_applicable():
    """jitcode (and lyapax) integrate the variational equations without events: on a switched flow they would
    miss every saltation matrix, so they say so; route two of the references is scipy_events_lyap."""
    from suite.peers.base import symbolic_flow_reason
    assert "switched flow" in symbolic_flow_reason("jitcode_lyap", rs.get("dysts/SprottMore"))
    assert symbolic_flow_reason("jitcode_lyap", rs.get("dysts/Lorenz")) is None


def relay(x, side):
    """x'' + 0.1 x' + x = 1.2 cos t - 0.5 sign(x): a forced relay oscillator, (x, x', t)."""
    return torch.stack([x[:, 1], -x[:, 0] - 0.1 * x[:, 1] - 0.5 * side + 1.2 * torch.cos(x[:, 2]),
                        torch.ones_like(x[:, 0])], dim=1)


def test_a_users_switched_flow_in_a_few_lines_keeps_the_sum_rule():
    """A user's SwitchedFlow: the relay's normal speed x' is continuous across x = 0 (det S = 1), so its spectrum
    sums to the divergence, exactly -0.1, within the tolerance rule (t s of the per-trajectory sums plus b / T)."""
    from suite import estimators
    from suite.scoring.tolerance import derive
    flow = rs.SwitchedFlow("relay", relay, switching=lambda x: x[:, 0], dim=3, dt=0.01)
    res = estimators.get("qr", capture="none").estimate(flow, 2000, transient=500, batch=4, seed=0)
    sums = res.per_trajectory.sum(axis=1)
    allowed = derive(stderr=sums.std(ddof=1) / 2, dof=3, T=20.0, bias_nats=1.0).total
    assert abs(sums.mean() + 0.1) <= allowed
    assert res.exponents[0] > -0.01 and abs(res.exponents).max() < 0.2


@pytest.mark.parametrize("name, k", [("SprottMore", 3), ("StickSlipOscillator", 2)])
def test_float32_follows_float64(name, k):
    """The split steps, sticks included, in float32: the same exponents as float64 within a round-off bound of
    float32's epsilon times the 1,800 steps times the growth e^(lambda_1 T) (< 4 here): 9e-4."""
    from suite import estimators
    flow = rs.get("dysts/" + name)
    run = dict(transient=300, batch=2, seed=1, k=k)
    single = estimators.get("qr", capture="none").estimate(flow, 1500, dtype=torch.float32, **run)
    double = estimators.get("qr", capture="none").estimate(flow, 1500, dtype=torch.float64, **run)
    bound = torch.finfo(torch.float32).eps * 1800 * 4
    assert abs(single.exponents - double.exponents).max() < bound


@pytest.mark.parametrize("name", ["dysts/FluidTrampoline", "dysts/SprottMore", "dysts/StickSlipOscillator"])
def test_route_two_builds_for_every_switched_flow(name):
    """scipy_events_lyap's numeric functions build for each switched dysts flow: Filippov's f_s = (b f+ - a f-) /
    (b - a) only for a flow that slides, since where the normal speed is continuous (FluidTrampoline's x' = y)
    b - a is 0 identically, which symengine's LLVM Lambdify refused (the confirmation over 4 T found it); the
    field and its Jacobian are finite at a state of the flow."""
    pytest.importorskip("symengine")
    from suite.peers.scipy_events import ScipyEventsLyap
    flow = rs.get(name)
    field, jac, speeds, g, grad = ScipyEventsLyap()._functions(flow)
    x = flow.sample_initial(1, TrajectoryRNG(0, 1)).to(torch.float64)[0].numpy()
    side = 1.0 if g(x) >= 0 else -1.0
    assert np.all(np.isfinite(field(x, side))) and np.all(np.isfinite(jac(x, side)))
    assert np.allclose(field(x, side), flow.rhs(torch.as_tensor(x)[None])[0].numpy(), rtol=1e-12, atol=1e-12)
