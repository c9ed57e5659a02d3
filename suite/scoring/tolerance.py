"""The one rule that turns an estimate into pass or fail: every term computed here.

For a quantity estimated over time T with standard error s on nu degrees of
freedom, against a reference with uncertainty u::

    tolerance = u + t(1 - alpha/2, nu) * s + b / T + method_bias + round-off,     alpha = 1e-4

:func:`derive` computes the terms and returns a :class:`Tolerance` holding
each of them and their ``total``; :data:`TERMS` describes them, and the rule
printed in the README, docs/design.md and the tables is generated from it
(:func:`rule_text`, :func:`rule_markdown`; ``python -m suite.scoring.tolerance
README.md docs/design.md`` rewrites the blocks, tests/test_tolerance.py
checks them).  Exponent rows (:mod:`.rows`), invariant rows
(:mod:`.invariants`), task references (:mod:`suite.studies.task_references`)
and regression checks (:mod:`suite.studies.regress`) all call
:func:`derive`; none adds a term of its own.

Not included: the O(dt^4) difference between the RK4 map's exponents and the
flow's (Lorenz-63 at dt = 0.01: 1.0e-4 on the sum, below the reference's
5e-4; tests/test_qr_estimator.py), and float32 round-off beyond the bound of
:func:`roundoff` (validation runs float64 unless told otherwise).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

#: two-sided false-alarm probability per judged row: an honest estimator fails a row once in 10,000
ALPHA = 1e-4
#: finite-time boundary term of a Benettin sum, in nats, where the reference states none
DEFAULT_BIAS_NATS = 1.0
#: safety factor of the round-off bound over the Householder backward-error constant
ROUNDOFF_SAFETY = 100.0


@dataclass(frozen=True)
class Term:
    name: str
    formula: str
    meaning: str


#: the terms, in the order they are added; the rule's text is generated from this table
TERMS = (
    Term("reference", "u_ref", "the reference's own uncertainty (0 when exact)"),
    Term("statistical", "t(1 − α/2, ν) · stderr",
         "Student-t quantile for the standard error's degrees of freedom ν (B − 1 across B trajectories; "
         "blocks − 1 for batch means along one trajectory), so an honest estimator fails a row by chance "
         "once in 1/α rows"),
    Term("finite_time", "b / T",
         "the finite-time bias bound: a Benettin sum over time T carries an O(1) boundary term (alignment "
         "of the initial frame), b = the reference's bias_nats (1 nat unless it states its own: 0 for "
         "Gaussian products, ln cond(P) for linear maps)"),
    Term("method_bias", "method_bias",
         "the estimator's own stated systematic bound (result.meta['method_bias']; time-series fits state "
         "one, the tangent and two-trajectory methods none); for an adaptive ODE solver, its error control"),
    Term("roundoff", "round-off",
         "a floating-point bound, which matters only for exactly known quantities estimated with zero "
         "spread (tent map, sum rules): see roundoff()"),
)


@dataclass(frozen=True)
class Tolerance:
    """A tolerance and its terms (float64 arrays of one shape, nats; per step or per unit time)."""
    reference: np.ndarray
    statistical: np.ndarray
    finite_time: np.ndarray
    method_bias: np.ndarray
    roundoff: np.ndarray
    quantile: float
    dof: float
    alpha: float

    @property
    def total(self) -> np.ndarray:
        """The sum of the terms, in :data:`TERMS` order."""
        out = self.reference + self.statistical
        for term in TERMS[2:]:
            out = out + getattr(self, term.name)
        return out

    def terms(self) -> dict:
        """{term name: array} for reporting."""
        return {t.name: getattr(self, t.name) for t in TERMS}


def t_quantile(dof: float, alpha: float = None, sides: int = 2) -> float:
    """Student-t quantile 1 - alpha/sides for ``dof`` degrees of freedom (normal for dof = inf;
    inf for no degrees of freedom, so a stderr without them never passes a row)."""
    alpha = ALPHA if alpha is None else alpha
    if not dof or dof <= 0 or math.isnan(dof):
        return math.inf
    p = 1.0 - alpha / sides
    return float(stats.norm.ppf(p)) if math.isinf(dof) else float(stats.t.ppf(p, dof))


def roundoff(dtype, scale: float, n: int, dt: float = 1.0, steps: int = 0) -> float:
    """Floating-point bound for a quantity that should hold exactly (sum rule, ln mu).

    Each renormalisation computes ln R_ii of a frame whose entries are O(1)
    with a backward-stable QR: an error of O(d eps) per step, i.e. O(d eps / dt)
    per unit time, on top of O(eps) relative to the exponents' scale; and the
    float64 running sums over ``steps`` renormalisations add up to
    steps * eps64 relative error (naive summation).  Bound:
    ROUNDOFF_SAFETY n eps (scale + 1/dt) + n steps eps64 scale.
    """
    eps = float(np.finfo(np.float32 if str(dtype).endswith("float32") else np.float64).eps)
    eps64 = float(np.finfo(np.float64).eps)
    return ROUNDOFF_SAFETY * n * eps * (scale + 1.0 / dt) + n * steps * eps64 * scale


def derive(*, stderr, dof: float, uncertainty=0.0, T: float = math.inf, bias_nats: float = DEFAULT_BIAS_NATS,
           method_bias=0.0, exact_scale: float = None, n: int = 1, dtype="float64", dt: float = 1.0,
           steps: int = 0, alpha: float = None, sides: int = 2) -> Tolerance:
    """The tolerance of an estimate, term by term (elementwise over arrays).

    Parameters
    ----------
    stderr, dof : the estimate's standard error and its degrees of freedom.
    uncertainty : the reference's uncertainty u_ref (0 for exact values and for invariants).
    T, bias_nats : run duration (steps * dt) and the bound b of the boundary term; b / T is the
        finite-time term (T = inf or b = 0: none; 2 b for a pair or a difference of two runs).
    method_bias : the estimator's stated systematic bound.
    exact_scale, n, dtype, dt, steps : inputs of :func:`roundoff` (scale of the exact quantity,
        number of exponents summed); ``exact_scale=None``: no round-off term.
    alpha, sides : false-alarm probability (default :data:`ALPHA`) and 2 for a two-sided test,
        1 for a one-sided one (regress: is the error larger than before?).
    """
    s = np.asarray(stderr, dtype=np.float64)
    shape = np.broadcast(s, np.asarray(uncertainty), np.asarray(method_bias)).shape
    alpha = ALPHA if alpha is None else alpha
    q = t_quantile(dof, alpha, sides)

    def full(v):
        return np.broadcast_to(np.asarray(v, dtype=np.float64), shape).copy()
    b = np.asarray(bias_nats, dtype=np.float64)  # one bound, or one per exponent
    finite_time = 0.0 if not b.any() or math.isinf(T) else b / float(T)
    ro = 0.0 if exact_scale is None else roundoff(dtype, exact_scale, n, dt, steps)
    return Tolerance(reference=full(uncertainty), statistical=full(q * s), finite_time=full(finite_time),
                     method_bias=full(method_bias), roundoff=full(ro), quantile=q, dof=float(dof), alpha=alpha)


def tolerance(uncertainty, stderr, dof: float, T: float, bias_nats: float = DEFAULT_BIAS_NATS) -> np.ndarray:
    """u + t * stderr + bias_nats / T elementwise: :func:`derive`'s total without method bias or round-off."""
    return derive(uncertainty=uncertainty, stderr=stderr, dof=dof, T=T, bias_nats=bias_nats).total


def rule_text() -> str:
    """The rule in one line, generated from :data:`TERMS` and :data:`ALPHA`."""
    alpha = f"{ALPHA:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return "tolerance = " + " + ".join(t.formula for t in TERMS) + f",     α = {alpha}"


def rule_markdown() -> str:
    """The rule as the README and docs/design.md print it: a code block and one bullet per term."""
    lines = ["```", rule_text(), "```", ""]
    lines += [f"* `{t.formula}`: {t.meaning};" for t in TERMS]
    lines[-1] = lines[-1].rstrip(";") + "."
    return "\n".join(lines)


#: the rule in one line (tables and the CLI print it)
RULE = rule_text()

START, END = "<!-- tolerance-rule:start -->", "<!-- tolerance-rule:end -->"


def render_into(text: str) -> str:
    """``text`` with the block between the START and END markers replaced by :func:`rule_markdown`."""
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not (sep and sep2):
        raise ValueError(f"no {START} ... {END} block")
    return f"{head}{START}\n{rule_markdown()}\n{END}{tail}"


def main(paths: Sequence[str]) -> int:
    """Rewrite the rule's block in each file (``python -m suite.scoring.tolerance README.md docs/design.md``)."""
    for p in map(Path, paths):
        p.write_text(render_into(p.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
