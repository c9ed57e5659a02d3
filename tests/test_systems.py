"""The System contract: shapes, Jacobians, the RK4 tangent, the registry."""
import math

import numpy as np
import pytest
import torch

import reference_systems as rs
from reference_systems.rk4 import rk4_step
from suite.core.errors import InvalidArgumentError, UnknownNameError


def lozi_step(x):
    return torch.stack([1 - 1.7 * x[:, 0].abs() + x[:, 1], 0.5 * x[:, 0]], 1)


def lozi_jacobian(x):
    J = x.new_zeros(x.shape[0], 2, 2)
    J[:, 0, 0] = -1.7 * torch.sign(x[:, 0])
    J[:, 0, 1] = 1.0
    J[:, 1, 0] = 0.5
    return J


def test_catalogue_builds_and_steps():
    for system in rs.catalogue():
        x = system.sample_initial(3, rs.TrajectoryRNG(1, 3))
        assert x.shape == (3, system.dim) and x.dtype == torch.float64
        V = torch.eye(system.dim, dtype=x.dtype).expand(3, -1, -1).contiguous()
        g = rs.TrajectoryRNG(2, 3)
        x1, V1 = system.tangent(x, V, g)
        assert x1.shape == x.shape and V1.shape == V.shape
        assert torch.isfinite(x1).all() and torch.isfinite(V1).all()
        assert system.kind in ("map", "flow") and system.dt > 0
        # step and tangent advance the state identically (same noise for random systems)
        assert torch.equal(system.step(x, rs.TrajectoryRNG(2, 3)), x1)


def test_every_reference_states_provenance_uncertainty_and_source():
    for system in rs.catalogue():
        ref = system.reference
        if ref is None:
            continue
        assert ref.provenance in rs.PROVENANCES
        assert ref.source.strip()
        assert ref.uncertainty.shape == ref.values.shape and np.all(ref.uncertainty >= 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_autodiff_tangent_equals_analytic_jacobian(dtype):
    auto = rs.Map("lozi", lozi_step, dim=2)
    exact = rs.Map("lozi", lozi_step, dim=2, jacobian=lozi_jacobian)
    x = torch.tensor([[0.3, -0.2], [-0.7, 0.1], [0.05, 0.4]], dtype=dtype)
    for k in (1, 2):
        V = torch.randn(3, 2, k, dtype=dtype, generator=torch.Generator().manual_seed(k))
        xa, Va = auto.tangent(x, V)
        xe, Ve = exact.tangent(x, V)
        assert torch.equal(xa, xe)
        torch.testing.assert_close(Va, Ve, rtol=1e-6, atol=0)


def test_lorenz_autodiff_equals_analytic_and_rk4_tangent_is_its_derivative():
    lor = rs.get("lorenz63")
    auto = rs.Flow("lorenz_auto", lor.rhs, dim=3, dt=lor.dt)
    x = lor.sample_initial(4, rs.TrajectoryRNG(0, 4))
    V = torch.eye(3, dtype=torch.float64).expand(4, 3, 3).contiguous()
    _, Ja = auto.tangent(x, V)
    _, Je = lor.tangent(x, V)
    torch.testing.assert_close(Ja, Je, rtol=1e-12, atol=1e-12)
    # the field's own Jacobian (the sum rules' divergence): autodiff = the hand-written one; its trace is Lorenz's
    # constant divergence -(sigma + 1 + beta)
    torch.testing.assert_close(auto.field_jacobian(x), lor.field_jacobian(x), rtol=1e-13, atol=1e-13)
    p = lor.params
    torch.testing.assert_close(torch.diagonal(auto.field_jacobian(x), dim1=1, dim2=2).sum(1),
                               torch.full((4,), -(p["sigma"] + 1 + p["beta"]), dtype=torch.float64))
    # central differences of the RK4 step itself (error O(eps^2) ~ 1e-10 relative)
    eps = 1e-5
    for j in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[j] = eps
        fd = (rk4_step(lor.rhs, x + e, lor.dt) - rk4_step(lor.rhs, x - e, lor.dt)) / (2 * eps)
        torch.testing.assert_close(Je[:, :, j], fd, rtol=1e-7, atol=1e-8)


def test_euler_tangent_would_not_match_the_rk4_step():
    """The check above can fail: a tangent from another scheme differs by O(dt^2)."""
    lor = rs.get("lorenz63")
    x = lor.sample_initial(2, rs.TrajectoryRNG(0, 2))
    eye = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    _, J_rk4 = lor.tangent(x, eye.contiguous())
    J_euler = eye + lor.dt * torch.autograd.functional.jacobian(lambda y: lor.rhs(y).sum(0), x).permute(1, 0, 2)
    assert (J_rk4 - J_euler).abs().max() > 1e-4


def test_register_user_system_and_get_it():
    lozi = rs.Map("lozi_test", lozi_step, dim=2)
    rs.register("lozi_test", lozi)
    try:
        assert "lozi_test" in rs.names()
        assert rs.get("lozi_test") is lozi
        with pytest.raises(InvalidArgumentError, match="no parameters"):
            rs.get("lozi_test", a=1)
    finally:
        rs.unregister("lozi_test")


def test_unknown_names_and_parameters_are_reported():
    with pytest.raises(UnknownNameError, match="Did you mean 'henon'"):
        rs.get("henn")
    with pytest.raises(InvalidArgumentError, match=r"parameter 'rr'.*\['r'\]"):
        rs.get("logistic", rr=3.9)
    with pytest.raises(InvalidArgumentError, match=r"r=4\.5.*\(0, 4\]"):
        rs.get("logistic", r=4.5)
    with pytest.raises(InvalidArgumentError, match="dt"):
        rs.get("lorenz63", dt=-0.01)
    with pytest.raises(InvalidArgumentError, match="dt"):
        rs.Flow("f", lambda x: -x, dim=1, dt=float("nan"))
    with pytest.raises(InvalidArgumentError, match="N"):
        rs.get("gaussian_products", N=0)
    with pytest.raises(InvalidArgumentError, match="diagonalisable"):
        rs.get("linear_map", A=[[1.0, 1.0], [0.0, 1.0]])


def test_wrong_state_shapes_are_reported():
    hen = rs.get("henon")
    with pytest.raises(InvalidArgumentError, match=r"x\.shape.*\(B, 2\)"):
        hen.step(torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match=r"x\.shape"):
        hen.step(torch.zeros(2, dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match=r"V\.shape"):
        hen.tangent(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match="dtype"):
        hen.step(torch.zeros(3, 2, dtype=torch.int64))


def test_random_system_requires_a_trajectory_rng():
    gp = rs.get("gaussian_products", N=3)
    x = gp.sample_initial(2)
    with pytest.raises(InvalidArgumentError, match="TrajectoryRNG"):
        gp.step(x)


def test_reference_rejects_missing_provenance():
    with pytest.raises(ValueError, match="provenance"):
        rs.Reference.make([0.1], [0.0], "guessed", "me")
    with pytest.raises(ValueError, match="source"):
        rs.Reference.make([0.1], [0.0], "exact", " ")
    with pytest.raises(ValueError, match="uncertainty"):
        rs.Reference.make([0.1, 0.2], [0.0, -1.0], "exact", "x")


def test_newman_spectrum_n1_is_mean_log_abs_normal():
    from reference_systems.random_products import newman_spectrum
    # E ln|sigma z| = ln sigma - (gamma + ln 2) / 2 for z ~ N(0, 1)
    assert newman_spectrum(1, 2.0)[0] == pytest.approx(math.log(2.0) - (np.euler_gamma + math.log(2)) / 2, abs=1e-14)


@pytest.mark.parametrize("name", ["lorenz63", "rossler"])
def test_batch_last_step_equals_the_bmm_path_and_keeps_the_callers_layout(name):
    """Lorenz-63 and Rossler opt in to the batch-last layout (reference_systems.layout): J V as d
    broadcast multiply-adds instead of bmm.  Same state bit for bit, same frame to round-off, and
    a caller gets its own layout back (batch-first in: contiguous out)."""
    from reference_systems.layout import is_batch_last, to_batch_last
    fast = rs.get(name)
    plain = rs.Flow(name + "_bmm", fast.rhs, 3, fast.dt, jacobian=fast._jac)
    assert fast.batch_last and not plain.batch_last
    B = 64
    x = fast.sample_initial(B, rs.TrajectoryRNG(0, B))
    V = rs.TrajectoryRNG(1, B).normal(3, 3)
    x_ref, V_ref = plain.tangent(x, V)
    x1, V1 = fast.tangent(x, V)
    assert x1.is_contiguous() and V1.is_contiguous()
    assert torch.equal(x1, x_ref)
    torch.testing.assert_close(V1, V_ref, rtol=1e-13, atol=1e-13)
    x2, V2 = fast.tangent(to_batch_last(x), to_batch_last(V))
    assert is_batch_last(x2) and is_batch_last(V2) and not x2.is_contiguous()
    assert torch.equal(x2, x1) and torch.equal(V2, V1)
    s1, s2 = fast.step(x), fast.step(to_batch_last(x))
    assert s1.is_contiguous() and is_batch_last(s2)
    assert torch.equal(s1, plain.step(x)) and torch.equal(s2, s1)
    # the Jacobian itself, from either layout
    assert torch.equal(fast._jac(to_batch_last(x)), fast._jac(x))


def test_batch_last_needs_a_jacobian_a_small_dimension_and_a_bool():
    lor = rs.get("lorenz63")
    assert not rs.Flow("auto", lor.rhs, 3, lor.dt, batch_last=True).batch_last  # no jacobian: autodiff path
    big = rs.Flow("big", lambda x: -x, 20, 0.1, jacobian=lambda x: -torch.eye(20, dtype=x.dtype).expand(
        x.shape[0], 20, 20), batch_last=True)
    assert not big.batch_last
    with pytest.raises(InvalidArgumentError, match="batch_last"):
        rs.Flow("f", lor.rhs, 3, lor.dt, jacobian=lor._jac, batch_last="yes")


def test_reference_values_out_of_order_are_refused():
    """Scoring compares the i-th estimate (largest first) with the i-th value, so a reference written in another
    order (ln |eig| in the eigenvalues' order, a black-box test's case) would fail a correct estimator: refused.
    Two computed values within their uncertainties of each other may come in either order (the iris training
    maps' near-zero exponents: 8.6e-5 then 1.0e-4)."""
    from reference_systems.reference import Reference
    with pytest.raises(ValueError, match="largest first"):
        Reference.make([np.log(0.5), np.log(0.9)], 0.0, "exact", "ln |eig A|")
    Reference.make([np.log(0.9), np.log(0.5)], 0.0, "exact", "ln |eig A|")
    Reference.make([8.6e-5, 1.0e-4], [3e-5, 3e-5], "computed", "a long QR run")
