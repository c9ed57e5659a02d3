"""Speculative QR runs (checked a chunk of renormalisations at a time, the default on CUDA) give
the numbers and the errors of a run checked at every renormalisation, bit for bit (forced on the
CPU here)."""
import numpy as np
import pytest
import torch

import reference_systems as rs
from suite import estimators
from suite.core.errors import TrajectoryError
from suite.estimators import qr as qr_module
from suite.estimators.qr import QREstimator


def pair(spec):
    careful, fast = estimators.from_spec(spec), estimators.from_spec(spec)
    careful.speculate, fast.speculate = False, True
    return careful, fast


@pytest.fixture
def rollbacks(monkeypatch):
    """Counts the chunks a speculative run redid with checks."""
    calls = []
    original = QREstimator._span

    def counting(self, *args, careful):
        if careful and self.speculate:
            calls.append(args[5:7])  # start, stop
        return original(self, *args, careful=careful)
    monkeypatch.setattr(QREstimator, "_span", counting)
    return calls


def assert_same(a, b):
    np.testing.assert_array_equal(a.per_trajectory, b.per_trajectory)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    np.testing.assert_array_equal(a.history, b.history)
    np.testing.assert_array_equal(a.times, b.times)


@pytest.mark.parametrize("system,params,spec,run", [
    ("henon", {}, "qr", dict(steps=2_000, transient=100, batch=8)),
    ("lorenz63", {}, "qr(reorth_every=10, taper=50, align=100, control_variates=True)",
     dict(steps=500, transient=300, batch=600)),
    ("random_rnn", {"N": 16}, "qr(taper=20)", dict(steps=300, transient=50, batch=1)),
    ("random_rnn", {"N": 16}, "jvp_qr(reorth_every=3)", dict(steps=300, transient=50, batch=2, k=4)),
    ("lorenz63", {}, "qr(reorth_every='auto')", dict(steps=1_000, transient=200, batch=4)),
])
def test_speculative_run_is_the_checked_run(system, params, spec, run, rollbacks):
    sys_ = rs.get(system, **params)
    careful, fast = pair(spec)
    steps = run.pop("steps")
    assert_same(fast.estimate(sys_, steps, seed=5, **run), careful.estimate(sys_, steps, seed=5, **run))
    assert rollbacks == []  # nothing needed redoing: the speculative chunks stood


def test_chunks_with_frames_to_redo_are_rolled_back_and_redone(rollbacks):
    """Gaussian products in float32, Gram-Schmidt every 2 steps: some 2% of the frames exceed its
    range (MGS_MAX_DELTA / eps = 6.7 nats) and must be redone by Householder.  The chunks holding
    them are rolled back, the random streams included (fresh matrices every step), and the result
    is the checked run's."""
    gp = rs.get("gaussian_products", N=4)
    careful, fast = pair("qr(method='mgs', reorth_every=2)")
    a = fast.estimate(gp, 600, batch=4, seed=2, dtype=torch.float32)
    b = careful.estimate(gp, 600, batch=4, seed=2, dtype=torch.float32)
    assert_same(a, b)
    chunks = 600 // (2 * qr_module.SPECULATE_RENORMALISATIONS) + 1
    assert 0 < len(rollbacks) < chunks  # some chunks redone, not all


def test_speculative_errors_are_the_checked_errors(rollbacks):
    hen = rs.Map("henon_escape", step=rs.get("henon")._f, dim=2,
                 sample_initial=lambda batch, g: torch.tensor([[0.0, 0.0]] * (batch - 1) + [[3.0, 0.0]],
                                                              dtype=torch.float64))
    careful, fast = pair("qr")
    for system, run in ((hen, dict(steps=1_000, batch=3)),
                        (rs.get("logistic"), dict(steps=50_000, batch=16, dtype=torch.float32))):
        steps = run.pop("steps")
        errors = []
        for est in (fast, careful):
            with pytest.raises(TrajectoryError) as info:
                est.estimate(system, steps, **run)
            errors.append((str(info.value), info.value.trajectories, info.value.step))
        assert errors[0] == errors[1]
    assert len(rollbacks) == 2
