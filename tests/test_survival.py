"""Runs conditioned on survival (suite.studies.survival): the open tent map, whose escape is exact."""
import math

import pytest
import torch
from scipy import stats

from reference_systems.noise import TrajectoryRNG
from reference_systems.system import Map
from suite import estimators
from suite.core.errors import TrajectoryError
from suite.studies.survival import escape_rate, kept_indices, run_surviving, surviving_view

SLOPE, STEPS, BATCH = 2.002, 300, 32


def open_tent(s: float = SLOPE) -> Map:
    """x -> s min(x, 1 - x), s > 2: the points of (1 / s, 1 - 1 / s) leave [0, 1]; the uniform density stays
    uniform on what remains, so a fraction 2 / s stays each step (escape rate ln(s / 2) a step) and every
    orbit's exponent is ln s."""
    return Map("open_tent", lambda x: s * torch.minimum(x, 1.0 - x), dim=1,
               jacobian=lambda x, *_: torch.where(x < 0.5, x.new_full((), s), x.new_full((), -s)).unsqueeze(-1),
               sample_initial=lambda batch, g: g.uniform(1),
               domain=lambda x: ((x >= 0) & (x <= 1)).all(dim=1), domain_note="0 <= x <= 1")


def first_escape(x: float, s: float, steps: int):
    """The step at which the orbit of x leaves [0, 1] (None: it stays ``steps`` steps), iterated in float64."""
    for n in range(1, steps + 1):
        x = s * min(x, 1.0 - x)
        if not 0.0 <= x <= 1.0:
            return n
    return None


def test_a_view_draws_the_streams_starts_with_the_escaped_left_out():
    """The view's batch is the stream's trajectories 0, 1, 2, ... without the excluded ones, and the run's
    generator advances as without exclusions (what it draws next is the same)."""
    system = open_tent()
    assert kept_indices(4, [1, 3]) == [0, 2, 4, 5] and surviving_view(system, []) is system
    g, plain = TrajectoryRNG(7, 4), TrajectoryRNG(7, 4)
    got = surviving_view(system, [1, 3]).sample_initial(4, g)
    pool = system.sample_initial(6, TrajectoryRNG(7, 6))
    assert torch.equal(got, pool[[0, 2, 4, 5]])
    system.sample_initial(4, plain)
    assert torch.equal(g.normal(1), plain.normal(1))


def test_a_run_conditioned_on_survival_replaces_exactly_the_starts_that_escape():
    """qr() on the open tent map: the starts left out are exactly those whose orbit, iterated here, leaves [0, 1]
    within the run, each at or after its exact escape step; the kept ones all stay; every exponent is ln s; and the
    escape rate's interval at 1 - 1e-4 holds the exact ln(s / 2) a step."""
    system = open_tent()
    res, escapes, excluded = run_surviving(
        lambda view: estimators.get("qr").estimate(view, STEPS, batch=BATCH, seed=3), system, BATCH, BATCH)
    kept = kept_indices(BATCH, excluded)
    pool = system.sample_initial(kept[-1] + 1, TrajectoryRNG(3, kept[-1] + 1))[:, 0].tolist()
    exact = {i: first_escape(x, SLOPE, STEPS) for i, x in enumerate(pool)}
    assert sorted(excluded) == sorted(i for i, n in exact.items() if n is not None) and len(excluded) >= 3
    assert all(exact[i] is None for i in kept)
    assert all(exact[i] <= t for i, t in escapes)
    assert res.exponents.tolist() == pytest.approx([math.log(SLOPE)], abs=1e-12)
    rate = escape_rate([t for _, t in escapes], BATCH, STEPS, 1e-4)
    k, exposure = rate["escaped"], rate["exposure"]
    lower = stats.chi2.ppf(1e-4, 2 * k) / (2 * exposure)
    assert lower <= math.log(SLOPE / 2) <= rate["rate_upper"] and rate["starts"] == BATCH + k


def test_too_many_escapes_fail_the_run():
    """More escapes than ``max_escapes``: the run's TrajectoryError, not a run of a few lucky survivors."""
    with pytest.raises(TrajectoryError):
        run_surviving(lambda view: estimators.get("qr").estimate(view, STEPS, batch=BATCH, seed=3),
                      open_tent(2.2), BATCH, 2)


def test_no_escape_bounds_the_rate_by_minus_ln_alpha_over_the_exposure():
    rate = escape_rate([], 128, 650.0, 1e-4)
    assert rate["rate"] == 0.0 and rate["rate_upper"] == pytest.approx(-math.log(1e-4) / (128 * 650.0))
    assert escape_rate([None, 10.0], 4, 100.0, 1e-4)["exposure"] == 410.0
