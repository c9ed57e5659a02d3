"""dysts flows i to o, written once for torch and jitcode (:mod:`reference_systems.dysts.algebra`).

Equations from dysts 0.96 (``dysts/flows.py``); parameters and initial conditions in catalogue.json.
"""
from reference_systems.dysts.algebra import equation
from reference_systems.dysts.flows_p_z import sakarya


@equation("InteriorSquirmer")
def interior_squirmer(s, p, m):
    r, th, tt = s
    # dysts's _protocol (stiffness 20) switches between the a and g modes with the phase variable tt
    phase = 0.5 + 0.5 * m.tanh(p.tau * 20 * m.sin(2 * m.pi * tt / p.tau))
    dr, dth = 0, 0
    for i in range(len(p.a)):
        n = i + 1
        a, g = p.a[i] * phase, p.g[i] * (1 - phase)
        sn, cn, rn = m.sin(n * th), m.cos(n * th), r**n
        dr = dr + (g * cn + a * sn) * n * rn * (r**2 - 1) / r
        dth = dth + (2 * r + (r**2 - 1) * n / r) * (a * cn - g * sn) * rn
    return dr, dth / r, 1


@equation("IsothermalChemical")
def isothermal_chemical(s, p, m):
    alpha, beta, gamma = s
    return (p.mu * (p.kappa + gamma) - alpha * beta**2 - alpha, (alpha * beta**2 + alpha - beta) / p.sigma,
            (beta - gamma) / p.delta)


@equation("ItikBanksTumor")
def itik_banks_tumor(s, p, m):
    x, y, z = s
    return (x * (1 - x) - p.a12 * x * y - p.a13 * x * z, p.r2 * y * (1 - y) - p.a21 * x * y,
            p.r3 * x * z / (x + p.k3) - p.a31 * x * z - p.d3 * z)


@equation("JerkCircuit")
def jerk_circuit(s, p, m):
    x, y, z = s
    return y, z, -z - x - p.eps * (m.exp(y / p.y0) - 1)


@equation("KawczynskiStrizhak")
def kawczynski_strizhak(s, p, m):
    x, y, z = s
    return (p.gamma * y - p.gamma * x**3 + 3 * p.mu * p.gamma * x, -2 * p.mu * x - y - z + p.beta,
            p.kappa * x - p.kappa * z)


@equation("Laser")
def laser(s, p, m):
    x, y, z = s
    return p.a * y - p.a * x + p.b * y * z**2, p.c * x + p.d * x * z**2, p.h * z + p.k * x**2


@equation("LidDrivenCavityFlow")
def lid_driven_cavity_flow(s, p, m):
    x, y, tt = s
    a, b = p.a, p.b

    def lid(u1, u2):
        # dysts's _lid: the velocity field driven by lids of speeds u1 (first mode) and u2 (second mode)
        vx, vy = 0, 0
        for k, u in ((1, u1), (2, u2)):
            kb, ky, kx = k * m.pi * b / a, k * m.pi * y / a, k * m.pi * x / a
            den = 2 * k * b * m.pi + a * m.sinh(2 * kb)
            vx = vx + 2 * u * m.sin(kx) / den * (
                -k * b * m.pi * m.sinh(kb) * m.sinh(ky) + m.cosh(kb) * (k * m.pi * y * m.cosh(ky) + a * m.sinh(ky)))
            vy = vy + 2 * k * m.pi * u * m.cos(kx) / den * (
                b * m.sinh(kb) * m.cosh(ky) - m.cosh(kb) * y * m.sinh(ky))
        return vx, vy

    # dysts's _protocol (stiffness 20): the phase variable tt alternates the sign of the first lid
    w = 0.5 + 0.5 * m.tanh(p.tau * 20 * m.sin(2 * m.pi * tt / p.tau))
    dx1, dy1 = lid(p.u1, p.u2)
    dx2, dy2 = lid(-p.u1, p.u2)
    return w * dx1 + (1 - w) * dx2, w * dy1 + (1 - w) * dy2, 1


@equation("LiuChen")
def liu_chen(s, p, m):
    return sakarya(s, p, m)  # dysts's LiuChen is its Sakarya with other parameters


@equation("Lorenz")
def lorenz(s, p, m):
    x, y, z = s
    return p.sigma * y - p.sigma * x, p.rho * x - x * z - y, x * y - p.beta * z


@equation("Lorenz84")
def lorenz84(s, p, m):
    x, y, z = s
    return (-p.a * x - y**2 - z**2 + p.a * p.f, -y + x * y - p.b * x * z + p.g, -z + p.b * x * y + x * z)


@equation("Lorenz96")
def lorenz96(s, p, m):
    n = len(s)
    return [(s[(i + 1) % n] - s[i - 2]) * s[i - 1] - s[i] + p.f for i in range(n)]


@equation("LorenzBounded")
def lorenz_bounded(s, p, m):
    x, y, z = s
    sigma, rho, beta, q = p.sigma, p.rho, p.beta, 1 / p.r**2
    xdot = (sigma * y - sigma * x - sigma * q * y * x**2 - sigma * q * y**3 - sigma * q * y * z**2
            + sigma * q * x**3 + sigma * q * x * y**2 + sigma * q * x * z**2)
    ydot = (rho * x - x * z - y - rho * q * x**3 - rho * q * x * y**2 - rho * q * x * z**2 + q * z * x**3
            + q * x * z * y**2 + q * x * z**3 + q * y * x**2 + q * y**3 + q * y * z**2)
    zdot = (x * y - beta * z - q * y * x**3 - q * x * y**3 - q * x * y * z**2 + beta * q * z * x**2
            + beta * q * z * y**2 + beta * q * z**3)
    return xdot, ydot, zdot


@equation("LorenzCoupled")
def lorenz_coupled(s, p, m):
    x1, y1, z1, x2, y2, z2 = s
    return (p.sigma * y1 - p.sigma * x1, p.rho1 * x1 - x1 * z1 - y1, x1 * y1 - p.beta * z1,
            p.sigma * y2 - p.sigma * x2 + p.eps * x1 - p.eps * x2, p.rho2 * x2 - x2 * z2 - y2, x2 * y2 - p.beta * z2)


@equation("LorenzStenflo")
def lorenz_stenflo(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x + p.d * w, p.c * x - x * z - y, x * y - p.b * z, -x - p.a * w


@equation("LuChen")
def lu_chen(s, p, m):
    x, y, z = s
    return p.a * y - p.a * x, -x * z + p.c * y, x * y - p.b * z


@equation("LuChenCheng")
def lu_chen_cheng(s, p, m):
    x, y, z = s
    return -(p.a * p.b) / (p.a + p.b) * x - y * z + p.c, p.a * y + x * z, p.b * z + x * y


@equation("MacArthur")
def mac_arthur(s, p, m):
    n = len(p.s)
    nn, rr = s[:n], s[n:]
    mu = []
    for i in range(n):
        # dysts's growth_rate: species i grows at its least favourable resource's rate
        rates = [p.r * rr[j] / (p.k[j][i] + rr[j]) for j in range(n)]
        lowest = rates[0]
        for rate in rates[1:]:
            lowest = m.minimum(lowest, rate)
        mu.append(lowest)
    nndot = [nn[i] * (mu[i] - p.m) for i in range(n)]
    rrdot = [p.d * (p.s[j] - rr[j]) - sum(p.c[j][i] * mu[i] * nn[i] for i in range(n)) for j in range(n)]
    return nndot + rrdot


@equation("MooreSpiegel")
def moore_spiegel(s, p, m):
    x, y, z = s
    return y, p.a * z, -z + p.eps * y - y * x**2 - p.b * x


@equation("MultiChua")
def multi_chua(s, p, m):
    x, y, z = s
    # dysts's diode: a piecewise-linear characteristic with breakpoints +-c[i]
    diode = p.m[-1] * x
    for i in range(1, 6):
        diode = diode + 0.5 * (p.m[i - 1] - p.m[i]) * (m.abs(x + p.c[i]) - m.abs(x - p.c[i]))
    return p.a * (y - diode), x - y + z, -p.b * y


@equation("NewtonLiepnik")
def newton_liepnik(s, p, m):
    x, y, z = s
    return -p.a * x + y + 10 * y * z, -x - 0.4 * y + 5 * x * z, p.b * z - 5 * x * y


@equation("NoseHoover")
def nose_hoover(s, p, m):
    x, y, z = s
    return y, -x + y * z, p.a - y**2


@equation("NuclearQuadrupole")
def nuclear_quadrupole(s, p, m):
    q1, q2, p1, p2 = s
    a, b, d, r2 = p.a, p.b, p.d, m.sqrt(2)
    return (a * p1, a * p2, -a * q1 + 3 / r2 * b * q1**2 - 3 / r2 * b * q2**2 - d * q1**3 - d * q1 * q2**2,
            -a * q2 - 3 * r2 * b * q1 * q2 - d * q2 * q1**2 - d * q2**3)


@equation("OscillatingFlow")
def oscillating_flow(s, p, m):
    x, y, z = s
    f = x + p.b * m.sin(z)
    return p.u * m.cos(p.k * y) * m.sin(p.k * f), -p.u * m.sin(p.k * y) * m.cos(p.k * f), p.omega
