"""The tolerance rule: one object computes every term, and every consumer follows it.

The rule printed in README.md and docs/design.md is generated from the code
(`python -m suite.scoring.tolerance README.md docs/design.md` rewrites it).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import reference_systems as rs
from suite.core.result import LyapunovResult
from suite.scoring import tolerance as tol_mod
from suite.scoring.invariants import invariant_rows
from suite.scoring.rows import score
from suite.scoring.tolerance import TERMS, derive, roundoff, rule_markdown, t_quantile
from suite.studies.regress import compare_accuracy
from suite.studies.task_references import reference_bounds

ROOT = Path(__file__).resolve().parent.parent


def test_terms_and_total():
    t = derive(uncertainty=[1e-3, 0.0], stderr=[0.01, 0.02], dof=15, T=200.0, bias_nats=1.0,
               method_bias=[0.0, 5e-3], exact_scale=14.6, n=1, dtype="float64", dt=0.01, steps=20_000)
    q = stats.t.ppf(1 - 1e-4 / 2, 15)
    assert t.quantile == pytest.approx(q, rel=1e-14)
    np.testing.assert_allclose(t.statistical, q * np.array([0.01, 0.02]), rtol=1e-14)
    np.testing.assert_array_equal(t.finite_time, [1 / 200, 1 / 200])
    np.testing.assert_array_equal(t.reference, [1e-3, 0.0])
    np.testing.assert_array_equal(t.method_bias, [0.0, 5e-3])
    np.testing.assert_array_equal(t.roundoff, roundoff("float64", 14.6, 1, 0.01, 20_000))
    assert list(t.terms()) == [term.name for term in TERMS]
    np.testing.assert_allclose(t.total, sum(t.terms().values()), rtol=1e-15)


def test_quantile_edges():
    assert t_quantile(0) == math.inf          # no degrees of freedom: nothing passes
    assert t_quantile(math.inf) == pytest.approx(stats.norm.ppf(1 - 1e-4 / 2), rel=1e-14)
    assert t_quantile(10, alpha=0.01, sides=1) == pytest.approx(stats.t.ppf(0.99, 10), rel=1e-14)
    assert derive(stderr=0.1, dof=10, T=math.inf).finite_time == 0.0
    assert derive(stderr=0.1, dof=10).roundoff == 0.0  # no exact_scale: no round-off term


@pytest.mark.parametrize("path", ["README.md", "docs/design.md"])
def test_the_printed_rule_is_generated(path):
    text = (ROOT / path).read_text()
    assert tol_mod.START in text and tol_mod.END in text, f"{path} has no generated rule block"
    assert tol_mod.render_into(text) == text, (
        f"the rule in {path} differs from the code's: run python -m suite.scoring.tolerance {path}")
    assert tol_mod.rule_text() in text


# -- every consumer follows one change of a term ------------------------------------------------------------
def _henon_result(per):
    per = np.asarray(per, dtype=float)
    se = per.std(axis=0, ddof=1) / np.sqrt(per.shape[0])
    return LyapunovResult(per.mean(axis=0), se, per, per.mean(axis=0)[None], np.array([500.0]), 0.1,
                          meta={"steps": 500, "transient": 0, "batch": per.shape[0], "stderr_dof": per.shape[0] - 1,
                                "dtype": "float64", "device": "cpu"})


def _consumers():
    """The tolerance each consumer computes, on fixed inputs."""
    henon = rs.get("henon")
    rng = np.random.default_rng(0)
    per = np.array([0.41922, -1.62319]) + 0.01 * rng.standard_normal((16, 2))
    per[:, 1] = np.log(0.3) - per[:, 0]  # the sum rule holds exactly per trajectory, as it does for qr
    res = _henon_result(per)
    rows = score(henon, "qr", res)
    inv = invariant_rows(henon, "qr", res, {"steps": 500})
    row = dict(rows[0], status="pass")
    base = [dict(row, estimate=row["reference"] + 1e-3)]
    now = [dict(row, estimate=row["reference"] + 2e-3)]
    verdict = compare_accuracy(base, now)[0]
    allowed, unc = reference_bounds(res, res, T=500.0)
    return {"exponent rows": rows[0]["tolerance"], "invariant rows": inv[0]["tolerance"],
            "regress": verdict["threshold"], "task reference agreement": allowed,
            "task reference uncertainty": float(unc[0])}


@pytest.mark.parametrize("knob, value, followers", [
    ("ALPHA", 0.2, {"exponent rows", "invariant rows", "task reference agreement", "task reference uncertainty"}),
    ("ROUNDOFF_SAFETY", 1e12, {"exponent rows", "invariant rows", "regress"}),
])
def test_every_consumer_follows_a_changed_term(monkeypatch, knob, value, followers):
    before = _consumers()
    monkeypatch.setattr(tol_mod, knob, value)
    after = _consumers()
    changed = {k for k in before if not math.isclose(before[k], after[k], rel_tol=1e-12)}
    assert changed == followers, (before, after)


def test_rule_markdown_lists_every_term():
    md = rule_markdown()
    for term in TERMS:
        assert term.formula in md


def test_a_round_off_exponent_never_passes_a_row():
    """An exponent the result flags as not resolved (meta['unresolved']) is 'inconclusive' where its number lies
    within tolerance, keeps 'fail' and 'no reference', and its message says why; the others are judged as ever."""
    henon = rs.get("henon")
    values = henon.reference.values.copy()
    flag = {"exponents": [2], "message": "exponent(s) 2 not resolved: round-off"}
    res = LyapunovResult(values, np.full(2, 1e-4), np.tile(values, (4, 1)), values[None], np.array([1000.0]), 0.0,
                         meta={"T": 1000, "steps": 1000, "batch": 4, "unresolved": flag})
    first, second = score(henon, "qr", res)
    assert first["status"] == "pass" and not first.get("message")
    assert second["status"] == "inconclusive" and second["message"].startswith("exponent(s) 2 not resolved")
    off = LyapunovResult(values + [0.0, 1.0], np.full(2, 1e-4), np.tile(values + [0.0, 1.0], (4, 1)),
                         values[None], np.array([1000.0]), 0.0, meta=dict(res.meta))
    assert score(henon, "qr", off)[1]["status"] == "fail"
