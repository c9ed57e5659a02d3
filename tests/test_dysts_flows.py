"""The dysts catalogue's flows (reference_systems.dysts): written once, rendered twice, checked against dysts.

Each flow's torch right-hand side is checked against dysts's own at random states (where dysts is installed) and
against its symbolic rendering (SymEngine, what jitcode integrates); every flow builds and a short RK4 run from
its sampled initial states stays finite."""
import json
import math
import sys

import numpy as np
import pytest
import torch

import reference_systems as rs
from reference_systems import dysts
from reference_systems import computed
from reference_systems.dysts import starts, steps
from reference_systems.dysts.build import (ORBIT_STEPS_PER_PERIOD, START_PERIODS, STATES_PER_PERIOD,
                                           TRANSIENT_LYAPUNOV_TIMES, VALIDATION_BATCH, VALIDATION_MAX_STEPS,
                                           VALIDATION_MAX_TRANSIENT, VALIDATION_TRANSIENT, along_orbit, attractor_scale,
                                           reference_key, starts_table, steps_per_period, steps_table, validation_run)
from reference_systems.noise import TrajectoryRNG
from suite.studies import dysts_references
from suite.studies.computed_references import REFERENCE_SEED
from suite.core.errors import InvalidArgumentError
from suite.grid.selection import build_systems

WRITTEN = dysts.written()
#: relative agreement of two renderings of the same expressions at one state: both sum the same terms in
#: float64, possibly in another order or with another grouping (a few hundred units of round-off, scaled by
#: the largest term, which the component's norm bounds from below only where the terms do not cancel)
RTOL = 1e-11


def states(name, count=4, seed=0):
    """Random states around the flow's attractor: dysts's mean plus its standard deviation times N(0, 1)."""
    entry = dysts.row(name)
    g = np.random.default_rng(seed)
    mean, std = np.array(entry["mean"], dtype=float), np.array(entry["std"], dtype=float)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    mean = np.where(np.isfinite(mean), mean, np.array(entry["initial_conditions"], dtype=float))
    return mean + std * g.standard_normal((count, len(mean)))


def ours(name, X, t=0.0):
    flow = rs.get("dysts/" + name)
    x = torch.tensor(X, dtype=torch.float64)
    if flow.dim == X.shape[1] + 1:  # a clock: the time is the last variable
        x = torch.cat([x, torch.full((x.shape[0], 1), t, dtype=torch.float64)], dim=1)
    return flow.rhs(x).numpy()


def assert_close(got, want, name):
    scale = max(np.max(np.abs(want)), 1.0)
    assert np.max(np.abs(got - want)) <= RTOL * scale, (name, got, want)


def test_the_table_holds_every_ode_flow_of_the_installed_dysts_version():
    table = dysts.catalogue()
    assert table["dysts_version"] and len(table["flows"]) == 129  # 135 in dysts 0.96 less 6 delay equations
    assert len(table["delay_equations_left_out"]) == 6
    for name, entry in table["flows"].items():
        assert len(entry["initial_conditions"]) == entry["dim"], name


@pytest.mark.parametrize("name", WRITTEN)
def test_the_torch_rhs_is_dysts_rhs(name):
    dysts_flows = pytest.importorskip("dysts.flows")
    model = getattr(dysts_flows, name)()
    X = states(name)
    for t in (0.0, 1.7):
        want = np.array([np.asarray(model.rhs(x, t), dtype=float) for x in X])
        got = ours(name, X, t)[:, :X.shape[1]]
        assert_close(got, want, name)


@pytest.mark.parametrize("name", WRITTEN)
def test_the_symbolic_rendering_is_the_torch_rendering(name):
    """jitcode integrates the symbolic rendering: the same numbers as the torch one at the same states."""
    se = pytest.importorskip("symengine")
    flow = rs.get("dysts/" + name)
    symbols = [se.Symbol(f"y{i}") for i in range(flow.dim)]
    exprs = flow.capabilities.symbolic_rhs(symbols)
    X = states(name, count=2)
    if flow.dim == X.shape[1] + 1:
        X = np.concatenate([X, np.full((len(X), 1), 0.9)], axis=1)
    for x, want in zip(X, flow.rhs(torch.tensor(X, dtype=torch.float64)).numpy()):
        values = {s: float(v) for s, v in zip(symbols, x)}
        got = np.array([float(se.sympify(e).subs(values)) for e in exprs])
        assert_close(got, want, name)


def test_every_flow_builds_and_a_short_run_stays_finite():
    for name in WRITTEN:
        flow = rs.get("dysts/" + name)
        x = flow.sample_initial(4, TrajectoryRNG(seed=1, batch=4))
        for _ in range(500):
            x = flow.step(x)
        assert torch.isfinite(x).all(), name
        assert math.isclose(flow.dt, dysts.row(name)["period"] / steps_per_period(name))


def test_every_flow_has_its_step_from_the_scan():
    """steps.json (python -m reference_systems.dysts.steps) holds every written flow, each with the rungs it ran
    and the step of its last rung, which passed unless it is the ladder's last (flagged); its rule is the
    module's."""
    table = steps_table()
    assert sorted(table) == WRITTEN
    for name, chosen in table.items():
        last = chosen["rungs"][-1]
        assert chosen["passed"] == (last["finite"] and last["local_error"] <= steps.LOCAL_ERROR), name
        assert chosen["steps_per_period"] == last["n"] in steps.LADDER, name
        assert chosen["passed"] or last["n"] == steps.LADDER[-1], name
    assert sum(not c["passed"] for c in table.values()) <= 2  # InteriorSquirmer, SprottMore
    with open(steps.PATH) as handle:
        rule = json.load(handle)["rule"]
    assert rule == {"ladder": list(steps.LADDER), "batch": steps.SCAN_BATCH, "periods": steps.SCAN_PERIODS,
                    "local_error": steps.LOCAL_ERROR, "seed": steps.SEED}


def test_every_flow_has_its_orbit_stored():
    """starts.json (python -m reference_systems.dysts.starts) holds every written flow's orbit from dysts's initial
    condition: START_PERIODS periods of it at period / ORBIT_STEPS_PER_PERIOD, STATES_PER_PERIOD states a period,
    all finite; its rule is the module's; Lorenz's orbit, recomputed, is the stored one."""
    table = starts_table()
    assert sorted(table) == WRITTEN
    for name, orbit in table.items():
        period = dysts.row(name)["period"]
        assert orbit["every"] == ORBIT_STEPS_PER_PERIOD // STATES_PER_PERIOD, name
        assert math.isclose(orbit["spacing"], period / STATES_PER_PERIOD, rel_tol=1e-12), name
        assert len(orbit["states"]) == START_PERIODS * STATES_PER_PERIOD, name
        first = dysts.row(name)["initial_conditions"]
        assert orbit["states"][0][:len(first)] == pytest.approx(first, rel=1e-11), name
        assert np.isfinite(orbit["states"]).all(), name
        assert orbit["perturbation"] in (1e-3, 1e-4, 1e-5, 1e-6), name
    with open(starts.PATH) as handle:
        assert json.load(handle)["rule"] == {
            "periods": START_PERIODS, "states_per_period": STATES_PER_PERIOD,
            "steps_per_period": ORBIT_STEPS_PER_PERIOD, "digits": starts.DIGITS, "from": starts.RULE_FROM, "escape": {
                "batch": starts.ESCAPE_BATCH, "periods": starts.ESCAPE_PERIODS, "seed": starts.ESCAPE_SEED,
                "smallest": starts.SMALLEST}}
    std = np.array(dysts.row("Lorenz")["std"])
    assert np.abs(np.array(starts.orbit("Lorenz")["states"]) - table["Lorenz"]["states"]).max() <= 1e-9 * std.min()


def test_the_perturbation_shrinks_where_starts_escape():
    """At 1e-3 of the attractor's size some of SprottJerk's 256 starts leave for infinity within 10 periods (its
    basin's boundary passes near its orbit); at 1e-4 none do, so its perturbation is 1e-4, Lorenz's 1e-3; the
    table holds what the rule gives."""
    for name, want in (("SprottJerk", 1e-4), ("Lorenz", 1e-3)):
        orbit = starts_table()[name]
        assert starts.perturbation(name, orbit["states"], orbit["spacing"]) == want == orbit["perturbation"], name


def test_a_start_is_the_stored_state_advanced_by_the_rest_of_its_time():
    """along_orbit at the time of stored state j returns it; just before state j + 1, at the orbit's own step,
    state j advanced by one spacing in steps of (almost) that step, which is how the orbit was stored: state j + 1
    to round-off (and at the flow's default step, to RK4's error)."""
    orbit, period = starts_table()["Rossler"], dysts.row("Rossler")["period"]
    std = float(np.min(dysts.row("Rossler")["std"]))
    states = torch.tensor(orbit["states"], dtype=torch.float64)
    M, j = len(states), torch.tensor([3, 40, 70])
    for flow, atol in ((rs.get("dysts/Rossler", dt=period / ORBIT_STEPS_PER_PERIOD), 1e-9),
                       (rs.get("dysts/Rossler"), 1e-5)):
        at = along_orbit(flow.rhs, states, orbit["spacing"], flow.dt, (j.double() / M).unsqueeze(1))
        assert torch.equal(at, states[j])
        u = ((j.double() + 1 - 1e-12) / M).unsqueeze(1)
        before = along_orbit(flow.rhs, states, orbit["spacing"], flow.dt, u)
        assert (before - states[j + 1]).abs().max() <= atol * std, flow.dt


def test_a_perturbation_never_carries_a_start_across_a_zero_the_orbit_keeps():
    """ItikBanksTumor's effector cells z come within 5e-7 of the invariant plane z = 0 along its orbit; unreflected,
    7 of the reference seed's 64 perturbations (1.7e-4) carried z below it, and those trajectories fell onto an
    equilibrium of another flow (x = 18.9, z = -7.1), which made its lambda_1 -0.07 +- 0.45 instead of 0.0205.
    Reflected, every start is in the orbit's orthant and 10 periods later in its bounding box; where no
    perturbation crosses (Lorenz) a start is the point on the orbit plus the perturbation, as drawn."""
    flow, orbit = rs.get("dysts/ItikBanksTumor"), starts_table()["ItikBanksTumor"]
    states = torch.tensor(orbit["states"], dtype=torch.float64)
    g = TrajectoryRNG(REFERENCE_SEED, 64)
    on = along_orbit(flow.rhs, states, orbit["spacing"], flow.dt, g.uniform(1))
    raw = orbit["perturbation"] * attractor_scale("ItikBanksTumor", 3) * g.normal(3)
    assert int(((on + raw) <= 0).any(1).sum()) == 7
    x = flow.sample_initial(64, TrajectoryRNG(REFERENCE_SEED, 64))
    assert (x > 0).all() and torch.allclose((x - on).abs(), raw.abs(), rtol=0, atol=1e-15)
    with torch.no_grad():
        for _ in range(10 * steps_per_period("ItikBanksTumor")):
            x = flow.step(x)
    assert ((x >= states.min(0).values - 0.1) & (x <= states.max(0).values + 0.1)).all()
    flow, orbit = rs.get("dysts/Lorenz"), starts_table()["Lorenz"]
    g = TrajectoryRNG(3, 8)
    states = torch.tensor(orbit["states"], dtype=torch.float64)
    on = along_orbit(flow.rhs, states, orbit["spacing"], flow.dt, g.uniform(1))
    want = on + orbit["perturbation"] * attractor_scale("Lorenz", 3) * g.normal(3)
    assert torch.equal(flow.sample_initial(8, TrajectoryRNG(3, 8)), want)


def test_a_record_whose_starts_changed_is_stale(tmp_path, monkeypatch):
    """The records' probe draws two starts; the sampler without its reflection draws the same two for
    ItikBanksTumor but other starts for 7 of its reference run's 64, and only the starts' fingerprint sees it."""
    record = json.loads((computed.references_dir() / "systems__dysts_ItikBanksTumor.json").read_text())
    flow = rs.get("dysts/ItikBanksTumor")
    record["starts"] = dysts_references.starts_fingerprint(flow, record["budget"])
    (tmp_path / "systems__dysts_ItikBanksTumor.json").write_text(json.dumps(record))
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    assert dysts_references.status(rs.get("dysts/ItikBanksTumor")) == "fresh"

    def unreflected(rhs, states, spacing, dt, scale, perturbation, g):
        start = along_orbit(rhs, states.to(g.device), spacing, dt, g.uniform(1))
        return start + perturbation * scale.to(g.device) * g.normal(states.shape[1])
    monkeypatch.setattr(sys.modules["reference_systems.dysts.build"], "spread_starts", unreflected)
    flow = rs.get("dysts/ItikBanksTumor")
    assert flow.meta["reference_status"] == "fresh"
    assert dysts_references.status(flow).startswith("stale: its trajectories' starts changed")


def test_trajectories_start_at_independent_phases():
    """Started around one point, the trajectories of phase-coherent flows kept their phase through validate's
    transient: the mean pairwise correlation of their coordinates over the --quick window was 1.00 for SprottI,
    0.72 for Rossler, 0.98 for ForcedBrusselator.  From spread starts it is below 0.3, the threshold
    docs/dysts.md uses (over the coordinates that oscillate: a forcing phase grows alike in every trajectory,
    correlation 1 whatever its offset); and trajectory b's start does not depend on the batch around it."""
    for name in ("SprottI", "Rossler", "ForcedBrusselator"):
        flow = rs.get("dysts/" + name)
        d, run = dysts.row(name)["dim"], flow.capabilities.validation
        x, xs = flow.sample_initial(16, TrajectoryRNG(0, 16)), []
        with torch.no_grad():
            for _ in range(run["transient"]):
                x = flow.step(x)
            for _ in range(max(200, run["steps"] // 10)):
                x = flow.step(x)
                xs.append(x[:, :d].clone())
        Y = torch.stack(xs).numpy()
        Y = (Y - Y.mean(0)) / Y.std(0)
        pairs = np.triu_indices(16, 1)
        oscillating = [i for i in range(d) if not (np.diff(Y[:, :, i], axis=0) > 0).all()]
        assert len(oscillating) >= 2, name
        assert np.mean([(Y[:, :, i].T @ Y[:, :, i] / len(Y))[pairs].mean() for i in oscillating]) < 0.3, name
    flow = rs.get("dysts/Rossler")
    assert torch.equal(flow.sample_initial(16, TrajectoryRNG(5, 16))[7:8],
                       flow.sample_initial(1, TrajectoryRNG(5, 1, first=7)))


@pytest.mark.parametrize("errors, want, scanned", [
    ({100: 1e-7}, 100, [100]),                              # the first rung passes
    ({100: 3e-5, 200: 1e-6, 500: 1e-8}, 200, [100, 200]),  # predicted: 100 * 30^(1/5) = 197
    ({100: 1e-3, 500: 2e-6, 1000: 6e-8}, 1000, [100, 500, 1000]),  # predicted 398: 200 skipped, 500 fails
    ({100: math.inf, 200: math.inf, 500: 1e-7}, 500, [100, 200, 500]),  # not finite: every rung in turn
    ({100: 0.09, 1000: 5e-6, 2000: 1e-7}, 2000, [100, 1000, 2000]),  # predicted 976; 1000 fails: the next rung
    ({100: 1e3, 200: 1e2, 500: 1e-7}, 500, [100, 200, 500]),  # left the attractor: no prediction, every rung
    ({100: 0.11, 2000: 1e-5}, None, [100, 2000]),            # predicted 1019, none passes: the last rung, flagged
])
def test_the_step_rule(monkeypatch, errors, want, scanned):
    ran = []

    def fake(name, n):
        ran.append(n)
        err = errors.get(n, errors[100] * (100 / n) ** 5 * 10)  # unlisted rungs: worse than predicted
        return {"n": n, "finite": math.isfinite(err), "local_error": err}
    monkeypatch.setattr(steps, "scan_rung", fake)
    chosen = steps.choose("Lorenz")
    assert ran == scanned and chosen["passed"] == (want is not None)
    assert chosen["steps_per_period"] == (want or steps.LADDER[-1])


def test_the_family_is_listed_on_request_and_takes_parameters_as_keywords():
    assert not any(n.startswith("dysts/") for n in rs.names())
    assert rs.names("dysts/*") == ["dysts/" + n for n in WRITTEN] and rs.family("dysts/Lorenz") == "dysts"
    assert [s.name for s in build_systems(["dysts/Lor*"])] == [n for n in rs.names("dysts/Lor*")]
    flow = rs.get("dysts/Lorenz", rho=30.0, dt=0.005)
    assert flow.params["rho"] == 30.0 and flow.dt == 0.005
    with pytest.raises(InvalidArgumentError, match="parameter 'gamma'.*beta"):
        rs.get("dysts/Lorenz", gamma=1.0)
    hopfield = rs.get("dysts/Hopfield")  # a matrix parameter: the step check rebuilds flows from their parameters
    again = rs.get("dysts/Hopfield", **hopfield.params)
    assert again.label == hopfield.label and len(again.params["k"]) == 6 == len(again.params["k"][0])
    with pytest.raises(InvalidArgumentError, match=r"parameter 'k'.*a list of 6 lists"):
        rs.get("dysts/Hopfield", k=[[1.0]])
    with pytest.raises(InvalidArgumentError, match="a pattern matching"):
        build_systems(["dysts/NoSuchFlow*"])


def test_references_from_two_routes_end_to_end(tmp_path, monkeypatch, capsys):
    """`lyapbench dysts references` on a smoke budget: both routes, the step check and the sum rule run and are
    recorded; the flow reads its record back (fresh), and `lyapbench dysts table` writes its row.  Lorenz's
    divergence is the constant -(sigma + 1 + beta): the sum rule holds to RK4's error, far inside its allowance."""
    pytest.importorskip("jitcode")
    from suite.cli import main
    from suite.studies import dysts_references
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path / "refs"))
    assert main(["dysts", "references", "--flows", "dysts/Lorenz", "--budget", "smoke"]) in (0, 1)
    flow = rs.get("dysts/Lorenz")
    assert flow.meta["reference_status"] == "fresh"
    record = computed.read(reference_key(flow))
    p = flow.params
    assert abs(record["checks"]["sum_rule"]["divergence"] + p["sigma"] + 1 + p["beta"]) < 1e-9
    assert abs(record["checks"]["sum_rule"]["residual"]) < 1e-3
    ours, theirs = record["routes"]["lyapbench"]["values"], record["routes"]["jitcode"]["values"]
    assert abs(ours[0] - theirs[0]) <= record["checks"]["routes"]["allowed"][0] and 0.5 < ours[0] < 1.3
    step = record["checks"]["step"]
    assert step["runs"][0]["dt"] == pytest.approx(2 * flow.dt)  # the coarse run first; dt / 2 only if it fails
    runs = step["runs"]
    assert step["passed"] == runs[-1].get("passed", False)
    assert len(runs) == 1 if runs[0].get("passed") else runs[1]["dt"] == pytest.approx(flow.dt / 2)
    assert record["verdict"] == "reference" or record["verdict"].startswith("no reference: ")
    assert (flow.reference is not None) == (record["verdict"] == "reference")
    assert main(["dysts", "references", "--flows", "dysts/Lorenz", "--check"]) == 0  # fresh: nothing recomputed
    assert "dysts/Lorenz: fresh" in capsys.readouterr().err
    # --redo-divergence keeps both routes of the records that have them and leaves the others (no record yet) alone
    assert main(["dysts", "references", "--flows", "dysts/Lorenz,dysts/LorenzBounded", "--budget", "smoke",
                 "--redo-divergence"]) in (0, 1)
    err = capsys.readouterr().err
    assert "dysts/LorenzBounded: left as it is" in err and "dysts/Lorenz: lambda_1 = " in err
    again = computed.read(reference_key(flow))
    assert again["routes"]["jitcode"] == record["routes"]["jitcode"] and "jitcode_from" in again
    assert computed.read(reference_key(rs.get("dysts/LorenzBounded"))) is None
    assert main(["dysts", "table", "--flows", "dysts/Lor*", "--output-dir", str(tmp_path)]) == 0
    text = (tmp_path / "dysts_references.md").read_text()
    assert "| dysts/Lorenz | 3 |" in text and "no record (missing)" in text  # LorenzBounded etc. have none
    assert (tmp_path / "dysts_lambda1.png").stat().st_size > 0
    assert dysts_references.kaplan_yorke([0.9056, 0.0, -14.5723]) == pytest.approx(2 + 0.9056 / 14.5723)


def test_a_route_that_fails_is_the_flows_recorded_reason(tmp_path, monkeypatch):
    """A route that cannot finish (more escapes than a slow leak has, a peer that cannot compile the equations:
    StickSlipOscillator's jitcode code generation failed so) is written as the flow's verdict (the table lists it,
    a rerun skips it), never lost."""
    from suite.peers.base import PeerError
    from suite.peers.jitcode_adapter import JitcodeLyap
    from suite.studies import dysts_references

    def broken(self, *args, **kwargs):
        raise PeerError("jitcode failed (generating and compiling C code): ValueError: ")
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    monkeypatch.setattr(JitcodeLyap, "estimate", broken)
    flow = rs.get("dysts/Lorenz")
    record = dysts_references.compute_flow(flow, "smoke")
    assert record["verdict"].startswith("no reference: jitcode's run failed (PeerError: jitcode failed")
    assert computed.read(reference_key(flow))["values"] == []
    flow = rs.get("dysts/Lorenz")  # rebuilt: the record is fresh, the flow has no reference and says why
    assert flow.meta["reference_status"] == "fresh" and flow.reference is None
    assert "jitcode's run failed" in flow.capabilities.note
    row = dysts_references.table_row(flow)
    assert row["verdict"] == record["verdict"] and "lambda1" not in row


def test_a_near_zero_exponent_is_bounded_as_a_linearly_growing_direction():
    """b_i = 1 nat, plus ln(1 + T / A) for an exponent within (b + ln(1 + T / A)) / T + t s of 0: a direction
    growing linearly from a frame aligned over A grows by ln(1 + T / A) over T."""
    from suite.studies.dysts_references import BIAS_NATS, exponent_bias, linear_growth_nats
    T, A = 1000.0, 200.0
    assert linear_growth_nats(T, A) == pytest.approx(math.log(6.0))
    edge = (BIAS_NATS + math.log(6.0)) / T
    got = exponent_bias([0.5, 0.9 * edge, -1.1 * edge, -2.0], [0.0, 0.0, 0.0, 0.0], T, A)
    assert got.tolist() == pytest.approx([1.0, 1.0 + math.log(6.0), 1.0, 1.0])
    assert exponent_bias([0.5, 1.1 * edge], [0.0, 0.2 * edge], T, A)[1] == pytest.approx(1.0 + math.log(6.0))


def _record(a, b, *, stderr=1e-3, divergence=None, T=1000.0, passed=True):
    a, b = np.asarray(a, float), np.asarray(b, float)
    route = {"stderr": [stderr] * a.size, "stderr_dof": 63}
    return {"T": T, "aligned_time": 200.0, "budget": "standard",
            "routes": {"lyapbench": dict(route, values=a.tolist()), "jitcode": dict(route, values=b.tolist())},
            "checks": {"step": {"passed": passed, "runs": [{"dt": 0.02, "values": a.tolist(), "shifts": [0.0] * a.size,
                                                             "allowed": [1.0] * a.size, "passed": passed}]},
                       "sum_rule": {"divergence": float(a.sum()) if divergence is None else divergence,
                                    "divergence_stderr": 1e-3, "divergence_run": {"batch": 64}}}}


def test_the_verdict_is_a_function_of_the_recorded_numbers():
    """judge(): a reference where the routes agree, the sum rule holds, lambda_1 exceeds its uncertainty and the
    exponent closest to 0 is within its uncertainty of 0, whose interval covers both routes; otherwise the first
    check that failed, in the order of the module's docstring."""
    from suite.studies.dysts_references import judge
    ok = judge(_record([0.9, 0.0, -14.5], [0.905, 0.001, -14.505]))
    assert ok["verdict"] == "reference" and ok["k"] == 3
    values, u = np.asarray(ok["values"]), np.asarray(ok["uncertainty"])
    for route in ([0.9, 0.0, -14.5], [0.905, 0.001, -14.505]):
        assert np.all(np.abs(np.asarray(route) - values) <= u)
    assert ok["checks"]["bias_nats"][1] > ok["checks"]["bias_nats"][0] == 1.0  # the zero exponent's linear growth
    assert "the routes disagree on exponent 1" in judge(_record([0.9, 0.0, -14.5], [1.0, 0.0, -14.6]))["verdict"]
    assert "misses <div f>" in judge(_record([0.9, 0.0, -14.5], [0.9, 0.0, -14.5], divergence=-14.0))["verdict"]
    near_zero = judge(_record([0.002, 0.0, -1.0], [0.002, 0.0, -1.0]))["verdict"]
    assert "not chaotic at dysts's parameters (lambda_1 = 0.002 within its uncertainty" in near_zero
    # every exponent below 0 beyond its uncertainty (Tsucs2 over T = 52: -0.055, -0.040, -1.58) is not "within 0"
    contracting = judge(_record([-0.055, -0.04, -1.58], [-0.055, -0.04, -1.58], T=52.0))["verdict"]
    assert "not chaotic over T = 52: lambda_1 = -0.055 is below 0 by more than its uncertainty" in contracting
    assert "capped" not in contracting
    capped = judge(dict(_record([-0.055, -0.04, -1.58], [-0.055, -0.04, -1.58], T=52.0), T_wanted=367.0,
                        steps=30_000, budget="standard"))["verdict"]
    assert capped.endswith("T = 52 is capped at 30,000 steps, 0.14 of the 367 the 'standard' budget asks "
                           "(`--budget full` runs longer)")
    assert "the step is too coarse" in judge(_record([0.9, 0.0, -14.5], [0.9, 0.0, -14.5], passed=False))["verdict"]
    # an autonomous flow's zero exponent off 0 beyond its uncertainty: a bias all trajectories share (a phase)
    shared = judge(_record([0.9, 0.05, -14.55], [0.9, 0.05, -14.55]))
    assert shared["verdict"].startswith("no reference: exponent 2, the zero exponent of a bounded autonomous flow")
    assert shared["checks"]["bias_nats"][1] == 1.0 and shared["uncertainty"][1] < 0.05


def test_a_leaking_flow_is_referenced_where_it_leaks_slowly():
    """Check (e): the routes' escapes (each replaced by the next start) give an escape rate whose upper bound at
    1 - 1e-4 must be at most LEAK_MAX lambda_1; a record without escapes is bounded by its survivors' exposure
    alone (the 'standard' budget's 64 + 64 trajectories over transient + T)."""
    from scipy import stats
    from suite.studies.dysts_references import LEAK_MAX, judge
    clean = judge(_record([0.9, 0.0, -14.5], [0.9, 0.0, -14.5]))["checks"]["leak"]
    assert clean["escaped"] == 0 and clean["rate_upper"] == pytest.approx(-math.log(1e-4) / (128 * 1200.0))
    slow = dict(_record([0.9, 0.0, -14.5], [0.9, 0.0, -14.5]), escapes={"lyapbench": [[3, 500.0]], "jitcode": []})
    judged = judge(slow)
    assert judged["verdict"] == "reference" and judged["checks"]["leak"]["escaped"] == 1
    assert judged["checks"]["leak"]["rate_upper"] == pytest.approx(stats.chi2.ppf(1 - 1e-4, 4) / (2 * 154100.0))
    fast = dict(_record([0.1, 0.0, -1.0], [0.1, 0.0, -1.0]),
                escapes={"lyapbench": [[i, 5.0] for i in range(100)], "jitcode": [[i, 5.0] for i in range(100)]})
    judged = judge(fast)
    assert judged["checks"]["leak"]["rate_upper"] > LEAK_MAX * 0.1
    assert judged["verdict"].startswith("no reference: the flow leaks (200 of the routes' 328 starts escaped")


def test_jitcode_names_the_trajectory_whose_integration_fails():
    """jitcode's integrator giving up (HyperLu's trajectory 32 of the references' jitcode seed escapes to infinity
    at t = 34) is a TrajectoryError naming that trajectory and the step, which a run conditioned on survival
    replaces; not the peer's failure."""
    pytest.importorskip("jitcode")
    from suite.core.errors import TrajectoryError
    from suite.peers.jitcode_adapter import JitcodeLyap
    flow = rs.get("dysts/HyperLu")
    with pytest.raises(TrajectoryError, match="trajectory 32 under jitcode: the integration failed") as info:
        JitcodeLyap().estimate(flow, 5000, transient=2008, batch=1, seed=(1000001, 32))
    assert info.value.trajectories == [32] and 2008 < info.value.step <= 2008 + 5000


def test_redoing_jitcode_keeps_route_one(tmp_path, monkeypatch):
    """compute_flow(reuse=record) keeps the record's route one, step check and divergence (where they match the
    flow, budget and steps), reruns jitcode and judges again; a record of another budget is not reused."""
    pytest.importorskip("jitcode")
    from suite.studies import dysts_references
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    flow = rs.get("dysts/Lorenz")
    first = dysts_references.compute_flow(flow, "smoke")
    marked = json.loads(json.dumps(first))
    marked["routes"]["lyapbench"]["values"][0] += 1e-3  # a changed route one shows whether it was kept
    marked["probe"] = [p * (1 + 1e-13) for p in marked["probe"]]  # another machine's round-off: still the flow
    again = dysts_references.compute_flow(flow, "smoke", reuse=marked)
    assert again["routes"]["lyapbench"]["values"] == marked["routes"]["lyapbench"]["values"]
    assert again["routes"]["jitcode"]["values"] == first["routes"]["jitcode"]["values"]
    assert again["route_one_from"]["git_sha"] == first["git_sha"]
    assert again["values"][0] == pytest.approx(first["values"][0] + 5e-4)
    marked["budget"] = "quick"
    fresh = dysts_references.compute_flow(flow, "smoke", reuse=marked)
    assert fresh["routes"]["lyapbench"]["values"] == first["routes"]["lyapbench"]["values"]
    assert "route_one_from" not in fresh


def test_redoing_the_divergence_keeps_both_routes(tmp_path, monkeypatch):
    """compute_flow(reuse=record, redo='divergence') keeps both routes and the step check, samples the divergence
    again (every step, DIVERGENCE_EVERY) and judges again; redo='verdict' keeps every number and judges again;
    anything else is refused."""
    pytest.importorskip("jitcode")
    from suite.studies import dysts_references
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    flow = rs.get("dysts/Lorenz")
    first = dysts_references.compute_flow(flow, "smoke")
    assert first["checks"]["sum_rule"]["divergence_run"]["every"] == dysts_references.DIVERGENCE_EVERY == 1
    assert first["checks"]["sum_rule"]["divergence"] == pytest.approx(-(10 + 1 + 2.667), abs=1e-9)  # -(s + 1 + b)
    marked = json.loads(json.dumps(first))
    marked["routes"]["jitcode"]["values"][0] += 1e-3
    marked["checks"]["sum_rule"].update(divergence=-1.0, divergence_run=dict(marked["checks"]["sum_rule"]
                                                                             ["divergence_run"], every=10))
    again = dysts_references.compute_flow(flow, "smoke", reuse=marked, redo="divergence")
    assert again["routes"]["jitcode"]["values"] == marked["routes"]["jitcode"]["values"]
    assert again["routes"]["lyapbench"]["values"] == first["routes"]["lyapbench"]["values"]
    assert again["checks"]["sum_rule"]["divergence"] == first["checks"]["sum_rule"]["divergence"]
    assert again["jitcode_from"]["git_sha"] == again["route_one_from"]["git_sha"] == first["git_sha"]
    assert again["values"][0] == pytest.approx(first["values"][0] + 5e-4)
    # redo='verdict' keeps every number, the divergence too, and judges them again
    kept = json.loads(json.dumps(first))
    kept["routes"]["jitcode"]["values"][1] = kept["routes"]["lyapbench"]["values"][1] = 0.5
    kept["checks"]["sum_rule"]["divergence"] = kept["routes"]["lyapbench"]["values"][1] - 13.667  # the sum moved
    judged = dysts_references.compute_flow(flow, "smoke", reuse=kept, redo="verdict")
    assert judged["checks"]["sum_rule"]["divergence"] == kept["checks"]["sum_rule"]["divergence"]
    assert judged["routes"]["jitcode"]["values"] == kept["routes"]["jitcode"]["values"]
    assert judged["checks"]["sum_rule"]["sum"] == pytest.approx(sum(kept["routes"]["lyapbench"]["values"]))
    assert judged["values"][1] == 0.5 and judged["verdict"] == dysts_references.judge(kept)["verdict"]
    with pytest.raises(InvalidArgumentError, match="redo"):
        dysts_references.compute_flow(flow, "smoke", reuse=marked, redo="route one")


def test_a_run_stopped_before_jitcode_goes_on_from_route_one(tmp_path, monkeypatch):
    """Route one, the step check and the divergence are written before jitcode's route runs: a run stopped there
    leaves an 'incomplete' record (no reference, computed again by `lyapbench dysts references`), and the next run
    keeps them and runs jitcode only."""
    pytest.importorskip("jitcode")
    from suite.cli.dysts import compute
    from suite.peers.jitcode_adapter import JitcodeLyap
    from suite.studies import dysts_references
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    run = JitcodeLyap.estimate

    def stopped(self, *args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(JitcodeLyap, "estimate", stopped)
    with pytest.raises(KeyboardInterrupt):
        dysts_references.compute_flow(rs.get("dysts/Lorenz"), "smoke")
    partial = computed.read(reference_key(rs.get("dysts/Lorenz")))
    assert partial["verdict"] == dysts_references.INCOMPLETE and "jitcode" not in partial["routes"]
    flow = rs.get("dysts/Lorenz")
    assert flow.meta["reference_status"] == "incomplete" and flow.reference is None
    partial["routes"]["lyapbench"]["values"][0] += 1e-3  # a changed route one shows whether it was kept
    dysts_references.write(partial, partial["key"])
    monkeypatch.setattr(JitcodeLyap, "estimate", run)
    record, _ = compute("dysts/Lorenz", "smoke")
    assert record["routes"]["lyapbench"]["values"] == partial["routes"]["lyapbench"]["values"]
    assert record["route_one_from"]["created"] == partial["created"] and "jitcode" in record["routes"]
    assert not record["verdict"].startswith("incomplete") and rs.get("dysts/Lorenz").meta["reference_status"] == \
        "fresh"


def test_every_committed_record_is_fresh():
    """The committed records (results/references/systems__dysts_*.json) still describe the flows: none is stale
    (its probe, a short run of the flow and its tangent, matches, and so do the starts its routes drew); a flow
    not computed yet has none, or an incomplete one, and says so."""
    for name in rs.names("dysts/*"):
        flow = rs.get(name)
        status = dysts_references.status(flow)
        assert status in ("fresh", "missing", "incomplete"), (name, status)
        assert (flow.reference is not None) <= (status == "fresh")


def test_the_validation_transient_spans_the_references_lyapunov_times():
    """``validate``'s trajectories start at random times along one orbit: a referenced flow's transient lasts
    TRANSIENT_LYAPUNOV_TIMES of its reference's lambda_1 (so that the standard error across them is honest), unless
    the cap stops it, and never less than the cheap sizing from dysts's stored lambda_1; a flow without a reference
    keeps the cheap one; a flow that sticks (Filippov sliding) asks d - 1 exponents."""
    referenced = 0
    for name in rs.names("dysts/*"):
        flow, short = rs.get(name), name.split("/", 1)[1]
        run = flow.capabilities.validation
        cheap = validation_run(short, flow.dt)
        assert run["steps"] == cheap["steps"] <= VALIDATION_MAX_STEPS and run["batch"] == VALIDATION_BATCH
        sticks = {"k": flow.dim - 1} if getattr(flow, "filippov", False) else {}  # lambda_d = -inf
        assert run.get("k") == sticks.get("k"), name
        if flow.reference is None:
            assert run == dict(cheap, **sticks), name
            continue
        referenced += 1
        lyapunov_times = run["transient"] * flow.dt * float(flow.reference.values[0])
        assert run["transient"] >= cheap["transient"], name
        assert (lyapunov_times >= TRANSIENT_LYAPUNOV_TIMES - 1e-9
                or run["transient"] == VALIDATION_MAX_TRANSIENT), (name, lyapunov_times)
    assert referenced > 0


def test_the_validation_run_of_a_slow_flow():
    """The sizing rule on numbers: 15 Lyapunov times of lambda_1 = 0.01 at dt = 0.01 are 150,000 steps, past the
    cap; at lambda_1 = 0.1, 15,000; at lambda_1 = 1, 1,500, short of the stored-lambda_1 sizing, which stands."""
    cheap = validation_run("Lorenz", 0.01)["transient"]  # 20 periods: dysts's stored 0.89 asks 16.8 time units
    assert cheap == math.ceil(VALIDATION_TRANSIENT[0] * dysts.row("Lorenz")["period"] / 0.01)
    assert validation_run("Lorenz", 0.01, 0.01)["transient"] == VALIDATION_MAX_TRANSIENT
    assert validation_run("Lorenz", 0.01, 1.0)["transient"] == cheap
    assert abs(validation_run("Lorenz", 0.01, 0.1)["transient"] - 15_000) <= 1



def test_a_slow_flow_without_escapes_is_told_to_run_longer_not_that_it_leaks():
    """Check (e) with no escape: the Poisson bound -ln(alpha) / exposure can still exceed LEAK_MAX lambda_1 for
    a slowly chaotic flow (Bouali2's lambda_1 = 0.0019 over the `long` budget: 3.0e-5 against 1.9e-5); the
    verdict says the exposure is short, not that the flow leaks."""
    from suite.studies.dysts_references import judge
    slow = _record([0.002, 0.0, -0.002], [0.002, 0.0, -0.002], stderr=1e-5, T=20000.0)
    slow.update(aligned_time=10.0, budget="smoke")  # 4 + 2 starts
    judged = judge(slow)
    assert judged["checks"]["chaotic"]["uncertainty"] < 0.002 and judged["checks"]["leak"]["escaped"] == 0
    assert judged["verdict"].startswith("no reference: no start of the routes' 6 escaped, but their exposure "
                                        "(1.2e+05 trajectory time units) bounds the escape rate only at 7.7e-05")


def test_redoing_jitcode_with_another_batch_keeps_route_one(tmp_path, monkeypatch):
    """A budget whose route-two batch changed (the `full` budget's jitcode went from 8 trajectories to 32):
    --redo-jitcode keeps route one, whose starts are unchanged, and runs jitcode on the new batch; the record's
    starts fingerprint is the new one, so the record is fresh."""
    pytest.importorskip("jitcode")
    from suite.studies import dysts_references
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    flow = rs.get("dysts/Lorenz")
    first = dysts_references.compute_flow(flow, "smoke")
    monkeypatch.setitem(dysts_references.BUDGETS, "smoke", dict(dysts_references.BUDGETS["smoke"], jitcode_batch=3))
    again = dysts_references.compute_flow(flow, "smoke", reuse=first, redo="jitcode")
    assert again["routes"]["lyapbench"]["values"] == first["routes"]["lyapbench"]["values"]
    assert "route_one_from" in again
    assert again["routes"]["jitcode"]["stderr_dof"] == 2 != first["routes"]["jitcode"]["stderr_dof"]
    assert again["starts"] == dysts_references.starts_fingerprint(flow, "smoke") != first["starts"]
    kept = dysts_references.compute_flow(flow, "smoke", reuse=again, redo="verdict")  # both routes' starts match
    assert kept["routes"]["jitcode"]["values"] == again["routes"]["jitcode"]["values"]


def test_a_reference_must_hold_over_four_times_its_T():
    """Check (g): route two again over LONG_FACTOR T must land within the reference's uncertainty + its own t s +
    b / (4 T) on every exponent (SwingingAtwood's jitcode lambda_1 rose from 0.105 at T = 197 to 0.157 at
    T = 2,000, a drift two routes run over one T share); a run that failed is the verdict's reason; a reference
    without the check at today's factor and batch is unconfirmed."""
    from scipy import stats
    from suite.studies.dysts_references import LONG_BATCH, LONG_FACTOR, judge, unconfirmed
    record = _record([0.9, 0.0, -14.5], [0.905, 0.001, -14.505])
    ok = judge(record)
    values, u = np.asarray(ok["values"]), np.asarray(ok["uncertainty"])
    long = {"factor": LONG_FACTOR, "batch": LONG_BATCH, "T": LONG_FACTOR * 1000.0, "route": "jitcode",
            "stderr": [1e-3] * 3, "stderr_dof": LONG_BATCH - 1}
    held = judge(dict(record, checks=dict(record["checks"], long_T=dict(long, values=(values + u / 2).tolist()))))
    assert held["verdict"] == "reference" and held["checks"]["long_T"]["passed"]
    allowed = held["checks"]["long_T"]["allowed"][0]
    assert allowed == pytest.approx(u[0] + stats.t.ppf(1 - 5e-5, LONG_BATCH - 1) * 1e-3 + 1.0 / 4000.0)
    assert held["values"] == ok["values"] and held["uncertainty"] == ok["uncertainty"]  # a check, not an estimate
    drifted = values.copy()
    drifted[0] += 1.2 * allowed
    verdict = judge(dict(record, checks=dict(record["checks"], long_T=dict(long, values=drifted.tolist()))))["verdict"]
    assert verdict.startswith("no reference: jitcode over 4 T = 4000 (16 trajectories) moves exponent 1 from 0.9025 "
                              "to ") and verdict.endswith("it drifts with T")
    failed = dict(long, error="TrajectoryError: trajectory 3 diverged")
    assert judge(dict(record, checks=dict(record["checks"], long_T=failed)))["verdict"] == \
        "no reference: the confirmation over 4 T failed (TrajectoryError: trajectory 3 diverged)"
    confirmed = dict(record, verdict="reference", checks=held["checks"])
    assert not unconfirmed(confirmed) and unconfirmed(dict(record, verdict="reference"))
    assert unconfirmed(dict(confirmed, checks=dict(held["checks"], long_T=dict(long, factor=2))))
    assert not unconfirmed(dict(record, verdict="no reference: the routes disagree"))


def test_an_unconfirmed_reference_runs_the_confirmation_alone(tmp_path, monkeypatch):
    """Lorenz over T = 6 periods, 8 + 8 trajectories, is a reference (the leak check waived: so few trajectories
    over so short a T cannot bound an escape rate), confirmed by jitcode over 4 T (4 other trajectories, the
    check's batch made small); a record without that check is 'incomplete', and `lyapbench dysts references`
    runs the check alone, keeping both routes (the same seed gives the same confirmation)."""
    pytest.importorskip("jitcode")
    from suite.cli.dysts import compute
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    monkeypatch.setitem(dysts_references.BUDGETS, "smoke", dict(dysts_references.BUDGETS["smoke"], periods=6,
                                                                 batch=8, jitcode_batch=8))
    monkeypatch.setattr(dysts_references, "LEAK_MAX", math.inf)
    monkeypatch.setattr(dysts_references, "LONG_BATCH", 4)
    flow = rs.get("dysts/Lorenz")
    first = dysts_references.compute_flow(flow, "smoke")
    assert first["verdict"] == "reference", first["verdict"]
    long = first["checks"]["long_T"]
    assert long["T"] == pytest.approx(4 * first["T"]) and long["batch"] == 4 and long["passed"]
    assert np.all(np.asarray(long["allowed"]) > np.asarray(first["uncertainty"]))
    bare = json.loads(json.dumps(first))
    del bare["checks"]["long_T"]
    dysts_references.write(bare, bare["key"])
    assert dysts_references.status(rs.get("dysts/Lorenz")) == dysts_references.UNCONFIRMED
    record, _ = compute("dysts/Lorenz", "smoke")
    assert record["routes"] == first["routes"] and "jitcode_from" in record
    assert record["checks"]["long_T"]["values"] == long["values"] and record["verdict"] == "reference"
    assert dysts_references.status(rs.get("dysts/Lorenz")) == "fresh"
