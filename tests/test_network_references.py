"""Sharp references for the chaotic networks: computed for the finite system by independent routes, fresh,
at the level of a long run, checked against mean-field theory separately; and a referee that uses them."""
from __future__ import annotations

import math

import numpy as np
import pytest

import reference_systems as rs
import reference_systems.networks as nw
from reference_systems import computed
from suite.cli import main
from suite.grid.cells import run_cell, validation_cells, validation_settings
from suite.scoring.tolerance import t_quantile

COMPUTED = [s for s in rs.catalogue() if s.capabilities.reference_run is not None]
LABELS = [s.label for s in COMPUTED]
#: the network configurations issue 27 names, each in the catalogue
REQUIRED = {"random_rnn(N=50, g=2, sigma_b=0, seed=0)", "random_rnn(N=100, g=3, sigma_b=0, seed=0)",
            "deep_random_net(N=32, sigma_w=2, sigma_b=0)", "rate_network(N=32, g=2, tau=1, dt=0.05, seed=0)"}


def test_every_chaotic_network_in_the_catalogue_has_a_computed_reference():
    assert REQUIRED <= set(LABELS), LABELS
    for s in COMPUTED:
        assert s.meta["reference_status"] == "fresh", (s.label, s.meta["reference_status"])
        assert s.reference is not None and s.reference.provenance == "computed"
        assert len(s.reference) == s.dim  # the whole spectrum


@pytest.mark.parametrize("system", COMPUTED, ids=LABELS)
def test_the_routes_agree_and_the_uncertainty_is_that_of_a_long_run(system):
    rec = computed.read(computed.system_key(system))
    two = rec["routes"]["two_trajectory"]
    assert abs(rec["values"][0] - two["lambda1"]) == pytest.approx(two["abs_difference"], abs=1e-15)
    assert two["abs_difference"] <= two["allowed"]
    auto = rec["routes"]["autodiff"]  # every network here has a hand-written Jacobian
    assert auto["max_abs_difference"] <= auto["allowed"] <= 1e-8
    # lambda_1 to about 1e-3 (the rate network's lambda_1 ~ 0 fluctuates most: within 2e-3)
    assert rec["uncertainty"][0] <= 2e-3, rec["uncertainty"][:2]
    # the stored uncertainty is the tolerance rule's: t * stderr + 1/T
    expected = t_quantile(rec["stderr_dof"]) * np.asarray(rec["stderr"]) + rec["bias_nats"] / rec["T"]
    np.testing.assert_allclose(rec["uncertainty"], expected, rtol=1e-12)
    # an exact invariant of the computed spectrum: sum = < ln|det DF| > per step for the RNN
    if system.name == "rate_network":
        assert sum(rec["values"]) == pytest.approx(-system.dim, abs=0.02)  # -N/tau up to RK4's O(dt^4)


def test_a_stale_reference_is_not_used(tmp_path, monkeypatch):
    """A record whose probe no longer matches the dynamics is stale: the system falls back to its limit."""
    system = rs.get("random_rnn", N=50, g=2.0)
    rec = computed.read(computed.system_key(system))
    rec["probe"] = [v * (1 + 1e-3) for v in rec["probe"]]
    import json
    (tmp_path / (computed.system_key(system).replace("/", "__") + ".json")).write_text(json.dumps(rec))
    monkeypatch.setenv("LYAPBENCH_REFERENCES", str(tmp_path))
    again = rs.get("random_rnn", N=50, g=2.0)
    assert again.meta["reference_status"].startswith("stale: the dynamics changed")
    assert again.reference is None and "lyapbench references" in again.capabilities.note


@pytest.mark.parametrize("label, table, x, N, quenched", [
    ("random_rnn(N=100, g=3, sigma_b=0, seed=0)", nw._RNN_FINITE_N, 3.0, 100, True),
    ("random_rnn(N=50, g=2, sigma_b=0, seed=0)", nw._RNN_FINITE_N, 2.0, 50, True),
    ("deep_random_net(N=32, sigma_w=2, sigma_b=0)", nw._DEEP_FINITE_N, 2.0, 32, False),
])
def test_mean_field_plus_the_fitted_finite_size_correction_agrees_with_the_computed_values(
        label, table, x, N, quenched):
    """The mean-field value is the N -> infinity limit: checked here, it no longer sets any tolerance."""
    system = next(s for s in COMPUTED if s.label == label)
    pred = nw.finite_size_prediction(table, x, N, quenched)
    lam, u = system.reference.values[0], system.reference.uncertainty[0]
    sigma = math.sqrt(pred["fit_stderr"] ** 2 + pred["spread"] ** 2 + (u / 2) ** 2)
    assert abs(lam - pred["value"]) <= t_quantile(math.inf) * sigma, (lam, pred)
    if system.meta.get("limit_reference") is not None:  # the mean-field reference is kept beside it
        assert system.meta["limit_reference"].provenance == "mean-field"


def _verdicts(system, names):
    """{estimator: set of statuses of the exponent rows} on ``system`` with its validation budget."""
    out = {}
    for name, cell in zip(names, validation_cells([system], names)):
        rows = run_cell(cell)
        out[name] = {r["status"] for r in rows if r["quantity"] == "exponent"}
    return out


def test_the_referee_sees_a_transposed_jacobian_and_a_bias_on_a_chaotic_rnn():
    system = rs.get("random_rnn", N=50, g=2.0)
    v = _verdicts(system, ["qr", "two_trajectory", "wrong_estimators:Transposed", "wrong_estimators:Biased"])
    assert v["qr"] == {"pass"} and v["two_trajectory"] == {"pass"}, v
    assert "fail" in v["wrong_estimators:Transposed"] and "fail" in v["wrong_estimators:Biased"], v


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(REQUIRED))
def test_compare_on_every_network(label):
    system = next(s for s in COMPUTED if s.label == label)
    v = _verdicts(system, ["qr", "jvp_qr", "two_trajectory", "wrong_estimators:Biased"])
    assert v["qr"] == v["jvp_qr"] == v["two_trajectory"] == {"pass"}, v
    assert "fail" in v["wrong_estimators:Biased"], v


def test_references_command_checks_freshness(capsys):
    assert main(["references", "--check"]) == 0
    err = capsys.readouterr().err
    for label in REQUIRED:
        assert f"{label}: fresh" in err
    assert main(["references", "--systems", "henon"]) == 2  # a system with a closed form: refused, naming it


def test_the_referee_sees_tangent_traps_on_rotating_axes():
    """An Euler tangent beside RK4, a frozen-Jacobian RK4 tangent and J^T fail; qr and two_trajectory pass."""
    v = _verdicts(rs.get("rotating_axes"), ["qr", "two_trajectory", "wrong_estimators:EulerTangent",
                                            "wrong_estimators:FrozenJacobian", "wrong_estimators:Transposed"])
    assert v["qr"] == {"pass"} and v["two_trajectory"] == {"pass"}, v
    for wrong in ("EulerTangent", "FrozenJacobian", "Transposed"):
        assert "fail" in v[f"wrong_estimators:{wrong}"], v


def test_references_command_refuses_an_empty_list():
    assert main(["references", "--systems", ""]) == 2


def test_quick_validation_keeps_the_transient_and_passes_on_the_limit_cycle():
    """--quick shortens the measured run, not the transient: rate_network(N=32, g=2) approaches its limit cycle
    slowly (lambda_2 = -0.066), and with a tenth of its 20 time units 6 of its 32 exponents failed."""
    system = rs.get("rate_network", N=32, g=2.0)
    full, quick = validation_settings(system), validation_settings(system, quick=True)
    assert quick["transient"] == full["transient"] and quick["steps"] == max(200, full["steps"] // 10)
    rows = run_cell(validation_cells([system], ["qr"], quick=True)[0])
    assert rows and all(r["status"] == "pass" for r in rows), [(r["index"], r["status"]) for r in rows
                                                               if r["status"] != "pass"]
