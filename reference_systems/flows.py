"""Flows with known exponents: Lorenz-63, Rossler, Lorenz-96, linear ODEs, rotating axes."""
from __future__ import annotations

import math

import numpy as np
import torch

from reference_systems._checks import diagonalisable
from suite.core.args import check_int, check_number
from suite.core.errors import InvalidArgumentError
from reference_systems.layout import stack_like, stored_batch_last
from reference_systems.reference import Reference
from reference_systems.registry import register
from reference_systems.system import Flow

_LORENZ_STANDARD = (10.0, 28.0, 8.0 / 3.0)

# Right-hand sides written with + - * only, so that ONE definition serves torch
# tensors (the RK4 flow), plain floats and SymEngine/SymPy symbols: a flow's
# ``meta['symbolic_rhs'](ys)`` maps a list of d scalars or symbols to the list
# of the d components of f (used by peer libraries that compile the equations,
# e.g. jitcode; suite/peers).


def _lorenz63_f(X, Y, Z, sigma, rho, beta):
    return sigma * (Y - X), X * (rho - Z) - Y, X * Y - beta * Z


def _rossler_f(X, Y, Z, a, b, c):
    return -Y - Z, X + a * Y, b + Z * (X - c)


def lorenz63(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0, dt: float = 0.01) -> Flow:
    """Lorenz-63: x' = sigma (y - x), y' = x (rho - z) - y, z' = x y - beta z.

    Exponents per unit time.  At (10, 28, 8/3): 0.9056, 0, -14.5723
    (Sprott, "Chaos and Time-Series Analysis", OUP 2003, table A.1; +-5e-4;
    the middle exponent is exactly 0 for an autonomous flow).  For any
    parameters the divergence is constant, so the sum of the exponents is
    -(sigma + 1 + beta) exactly (for the RK4 map: up to O(dt^4)).
    J = [[-sigma, sigma, 0], [rho - z, -1, -x], [y, x, -beta]].

    Initial states are drawn near (0, 0, 25) and need a transient of about
    20 time units: the ensemble stays partly in phase for some 30 (its mean z
    is 22.0 after 10 time units, 23.1 after 20, 23.54 stationary), and after
    a transient of 10 lambda_2 came out +0.0013 and +0.0017 at T = 25 (4096
    trajectories, two seeds, standard error 0.0005); after 20, -0.0005,
    0.0000 and +0.0006 (three seeds).
    The validation transient is 2,000 steps (20 time units at dt = 0.01).
    """
    sigma, rho, beta = check_number("sigma", sigma), check_number("rho", rho), check_number("beta", beta)
    dt = check_number("dt", dt, low=0.0, low_open=True)
    ref = None
    if (sigma, rho, beta) == _LORENZ_STANDARD:
        ref = Reference.make([0.9056, 0.0, -14.5723], [5e-4, 0.0, 5e-4], "literature",
                             "Sprott, Chaos and Time-Series Analysis (OUP 2003), table A.1; "
                             "the zero exponent is exact")

    def rhs(x):
        return stack_like(x, _lorenz63_f(x[:, 0], x[:, 1], x[:, 2], sigma, rho, beta))

    def symbolic_rhs(ys):
        return list(_lorenz63_f(*ys, sigma, rho, beta))

    # J is affine in the state: vec(J) = c + x @ M, M picking -z, -x, y, x into their entries.
    # One addmm instead of a dozen small ops (for small batches each op's fixed cost is most
    # of its time).  Every entry is a constant plus at most one +-x_i (the other products are
    # exact zeros), so the result is the correctly rounded sum whatever BLAS kernel computes
    # it: bits do not depend on the batch size or a trajectory's place in it.  For batch-last
    # states (reference_systems.layout) the same product is taken transposed, vec(J)^T = c + M^T x^T.
    jac_const = torch.tensor([-sigma, sigma, 0.0, rho, -1.0, 0.0, 0.0, 0.0, -beta], dtype=torch.float64)
    jac_linear = torch.zeros(3, 9, dtype=torch.float64)
    jac_linear[2, 3], jac_linear[0, 5], jac_linear[1, 6], jac_linear[0, 7] = -1.0, -1.0, 1.0, 1.0

    def jacobian(x):
        if stored_batch_last(x):
            return torch.addmm(jac_const.to(x)[:, None], jac_linear.to(x).T, x.T).view(3, 3, -1).permute(2, 0, 1)
        return torch.addmm(jac_const.to(x), x, jac_linear.to(x)).view(-1, 3, 3)

    def sample_initial(batch, g):
        # a box around the attractor; the transient brings states onto it
        return g.normal(3, std=5.0) + torch.tensor([0.0, 0.0, 25.0], dtype=torch.float64, device=g.device)

    return Flow("lorenz63", rhs, dim=3, dt=dt, jacobian=jacobian, reference=ref,
                sample_initial=sample_initial,
                params={"sigma": sigma, "rho": rho, "beta": beta, "dt": dt},
                divergence=-(sigma + 1.0 + beta), symbolic_rhs=symbolic_rhs, batch_last=True,
                validation={"steps": 10_000, "transient": 2_000, "batch": 256})


register("lorenz63", lorenz63)


def rossler(a: float = 0.2, b: float = 0.2, c: float = 5.7, dt: float = 0.02) -> Flow:
    """Rossler: x' = -y - z, y' = x + a y, z' = b + z (x - c); exponents per unit time.

    At (0.2, 0.2, 5.7): 0.0714, 0, -5.3943 (Sprott, "Chaos and Time-Series
    Analysis", OUP 2003, table A.1), +-3e-4; the zero exponent is exact.
    div f = a + x - c is not constant: the sum rule holds against <div f>
    along trajectories, a - c + <x> = -5.3222 +- 0.0003 (<x> = 0.1778, measured
    by lyapbench on 512 phase-random trajectories x 1000 time units, dt = 0.02
    and 0.01 agreeing; Sprott's sum -5.3229 agrees).
    J = [[0, -1, -1], [1, a, 0], [z, 0, x - c]].

    Two traps: the flow is phase-coherent, so trajectories started close
    together stay in step for hundreds of time units and are not independent
    (their average carries a common boundary term, ~ (y_T - y_0)/T in <x>):
    initial states are spread over the attractor at random phases.  And the
    gap lambda_1 - lambda_2 = 0.07 aligns the tangent frame slowly: validation
    uses a transient of 80 time units.
    """
    a, b, c = check_number("a", a), check_number("b", b), check_number("c", c)
    dt = check_number("dt", dt, low=0.0, low_open=True)
    ref = None
    if (a, b, c) == (0.2, 0.2, 5.7):
        ref = Reference.make([0.0714, 0.0, -5.3943], [3e-4, 0.0, 3e-4], "literature",
                             "Sprott, Chaos and Time-Series Analysis (OUP 2003), table A.1; "
                             "the zero exponent is exact")

    def rhs(x):
        return stack_like(x, _rossler_f(x[:, 0], x[:, 1], x[:, 2], a, b, c))

    def symbolic_rhs(ys):
        return list(_rossler_f(*ys, a, b, c))

    const = torch.tensor([[0.0, -1.0, -1.0], [1.0, a, 0.0], [0.0, 0.0, -c]], dtype=torch.float64)

    def jacobian(x):
        zero = torch.zeros_like(x[:, 0])
        var = stack_like(x, [zero, zero, zero, zero, zero, zero, x[:, 2], zero, x[:, 0]]).view(-1, 3, 3)
        return var + const.to(x)

    def sample_initial(batch, g):
        # on the attractor's disk (radius 4-8 in the x-y plane, z small) at a uniformly random
        # phase: Rossler is phase-coherent, so trajectories started close together stay in step for
        # hundreds of time units and would not be independent samples; far-away orbits can escape
        theta = g.uniform(1, high=2 * math.pi)
        r = g.uniform(1, low=4.0, high=8.0)
        return torch.cat([r * torch.cos(theta), r * torch.sin(theta), g.uniform(1, high=0.5)], dim=1)

    return Flow("rossler", rhs, dim=3, dt=dt, jacobian=jacobian, reference=ref, sample_initial=sample_initial,
                params={"a": a, "b": b, "c": c, "dt": dt}, symbolic_rhs=symbolic_rhs, batch_last=True,
                validation={"steps": 6_000, "transient": 4_000, "batch": 256})


register("rossler", rossler)


def lorenz96(N: int = 40, F: float = 8.0, dt: float = 0.01) -> Flow:
    """Lorenz-96: x_i' = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F, i cyclic; per unit time.

    At N = 40, F = 8 the leading exponents are 1.689, 1.480, 1.308, 1.151,
    1.009 (computed, +-0.01; docs/design.md §3), 13 are positive and the
    Kaplan-Yorke dimension is 27.07.  div f = -N for any N and F, so the sum
    of all exponents is -N exactly (up to RK4's O(dt^4)).  Jacobian:
    J_{i,i-2} = -x_{i-1}, J_{i,i-1} = x_{i+1} - x_{i-2}, J_{i,i} = -1,
    J_{i,i+1} = x_{i-1}.
    """
    N = check_int("N", N, low=4)
    F, dt = check_number("F", F), check_number("dt", dt, low=0.0, low_open=True)
    ref = None
    if (N, F) == (40, 8.0):
        ref = Reference.make([1.689, 1.480, 1.308, 1.151, 1.009], [0.01] * 5, "computed",
                             "long full-spectrum runs (docs/design.md §3); cross-checked by a slow test",
                             extra={"n_positive": 13, "kaplan_yorke": 27.07})
    idx = torch.arange(N)
    ip1, im1, im2 = (idx + 1) % N, (idx - 1) % N, (idx - 2) % N

    def rhs(x):
        return (x[:, ip1] - x[:, im2]) * x[:, im1] - x + F

    def symbolic_rhs(ys):
        # the same formula component by component (the torch rhs above is its vectorised form)
        return [(ys[(i + 1) % N] - ys[(i - 2) % N]) * ys[(i - 1) % N] - ys[i] + F for i in range(N)]

    def jacobian(x):
        J = x.new_zeros(x.shape[0], N, N)
        J[:, idx, im2] = -x[:, im1]
        J[:, idx, im1] = x[:, ip1] - x[:, im2]
        J[:, idx, idx] = -1.0
        J[:, idx, ip1] = x[:, im1]
        return J

    def sample_initial(batch, g):
        return F + g.normal(N)

    return Flow("lorenz96", rhs, dim=N, dt=dt, jacobian=jacobian, reference=ref, sample_initial=sample_initial,
                params={"N": N, "F": F, "dt": dt}, divergence=-float(N), symbolic_rhs=symbolic_rhs,
                note=None if ref else f"no reference exponents are known to lyapbench for N={N}, F={F}",
                validation={"steps": 3_000, "transient": 500, "batch": 8})


register("lorenz96", lorenz96)

_DEFAULT_ODE = [[-0.1, -1.0, 0.7],
                [1.0, -0.1, 0.0],
                [0.0, 0.0, -0.5]]


def linear_ode(A=None, dt: float = 0.05) -> Flow:
    """Linear ODE x' = A x; exponents = real parts of the eigenvalues of A (exact, per unit time).

    The state stays at the fixed point 0, where the tangent dynamics is the
    linear flow itself (no zero exponent).  RK4 advances the tangent by the
    exact matrix p4(A dt) = sum_{n<=4} (A dt)^n / n!, whose exponents are
    ln|p4(mu_i dt)| / dt: that known deviation from Re mu_i is the stated
    uncertainty.  Default A: non-normal, eigenvalues -0.1 +- i and -0.5.
    """
    A, mu, log_cond = diagonalisable("A", A, _DEFAULT_ODE)
    dt = check_number("dt", dt, low=0.0, low_open=True)
    z = mu * dt
    rk4 = np.log(np.abs(1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24)) / dt
    order = np.argsort(-mu.real)
    values, deviation = mu.real[order], np.abs(rk4 - mu.real)[order]
    ref = Reference(values, deviation + 1e-12, "exact",
                    "real parts of the eigenvalues of A; uncertainty = |ln|p4(mu dt)|/dt - Re mu|, "
                    "the RK4 map's exactly known deviation", bias_nats=max(1.0, log_cond))
    At = torch.as_tensor(A)
    d = A.shape[0]
    rows = A.tolist()

    def symbolic_rhs(ys):
        # x' = A x component by component (the torch rhs is x @ A^T)
        return [sum((a_ij * y_j for a_ij, y_j in zip(row, ys) if a_ij != 0), 0 * ys[0]) for row in rows]

    return Flow("linear_ode", rhs=lambda x: x @ At.to(x).T, dim=d, dt=dt,
                jacobian=lambda x: At.to(x).expand(x.shape[0], d, d), reference=ref,
                sample_initial=lambda batch, g: torch.zeros(batch, d, dtype=torch.float64, device=g.device),
                params={"A": A.tolist(), "dt": dt}, divergence=float(np.trace(A)), zero_exponent=False,
                symbolic_rhs=symbolic_rhs,
                validation={"steps": 2_000, "transient": 400, "batch": 4})


register("linear_ode", linear_ode)


def _rotating_axes_rk4(omega: float, a: float, b: float, dt: float) -> np.ndarray:
    """Exponents of the RK4 map of :func:`rotating_axes` (v block), exactly: in the frame that rotates with
    the axes the RK4 step is the constant matrix R(-omega dt) P, P the RK4 step of v' = A(omega t) v from 0."""
    def A(t):
        c, s = math.cos(omega * t), math.sin(omega * t)
        return np.array([[a * c * c + b * s * s, (a - b) * c * s], [(a - b) * c * s, a * s * s + b * c * c]])
    eye = np.eye(2)
    k1 = A(0.0)
    k2 = A(dt / 2) @ (eye + dt / 2 * k1)
    k3 = A(dt / 2) @ (eye + dt / 2 * k2)
    k4 = A(dt) @ (eye + dt * k3)
    P = eye + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    c, s = math.cos(omega * dt), math.sin(omega * dt)
    return np.sort(np.log(np.abs(np.linalg.eigvals(np.array([[c, s], [-s, c]]) @ P))) / dt)[::-1]


def rotating_axes(omega: float = 2.0, a: float = -1.0, b: float = -9.0, dt: float = 0.05) -> Flow:
    """A linear flow whose principal axes rotate: theta' = omega, v' = R(theta) diag(a, b) R(theta)^T v.

    In the frame that turns with the axes, w = R(theta)^T v obeys w' = M w with the constant
    M = [[a, omega], [-omega, b]], so the exponents are exactly 0 (along theta) and Re eig(M),
    per unit time.  The Jacobian changes direction within each step (at rate omega) while its
    eigenvalues do not: a tangent advanced with the Jacobian frozen over the step, by Euler
    beside RK4, or with J^T instead of J gets the exponents visibly wrong, while the exact
    derivative of the RK4 step does not (docs/design.md, "Known traps").  The RK4 map's own
    exponents are known exactly too (:func:`_rotating_axes_rk4`); their deviation from the
    flow's is the stated uncertainty, as for ``linear_ode``.  State (theta, v1, v2); v -> 0.
    """
    omega, a, b = check_number("omega", omega), check_number("a", a), check_number("b", b)
    dt = check_number("dt", dt, low=0.0, low_open=True)
    flow = np.sort(np.linalg.eigvals(np.array([[a, omega], [-omega, b]])).real)[::-1]
    if not flow[0] < 0:
        raise InvalidArgumentError("a, b, omega", (a, b, omega), "values with Re eig([[a, omega], [-omega, b]]) < 0 "
                                   "(v decays to 0 instead of overflowing)")
    rk4 = _rotating_axes_rk4(omega, a, b, dt)
    ref = Reference(np.r_[0.0, flow], np.r_[0.0, np.abs(rk4 - flow)] + 1e-12, "exact",
                    "0 along theta and Re eig([[a, omega], [-omega, b]]) (the flow in the frame that rotates with "
                    "the axes); uncertainty = the RK4 map's exactly known deviation "
                    f"(RK4 map: {rk4[0]:.10g}, {rk4[1]:.10g})",
                    extra={"rk4_map": [0.0, *rk4.tolist()]})

    def axes(theta):
        c, s = torch.cos(theta), torch.sin(theta)
        return c, s, (a - b) * c * s

    def rhs(x):
        c, s, cs = axes(x[:, 0])
        v1, v2 = x[:, 1], x[:, 2]
        return torch.stack([torch.full_like(v1, omega), (a * c * c + b * s * s) * v1 + cs * v2,
                            cs * v1 + (a * s * s + b * c * c) * v2], dim=1)

    def jacobian(x):
        c, s, cs = axes(x[:, 0])
        v1, v2 = x[:, 1], x[:, 2]
        d2, cos2 = 2 * cs, (a - b) * (c * c - s * s)  # dA/dtheta = [[-2cs, cos2], [cos2, 2cs]]
        J = torch.zeros(x.shape[0], 3, 3, dtype=x.dtype, device=x.device)
        J[:, 1, 0], J[:, 2, 0] = -d2 * v1 + cos2 * v2, cos2 * v1 + d2 * v2
        J[:, 1, 1], J[:, 1, 2] = a * c * c + b * s * s, cs
        J[:, 2, 1], J[:, 2, 2] = cs, a * s * s + b * c * c
        return J

    return Flow("rotating_axes", rhs, dim=3, dt=dt, jacobian=jacobian, reference=ref,
                sample_initial=lambda batch, g: g.normal(3),
                params={"omega": omega, "a": a, "b": b, "dt": dt}, divergence=a + b, zero_exponent=True,
                validation={"steps": math.ceil(500 / dt), "transient": math.ceil(20 / dt), "batch": 4})


register("rotating_axes", rotating_axes)
