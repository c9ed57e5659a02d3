"""dysts flows d to h, written once for torch and jitcode (:mod:`reference_systems.dysts.algebra`).

Equations from dysts 0.96 (``dysts/flows.py``); parameters and initial conditions in catalogue.json.
"""
from reference_systems.dysts.algebra import equation


@equation("Dadras")
def dadras(s, p, m):
    x, y, z = s
    return y - p.p * x + p.o * y * z, p.r * y - x * z + z, p.c * x * y - p.e * z


@equation("DequanLi")
def dequan_li(s, p, m):
    x, y, z = s
    return (p.a * y - p.a * x + p.d * x * z, p.k * x + p.f * y - x * z,
            p.c * z + x * y - p.eps * x ** 2)


@equation("DoubleGyre")
def double_gyre(s, p, m):
    x, y, z = s
    a = p.eps * m.sin(z)
    b = 1 - 2 * p.eps * m.sin(z)
    f = a * x ** 2 + b * x
    dx = -p.alpha * m.pi * m.sin(m.pi * f) * m.cos(m.pi * y)
    dy = p.alpha * m.pi * m.cos(m.pi * f) * m.sin(m.pi * y) * (2 * a * x + b)
    return dx, dy, p.omega


@equation("DoublePendulum")
def double_pendulum(s, p, m):
    th1, th2, p1, p2 = s
    cos_diff = m.cos(th1 - th2)
    sin_diff = m.sin(th1 - th2)
    denom = p.l1 * p.l2 * (p.m1 + p.m2 * sin_diff ** 2)
    th1dot = (p.l2 * p1 - p.l1 * p2 * cos_diff) / (p.l1 * denom)
    th2dot = ((p.m1 + p.m2) * p.l1 * p2 - p.m2 * p.l2 * p1 * cos_diff) / (p.m2 * p.l2 * denom)
    h1 = p1 * p2 * sin_diff / denom
    h2 = (p.m2 * p.l2 * p1 ** 2) / (2 * p.l1 * denom ** 2) + 0.5 * p.m2 * p2 * p.l2 * p.l1 * th2dot / denom
    h2 = h2 * m.sin(2 * (th1 - th2))
    p1dot = -(p.m1 + p.m2) * p.g * p.l1 * m.sin(th1) - h1 + h2
    p2dot = -p.m2 * p.g * p.l2 * m.sin(th2) + h1 - h2
    return th1dot, th2dot, p1dot, p2dot


@equation("Duffing")
def duffing(s, p, m):
    x, y, z = s
    return y, -p.delta * y - p.beta * x - p.alpha * x ** 3 + p.gamma * m.cos(z), p.omega


@equation("ExcitableCell")
def excitable_cell(s, p, m):
    v, n, c = s
    alpham = p.ams * (p.amvb + v) / (1 - m.exp(-p.ar * v - p.amvo))
    betam = p.bms * m.exp(-p.bmr * v - p.bmo)
    minf = alpham / (alpham + betam)
    alphah = p.ahs * m.exp(-p.ahr * v - p.aho)
    betah = 1 / (1 + m.exp(-p.bhr * v - p.bho))
    hinf = alphah / (alphah + betah)
    alphan = p.ans * (p.anvb + v) / (1 - m.exp(-p.ar * v - p.anvo))
    betan = p.bns * m.exp(-p.bnr * v - p.bno)
    ninf = alphan / (alphan + betan)
    tau = 1 / (p.tscl * (alphan + betan))
    ca = c / (1 + c)
    vdot = (p.gi * minf ** 3 * hinf * (p.vi - v) + p.gkv * n ** 4 * (p.vk - v)
            + p.gkc * ca * (p.vk - v) + p.gl * (p.vl - v))
    ndot = (ninf - n) / tau
    cdot = p.rho * (minf ** 3 * hinf * (p.vc - v) - p.kc * c)
    return vdot, ndot, cdot


@equation("Finance")
def finance(s, p, m):
    x, y, z = s
    return (1 / p.b - p.a) * x + z + x * y, -p.b * y - x ** 2, -x - p.c * z


@equation("FluidTrampoline", discontinuous="the impact damping psi y |y| switched on at x = 0")
def fluid_trampoline(s, p, m):
    x, y, th = s
    return y, -1 - (1 - m.switch(x)) / 2 * (x + p.psi * y * m.abs(y)) + p.gamma * m.cos(th), p.w


@equation("ForcedBrusselator")
def forced_brusselator(s, p, m):
    x, y, z = s
    return p.a + x ** 2 * y - (p.b + 1) * x + p.f * m.cos(z), p.b * x - x ** 2 * y, p.w


@equation("ForcedFitzHughNagumo")
def forced_fitz_hugh_nagumo(s, p, m):
    v, w, z = s
    return v - v ** 3 / 3 - w + p.curr + p.f * m.sin(z), p.gamma * (v + p.a - p.b * w), p.omega


@equation("ForcedVanDerPol")
def forced_van_der_pol(s, p, m):
    x, y, z = s
    return y, p.mu * (1 - x ** 2) * y - x + p.a * m.sin(z), p.w


@equation("GenesioTesi")
def genesio_tesi(s, p, m):
    x, y, z = s
    return y, z, -p.c * x - p.b * y - p.a * z + x ** 2


@equation("GlycolyticOscillation")
def glycolytic_oscillation(s, p, m):
    a, b, c = s
    phi = (a * (1 + a) * (1 + b) ** 2) / (p.l1 + (1 + a) ** 2 * (1 + b) ** 2)
    eta = b * (1 + p.d * b) * (1 + c) ** 2 / (p.l2 + (1 + p.d * b) ** 2 * (1 + c) ** 2)
    return p.nu - p.s1 * phi, p.q1 * p.s1 * phi - p.s2 * eta, p.q2 * p.s2 * eta - p.k * c


@equation("GuckenheimerHolmes")
def guckenheimer_holmes(s, p, m):
    x, y, z = s
    xdot = p.a * x - p.b * y + p.c * z * x + p.d * z * x ** 2 + p.d * z * y ** 2
    ydot = p.a * y + p.b * x + p.c * z * y
    zdot = p.e - z ** 2 - p.f * x ** 2 - p.f * y ** 2 - p.a * z ** 3
    return xdot, ydot, zdot


@equation("Hadley")
def hadley(s, p, m):
    x, y, z = s
    return (-(y ** 2) - z ** 2 - p.a * x + p.a * p.f, x * y - p.b * x * z - y + p.g,
            p.b * x * y + x * z - z)


@equation("Halvorsen")
def halvorsen(s, p, m):
    x, y, z = s
    return (-p.a * x - p.b * y - p.b * z - y ** 2, -p.a * y - p.b * z - p.b * x - z ** 2,
            -p.a * z - p.b * x - p.b * y - x ** 2)


@equation("HastingsPowell")
def hastings_powell(s, p, m):
    x, y, z = s
    prey = y * p.a1 * x / (1 + p.b1 * x)
    pred = z * p.a2 * y / (1 + p.b2 * y)
    return x * (1 - x) - prey, prey - pred - p.d1 * y, pred - p.d2 * z


@equation("HenonHeiles")
def henon_heiles(s, p, m):
    x, y, px, py = s
    return px, py, -x - 2 * p.lam * x * y, -y - p.lam * x ** 2 + p.lam * y ** 2


@equation("HindmarshRose")
def hindmarsh_rose(s, p, m):
    x, y, z = s
    xdot = -x + 1 / p.tx * y - p.a / p.tx * x ** 3 + p.b / p.tx * x ** 2 + 1 / p.tx * z
    ydot = -p.a * x ** 3 - (p.d - p.b) * x ** 2 + z
    zdot = -p.s / p.tz * x - 1 / p.tz * z + p.c / p.tz
    return xdot, ydot, zdot


@equation("Hopfield")
def hopfield(s, p, m):
    # activation (1 + tanh(eps * k @ x)) / 2
    n = len(s)
    drive = [p.eps * sum(p.k[i][j] * s[j] for j in range(n)) for i in range(n)]
    return [-s[i] / p.tau + (1 + m.tanh(drive[i])) / 2 - p.beta for i in range(n)]


@equation("HyperBao")
def hyper_bao(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x + w, p.c * y - x * z, x * y - p.b * z, p.e * x + p.d * y * z


@equation("HyperCai")
def hyper_cai(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x, p.b * x + p.c * y - x * z + w, -p.d * z + y ** 2, -p.e * x


@equation("HyperJha")
def hyper_jha(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x + w, -x * z + p.b * x - y, x * y - p.c * z, -x * z + p.d * w


@equation("HyperLorenz")
def hyper_lorenz(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x + w, -x * z + p.c * x - y, -p.b * z + x * y, p.d * w - x * z


@equation("HyperLu")
def hyper_lu(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x + w, -x * z + p.c * y, x * y - p.b * z, p.d * w + x * z


@equation("HyperPang")
def hyper_pang(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x, -x * z + p.c * y + w, x * y - p.b * z, -p.d * x - p.d * y


@equation("HyperQi")
def hyper_qi(s, p, m):
    x, y, z, w = s
    return (p.a * y - p.a * x + y * z, p.b * x + p.b * y - x * z, -p.c * z - p.e * w + x * y,
            -p.d * w + p.f * z + x * y)


@equation("HyperRossler")
def hyper_rossler(s, p, m):
    x, y, z, w = s
    return -y - z, x + p.a * y + w, p.b + x * z, -p.c * z + p.d * w


@equation("HyperWang")
def hyper_wang(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x, -x * z + p.b * x + w, -p.c * z + p.e * x ** 2, -p.d * x


@equation("HyperXu")
def hyper_xu(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x + w, p.b * x + p.e * x * z, -p.c * z - x * y, x * z - p.d * y


@equation("HyperYan")
def hyper_yan(s, p, m):
    x, y, z, w = s
    return (p.a * y - p.a * x, (p.c - p.a) * x - x * z + p.c * y, -p.b * z + x * y - y * z + x * z - w,
            -p.d * w + y * z - x * z)


@equation("HyperYangChen")
def hyper_yang_chen(s, p, m):
    x, y, z, w = s
    return p.a * y - p.a * x, p.c * x - x * z + w, -p.b * z + x * y, -p.d * x
