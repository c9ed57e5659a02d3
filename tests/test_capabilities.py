"""Typed capabilities of systems, typed declarations of results, and the one argument-checking module."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference_systems as rs
from reference_systems.capabilities import Capabilities
from suite.core.args import check_bool, check_choice, check_int, check_number, check_positive
from suite.core.errors import InvalidArgumentError
from suite.core.result import LyapunovResult


def _map(**meta):
    return rs.Map("user_map", lambda x: 0.5 * x, 2, **meta)


def test_keywords_users_pass_today_become_typed_fields():
    m = _map(symplectic=True, log_abs_det=0.0, validation={"steps": 100, "transient": 0, "batch": 4}, source="me")
    caps = m.capabilities
    assert caps.symplectic is True and caps.log_abs_det == 0.0
    assert caps.validation == {"steps": 100, "transient": 0, "batch": 4}
    assert m.meta["source"] == "me"  # free-form keywords stay in meta
    assert m.meta["symplectic"] is True  # and the declared ones are still readable there


def test_defaults():
    caps = _map().capabilities
    assert caps == Capabilities()
    assert (caps.symplectic, caps.batch_invariant, caps.fixed_horizon, caps.differentiable_step) == (
        False, True, False, True)
    assert caps.log_abs_det is None and caps.zero_exponent is None and caps.note == ""


@pytest.mark.parametrize("kw, fragment", [
    ({"symplectic": "yes"}, "symplectic='yes'"),
    ({"log_abs_det": float("nan")}, "log_abs_det=nan"),
    ({"zero_exponent": 1}, "zero_exponent=1"),
    ({"validation": {"steps": 10, "tries": 3}}, "validation="),
    ({"batch_invariant": 0}, "batch_invariant=0"),
])
def test_a_wrong_capability_is_refused_at_construction_naming_it(kw, fragment):
    with pytest.raises(InvalidArgumentError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        _map(**kw)


def test_declare_after_construction():
    m = _map()
    m.declare(fixed_horizon=True, validation={"steps": 10, "transient": 5})
    assert m.capabilities.fixed_horizon and m.capabilities.validation["steps"] == 10
    with pytest.raises(InvalidArgumentError, match="capability"):
        m.declare(symplectc=True)
    with pytest.raises(InvalidArgumentError, match="fixed_horizon"):
        m.declare(fixed_horizon="no")


def test_the_catalogue_declares_what_the_invariants_read():
    assert rs.get("henon").capabilities.log_abs_det == pytest.approx(math.log(0.3))
    assert rs.get("standard_map").capabilities.symplectic
    assert rs.get("lorenz63").capabilities.divergence == pytest.approx(-(10 + 1 + 8 / 3))
    assert rs.get("lorenz63").capabilities.symbolic_rhs is not None


def _result(**meta):
    per = np.array([[0.4, -1.6], [0.42, -1.62], [0.41, -1.61]])
    return LyapunovResult(per.mean(0), per.std(0, ddof=1) / math.sqrt(3), per, per.mean(0)[None], np.array([7.0]),
                          0.1, meta=meta)


def test_result_declarations_have_defaults():
    d = _result().declared
    assert d.stderr_dof == 2 and d.T == 7.0 and d.integrates == "map" and d.rtol is None
    np.testing.assert_array_equal(d.method_bias, [0.0, 0.0])
    d = _result(stderr_dof=10, method_bias=0.05, integrates="flow", rtol=1e-10, T=3.0, dtype=torch.float32).declared
    assert (d.stderr_dof, d.integrates, d.rtol, d.T, d.dtype) == (10, "flow", 1e-10, 3.0, "float32")
    np.testing.assert_array_equal(d.method_bias, [0.05, 0.05])


@pytest.mark.parametrize("meta, fragment", [
    ({"stderr_dof": -1}, "stderr_dof"), ({"stderr_dof": "many"}, "stderr_dof"),
    ({"method_bias": -0.1}, "method_bias"), ({"rtol": "tight"}, "rtol"),
])
def test_a_wrong_result_declaration_names_the_key(meta, fragment):
    with pytest.raises(ValueError, match=fragment):
        _result(**meta).declared


def test_argument_checks():
    assert check_int("n", np.int64(3), 1) == 3 and type(check_int("n", np.int64(3), 1)) is int
    for bad in (True, 0, 1.0, "2", None):
        with pytest.raises(InvalidArgumentError, match=r"n=.*an integer >= 1"):
            check_int("n", bad, 1)
    assert check_int("n", None, 1, allow_none=True) is None
    with pytest.raises(InvalidArgumentError, match=r"an integer in 1..3"):
        check_int("k", 4, 1, 3)
    with pytest.raises(InvalidArgumentError, match=r"an integer >= 2 \(samples\) or None \(automatic\)"):
        check_int("h", 1, 2, allow_none=True, unit=" (samples)")
    assert check_number("x", 2) == 2.0
    for bad in (True, float("nan"), float("inf"), "1"):
        with pytest.raises(InvalidArgumentError, match="a finite number"):
            check_number("x", bad)
    with pytest.raises(InvalidArgumentError, match=r"in \(0, 0.5\]"):
        check_number("x", 0.0, low=0.0, high=0.5, low_open=True)
    with pytest.raises(InvalidArgumentError, match="a finite number > 0"):
        check_positive("dt", 0)
    assert check_bool("flag", False) is False
    with pytest.raises(InvalidArgumentError, match="True or False"):
        check_bool("flag", 1)
    assert check_choice("order", 2, (1, 2)) == 2
    with pytest.raises(InvalidArgumentError, match="order=True"):
        check_choice("order", True, (1, 2))


def test_no_inline_bool_int_checks_remain():
    """The one helper module is used everywhere: no hand-written `isinstance(x, bool) or not isinstance(x, int)`."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    offenders = [f"{p}:{i}" for top in ("suite", "reference_systems", "tasks") for p in (root / top).rglob("*.py")
                 if p.name != "args.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if "isinstance(" in line and ", bool)" in line and " or not isinstance(" in line]
    assert not offenders, offenders
