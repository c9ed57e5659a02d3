"""Random neural networks: a tanh RNN, a continuous-time rate network and a
deep random network with fresh weights every layer.

Units: natural log; per step for the two maps (``random_rnn``,
``deep_random_net``), per unit time for the flow (``rate_network``).

Mean-field theory
-----------------
For h <- tanh(W h + b) with W_ij ~ N(0, g^2/N), b_i ~ N(0, sigma_b^2) and
N -> infinity, the local fields are Gaussian with variance q*, the stable
fixed point of q = g^2 E[tanh^2(sqrt(q) z)] + sigma_b^2 (z ~ N(0, 1)), and

    lambda_max = 1/2 ln chi,    chi = g^2 E[sech^4(sqrt(q*) z)]

(Molgedey, Schuchhardt & Schuster, PRL 69, 3717 (1992); Poole et al.,
NeurIPS 2016; Schoenholz et al., ICLR 2017).  :func:`mean_field` evaluates it
by fixed-point iteration with Gauss-Hermite quadrature.

Finite N
--------
At finite N the exponent of one realisation lies below the mean-field value
by a ~1/N bias and, for the RNN whose W is drawn once, spreads from
realisation to realisation.  Both were measured with
:func:`finite_size_study` (commands and fits in the comments of
``_RNN_FINITE_N`` and ``_DEEP_FINITE_N``), and :func:`finite_n_uncertainty`
turns them into each Reference's uncertainty as a formula in N; mean-field
references exist only where this was measured.  The theory, the
measurements and the regimes of each network: docs/networks.md.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from suite.core.args import check_int, check_number
from reference_systems import computed
from reference_systems.noise import TrajectoryRNG
from reference_systems.random_products import newman_spectrum
from reference_systems.reference import Reference
from reference_systems.registry import register
from reference_systems.system import Flow, Map
from suite.core.errors import InvalidArgumentError

#: Two-sided normal quantile for the suite's per-row false-failure rate
#: alpha = 1e-4 (suite.scoring.tolerance.ALPHA): how many standard deviations of the
#: realisation-to-realisation spread a reference's uncertainty covers.
Z_SPREAD = 3.8906

# ---------------------------------------------------------------------------
# mean-field theory
# ---------------------------------------------------------------------------
_QUAD_MAX_Q = 250.0


@lru_cache(maxsize=64)
def _hermite_nodes(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to sum 1 (E over z ~ N(0,1))."""
    if n <= 200:
        z, w = np.polynomial.hermite_e.hermegauss(n)
    else:  # numpy's recursion overflows beyond ~350 nodes; scipy uses asymptotics
        from scipy.special import roots_hermitenorm
        z, w = roots_hermitenorm(n)
    return z, w / w.sum()


def gauss_expect(f, q: float, nodes: int = 200) -> float:
    """E[f(sqrt(q) z)], z ~ N(0, 1), by Gauss-Hermite quadrature.

    ``nodes * max(1, ceil(q))`` probabilists' Gauss-Hermite nodes, so that the
    node spacing near z = 0 stays a fixed fraction of the width 1/sqrt(q) of
    the sech^p(sqrt(q) z) integrands.  Beyond q = 250 (g > ~16) adaptive
    quadrature (scipy.integrate.quad) is used instead.
    """
    if q < 0 or not math.isfinite(q):
        raise InvalidArgumentError("q", q, "a finite number >= 0")
    if q > _QUAD_MAX_Q:
        from scipy.integrate import quad
        s = math.sqrt(q)
        val, _ = quad(lambda u: f(u) * math.exp(-u * u / (2 * q)) / math.sqrt(2 * math.pi * q),
                      -40 * s, 40 * s, points=[0.0], limit=2000, epsabs=1e-15, epsrel=1e-13)
        return float(val)
    z, w = _hermite_nodes(int(nodes * max(1, math.ceil(q))))
    with np.errstate(over="ignore"):
        return float(np.sum(w * f(math.sqrt(q) * z)))


def _tanh2(u):
    return np.tanh(u) ** 2


def _sech4(u):
    with np.errstate(over="ignore"):
        return 1.0 / np.cosh(u) ** 4


def mean_field(g: float, sigma_b: float = 0.0, nodes: int = 200, tol: float = 1e-15,
               max_iter: int = 100_000) -> Dict[str, float]:
    """Mean-field fixed point of a random tanh network and its top exponent.

    Iterates q <- g^2 E[tanh^2(sqrt(q) z)] + sigma_b^2 from q = g^2 + sigma_b^2
    (an upper bound of every fixed point: the map is increasing, so the
    iterates decrease monotonically onto the largest fixed point q*) until
    the change is below ``tol * max(q, 1)``; then chi = g^2
    E[sech^4(sqrt(q*) z)] and lambda = 1/2 ln chi (natural log, per step).

    Returns dict(q=q*, chi=chi, lam=1/2 ln chi, iterations=n).  For
    sigma_b = 0 and g <= 1, q* = 0 (the origin) and chi = g^2 exactly.
    Reproduces docs/design.md §3: g = 1.5 / 2 / 3 -> 0.06522 / 0.15472 / 0.3102.
    """
    g = check_number("g", g, low=0.0, low_open=True)
    sigma_b = check_number("sigma_b", sigma_b, low=0.0)
    if sigma_b == 0.0 and g <= 1.0:
        return {"q": 0.0, "chi": g * g, "lam": math.log(g), "iterations": 0}
    q = g * g + sigma_b * sigma_b
    for it in range(1, max_iter + 1):
        q_new = g * g * gauss_expect(_tanh2, q, nodes) + sigma_b * sigma_b
        done = abs(q_new - q) <= tol * max(q, 1.0)
        q = q_new
        if done:
            break
    else:  # pragma: no cover - only at g -> 1+ where q* -> 0 algebraically
        raise RuntimeError(f"mean-field iteration did not converge for g={g}, sigma_b={sigma_b}")
    chi = g * g * gauss_expect(_sech4, q, nodes)
    return {"q": q, "chi": chi, "lam": 0.5 * math.log(chi), "iterations": it}


# ---------------------------------------------------------------------------
# measured finite-N corrections
# ---------------------------------------------------------------------------
#: Finite-N deviation of the top exponent of ``random_rnn`` (sigma_b = 0) from
#: the mean-field value, per g: sizes N, dev = (mean over 12 realisations) -
#: lambda_MF, its standard error se (across realisations), worst = largest
#: |lambda - lambda_MF| of a single realisation, spread_ucb = 95% upper bound
#: of the realisation-to-realisation spread (time-average noise removed).
#: Measured with the k = 1 Benettin recursion on the system itself
#: (:func:`finite_size_study`; realisation seeds 0..11, 16 trajectories each,
#: 5,000 steps after a 1,000-step transient, float64, CPU), e.g. for g = 2:
#:
#:     python -c "import reference_systems.networks as nw; nw.finite_size_study('random_rnn',
#:         [100, 128, 200, 400, 800], realisations=12, batch=16, steps=5000, transient=1000,
#:         threads=1, g=2.0)"
#:
#: (~6 min per g on one core).  Fits lambda(N) = lambda_MF + a/N (weighted,
#: da scaled by sqrt(chi^2/dof) when above 1) and, with a free intercept,
#: lambda_inf + a/N:
#:
#:     g    lambda_MF  a (fixed)        chi2/dof  lambda_inf           a (free)
#:     1.5  0.065217   -4.08 +- 0.32    0.30      0.06597 +- 0.00150   -4.27 +- 0.49
#:     2    0.154724   -1.77 +- 0.14    1.91      0.15568 +- 0.00040   -2.20 +- 0.21
#:     3    0.310249   -2.49 +- 0.07    0.82      0.31064 +- 0.00025   -2.63 +- 0.11
#:
#: The exponent approaches the mean-field value from below like ~1/N
#: (N (lambda - lambda_MF) drifts slowly towards 0 at g = 2); realisations
#: spread by 0.5-2% of lambda at N = 100-200 (g = 2, 3) and by 30% at g = 1.5,
#: where small networks are often not chaotic at all (lambda ~ 0: limit
#: cycles), so the g = 1.5 reference carries an uncertainty comparable to
#: lambda below N ~ 800.  :func:`finite_n_uncertainty` turns an entry into the
#: uncertainty at any N >= 100; ``worst`` lets the tests check that every
#: measured realisation lies inside it.
_RNN_FINITE_N: Dict[float, Dict] = {
    1.5: {"N": (100, 128, 200, 400, 800),
          "dev": (-0.045373, -0.028654, -0.02035, -0.0099, -0.004663),
          "se": (0.005519, 0.00525, 0.004384, 0.001869, 0.001272),
          "worst": (0.06522, 0.06523, 0.05176, 0.02177, 0.01473),
          "spread_ucb": (0.029646, 0.028203, 0.023551, 0.010041, 0.006834)},
    2.0: {"N": (100, 128, 200, 400, 800),
          "dev": (-0.023863, -0.018481, -0.009856, -0.004166, -0.00189),
          "se": (0.003595, 0.003535, 0.001226, 0.000422, 0.000233),
          "worst": (0.05106, 0.04173, 0.01782, 0.00612, 0.00368),
          "spread_ucb": (0.019313, 0.018989, 0.006585, 0.002269, 0.001249)},
    3.0: {"N": (100, 128, 200, 400, 800),
          "dev": (-0.026193, -0.020282, -0.01293, -0.005895, -0.002948),
          "se": (0.001373, 0.001643, 0.000798, 0.000346, 0.000175),
          "worst": (0.03258, 0.02804, 0.01855, 0.00835, 0.00396),
          "spread_ucb": (0.007375, 0.008826, 0.004289, 0.00186, 0.000938)},
}

#: The same for ``deep_random_net`` (sigma_b = 0), per sigma_w.  No quenched
#: disorder (fresh weights every step), so there is no realisation spread and
#: se is the standard error over all 32 independent trajectories (2 groups of
#: 16, noise seeds 0 and 1000, 4,000 steps after a 500-step transient):
#:
#:     python -c "import reference_systems.networks as nw; nw.finite_size_study('deep_random_net',
#:         [16, 32, 64, 128], realisations=2, batch=16, steps=4000, transient=500, threads=1,
#:         sigma_w=2.0)"
#:
#: (~4 min per sigma_w on one core; N = 128 dominates: drawing 128^2 normals
#: per trajectory and step).  Fits:
#:
#:     sigma_w  lambda_MF  a (fixed)          chi2/dof  lambda_inf           a (free)
#:     1.5      0.065217   -0.947 +- 0.010    0.47      0.06510 +- 0.00036   -0.943 +- 0.016
#:     2        0.154724   -1.453 +- 0.015    1.82      0.15513 +- 0.00036   -1.466 +- 0.016
#:     3        0.310249   -2.494 +- 0.038    6.94      0.31209 +- 0.00051   -2.561 +- 0.023
#:
#: A clean 1/N law (N (lambda - lambda_MF) = -0.94, -1.45, -2.44 +- 0.1 at every
#: N); the free intercepts agree with mean-field theory except at sigma_w = 3,
#: where a small 1/N^2 term (N (lambda - lambda_MF) goes from -2.55 at N = 16
#: to -2.38 at N = 64) pulls the 1/N-only extrapolation up.  ``worst`` is the
#: farther of the two group means.
_DEEP_FINITE_N: Dict[float, Dict] = {
    1.5: {"N": (16, 32, 64, 128),
          "dev": (-0.05838, -0.029969, -0.014974, -0.007342),
          "se": (0.000955, 0.000519, 0.000469, 0.000323),
          "worst": (0.05889, 0.03063, 0.01524, 0.00814),
          "spread_ucb": (0.0, 0.0, 0.0, 0.0)},
    2.0: {"N": (16, 32, 64, 128),
          "dev": (-0.091957, -0.044947, -0.021888, -0.011401),
          "se": (0.000907, 0.000706, 0.00044, 0.000327),
          "worst": (0.09243, 0.04588, 0.02219, 0.01161),
          "spread_ucb": (0.0, 0.0, 0.0, 0.0)},
    3.0: {"N": (16, 32, 64, 128),
          "dev": (-0.159375, -0.077938, -0.037232, -0.019025),
          "se": (0.001294, 0.000919, 0.000488, 0.000491),
          "worst": (0.16116, 0.07855, 0.03736, 0.01974),
          "spread_ucb": (0.0, 0.0, 0.0, 0.0)},
}


def finite_n_uncertainty(entry: Dict, N: int, quenched: bool) -> Optional[float]:
    """Uncertainty of the mean-field lambda_max as the exponent of one size-N system.

    From a measured entry (sizes N_i, deviations d_i = mean_i - lambda_MF with
    standard errors e_i, realisation spreads s_i):

        u(N) = max_{N_i >= N_j} N_i (|d_i| + 2 e_i) / N
               + Z * max( max_{N_i >= N_j} N_i s_i / N,  sqrt(N_max) s_max / sqrt(N) )   (quenched only)

    with N_j the largest measured size <= N and Z = 3.89 (the suite's alpha
    = 1e-4).  The first term bounds the systematic bias (|d_i| + 2 e_i: the
    measured deviation and twice its standard error): it assumes that
    N |d(N)| is monotone between consecutive measured sizes (then the
    largest N_i (|d_i| + 2 e_i) with N_i >= N_j bounds it for N_j <= N <=
    N_max) and does not grow beyond N_max (measured: from N = 400 to 800 it
    falls or stays flat for every tabulated parameter).  The second covers
    the realisation-to-realisation spread (quenched disorder: W fixed by
    the seed) at the same 1e-4 level, with the same monotonicity of N s(N)
    between measured sizes and, beyond N_max, a decay no faster than
    1/sqrt(N); s_i is the 95% upper confidence bound of the spread.
    Returns None below the smallest measured N (not covered).
    """
    Ns = entry["N"]
    if N < Ns[0]:
        return None
    j = max(i for i, n in enumerate(Ns) if n <= N)
    u = max(Ns[i] * (abs(entry["dev"][i]) + 2.0 * entry["se"][i]) for i in range(j, len(Ns))) / N
    if quenched:
        s = max(Ns[i] * entry["spread_ucb"][i] for i in range(j, len(Ns))) / N
        s = max(s, math.sqrt(Ns[-1]) * entry["spread_ucb"][-1] / math.sqrt(N))
        u += Z_SPREAD * s
    return u


def finite_size_prediction(table: Dict[float, Dict], x: float, N: int, quenched: bool) -> Optional[Dict]:
    """lambda_max of one size-N system predicted from mean-field theory plus the fitted finite-size correction.

    d(N) = c1 / N + c2 / N^2 is fitted by weighted least squares to the measured deviations d_i +- e_i of
    ``table[x]`` (module tables); the prediction is lambda_MF + d(N), its standard error that of the fit
    at N, plus, for a fixed realisation (``quenched``), the realisation-to-realisation spread at N (N s(N)
    taken as constant below the smallest measured size, s ~ 1/sqrt(N) beyond the largest).  Used to check
    the mean-field value (the N -> infinity limit) against the computed finite-N references.  None where
    ``x`` was not measured.
    """
    entry = table.get(x)
    if entry is None:
        return None
    Ns, d, e = (np.asarray(entry[k], dtype=float) for k in ("N", "dev", "se"))
    X = np.stack([1.0 / Ns, 1.0 / Ns ** 2], axis=1) / e[:, None]
    coef, *_ = np.linalg.lstsq(X, d / e, rcond=None)
    cov = np.linalg.inv(X.T @ X)
    chi2 = float(np.sum((X @ coef - d / e) ** 2)) / max(1, len(Ns) - 2)
    cov *= max(1.0, chi2)  # an imperfect two-term law: its scatter widens the fit's error
    basis = np.array([1.0 / N, 1.0 / N ** 2])
    spread = 0.0
    if quenched:
        s = np.asarray(entry["spread_ucb"], dtype=float)
        spread = float(Ns[0] * s[0] / N) if N <= Ns[0] else float(np.interp(N, Ns, s)) if N <= Ns[-1] \
            else float(s[-1] * math.sqrt(Ns[-1] / N))
    return {"lambda_mf": mean_field(x)["lam"], "correction": float(basis @ coef),
            "value": mean_field(x)["lam"] + float(basis @ coef),
            "fit_stderr": float(math.sqrt(basis @ cov @ basis)), "spread": spread,
            "coefficients": coef.tolist(), "chi2_per_dof": chi2}


def _entries_for(table: Dict[float, Dict], x: float) -> Optional[list]:
    """The measured entry for parameter value x, or None where none was measured.

    No interpolation between measured values: the measured finite-N
    deviation is not monotone in g (at N = 800, N (lambda - lambda_MF) is
    -3.7, -1.5, -2.4 at g = 1.5, 2, 3), so a value between two measured ones
    is not bounded by them.  Run :func:`finite_size_study` to add one.
    """
    return [table[x]] if x in table else None


def _mean_field_reference(table, x, N, quenched, lam, **kw) -> Tuple[Optional[Reference], Optional[str]]:
    entries = _entries_for(table, x)
    us = None if entries is None else [finite_n_uncertainty(e, N, quenched) for e in entries]
    if us is None or any(u is None for u in us):
        where = (f"parameter in {sorted(table)} and N >= {min(min(e['N']) for e in table.values())}"
                 if table else "no parameters yet")
        return None, (f"mean-field lambda_max = {lam:.5f} (N -> infinity) is not used as a reference: its "
                      f"finite-N deviation was measured only for sigma_b = 0, {where}")
    extra = dict(kw.pop("extra", {}), finite_n=entries[0],
                 uncertainty_formula="reference_systems.networks.finite_n_uncertainty(finite_n, N, "
                                     f"quenched={quenched}) at N = {N}")
    return Reference.make([lam], [max(us)], "mean-field", extra=extra, **kw), None


#: the long float64 runs that compute a chaotic network's reference for the finite system as defined
#: (suite.studies.computed_references: QR, confirmed by two-trajectory lambda_1 and autodiff tangents)
CHAOTIC_REFERENCE_RUN = {"steps": 20_000, "transient": 1_000, "batch": 32}


def _with_computed_reference(system, run=None):
    """Declare the reference run of a chaotic configuration and attach its computed reference where a
    fresh one is cached (the mean-field value, if any, then stays in ``meta['limit_reference']``)."""
    system.declare(reference_run=dict(run or CHAOTIC_REFERENCE_RUN))
    computed.attach_to_system(system)
    return system


# ---------------------------------------------------------------------------
# random tanh RNN (fixed realisation)
# ---------------------------------------------------------------------------
class TanhRNN(Map):
    """h_{t+1} = tanh(W h_t + b) with one fixed realisation (W, b); see :func:`random_rnn`.

    The tangent map is J = diag(1 - h_{t+1}^2) W (standard orientation, never
    W^T), applied as (1 - h_{t+1}^2)[:, :, None] * (W @ V) without forming the
    (B, N, N) Jacobian.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, **kw):
        self.W64, self.b64 = W, b
        self._cast: Dict[Tuple[torch.dtype, torch.device], Tuple[torch.Tensor, torch.Tensor]] = {}
        kw.setdefault("batch_invariant", False)  # x @ W.T over the whole batch (System docstring)
        super().__init__("random_rnn", step=self._forward, dim=W.shape[0], jacobian=self._jacobian, **kw)

    def _wb(self, x: torch.Tensor):
        key = (x.dtype, x.device)
        if key not in self._cast:
            self._cast[key] = (self.W64.to(device=x.device, dtype=x.dtype),
                               self.b64.to(device=x.device, dtype=x.dtype))
        return self._cast[key]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        W, b = self._wb(x)
        return torch.tanh(x @ W.T + b)

    def _jacobian(self, x: torch.Tensor) -> torch.Tensor:
        W, _ = self._wb(x)
        h = self._forward(x)
        return (1.0 - h * h).unsqueeze(-1) * W

    def _step(self, x, generator):
        return self._forward(x)

    def _tangent(self, x, V, generator):
        W, _ = self._wb(x)
        h = self._forward(x)
        B, N, k = V.shape
        WV = (W @ V.transpose(0, 1).reshape(N, B * k)).reshape(N, B, k).transpose(0, 1)
        return h, (1.0 - h * h).unsqueeze(-1) * WV

    def jacobian(self, x, generator=None):
        """diag(1 - h_{t+1}^2) W, (B, N, N)."""
        self._check_state(x)
        return self._jacobian(x)

    def log_abs_det_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) ln|det DF(x)| = sum_i ln(1 - h_{t+1,i}^2) + ln|det W| (float64).

        Its average along a trajectory is exactly the sum of that
        trajectory's Lyapunov exponents (the QR sum of ln R_ii telescopes to
        ln|det| of the product of Jacobians).
        """
        h = self._forward(x).to(torch.float64)
        return torch.log1p(-h * h).sum(dim=1) + self.meta["log_abs_det_W"]


def _rnn_realisation(N: int, g: float, sigma_b: float, seed: int):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    W = torch.randn(N, N, generator=gen, dtype=torch.float64) * (g / math.sqrt(N))
    b = torch.randn(N, generator=gen, dtype=torch.float64) * sigma_b
    return W, b


def _eig_reference(W: np.ndarray) -> Tuple[np.ndarray, np.ndarray, float, float]:
    """ln|eig(W)| sorted descending, a rounding bound per value, ln cond(P), rho(W)."""
    from scipy.linalg import eig
    mu, vl, vr = eig(W, left=True, right=True)
    vals = np.log(np.abs(mu))
    # first-order perturbation: |d mu_i| <= kappa_i ||dW||, kappa_i = 1/|y_i^H x_i| for unit
    # vectors, ||dW|| ~ N eps ||W||_2 (backward error of the QR algorithm), so
    # |d ln|mu_i|| <= kappa_i N eps ||W||_2 / |mu_i| (times 10 for safety)
    vl = vl / np.linalg.norm(vl, axis=0)
    vr = vr / np.linalg.norm(vr, axis=0)
    kappa = 1.0 / np.abs(np.sum(vl.conj() * vr, axis=0))
    unc = 10.0 * kappa * W.shape[0] * np.finfo(np.float64).eps * np.linalg.norm(W, 2) / np.abs(mu)
    order = np.argsort(-vals, kind="stable")
    return vals[order], unc[order], float(np.log(np.linalg.cond(vr))), float(np.abs(mu).max())


def random_rnn(N: int = 200, g: float = 2.0, sigma_b: float = 0.0, seed: int = 0) -> TanhRNN:
    """Random tanh recurrent network h_{t+1} = tanh(W h_t + b); exponents per step (natural log).

    W_ij ~ N(0, g^2/N) and b_i ~ N(0, sigma_b^2) are drawn once from ``seed``
    (torch.Generator on the CPU in float64, W first, then b): one fixed
    realisation, a deterministic map.  Tangent map J = diag(1 - h_{t+1}^2) W.
    Initial states h ~ N(0, 1).  Exact sum rule for any parameters, per
    trajectory: sum_i lambda_i = < sum_i ln(1 - h_i^2) > + ln|det W|
    (``meta['log_abs_det_W']``, :meth:`TanhRNN.log_abs_det_jacobian`).

    References, by regime:

    * g > 1: the computed spectrum of this realisation where a fresh one is
      cached (``lyapbench references``; the mean-field value then moves to
      ``meta['limit_reference']``); otherwise, for g in {1.5, 2, 3},
      sigma_b = 0, N >= 100, the mean-field lambda_max = 1/2 ln chi with the
      finite-N uncertainty of :func:`finite_n_uncertainty`.
    * g < 1, sigma_b = 0: h -> 0, where the tangent map is W, so the exponents
      are exactly ln|eig(W)| of this realisation, all N of them (provenance
      'exact'); none if this realisation has spectral radius >= 1.
    * otherwise (other g, N < 100, sigma_b > 0, g = 1): no reference;
      ``meta['note']`` says why.

    Parameters
    ----------
    N, g, sigma_b, seed : int, float, float, int
        Hidden units, gain, bias scale and the seed of the realisation.

    Details of each regime: docs/networks.md.
    """
    N = check_int("N", N, 1)
    g = check_number("g", g, low=0.0, low_open=True)
    sigma_b = check_number("sigma_b", sigma_b, low=0.0)
    seed = check_int("seed", seed, low=0)
    W, b = _rnn_realisation(N, g, sigma_b, seed)
    _, logdet = np.linalg.slogdet(W.numpy())
    ref, note, validation = None, None, None
    mf = None
    if g > 1.0:
        mf = mean_field(g, sigma_b)
        if sigma_b == 0.0:
            ref, note = _mean_field_reference(
                _RNN_FINITE_N, g, N, True, mf["lam"],
                source="Molgedey, Schuchhardt & Schuster, PRL 69, 3717 (1992); Poole et al., NeurIPS 2016: "
                       "lambda_max = 1/2 ln chi, chi = g^2 E[sech^4(sqrt(q*) z)], q* = g^2 E[tanh^2(sqrt(q*) z)] "
                       "(fixed-point iteration with Gauss-Hermite quadrature: reference_systems.networks."
                       "mean_field); uncertainty: finite-N bias and realisation-to-realisation spread at this N, "
                       "measured with reference_systems.networks.finite_size_study "
                       "(reference_systems.networks.finite_n_uncertainty)",
                note=f"mean-field value (N -> infinity); the uncertainty covers one realisation at N = {N} "
                     "(finite-N bias + quenched disorder)",
                extra={"mean_field": mf})
        else:
            note = (f"mean-field lambda_max = {mf['lam']:.5f} (N -> infinity) is not used as a reference: "
                    "its finite-N deviation was measured only for sigma_b = 0")
    elif g < 1.0 and sigma_b == 0.0:
        vals, unc, logcond, rho = _eig_reference(W.numpy())
        if rho < 1.0:
            ref = Reference(vals, unc, "exact",
                            "h -> 0 (stable fixed point, rho(W) < 1) where the tangent map is W: "
                            "lambda_i = ln|eig_i(W)| of this realisation (scipy.linalg.eig)",
                            bias_nats=max(1.0, logcond),
                            note="exact after the transient has brought h to 0 (|h| ~ rho^t)",
                            extra={"spectral_radius": rho})
            # the state contracts like rho^t: 60 / |ln rho| steps bring h^2 below float64 resolution
            validation = {"steps": 5_000, "transient": int(min(5_000, math.ceil(60 / -math.log(rho)))),
                          "batch": 4}
        else:
            note = (f"this realisation has spectral radius rho(W) = {rho:.4f} >= 1 although g = {g} < 1 "
                    "(finite-N fluctuation): h = 0 is not stable and no exact value is known")
    elif g == 1.0:
        note = ("g = 1 is the critical point: lambda_max -> 0 as N -> infinity with slow, N-dependent "
                "convergence (critical slowing down); no reference")
    else:
        note = ("g < 1 with sigma_b > 0: h converges to a realisation-dependent fixed point h* and "
                "lambda_i = ln|eig(diag(1 - h*^2) W)|, not known in closed form; no reference")
    if validation is None:
        # chaotic: the full spectrum (the runner's k = None) costs O(N^3) per step; 16 trajectories
        # resolve lambda_1 to ~1e-3 against the computed reference (docs/networks.md)
        validation = {"steps": 2_000 if N > 64 else 4_000, "transient": 200, "batch": 16}
    system = TanhRNN(W, b, reference=ref, sample_initial=lambda batch, gen: gen.normal(N),
                     params={"N": N, "g": g, "sigma_b": sigma_b, "seed": seed},
                     log_abs_det_W=float(logdet), note=note, mean_field=mf, validation=validation)
    return _with_computed_reference(system) if g > 1.0 else system


register("random_rnn", random_rnn, variants=[{"N": 100, "g": 3.0}, {"N": 50, "g": 2.0}, {"N": 64, "g": 0.8}])


# ---------------------------------------------------------------------------
# continuous-time rate network
# ---------------------------------------------------------------------------
class RateNetwork(Flow):
    """tau h' = -h + J tanh(h); see :func:`rate_network`.

    The tangent of the right-hand side, (-V + J (sech^2(h)[:, :, None] * V)) / tau,
    is applied without forming the (B, N, N) Jacobian.
    """

    def __init__(self, J: torch.Tensor, tau: float, dt: float, **kw):
        self.J64, self.tau = J, tau
        self._cast: Dict[Tuple[torch.dtype, torch.device], torch.Tensor] = {}
        kw.setdefault("batch_invariant", False)  # tanh(x) @ J.T over the whole batch (System docstring)
        super().__init__("rate_network", self._rhs, dim=J.shape[0], dt=dt, jacobian=self._rhs_jacobian, **kw)

    def _J(self, x):
        key = (x.dtype, x.device)
        if key not in self._cast:
            self._cast[key] = self.J64.to(device=x.device, dtype=x.dtype)
        return self._cast[key]

    def _rhs(self, x):
        return (torch.tanh(x) @ self._J(x).T - x) / self.tau

    def _rhs_jacobian(self, x):
        """(-I + J diag(sech^2 h)) / tau, (B, N, N)."""
        J = self._J(x)
        s2 = 1.0 - torch.tanh(x) ** 2
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        return (J * s2.unsqueeze(1) - eye) / self.tau

    def _jvp(self, y, V):
        J = self._J(y)
        B, N, k = V.shape
        SV = ((1.0 - torch.tanh(y) ** 2).unsqueeze(-1) * V).transpose(0, 1).reshape(N, B * k)
        return ((J @ SV).reshape(N, B, k).transpose(0, 1) - V) / self.tau


def _rk4_growth(z: np.ndarray) -> np.ndarray:
    """|R(z)| for the RK4 stability polynomial R(z) = 1 + z + z^2/2 + z^3/6 + z^4/24."""
    return np.abs(1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24)


def rate_network(N: int = 100, g: float = 2.0, tau: float = 1.0, dt: float = 0.05, seed: int = 0) -> RateNetwork:
    """Continuous-time random rate network tau h' = -h + J tanh(h); exponents per unit time (natural log).

    J_ij ~ N(0, g^2/N) for i != j and J_ii = 0, drawn once from ``seed``
    (torch.Generator, CPU, float64, then the diagonal zeroed): one fixed
    realisation, chaotic for g > 1 as N -> infinity (Sompolinsky, Crisanti &
    Sommers, "Chaos in random neural networks", PRL 61, 259 (1988)).  The
    Jacobian of the right-hand side, (-I + J diag(sech^2 h)) / tau, has trace
    exactly -N/tau (zero diagonal), so the sum of all N exponents is -N/tau for
    the flow (``meta['divergence']``) and -N/tau + O(dt^4) for the RK4 map.
    Initial states h ~ N(0, 1); dt = 0.05 tau keeps RK4 well inside its
    stability region.

    References for individual exponents:

    * g > 1: the computed spectrum of this realisation where ``lyapbench
      references`` has cached a fresh one (docs/networks.md, "Computed
      references"), else none; small networks are often periodic.
    * g < 1 when this realisation's spectral abscissa max Re eig(J) < 1: h -> 0,
      where the flow is linear, so the exponents are exactly Re eig(-I + J) / tau
      (provenance 'exact'); the RK4 map's known deviation is in the uncertainty.

    Parameters
    ----------
    N, g, tau, dt, seed : int, float, float, float, int
        Units, gain, time constant, RK4 step and the seed of the realisation.

    Measured examples and details: docs/networks.md.
    """
    N = check_int("N", N, low=2)
    g = check_number("g", g, low=0.0, low_open=True)
    tau = check_number("tau", tau, low=0.0, low_open=True)
    dt = check_number("dt", dt, low=0.0, low_open=True)
    seed = check_int("seed", seed, low=0)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    J = torch.randn(N, N, generator=gen, dtype=torch.float64) * (g / math.sqrt(N))
    J.fill_diagonal_(0.0)
    ref = None
    note = ("no reference for individual exponents: no closed form is known for a finite realisation in the "
            "chaotic regime; the sum of all exponents is -N/tau exactly (meta['divergence'])")
    T, transient_T = 200.0 * tau, 20.0 * tau
    zero_exponent = None  # chaotic or periodic: an autonomous flow off a fixed point has one
    if g < 1.0:
        A = (J.numpy() - np.eye(N)) / tau
        mu, P = np.linalg.eig(A)
        abscissa = float(mu.real.max())
        if abscissa < 0.0:
            rk4_err = float(np.max(np.abs(np.log(_rk4_growth(dt * mu)) / dt - mu.real)))
            rounding = 10.0 * N * np.finfo(np.float64).eps * np.linalg.norm(A, 2) * np.linalg.cond(P)
            ref = Reference(np.sort(mu.real)[::-1], np.full(N, rk4_err + rounding), "exact",
                            "h -> 0 (stable fixed point: max Re eig(J) < 1), where the flow is h' = (-I + J) h / tau: "
                            "lambda_i = Re eig_i(-I + J)/tau of this realisation (numpy.linalg.eig); the "
                            "uncertainty covers the RK4 map's O(dt^4) difference ln|R(dt mu)|/dt - Re mu",
                            bias_nats=max(1.0, float(np.log(np.linalg.cond(P)))),
                            extra={"spectral_abscissa": abscissa, "rk4_error": rk4_err})
            note = None
            zero_exponent = False  # at a stable fixed point: no direction along the flow
            # h^2 must fall below float64 resolution (|h| ~ exp(abscissa t)) before measuring
            transient_T = 40.0 / -abscissa
            T = 200.0 * tau
        else:
            note = (f"this realisation has max Re eig(-I + J)/tau = {abscissa:.4f} >= 0 although g = {g} < 1 "
                    "(finite-N fluctuation): h = 0 is not stable and no exact value is known; the sum of all "
                    "exponents is still -N/tau (meta['divergence'])")
    if ref is None and g > 1.0:
        T = 400.0 * tau  # lambda_1 ~ 0.01 fluctuates strongly: 32 trajectories over T = 400 resolve it to ~0.003
    system = RateNetwork(J, tau, dt, reference=ref, sample_initial=lambda batch, gen_: gen_.normal(N),
                         params={"N": N, "g": g, "tau": tau, "dt": dt, "seed": seed},
                         divergence=-N / tau, note=note,
                         **({} if zero_exponent is None else {"zero_exponent": zero_exponent}),
                         validation={"steps": math.ceil(T / dt), "transient": math.ceil(transient_T / dt),
                                     "batch": 4 if ref is not None else 32 if g > 1.0 else 8})
    if ref is None and g > 1.0:
        return _with_computed_reference(system, {"steps": math.ceil(10_000 * tau / dt),
                                                 "transient": math.ceil(50 * tau / dt), "batch": 32})
    return system


register("rate_network", rate_network, variants=[{"N": 32, "g": 2.0}, {"N": 16, "g": 0.5, "dt": 0.1}])


def batch_invariant_bmm(A: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """torch.bmm(A, X) computed the same way for every batch size.

    torch.bmm of a single matrix-vector product ((1, N, N) x (1, N, 1)) takes
    another BLAS path than a batch of them, and its bits differ for N >= 32
    (measured on x86 MKL); a batch of one is therefore computed as a batch of
    two identical entries, so a trajectory gives the same bits whatever batch
    it runs in (tests/test_reliability.py).
    """
    if A.shape[0] == 1 and X.shape[-1] == 1:
        return torch.bmm(A.expand(2, -1, -1), X.expand(2, -1, -1))[:1]
    return torch.bmm(A, X)


# ---------------------------------------------------------------------------
# deep random network: fresh weights every step
# ---------------------------------------------------------------------------
def _phi_lncosh(u):
    # 2 ln cosh u, overflow-free
    a = np.abs(u)
    return 2.0 * (a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0))


def ordered_bias_bound(N: int, sigma_w: float, m0: float = 1.0, tol: float = 1e-18) -> float:
    """Bound (nats) on the total bias of every QR exponent of ``deep_random_net`` with
    sigma_b = 0, sigma_w < 1, from a start with E||x_0||^2 / N = m0.

    Each exponent's estimate is sum_t ln R_ii(D_t W_t Q_t), D_t = diag(1 - x_{t+1}^2).
    Without D_t it is exactly unbiased (W_t is fresh and independent of Q_t,
    so W_t Q_t has iid Gaussian entries: Newman's law at every step).  With
    D_t, interlacing bounds the change of every ln R_ii by
    S_t = sum_j |ln(1 - x_{t+1,j}^2)| = sum_j 2 ln cosh(u_j), u = W_t x_t.
    Given x_t the u_j are iid N(0, sigma_w^2 |x_t|^2/N), so
    E[S_t | x_t] = N phi(sigma_w^2 |x_t|^2/N), phi(q) = E[2 ln cosh(sqrt(q) z)],
    and E[|x_{t+1}|^2/N | x_t] = psi(sigma_w^2 |x_t|^2/N), psi(q) = E[tanh^2(sqrt(q) z)].
    phi and psi are increasing and concave (phi'(q) = E sech^2(sqrt(q) z) by
    Stein's lemma; psi checked in the tests), so by Jensen
    E S_t <= N phi(sigma_w^2 m_t) with m_{t+1} = psi(sigma_w^2 m_t):

        bias_nats = N sum_{t >= 0} phi(sigma_w^2 m_t).
    """
    total, m = 0.0, m0
    for _ in range(100_000):
        term = N * gauss_expect(_phi_lncosh, sigma_w * sigma_w * m)
        total += term
        if term < tol * max(total, 1e-300):
            break
        m = gauss_expect(_tanh2, sigma_w * sigma_w * m)
    return total


class DeepRandomNet(Map):
    """x_{t+1} = tanh(W_t x_t + b_t), fresh (W_t, b_t) per step and trajectory; see :func:`deep_random_net`."""

    def __init__(self, N: int, sigma_w: float, sigma_b: float, **kw):
        self.sigma_w, self.sigma_b = sigma_w, sigma_b
        super().__init__("deep_random_net", step=self._forward, dim=N, jacobian=self._jacobian,
                         noise=self._draw, **kw)

    def _draw(self, generator: TrajectoryRNG, x: torch.Tensor):
        N = self.dim
        W = generator.normal(N, N, std=self.sigma_w / math.sqrt(N), dtype=x.dtype)
        b = generator.normal(N, std=self.sigma_b, dtype=x.dtype)
        return W, b

    @staticmethod
    def _forward(x, xi):
        W, b = xi
        return torch.tanh(batch_invariant_bmm(W, x.unsqueeze(-1)).squeeze(-1) + b)

    def _jacobian(self, x, xi):
        h = self._forward(x, xi)
        return (1.0 - h * h).unsqueeze(-1) * xi[0]

    def _step(self, x, generator):
        return self._forward(x, self._draw(generator, x))

    def _tangent(self, x, V, generator):
        xi = self._draw(generator, x)
        h = self._forward(x, xi)
        return h, (1.0 - h * h).unsqueeze(-1) * batch_invariant_bmm(xi[0], V)


def deep_random_net(N: int = 64, sigma_w: float = 2.0, sigma_b: float = 0.0) -> DeepRandomNet:
    """Deep random tanh network x_{t+1} = tanh(W_t x_t + b_t) with fresh weights every step.

    A random dynamical system: W_t ~ N(0, sigma_w^2/N) and b_t ~ N(0, sigma_b^2)
    iid, drawn per trajectory and per step from the estimator's TrajectoryRNG
    (W_t first, then b_t).  Exponents per step (per layer), natural log.
    Tangent map diag(1 - x_{t+1}^2) W_t.  Initial states x ~ N(0, 1).

    References, by regime:

    * sigma_b = 0, sigma_w < 1 (ordered): x -> 0, where the tangent map is the
      Gaussian matrix W_t, so the whole spectrum is Newman's, exactly:
      newman_spectrum(N, sigma_w/sqrt(N)) (Newman, Commun. Math. Phys. 103, 121
      (1986)); bias_nats from :func:`ordered_bias_bound`.
    * chaotic (chi_1 > 1): the computed spectrum of the finite-N ensemble where
      a fresh one is cached (``lyapbench references``); otherwise, for sigma_b
      = 0, sigma_w in {1.5, 2, 3}, N >= 16, the mean-field lambda_max =
      1/2 ln chi_1 (Poole et al. 2016) with :func:`finite_n_uncertainty`.
    * elsewhere: no reference; ``meta['note']`` says why.

    Parameters
    ----------
    N, sigma_w, sigma_b : int, float, float
        Width, weight scale and bias scale.

    Details and measurements: docs/networks.md.
    """
    N = check_int("N", N, 1)
    sigma_w = check_number("sigma_w", sigma_w, low=0.0, low_open=True)
    sigma_b = check_number("sigma_b", sigma_b, low=0.0)
    mf = mean_field(sigma_w, sigma_b)
    ref, note = None, None
    validation = {"steps": 4_000, "transient": 300, "batch": 16}
    if sigma_b == 0.0 and sigma_w < 1.0:
        bound = ordered_bias_bound(N, sigma_w)
        ref = Reference(newman_spectrum(N, sigma_w / math.sqrt(N)), np.zeros(N), "exact",
                        "x -> 0, where the tangent map is a product of iid Gaussian matrices with variance "
                        "sigma_w^2/N: Newman, Commun. Math. Phys. 103, 121 (1986), "
                        "reference_systems.random_products.newman_spectrum(N, sigma_w/sqrt(N))",
                        bias_nats=bound,
                        note="bias_nats bounds the nonlinear correction before x reaches 0 "
                             "(reference_systems.networks.ordered_bias_bound)")
        validation = {"steps": 4_000, "transient": 200, "batch": 16}
    elif mf["chi"] > 1.0:
        if sigma_b == 0.0:
            ref, note = _mean_field_reference(
                _DEEP_FINITE_N, sigma_w, N, False, mf["lam"],
                source="Poole et al., NeurIPS 2016; Schoenholz et al., ICLR 2017: lambda_max = 1/2 ln chi_1, "
                       "chi_1 = sigma_w^2 E[sech^4(sqrt(q*) z)], q* = sigma_w^2 E[tanh^2(sqrt(q*) z)] "
                       "(reference_systems.networks.mean_field); uncertainty: finite-N bias at this N measured "
                       "with reference_systems.networks.finite_size_study "
                       "(reference_systems.networks.finite_n_uncertainty)",
                note=f"mean-field value (N -> infinity); the uncertainty covers the finite-N bias at N = {N}",
                extra={"mean_field": mf})
        else:
            note = (f"mean-field lambda_max = {mf['lam']:.5f} (N -> infinity) is not used as a reference: "
                    "its finite-N deviation was measured only for sigma_b = 0")
    elif sigma_w == 1.0 and sigma_b == 0.0:
        note = "sigma_w = 1 is the edge of chaos: x -> 0 only algebraically; no reference"
    else:
        note = ("ordered phase with sigma_b > 0: x fluctuates around q* > 0 and the exponents depend on "
                "the fluctuations at finite N; no reference")
    system = DeepRandomNet(N, sigma_w, sigma_b, reference=ref,
                           sample_initial=lambda batch, g: g.normal(N),
                           params={"N": N, "sigma_w": sigma_w, "sigma_b": sigma_b},
                           note=note, mean_field=mf, validation=validation)
    return _with_computed_reference(system) if mf["chi"] > 1.0 else system


register("deep_random_net", deep_random_net, variants=[{"N": 16, "sigma_w": 0.8}, {"N": 32, "sigma_w": 2.0}])


# ---------------------------------------------------------------------------
# the finite-N measurement
# ---------------------------------------------------------------------------
def finite_size_study(name: str, Ns: Sequence[int], *, realisations: int = 4, batch: int = 8,
                      steps: int = 10_000, transient: int = 1_000, seed: int = 0,
                      threads: Optional[int] = None, verbose: bool = True, **params) -> Dict:
    """Measure the top exponent of ``random_rnn`` or ``deep_random_net`` against N.

    For each N and realisation r = 0 .. realisations-1 (``random_rnn``: the
    network built with seed = r, a fresh W; ``deep_random_net`` has no
    quenched disorder, so its "realisations" are just independent groups of
    trajectories) runs ``batch`` trajectories, seeded ``seed + 1000 r``, of
    the k = 1 Benettin recursion on the system itself,

        x, v <- system.tangent(x, v);  lambda += ln|v|;  v <- v / |v|,

    which is the QR estimator with k = 1, discarding ``transient`` steps and
    averaging over ``steps``.  Per N it records the mean over realisations,
    its deviation from the mean-field value dev = mean - lambda_MF, the
    standard error se (across realisations), the time-average noise of one
    realisation's mean, the spread of realisations (std of the realisation
    means with the time-average noise removed in quadrature) and its 95%
    upper confidence bound spread_ucb (chi^2 with realisations - 1 dof).
    It also fits lambda(N) = lambda_MF + a/N (weighted least squares; da
    scaled by sqrt(chi^2/dof) when above 1) and lambda(N) = lambda_inf + a/N
    (free intercept), for the report.  ``entry`` holds what
    :func:`finite_n_uncertainty` needs.
    """
    from scipy.stats import chi2 as chi2_dist
    if threads is not None:
        torch.set_num_threads(threads)
    build = {"random_rnn": random_rnn, "deep_random_net": deep_random_net}[name]
    key = "g" if name == "random_rnn" else "sigma_w"
    mf = mean_field(params[key], params.get("sigma_b", 0.0))["lam"]
    rows = []
    for N in Ns:
        means, ses, every = [], [], []
        for r in range(realisations):
            system = build(N=N, seed=r, **params) if name == "random_rnn" else build(N=N, **params)
            rng = TrajectoryRNG(seed + 1000 * r, batch)
            x = system.sample_initial(batch, rng)
            v = rng.normal(N, 1)
            v = v / v.norm(dim=1, keepdim=True)
            acc = torch.zeros(batch, dtype=torch.float64)
            with torch.no_grad():
                for t in range(transient + steps):
                    x, v = system.tangent(x, v, rng if system.is_random else None)
                    n = v.norm(dim=1, keepdim=True)
                    v = v / n
                    if t >= transient:
                        acc += torch.log(n[:, 0, 0])
            lam = (acc / steps).numpy()
            every.append(lam)
            means.append(lam.mean())
            ses.append(lam.std(ddof=1) / math.sqrt(batch))
        means, ses = np.array(means), np.array(ses)
        R = realisations
        every = np.concatenate(every)
        quenched = name == "random_rnn"
        row = {"N": N, "means": means.tolist(), "mean": float(means.mean()), "dev": float(means.mean() - mf),
               # quenched: realisations are the independent units; else every trajectory is
               "se": (float(means.std(ddof=1) / math.sqrt(R)) if quenched and R > 1
                      else float(every.std(ddof=1) / math.sqrt(every.size))),
               "time_se": float(np.sqrt(np.mean(ses ** 2)))}
        if quenched and R > 1:
            spread2 = max(means.var(ddof=1) - row["time_se"] ** 2, 0.0)
            row["spread"] = math.sqrt(spread2)
            row["spread_ucb"] = math.sqrt(means.var(ddof=1) * (R - 1) / chi2_dist.ppf(0.05, R - 1))
        else:
            row["spread"] = row["spread_ucb"] = 0.0
        rows.append(row)
        if verbose:
            print(f"{name} {params} N={N}: lambda = {row['mean']:.5f} +- {row['se']:.5f} "
                  f"(MF {mf:.5f}, dev {row['dev']:+.5f}, N*dev {N * row['dev']:+.3f}; per realisation "
                  f"{np.round(means, 5).tolist()}; time-average se {row['time_se']:.5f}; spread "
                  f"{row['spread']:.5f}, 95% ucb {row['spread_ucb']:.5f})", flush=True)
    Nv = np.array([r["N"] for r in rows], dtype=float)
    y = np.array([r["mean"] for r in rows])
    w = 1.0 / np.array([r["se"] for r in rows]) ** 2
    x1 = 1.0 / Nv
    a = float(np.sum(w * x1 * (y - mf)) / np.sum(w * x1 * x1))
    chi2 = float(np.sum(w * (y - mf - a * x1) ** 2) / max(len(Nv) - 1, 1))
    da = float(math.sqrt(max(chi2, 1.0) / np.sum(w * x1 * x1)))
    fit = {"a": a, "da": da, "chi2_dof": chi2, "mean_field": mf}
    if len(Nv) >= 3:
        A = np.stack([np.ones_like(x1), x1], 1) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)
        cov = np.linalg.inv(A.T @ A)
        fit.update(lambda_inf=float(coef[0]), dlambda_inf=float(math.sqrt(cov[0, 0])),
                   a_free=float(coef[1]), da_free=float(math.sqrt(cov[1, 1])))
    entry = {"N": tuple(int(n) for n in Nv), "dev": tuple(round(r["dev"], 6) for r in rows),
             "se": tuple(round(r["se"], 6) for r in rows),
             "worst": tuple(round(float(np.max(np.abs(np.array(r["means"]) - mf))), 5) for r in rows),
             "spread_ucb": tuple(round(r["spread_ucb"], 6) for r in rows),
             "realisations": realisations, "batch": batch, "steps": steps, "transient": transient}
    if verbose:
        print(f"fit: lambda(N) = {mf:.5f} + ({a:.3f} +- {da:.3f})/N (chi2/dof {chi2:.2f})"
              + (f"; free: lambda_inf = {fit['lambda_inf']:.5f} +- {fit['dlambda_inf']:.5f}, "
                 f"a = {fit['a_free']:.3f} +- {fit['da_free']:.3f}" if "lambda_inf" in fit else ""))
        print(f"entry: {params[key]!r}: {entry!r}", flush=True)
    return {"rows": rows, "fit": fit, "entry": entry}
