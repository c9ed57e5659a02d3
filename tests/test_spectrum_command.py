"""``lyapbench spectrum``: a saved recurrent model's spectrum, confirmed, with exact values by construction."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference_systems as rs
import tasks
from suite import estimators
from suite.cli import main
from suite.core.errors import TrajectoryError
from suite.scoring.tolerance import derive
from suite.studies.spectrum import measure

MODEL = '''
import torch
from torch import nn


def contracting():
    """A tanh RNN with small recurrent weights and no input: h -> 0, where the tangent map is W_hh."""
    torch.manual_seed(0)
    m = nn.RNN(input_size=2, hidden_size=6, bias=False)
    with torch.no_grad():
        m.weight_hh_l0.copy_(0.4 * torch.randn(6, 6) / 6 ** 0.5)
    return m


def lstm():
    torch.manual_seed(1)
    return nn.LSTM(input_size=3, hidden_size=4, num_layers=2)
'''


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_exact_spectrum_of_a_contracting_rnn(model_dir, capsys):
    import user_models
    W = user_models.contracting().weight_hh_l0.detach().double().numpy()
    exact = np.sort(np.log(np.abs(np.linalg.eigvals(W))))[::-1]
    assert main(["spectrum", "--module", "user_models:contracting", "--steps", "400", "--transient", "200",
                 "--batch", "4", "--output-dir", "out"]) == 0
    printed = capsys.readouterr().out
    assert "PASS  lambda_1 by two_trajectory" in printed and "PASS  sum rule" in printed
    rows = np.genfromtxt(model_dir / "out" / "spectrum.csv", delimiter=",", names=True)
    # exact after the transient (|h| ~ 0.4^t): every exponent within its derived tolerance (b = ln cond(P) + 1)
    P = np.linalg.eig(W)[1]
    tol = derive(stderr=rows["stderr"], dof=3, T=400, bias_nats=1 + math.log(np.linalg.cond(P))).total + 1e-9
    assert np.all(np.abs(rows["estimate"] - exact) <= tol), (rows["estimate"], exact, tol)
    assert (model_dir / "out" / "spectrum.png").is_file()


def test_checkpoint_and_inputs_files(model_dir, capsys):
    import user_models
    torch.save(user_models.lstm().state_dict(), model_dir / "ck.pt")
    torch.save(torch.randn(50, 3), model_dir / "inputs.pt")
    assert main(["spectrum", "--module", "user_models:lstm", "--checkpoint", "ck.pt", "--inputs", "inputs.pt",
                 "--k", "3", "--steps", "300", "--batch", "4", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "16 state variables, 3 exponents" in out
    assert "Kaplan-Yorke dimension: 0.0" in out  # lambda_1 < 0 fixes D_KY = 0 even from a partial spectrum


@pytest.mark.parametrize("argv, flag", [
    (["--module", "user_models:nothing"], "--module"),
    (["--module", "user_models"], "--module"),
    (["--module", "user_models:lstm", "--checkpoint", "missing.pt"], "--checkpoint"),
    (["--module", "user_models:lstm", "--inputs", "missing.pt"], "--inputs"),
    (["--module", "user_models:lstm", "--k", "99"], "--k"),
    (["--module", "user_models:lstm", "--seed", "-1"], "--seed"),
])
def test_bad_usage_names_the_flag(model_dir, capsys, argv, flag):
    assert main(["spectrum", *argv, "--no-write"]) == 2
    assert flag in capsys.readouterr().err


def test_eps_runs_to_that_accuracy():
    """--eps is suite.estimate_to_accuracy with qr named plainly: the rows' half-widths (t * stderr + the bias
    bound) are <= eps, the bias bound is the one measured for its aligned frame (0 on Henon, whose frames agree to
    the last bit), and the estimates lie within eps of Henon's exponents."""
    henon = rs.get("henon")
    out = measure(henon, steps=500, transient=100, batch=8, eps=0.02)
    assert out.eps_reached and out.ok and all(r["half_width"] <= 0.02 for r in out.rows())
    acc = out.result.meta["accuracy"]
    assert acc["eps"] == 0.02 and acc["reference_bias_nats"] == 1.0 and acc["bias_nats"] == 0.0
    assert acc["alignment"]["bias_nats"] == 0.0 and acc["runs"][-1]["settings"].get("taper")
    assert np.all(np.abs(out.result.exponents - henon.reference.values) <= 0.02)


def test_a_disagreement_is_reported_not_hidden():
    """A hand-written Jacobian twice too large shifts QR's lambda_1 by ln 2; two_trajectory does not."""
    def step(x):
        return torch.stack([1 - 1.4 * x[:, 0] ** 2 + x[:, 1], 0.3 * x[:, 0]], 1)

    def wrong_jacobian(x):
        J = torch.zeros(x.shape[0], 2, 2, dtype=x.dtype)
        J[:, 0, 0], J[:, 0, 1], J[:, 1, 0] = -2.8 * x[:, 0], 1.0, 0.3
        return 2 * J
    system = rs.Map("henon_wrong_jacobian", step, 2, jacobian=wrong_jacobian,
                    sample_initial=lambda b, g: 0.1 * g.normal(2))
    out = measure(system, steps=2000, transient=100, batch=8)
    assert not out.ok
    check = next(c for c in out.checks if c["check"] == "lambda_1 by two_trajectory")
    assert check["status"] == "fail" and ">" in check["message"]


def test_a_direction_lost_to_round_off_reruns_with_the_rank():
    """A contracting map that annihilates one direction only to round-off (its rounded Jacobian O diag(0.9, 0.5, 0)
    O^T): the third direction's growth sits at the round-off floor, which raises in float64 with the rank (2);
    the spectrum reruns with k = 2, exact, and says that exponent 3 on is -inf."""
    O = torch.linalg.qr(torch.tensor([[1.0, 2.0, 0.5], [-0.3, 1.0, 2.0], [0.7, -1.2, 1.0]], dtype=torch.float64))[0]
    J = O @ torch.diag(torch.tensor([0.9, 0.5, 0.0], dtype=torch.float64)) @ O.T
    system = rs.Map("projecting", lambda x: x @ J.T, 3, jacobian=lambda x: J.expand(x.shape[0], 3, 3))
    out = measure(system, steps=400, transient=50, batch=4)
    check = next(c for c in out.checks if c["check"] == "resolution")
    assert check["status"] == "pass" and "exponents 3 on are -inf" in check["message"] and out.ok
    np.testing.assert_allclose(out.result.exponents, [math.log(0.9), math.log(0.5)], atol=1e-12)


def test_a_collapsed_frame_reruns_with_the_rank_and_names_the_minus_infinite_exponents():
    """x -> D x with D = diag(0.9, 0.5, 0): the frame collapses at step 1 (rank 2, an exact zero), so the spectrum
    reruns with k = 2 (exact: ln 0.9, ln 0.5) and says that exponent 3 on is -inf; no error, no round-off number."""
    D = torch.tensor([0.9, 0.5, 0.0], dtype=torch.float64)
    system = rs.Map("inactive_unit", lambda x: x * D, 3, jacobian=lambda x: torch.diag(D).expand(x.shape[0], 3, 3))
    out = measure(system, steps=400, transient=50, batch=4)
    np.testing.assert_allclose(out.result.exponents, [math.log(0.9), math.log(0.5)], atol=1e-12)
    check = next(c for c in out.checks if c["check"] == "resolution")
    assert check["status"] == "pass" and "kept at most 2 of 3 directions" in check["message"]
    assert "exponents 3 on are -inf" in check["message"] and out.ok


def test_a_drifting_estimate_fails_the_stationarity_check_and_a_stationary_one_passes():
    """A Jordan block's finite-time error decays as ln T / T, not as a boundary term: over transient 500 and
    T = 2,000 its first half exceeds its second by ln 3 / 1000 - ln(5/3) / 1000 = 5.9e-4, which the check sees
    (the trajectories agree, so the standard error is round-off); Henon's halves agree."""
    A = torch.tensor([[0.9, 1.0], [0.0, 0.9]], dtype=torch.float64)
    jordan = rs.Map("jordan", lambda x: x @ A.T, 2, jacobian=lambda x: A.expand(x.shape[0], 2, 2))
    out = measure(jordan, steps=2000, transient=500, batch=8)
    check = next(c for c in out.checks if c["check"] == "stationarity")
    assert check["status"] == "fail" and "drifts with T" in check["message"] and not out.ok
    d = np.asarray(out.result.meta["drift"]["difference"])
    np.testing.assert_allclose(d[0], (math.log(3.0) - math.log(5 / 3)) / 1000, rtol=0.05)
    out = measure(rs.get("henon"), steps=2000, transient=100, batch=16)
    assert next(c for c in out.checks if c["check"] == "stationarity")["status"] == "pass" and out.ok


def test_trajectories_on_different_attractors_fail_the_one_attractor_check():
    """h -> tanh(3 h + 0.5) has two stable fixed points, with exponents ln|3 (1 - h*^2)| = -2.44 and -4.51:
    starts drawn on (-1, 1) split between them, their mean describes neither, and the check says so; the
    trajectories of Henon's one attractor spread as their noise allows (Q / dof 1.2 and 0.9 at seeds 0, 1)."""
    bistable = rs.Map("bistable", lambda x: torch.tanh(3 * x + 0.5), 1,
                      sample_initial=lambda b, g: 2 * g.uniform(1) - 1)
    out = measure(bistable, steps=2000, transient=100, batch=16)
    fixed = (0.9981577, -0.9853976)  # h* = tanh(3 h* + 0.5), the two stable roots (scipy's brentq, rounded)
    per = out.result.per_trajectory[:, 0]
    assert set(np.round(per, 2)) == {round(math.log(3 * (1 - h * h)), 2) for h in fixed}, per
    check = next(c for c in out.checks if c["check"] == "one attractor")
    assert check["status"] == "fail" and "do not share one exponent" in check["message"] and not out.ok
    out = measure(rs.get("henon"), steps=2000, transient=100, batch=16)
    assert next(c for c in out.checks if c["check"] == "one attractor")["status"] == "pass"


def test_a_relu_network_whose_units_switch_off_keeps_only_the_exponents_its_rank_allows():
    """A driven ReLU RNN (16 units, half of them inactive at a typical step): its Jacobian's rank falls to 5 along
    the orbit, so exponents 6 on are -inf. qr with k = 8 used to return four finite numbers for them (-0.64 to
    -1.17, round-off averaged); in float64 a direction at the round-off floor in any interval now raises with
    the rank, and the spectrum reruns down to it, keeping the leading exponents of the k = 5 run exactly."""
    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 16, nonlinearity="relu", batch_first=True).double()
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(1.5)
        rnn.bias_hh_l0.add_(0.5)
    system = tasks.from_module(rnn.eval(), 2 * torch.randn(200, 3, dtype=torch.float64))
    with pytest.raises(TrajectoryError, match="at the round-off floor") as info:
        estimators.get("qr").estimate(system, 2000, transient=200, batch=8, seed=0, k=8)
    assert info.value.rank is not None and info.value.rank < 8
    out = measure(system, steps=2000, transient=200, batch=8)
    five = estimators.get("qr").estimate(system, 2000, transient=200, batch=8, seed=0, k=5)
    np.testing.assert_array_equal(out.result.exponents, five.exponents)
    check = next(c for c in out.checks if c["check"] == "resolution")
    assert check["status"] == "pass" and "exponents 6 on are -inf" in check["message"] and out.ok
