"""Peer-library adapters (suite/peers, the `peers` extra).

The packages are optional: every adapter must say "not installed" cleanly
without them (tested by hiding them), and the accuracy tests run only where
they are installed (pytest.importorskip: CI may install `.[test]` only).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import reference_systems as rs
from suite import estimators
from suite.core.errors import InvalidArgumentError, LyapbenchError, NotApplicableError, NotInstalledError
from suite.peers import ADAPTERS, PeerError, PeerImportError, import_peer
from suite.grid.cells import Cell, run_cell
from suite.scoring.rows import score

NAMES = ["nolds_lyap_r", "nolds_lyap_e", "neurokit2_lyapunov", "lyapynov_lce", "jitcode_lyap", "dysts_lyapunov",
         "lyapax_spectrum"]
PACKAGES = {"nolds_lyap_r": "nolds", "nolds_lyap_e": "nolds", "neurokit2_lyapunov": "neurokit2",
            "lyapynov_lce": "lyapynov", "jitcode_lyap": "jitcode", "dysts_lyapunov": "dysts",
            "lyapax_spectrum": "lyapax"}
FLOW_PEERS = ("jitcode_lyap", "dysts_lyapunov", "lyapynov_lce", "lyapax_spectrum")
LORENZ = (0.9056, 0.0, -14.5723)
HENON_L1 = 0.41922


def _cell(system, name, est=None, **settings):
    s = dict(steps=400, transient=100, batch=2, seed=0)
    s.update(settings)
    return Cell(system, name, est or estimators.get(name), s)


def _hide(monkeypatch, package):
    """Make ``import package`` (and its submodules) fail as if it were not installed."""
    for key in list(sys.modules):
        if key == package or key.startswith(package + "."):
            monkeypatch.setitem(sys.modules, key, None)
    monkeypatch.setitem(sys.modules, package, None)


# -- registry and lazy imports --------------------------------------------------------------------
def test_registered_and_not_in_default_validation():
    assert set(NAMES) <= set(estimators.names())
    assert [c.name for c in ADAPTERS] == NAMES
    for name in NAMES:
        est = estimators.get(name)
        assert est.name == name and est.in_default_validation is False
        assert name not in estimators.validation_defaults()


def test_core_imports_no_peer_package():
    code = textwrap.dedent("""
        import sys
        from suite import estimators
        import suite.grid.runner, suite.peers
        for n in estimators.names():
            estimators.get(n)
        loaded = [m for m in ("nolds", "neurokit2", "lyapynov", "jitcode", "dysts", "symengine", "sklearn", "jax",
                              "lyapax")
                  if m in sys.modules]
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- not installed ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_not_installed_is_a_clean_row(monkeypatch, name):
    pkg = PACKAGES[name]
    _hide(monkeypatch, pkg)
    system = rs.get("lorenz63") if name in FLOW_PEERS else rs.get("henon")
    with pytest.raises(NotInstalledError) as info:
        estimators.get(name).estimate(system, 400, transient=10, batch=2)
    assert not isinstance(info.value, PeerImportError)
    assert pkg in str(info.value) and "lyapbench[peers]" in str(info.value)
    rows = run_cell(_cell(system, name))
    assert len(rows) == 1 and rows[0]["status"] == "not installed", rows
    assert pkg in rows[0]["message"]


def test_installed_but_broken_package_reports_the_cause(tmp_path, monkeypatch):
    pkg = tmp_path / "lyapbench_broken_peer"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError(\"'lyapbench_broken_peer.datasets' is not a package\")\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PeerImportError) as info:
        import_peer("lyapbench_broken_peer")
    msg = str(info.value)
    assert "is installed but fails to import" in msg and "is not a package" in msg
    assert isinstance(info.value, NotInstalledError)

    class Broken(type(estimators.get("nolds_lyap_r"))):
        package = module = "lyapbench_broken_peer"

    rows = run_cell(_cell(rs.get("henon"), "broken", Broken()))
    assert rows[0]["status"] == "not installed" and "fails to import" in rows[0]["message"]


# -- not applicable --------------------------------------------------------------------------------
def test_not_applicable_with_reason():
    jit, dy = estimators.get("jitcode_lyap"), estimators.get("dysts_lyapunov")
    henon = rs.get("henon")
    assert "map" in jit.not_applicable(henon)
    no_sym = rs.Flow("plain", lambda x: -x, dim=2, dt=0.1)
    assert "symbolic_rhs" in jit.not_applicable(no_sym)
    assert "map" in dy.not_applicable(henon)
    assert "no model" in dy.not_applicable(rs.get("linear_ode"))
    lx = estimators.get("lyapax_spectrum")
    assert "map" in lx.not_applicable(henon) and "symbolic_rhs" in lx.not_applicable(no_sym)
    for system, name in ((henon, "jitcode_lyap"), (rs.get("linear_ode"), "dysts_lyapunov"), (henon, "lyapax_spectrum")):
        rows = run_cell(_cell(system, name))
        assert rows[0]["status"] == "not applicable" and rows[0]["message"], rows
        with pytest.raises(NotApplicableError):
            estimators.get(name).estimate(system, 100)


def test_dysts_twin_with_other_equations_is_not_applicable():
    pytest.importorskip("dysts")
    # named like the catalogue's Lorenz-63 but with another vector field
    fake = rs.Flow("lorenz63", lambda x: torch.stack([x[:, 1], -x[:, 0], -x[:, 2]], dim=1), dim=3, dt=0.01,
                   params={"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0})
    reason = estimators.get("dysts_lyapunov").not_applicable(fake)
    assert reason and "right-hand sides differ" in reason
    assert estimators.get("dysts_lyapunov").not_applicable(rs.get("lorenz63")) is None


# -- arguments ---------------------------------------------------------------------------------------
def test_arguments_checked_before_the_peer_is_needed(monkeypatch):
    henon = rs.get("henon")
    for pkg in ("nolds", "lyapynov"):
        _hide(monkeypatch, pkg)
    with pytest.raises(InvalidArgumentError, match="largest exponent only"):
        estimators.get("nolds_lyap_r").estimate(rs.get("lorenz63"), 400, k=2)
    with pytest.raises(InvalidArgumentError, match="float64"):
        estimators.get("lyapynov_lce").estimate(henon, 400, dtype=torch.float32)
    with pytest.raises(InvalidArgumentError):
        estimators.get("jitcode_lyap", renorm_every=0)
    with pytest.raises(InvalidArgumentError):
        estimators.get("lyapynov_lce", integrator="euler")


def test_symbolic_rhs_is_the_same_vector_field():
    for system in (rs.get("lorenz63"), rs.get("rossler"), rs.get("lorenz96", N=6), rs.get("linear_ode")):
        x = torch.randn(5, system.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        sym = np.array([system.meta["symbolic_rhs"]([float(v) for v in row]) for row in x])
        np.testing.assert_allclose(sym, system.rhs(x).numpy(), rtol=1e-13, atol=1e-12)


# -- with the packages installed -------------------------------------------------------------------
def _assert_result(res, batch, k):
    assert res.exponents.shape == (k,) and res.per_trajectory.shape == (batch, k)
    assert np.all(np.isfinite(res.stderr)) and np.all(res.stderr > 0)
    assert res.meta["peer"].split()[0] in PACKAGES.values()


def test_lyapynov_recovers_lorenz_spectrum():
    pytest.importorskip("lyapynov")
    s = rs.get("lorenz63")
    res = estimators.get("lyapynov_lce").estimate(s, 5000, transient=1000, batch=1, seed=0)
    _assert_result(res, 1, 3)
    assert res.meta["stderr_dof"] == 19 and res.times[-1] == pytest.approx(50.0)
    rows = score(s, "lyapynov_lce", res)
    assert [r["status"] for r in rows] == ["pass"] * 3, [(r["estimate"], r["tolerance"]) for r in rows]
    # the running sums fed to the accumulator reproduce lyapynov's own final values
    np.testing.assert_allclose(res.history[-1], res.exponents, rtol=1e-10, atol=1e-12)


def test_lyapynov_on_maps_and_k():
    pytest.importorskip("lyapynov")
    res = estimators.get("lyapynov_lce").estimate(rs.get("henon"), 1500, transient=100, batch=2, seed=1)
    _assert_result(res, 2, 2)
    assert abs(res.exponents.sum() - np.log(0.3)) < 1e-9          # det J = -b on every orbit
    assert abs(res.exponents[0] - HENON_L1) < 0.03
    one = estimators.get("lyapynov_lce").estimate(rs.get("logistic"), 1000, transient=10, batch=2, k=1)
    assert one.exponents.shape == (1,) and abs(one.exponents[0] - np.log(2)) < 0.1
    k1 = estimators.get("lyapynov_lce").estimate(rs.get("henon"), 300, batch=2, k=1)
    assert k1.exponents.shape == (1,)


def test_jitcode_recovers_lorenz_spectrum():
    jitcode = pytest.importorskip("jitcode")
    s = rs.get("lorenz63")
    # the compiled C right-hand side is the system's vector field (and its Jacobian on the frame)
    ode, _ = estimators.get("jitcode_lyap")._compiled(jitcode, s, 3)
    x = torch.tensor([[1.3, -2.1, 20.7]], dtype=torch.float64)
    f = np.asarray(ode.f(0.0, np.concatenate([x[0].numpy(), np.eye(3).ravel()])))
    np.testing.assert_allclose(f[:3], s.rhs(x)[0].numpy(), rtol=1e-13, atol=1e-12)
    J = torch.autograd.functional.jacobian(lambda v: s.rhs(v[None])[0], x[0]).numpy()
    np.testing.assert_allclose(f[3:].reshape(3, 3), J.T, rtol=1e-13, atol=1e-12)   # row i: J e_i
    # simplified by SymPy (jitcode's default for d <= 10, off here): other expressions, the same equations
    simplified, _ = estimators.get("jitcode_lyap", simplify=True)._compiled(jitcode, s, 3)
    np.testing.assert_allclose(simplified.f(0.0, np.concatenate([x[0].numpy(), np.eye(3).ravel()])), f,
                               rtol=1e-13, atol=1e-12)
    with pytest.raises(InvalidArgumentError, match="simplify"):
        estimators.get("jitcode_lyap", simplify="yes")
    res = estimators.get("jitcode_lyap").estimate(s, 5000, transient=1000, batch=16, seed=0)
    _assert_result(res, 16, 3)
    assert res.meta["compile_seconds"] >= 0.0 and res.meta["simplify"] is False
    rows = score(s, "jitcode_lyap", res)
    assert [r["status"] for r in rows] == ["pass"] * 3, [(r["estimate"], r["tolerance"]) for r in rows]
    # batch = 1: batch means of jitcode's per-interval exponents; compiled code reused
    one = estimators.get("jitcode_lyap").estimate(s, 2000, transient=1000, batch=1, k=1)
    assert one.exponents.shape == (1,) and one.meta["stderr_method"].startswith("batch means")
    again = estimators.get("jitcode_lyap").estimate(s, 2000, transient=1000, batch=1, k=1)
    assert again.meta["compile_seconds"] == 0.0
    np.testing.assert_array_equal(again.per_trajectory, one.per_trajectory)


def test_jitcode_starts_as_qr_does_and_aligns_its_frame_over_the_transient():
    """jitcode's start is qr()'s (the same states and random frame from the run's generator, the frame aligned over
    the transient), so over a short T both measure the same finite-time exponents of the same trajectories: they
    differ by the RK4 map's error alone, which Richardson estimates as 16/15 (qr(dt / 2) - qr(dt)) (allowed
    twice that, for the higher-order terms, plus dopri5's 1e-10 tolerances).  align=0 measures from the random
    frame: its alignment, a boundary term of up to ~1 nat / T here, is then in the estimate."""
    pytest.importorskip("jitcode")
    s = rs.get("lorenz63")
    run = dict(transient=300, batch=3, seed=5)
    jit = estimators.get("jitcode_lyap").estimate(s, 400, **run)
    assert jit.meta["aligned_steps"] == 300
    ref = estimators.get("qr", reorth_every=10).estimate(s, 400, **run)
    half = estimators.get("qr", reorth_every=10).estimate(rs.get("lorenz63", dt=s.dt / 2), 800,
                                                          **dict(run, transient=600))
    richardson = (half.per_trajectory - ref.per_trajectory) * 16 / 15
    assert np.all(np.abs(jit.per_trajectory - ref.per_trajectory) <= 2 * np.abs(richardson) + 1e-8)
    unaligned = estimators.get("jitcode_lyap", align=0).estimate(s, 400, **run)
    assert unaligned.meta["aligned_steps"] == 0
    assert np.max(np.abs(unaligned.per_trajectory - ref.per_trajectory)) > 10 * np.max(np.abs(richardson))
    with pytest.raises(InvalidArgumentError, match="align"):
        estimators.get("jitcode_lyap", align=-1)


def test_lyapax_recovers_lorenz_and_the_exact_linear_spectrum():
    """lyapax's RK4 map with our dt: Lorenz-63 judged like every estimator (the RK4 map's exponents), and a
    linear ODE's exact exponents (the real parts of A's eigenvalues) to round-off of the RK4 map's."""
    pytest.importorskip("lyapax")
    s = rs.get("lorenz63")
    res = estimators.get("lyapax_spectrum").estimate(s, 5000, transient=1000, batch=8, seed=0)
    _assert_result(res, 8, 3)
    assert res.meta["integrates"] == "rk4_map" and res.meta["renorm_every"] == 10
    rows = score(s, "lyapax_spectrum", res)
    assert [r["status"] for r in rows] == ["pass"] * 3, [(r["estimate"], r["tolerance"]) for r in rows]
    lin = rs.get("linear_ode")
    one = estimators.get("lyapax_spectrum", renorm_every=7).estimate(lin, 3000, transient=500, batch=1)
    assert one.meta["renorm_every"] == 1 and one.meta["stderr_method"].startswith("batch means")  # gcd(7, 3000)
    rows = score(lin, "lyapax_spectrum", one)
    assert [r["status"] for r in rows] == ["pass"] * lin.dim, [(r["estimate"], r["tolerance"]) for r in rows]
    with pytest.raises(InvalidArgumentError, match="float64"):
        estimators.get("lyapax_spectrum").estimate(s, 100, dtype=torch.float32)


def test_nolds_lyap_r_recovers_henon_roughly():
    """Rosenstein's slope on the Henon x-series (2000 samples, 2-D delay embedding).

    Tolerance 0.02 (5 %): the slope is fitted to the mean log divergence over
    trajectory_len = 8 steps, which starts at neighbours not yet aligned with
    the unstable direction and bends towards saturation (ln(size / d0) ~ 7 nats
    is reached after ~16 steps at 0.42 per step); in our runs the estimate
    falls 0.003-0.008 below 0.41922.  The adapter's stated fit-region spread
    (meta['method_bias']) is of the same size.
    """
    pytest.importorskip("nolds")
    henon = rs.get("henon")
    est = estimators.get("nolds_lyap_r", emb_dim=2, lag=1, min_tsep=10, trajectory_len=8)
    res = est.estimate(henon, 2000, transient=100, batch=4, seed=0)
    _assert_result(res, 4, 1)
    assert abs(res.exponents[0] - HENON_L1) < 0.02, res
    assert 0 < res.meta["method_bias"][0] < 0.05
    assert res.meta["sample_interval"] == 1.0 and res.meta["n_samples"] == 2000
    again = est.estimate(henon, 2000, transient=100, batch=4, seed=0)
    np.testing.assert_array_equal(again.per_trajectory, res.per_trajectory)   # RANSAC seeded
    single = est.estimate(henon, 2000, transient=100, batch=1, seed=0)
    assert single.meta["stderr_dof"] == 3 and single.stderr[0] > 0
    with pytest.raises(PeerError, match="nolds failed"):     # nolds's own error, wrapped
        estimators.get("nolds_lyap_r").estimate(henon, 30, batch=2)
    with pytest.raises(InvalidArgumentError, match="segments"):
        estimators.get("nolds_lyap_r", emb_dim=2, lag=1, min_tsep=10, trajectory_len=8).estimate(
            henon, 100, batch=1)


def test_nolds_lyap_e_and_neurokit2_on_henon():
    henon = rs.get("henon")
    if _installed("nolds"):
        res = estimators.get("nolds_lyap_e", emb_dim=2, matrix_dim=2).estimate(henon, 2000, transient=100, batch=2)
        _assert_result(res, 2, 2)
        assert res.exponents[0] > res.exponents[1] and abs(res.exponents[0] - HENON_L1) < 0.05
    if _installed("neurokit2"):
        res = estimators.get("neurokit2_lyapunov", len_trajectory=8).estimate(henon, 2000, transient=100, batch=2)
        _assert_result(res, 2, 1)
        assert abs(res.exponents[0] - HENON_L1) < 0.02
    if not (_installed("nolds") or _installed("neurokit2")):
        pytest.skip("neither nolds nor neurokit2 installed")


def test_dysts_runs_on_its_twin():
    pytest.importorskip("dysts")
    s = rs.get("lorenz63")
    res = estimators.get("dysts_lyapunov").estimate(s, 500, transient=500, batch=2)
    _assert_result(res, 2, 3)
    assert res.meta["dysts_model"] == "Lorenz" and res.meta["dysts_parameters"]["beta"] == 8.0 / 3.0
    assert set(res.meta["dysts_defaults_differ"]) <= {"beta"}   # dysts 0.96's own Lorenz has beta = 2.667
    with pytest.raises(InvalidArgumentError, match="batch"):
        estimators.get("dysts_lyapunov").estimate(s, 500, batch=1)


def _installed(pkg):
    try:
        import_peer(pkg)
    except LyapbenchError:
        return False
    return True


def test_a_peer_that_exits_the_process_is_a_peer_error():
    """setuptools ends the process with SystemExit when a C compilation fails (gcc's segmentation fault on
    MacArthur's jitcode equations): the adapter turns it into a PeerError naming the step, so that a grid or a
    reference run records the failure and goes on (a SystemExit is not an Exception and passed every handler)."""
    def compile_c():
        raise SystemExit("error: command '/usr/bin/gcc' failed with exit code 4")
    with pytest.raises(PeerError, match=r"jitcode failed \(compiling\): SystemExit: error: command '/usr/bin/gcc'"):
        estimators.get("jitcode_lyap").call_peer("compiling", compile_c)


def test_the_c_compiler_gets_the_hard_stack_limit_and_the_soft_one_is_restored():
    """gcc's recursion over MacArthur's tangent equations overflowed the default 8 MiB stack: jitcode compiles
    with the soft limit raised to the hard one, and the process's own limit is as it was afterwards."""
    resource = pytest.importorskip("resource")
    from suite.peers.jitcode_adapter import _deep_stack
    before = resource.getrlimit(resource.RLIMIT_STACK)
    with _deep_stack():
        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        assert soft == hard == before[1]
    assert resource.getrlimit(resource.RLIMIT_STACK) == before
