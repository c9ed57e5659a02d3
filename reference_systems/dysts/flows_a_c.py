"""dysts flows a to c, written once for torch and jitcode (:mod:`reference_systems.dysts.algebra`).

Equations from dysts 0.96 (``dysts/flows.py``); parameters and initial conditions in catalogue.json.
"""
from reference_systems.dysts.algebra import equation


@equation("Aizawa")
def aizawa(s, p, m):
    x, y, z = s
    return (
        x * z - p.b * x - p.d * y,
        p.d * x + y * z - p.b * y,
        p.c + p.a * z - z**3 / 3 - x**2 - y**2 - p.e * z * x**2 - p.e * z * y**2 + p.f * z * x**3,
    )


@equation("AnishchenkoAstakhov")
def anishchenko_astakhov(s, p, m):
    x, y, z = s
    return p.mu * x + y - x * z, -x, -p.eta * z + p.eta * m.heaviside(x) * x**2


@equation("Arneodo")
def arneodo(s, p, m):
    x, y, z = s
    return y, z, -p.a * x - p.b * y - p.c * z + p.d * x**3


@equation("ArnoldBeltramiChildress")
def arnold_beltrami_childress(s, p, m):
    x, y, z = s
    return (
        p.a * m.sin(z) + p.c * m.cos(y),
        p.b * m.sin(x) + p.a * m.cos(z),
        p.c * m.sin(y) + p.b * m.cos(x),
    )


@equation("ArnoldWeb")
def arnold_web(s, p, m):
    p1, p2, x1, x2, z = s
    denom = 4 + m.cos(z) + m.cos(x1) + m.cos(x2)
    return -p.mu * m.sin(x1) / denom**2, -p.mu * m.sin(x2) / denom**2, p1, p2, p.w


@equation("AtmosphericRegime")
def atmospheric_regime(s, p, m):
    x, y, z = s
    return (
        p.mu1 * x + p.sigma * x * y,
        p.mu2 * y + p.omega * z + p.alpha * y * z + p.beta * z**2 - p.sigma * x**2,
        p.mu2 * z - p.omega * y - p.alpha * y**2 - p.beta * y * z,
    )


@equation("BeerRNN")
def beer_rnn(s, p, m):
    act = [1 / (1 + m.exp(-(xi + th))) for xi, th in zip(s, p.theta)]
    return [(-s[i] + sum(wij * aj for wij, aj in zip(p.w[i], act))) / p.tau[i] for i in range(len(s))]


@equation("BelousovZhabotinsky")
def belousov_zhabotinsky(s, p, m):
    x, z, v = s
    ybar = (1 / p.y0) * p.yb1 * z * v / (p.yb2 * x + p.yb3 + p.kf)
    x = m.maximum(x, 0)  # dysts clips x at 0 after ybar
    rf = (p.ci - p.z0 * z) * m.sqrt(x)
    xdot = p.c1 * x * ybar + p.c2 * ybar + p.c3 * x**2 + p.c4 * rf + p.c5 * x * z - p.kf * x
    zdot = (p.c6 / p.z0) * rf + p.c7 * x * z + p.c8 * z * v + p.c9 * z - p.kf * z
    vdot = p.c10 * x * ybar + p.c11 * ybar + p.c12 * x**2 + p.c13 * z * v - p.kf * v
    return xdot * p.t0, zdot * p.t0, vdot * p.t0


@equation("BickleyJet")
def bickley_jet(s, p, m):
    y, x, z = s  # dysts's order: the cross-stream coordinate first
    sech2 = 1 / m.cosh(y / p.ell) ** 2
    un = [k * (x - z * sg) for k, sg in zip(p.k, p.sigma)]
    dx = p.u * sech2 * (-1 - 2 * sum(m.cos(a) * e for a, e in zip(un, p.eps)) * m.tanh(y / p.ell))
    dy = p.ell * p.u * sech2 * sum(e * k * m.sin(a) for e, k, a in zip(p.eps, p.k, un))
    return dy, dx, p.omega


@equation("Blasius")
def blasius(s, p, m):
    x, y, z = s
    prey = p.alpha1 * x * y / (1 + p.k1 * x)
    pred = p.alpha2 * y * z / (1 + p.k2 * y)
    return p.a * x - prey, -p.b * y + prey - pred, -p.c * (z - p.zs) + pred


@equation("BlinkingRotlet")
def blinking_rotlet(s, p, m):
    r, theta, tt = s
    a, bc = p.a, p.bc

    def rotlet(b):
        kappa = a**2 + (b**2 * r**2) / a**2 - 2 * b * r * m.cos(theta)
        gamma = (1 - r**2 / a**2) * (a**2 - (b**2 * r**2) / a**2)
        iota = (b**2 * r) / a**2 - b * m.cos(theta)
        zeta = b**2 + r**2 - 2 * b * r * m.cos(theta)
        nu = a**2 + b**2 - (2 * b**2 * r**2) / a**2
        vr = b * m.sin(theta) * (-bc * (gamma / kappa**2) - 1 / kappa + 1 / zeta)
        vth = (bc * (gamma * iota) / kappa**2 + bc * r * nu / (a**2 * kappa) + iota / kappa
               - (r - b * m.cos(theta)) / zeta)
        return vr, vth

    weight = 0.5 + 0.5 * m.tanh(p.tau * 20 * m.sin(2 * m.pi * tt / p.tau))  # the blinking protocol, stiffness 20
    dr1, dth1 = rotlet(p.b)
    dr2, dth2 = rotlet(-p.b)
    dr = weight * dr1 + (1 - weight) * dr2
    dth = (weight * dth1 + (1 - weight) * dth2) / r
    return p.sigma * dr, p.sigma * dth, 1


@equation("BlinkingVortex")
def blinking_vortex(s, p, m):
    return blinking_rotlet(s, p, m)


@equation("Bouali")
def bouali(s, p, m):
    return bouali2(s, p, m)


@equation("Bouali2")
def bouali2(s, p, m):
    x, y, z = s
    return (
        p.a * p.y0 * x - p.a * x * y - p.b * z,
        -p.g * y + p.g * y * x**2,
        -1.5 * p.m * x + p.m * p.bb * x * z - p.c * z,
    )


@equation("BurkeShaw")
def burke_shaw(s, p, m):
    x, y, z = s
    return -p.n * x - p.n * y, y - p.n * x * z, p.n * x * y + p.e


@equation("CaTwoPlus")
def ca_two_plus(s, p, m):
    z, y, a = s
    vin = p.V0 + p.V1 * p.beta
    v2 = p.Vm2 * z**2 / (p.K2**2 + z**2)
    v3 = (p.Vm3 * z**p.m / (p.Kz**p.m + z**p.m)) * (y**2 / (p.Ky**2 + y**2)) * (a**4 / (p.Ka**4 + a**4))
    v5 = p.Vm5 * (a**p.p / (p.K5**p.p + a**p.p)) * (z**p.n / (p.Kd**p.n + z**p.n))
    return vin - v2 + v3 + p.kf * y - p.k * z, v2 - v3 - p.kf * y, p.beta * p.V4 - v5 - p.eps * a


@equation("CaTwoPlusQuasiperiodic")
def ca_two_plus_quasiperiodic(s, p, m):
    return ca_two_plus(s, p, m)


@equation("CellCycle")
def cell_cycle(s, p, m):
    c1, m1, x1, c2, m2, x2 = s
    K = p.K
    v1 = p.Vm1 * c1 / (p.Kc + c1)
    u1 = p.Vm1 * c2 / (p.Kc + c2)
    c1dot = p.vi * p.Kim / (p.Kim + m2) - p.vd * x1 * c1 / (p.Kd1 + c1) - p.kd1 * c1
    c2dot = p.vi * p.Kim / (p.Kim + m1) - p.vd * x2 * c2 / (p.Kd1 + c2) - p.kd1 * c2
    m1dot = v1 * (1 - m1) / (K + (1 - m1)) - p.V2 * m1 / (K + m1)
    m2dot = u1 * (1 - m2) / (K + (1 - m2)) - p.V2 * m2 / (K + m2)
    x1dot = m1 * p.Vm3 * (1 - x1) / (K + (1 - x1)) - p.V4 * x1 / (K + x1)
    x2dot = m2 * p.Vm3 * (1 - x2) / (K + (1 - x2)) - p.V4 * x2 / (K + x2)
    return c1dot, m1dot, x1dot, c2dot, m2dot, x2dot


@equation("CellularNeuralNetwork")
def cellular_neural_network(s, p, m):
    x, y, z = s
    fx, fy, fz = (0.5 * (m.abs(v + 1) - m.abs(v - 1)) for v in s)
    return (
        -x + p.d * fx - p.b * fy - p.b * fz,
        -y - p.b * fx + p.c * fy - p.a * fz,
        -z - p.b * fx + p.a * fy + fz,
    )


@equation("Chen")
def chen(s, p, m):
    x, y, z = s
    return p.a * y - p.a * x, (p.c - p.a) * x - x * z + p.c * y, x * y - p.b * z


@equation("ChenLee")
def chen_lee(s, p, m):
    x, y, z = s
    return p.a * x - y * z, p.b * y + x * z, p.c * z + (1 / 3) * x * y


@equation("Chua")
def chua(s, p, m):
    x, y, z = s
    ramp = p.m1 * x + 0.5 * (p.m0 - p.m1) * (m.abs(x + 1) - m.abs(x - 1))
    return p.alpha * (y - x - ramp), x - y + z, -p.beta * y


@equation("CircadianRhythm")
def circadian_rhythm(s, p, m):
    mr, fc, fs, fn, th = s
    vs = p.vc * ((0.5 + 0.5 * m.cos(th)) + p.vmin) * (p.vmax - p.vmin)
    return (
        vs * p.Ki**p.n / (p.Ki**p.n + fn**p.n) - p.vm * mr / (p.km + mr),
        p.ks * mr - p.k1 * fc + p.k2 * fn - p.k * fc,
        p.k * fc - p.vd * fs / (p.kd + fs),
        p.k1 * fc - p.k2 * fn - p.vdn * fn / (p.kdn + fn),
        2 * m.pi / p.ps,
    )


@equation("CoevolvingPredatorPrey")
def coevolving_predator_prey(s, p, m):
    x, y, al = s
    xdot = x * (
        -(p.a3 * y) / (1 + p.b2 * x)
        + p.a1 * al * (1 - p.k1 * x * (-al + al * p.delta)) / (1 + p.b1 * al)
        - p.d1 * (1 - p.k2 * (-(al**2) + (al * p.delta) ** 2) + p.k4 * (-(al**4) + (al * p.delta) ** 4))
    )
    ydot = (-p.d2 + p.a2 * x / (1 + p.b2 * x)) * y
    aldot = p.vv * (
        -(p.a1 * p.k1 * x * al * p.delta) / (1 + p.b1 * al)
        - p.d1 * (-2 * p.k2 * al * p.delta**2 + 4 * p.k4 * al**3 * p.delta**4)
    )
    return xdot, ydot, aldot


@equation("Colpitts")
def colpitts(s, p, m):
    x, y, z = s
    u = z - (p.e - 1)
    fz = -u * (1 - m.heaviside(u))
    return y - p.a * fz, p.c - x - p.b * y - z, y - p.d * z


@equation("Coullet")
def coullet(s, p, m):
    return arneodo(s, p, m)
