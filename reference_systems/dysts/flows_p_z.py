"""dysts flows p to z, written once for torch and jitcode (:mod:`reference_systems.dysts.algebra`).

Equations from dysts 0.96 (``dysts/flows.py``); parameters and initial conditions in catalogue.json.
"""
from reference_systems.dysts.algebra import equation
from reference_systems.dysts.flows_d_h import dequan_li


@equation("PanXuZhou")
def pan_xu_zhou(s, p, m):
    return dequan_li(s, p, m)


@equation("PehlivanWei")
def pehlivan_wei(s, p, m):
    x, y, z = s
    return y - y * z, y + y * z - 2 * x, 2 - x * y - y ** 2


@equation("Qi")
def qi(s, p, m):
    x, y, z, w = s
    return (p.a * (y - x) + y * z * w, p.b * (x + y) - x * z * w, x * y * w - p.c * z, x * y * z - p.d * w)


@equation("QiChen")
def qi_chen(s, p, m):
    x, y, z = s
    return p.a * (y - x) + y * z, p.c * x + y - x * z, x * y - p.b * z


@equation("RabinovichFabrikant")
def rabinovich_fabrikant(s, p, m):
    x, y, z = s
    return (y * (z - 1 + x ** 2) + p.g * x, x * (3 * z + 1 - x ** 2) + p.g * y, -2 * z * (p.a + x * y))


@equation("RayleighBenard")
def rayleigh_benard(s, p, m):
    x, y, z = s
    return p.a * (y - x), p.r * y - x * z, x * y - p.b * z


@equation("RikitakeDynamo")
def rikitake_dynamo(s, p, m):
    x, y, z = s
    return y * z - p.mu * x, x * z - p.mu * y - p.a * x, 1 - x * y


@equation("Rossler")
def rossler(s, p, m):
    x, y, z = s
    return -y - z, x + p.a * y, p.b + z * (x - p.c)


@equation("Rucklidge")
def rucklidge(s, p, m):
    x, y, z = s
    return p.b * y - p.a * x - y * z, x, y ** 2 - z


@equation("Sakarya")
def sakarya(s, p, m):
    x, y, z = s
    return (p.a * x + p.h * y + p.s * y * z, p.q * x * z - p.b * y - p.p * x, p.c * z - p.r * x * y)


@equation("SaltonSea")
def salton_sea(s, p, m):
    x, y, z = s
    uptake = y * z / (y + p.a)
    return (p.r * x * (1 - (x + y) / p.k) - p.lam * x * y, p.lam * x * y - p.m * uptake - p.mu * y,
            p.th * uptake - p.d * z)


@equation("SanUmSrisuchinwong")
def san_um_srisuchinwong(s, p, m):
    x, y, z = s
    return y - x, -z * m.tanh(x), x * y + m.abs(y) - p.a


@equation("ShimizuMorioka")
def shimizu_morioka(s, p, m):
    x, y, z = s
    return y, x * (1 - z) - p.a * y, x ** 2 - p.b * z


@equation("SprottA")
def sprott_a(s, p, m):
    x, y, z = s
    return y, y * z - x, 1 - y ** 2


@equation("SprottB")
def sprott_b(s, p, m):
    x, y, z = s
    return y * z, x - y, 1 - x * y


@equation("SprottC")
def sprott_c(s, p, m):
    x, y, z = s
    return y * z, x - y, 1 - x ** 2


@equation("SprottD")
def sprott_d(s, p, m):
    x, y, z = s
    return -y, x + z, x * z + 3 * y ** 2


@equation("SprottE")
def sprott_e(s, p, m):
    x, y, z = s
    return y * z, x ** 2 - y, 1 - 4 * x


@equation("SprottF")
def sprott_f(s, p, m):
    x, y, z = s
    return y + z, p.a * y - x, x ** 2 - z


@equation("SprottG")
def sprott_g(s, p, m):
    x, y, z = s
    return p.a * x + z, x * z - y, y - x


@equation("SprottH")
def sprott_h(s, p, m):
    x, y, z = s
    return z ** 2 - y, x + p.a * y, x - z


@equation("SprottI")
def sprott_i(s, p, m):
    x, y, z = s
    return -p.a * y, x + z, x + y ** 2 - z


@equation("SprottJ")
def sprott_j(s, p, m):
    x, y, z = s
    return 2 * z, z - 2 * y, y + y ** 2 - x


@equation("SprottJerk")
def sprott_jerk(s, p, m):
    x, y, z = s
    return y, z, y ** 2 - x - p.mu * z


@equation("SprottK")
def sprott_k(s, p, m):
    x, y, z = s
    return x * y - z, x - y, x + p.a * z


@equation("SprottL")
def sprott_l(s, p, m):
    x, y, z = s
    return y + p.b * z, p.a * x ** 2 - y, 1 - x


@equation("SprottM")
def sprott_m(s, p, m):
    x, y, z = s
    return -z, -(x ** 2) - y, p.a * (1 + x) + y


@equation("SprottMore", discontinuous="sign(z) y at z = 0")
def sprott_more(s, p, m):
    x, y, z = s
    return y, -x - m.switch(z) * y, y ** 2 - m.exp(-(x ** 2))


@equation("SprottN")
def sprott_n(s, p, m):
    x, y, z = s
    return -2 * y, x + z ** 2, 1 + y - 2 * z


@equation("SprottO")
def sprott_o(s, p, m):
    x, y, z = s
    return y, x - z, x * (1 + z) + p.a * y


@equation("SprottP")
def sprott_p(s, p, m):
    x, y, z = s
    return p.a * y + z, y ** 2 - x, x + y


@equation("SprottQ")
def sprott_q(s, p, m):
    x, y, z = s
    return -z, x - y, p.a * x + y ** 2 + p.b * z


@equation("SprottR")
def sprott_r(s, p, m):
    x, y, z = s
    return p.a - y, p.b + z, x * y - z


@equation("SprottS")
def sprott_s(s, p, m):
    x, y, z = s
    return -x - 4 * y, x + z ** 2, 1 + x


@equation("SprottTorus")
def sprott_torus(s, p, m):
    x, y, z = s
    return y + 2 * x * y + x * z, 1 - 2 * x ** 2 + y * z, x - x ** 2 - y ** 2


@equation("StickSlipOscillator", discontinuous="the friction t0 sign(v - vs) at v = vs", filippov=True)
def stick_slip_oscillator(s, p, m):
    x, v, th = s
    slip = v - p.vs
    torque = p.t0 * m.switch(slip) - p.alpha * v + p.beta * slip ** 3
    return v, p.eps * (p.gamma * m.cos(th) - torque) + p.a * x - p.b * x ** 3, p.w


@equation("SwingingAtwood")
def swinging_atwood(s, p, m):
    r, th, pr, pth = s
    g = 9.82
    return (pr / (p.m1 + p.m2), pth / (p.m1 * r ** 2),
            pth ** 2 / (p.m1 * r ** 3) - p.m2 * g + p.m1 * g * m.cos(th), -p.m1 * g * r * m.sin(th))


@equation("Thomas")
def thomas(s, p, m):
    x, y, z = s
    return p.b * m.sin(y) - p.a * x, p.b * m.sin(z) - p.a * y, p.b * m.sin(x) - p.a * z


@equation("ThomasLabyrinth")
def thomas_labyrinth(s, p, m):
    return thomas(s, p, m)


@equation("Torus", clock=True)
def torus(s, p, m, t):
    # the right-hand side reads only the time
    rho = p.r + p.a * m.cos(p.n * t)
    drho = -p.a * p.n * m.sin(p.n * t)
    return drho * m.cos(t) - rho * m.sin(t), drho * m.sin(t) + rho * m.cos(t), p.a * p.n * m.cos(p.n * t)


@equation("Tsucs2")
def tsucs2(s, p, m):
    return dequan_li(s, p, m)


@equation("TurchinHanski")
def turchin_hanski(s, p, m):
    n, q, z = s
    season = 1 - p.e * m.sin(z)
    return (p.r * season * n - p.r * n ** 2 - p.g * n ** 2 / (n ** 2 + p.h ** 2) - p.a * n * q / (n + p.d),
            p.s * season * q - p.s * q ** 2 / n, 2 * m.pi * p.lamb)


@equation("VallisElNino")
def vallis_el_nino(s, p, m):
    x, y, z = s
    return p.b * y - p.c * (x + p.p), x * z - y, 1 - z - x * y


@equation("WangSun")
def wang_sun(s, p, m):
    x, y, z = s
    return p.a * x + p.q * y * z, p.b * x + p.d * y - x * z, p.e * z + p.f * x * y


@equation("WindmiReduced")
def windmi_reduced(s, p, m):
    # dysts writes b2 * p**1 / 2, i.e. b2 * p / 2
    i, v, q = s
    return (p.a1 * (p.vsw - v), p.b1 * i - p.b2 * q / 2 - p.b3 * v,
            p.vsw ** 2 - q ** 1.25 * p.vsw ** 0.5 * (1 + m.tanh(p.d1 * (i - 1))) / 2)


@equation("YuWang")
def yu_wang(s, p, m):
    x, y, z = s
    return p.a * (y - x), x * (p.b - p.c * z), m.exp(x * y) - p.d * z


@equation("YuWang2")
def yu_wang2(s, p, m):
    x, y, z = s
    return p.a * (y - x), x * (p.b - p.c * z), m.cosh(x * y) - p.d * z


@equation("ZhouChen")
def zhou_chen(s, p, m):
    x, y, z = s
    return p.a * x + p.b * y + y * z, p.c * y - x * z + p.d * y * z, p.e * z - x * y
