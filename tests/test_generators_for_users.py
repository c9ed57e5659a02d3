"""The generator a user's sample_initial and noise receive: a TrajectoryRNG, with a clear error for torch's samplers."""
import numpy as np
import pytest
import torch

import reference_systems as rs
from reference_systems import TrajectoryRNG
from suite import estimators
from suite.core.errors import InvalidArgumentError

QR = estimators.get("qr")
D = 3
P = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)


def _step(x, xi=None):
    y = 0.9 * torch.tanh(1.5 * x.roll(1, dims=1)) + 0.1 * x
    return y if xi is None else y + 0.05 * xi


def test_torch_randn_with_the_generator_gets_a_clear_error():
    """The natural code: torch.randn(batch, d, generator=generator) in sample_initial."""
    system = rs.Map("mine", _step, D,
                    sample_initial=lambda batch, generator: P + 1e-3 * torch.randn(batch, D, generator=generator))
    with pytest.raises(InvalidArgumentError) as info:
        QR.estimate(system, 10, transient=2, batch=4, seed=0)
    msg = str(info.value)
    for part in ("sample_initial", "TrajectoryRNG", "generator.normal(", "generator.uniform(", "torch_generator()"):
        assert part in msg, (part, msg)
    assert isinstance(info.value.__cause__, TypeError)


def test_torch_samplers_in_noise_get_the_same_error_naming_noise():
    system = rs.Map("mine", _step, D, noise=lambda generator, x: torch.rand(x.shape, generator=generator))
    with pytest.raises(InvalidArgumentError, match=r"invalid noise=.*generator\.normal\(.*TrajectoryRNG"):
        system.step(system.sample_initial(2, TrajectoryRNG(0, 2)), TrajectoryRNG(1, 2))


def test_torch_samplers_in_from_module_inputs_get_the_same_error_naming_inputs():
    import tasks
    cell = torch.nn.RNNCell(2, 4)
    with pytest.raises(InvalidArgumentError, match=r"invalid inputs=.*generator\.normal\(.*TrajectoryRNG"):
        tasks.from_module(cell, lambda generator, batch: torch.randn(batch, 2, generator=generator))


def test_other_type_errors_pass_through_unchanged():
    system = rs.Map("mine", _step, D, sample_initial=lambda batch, generator: P + "oops")
    with pytest.raises(TypeError):
        system.sample_initial(2)


def test_the_documented_calls_work_and_a_batch_of_B_equals_B_single_runs():
    system = rs.Map("mine", _step, D,
                    sample_initial=lambda batch, generator: P + 1e-3 * generator.normal(D),
                    noise=lambda generator, x: generator.uniform(D, low=-1.0, high=1.0, dtype=x.dtype))
    B = 4
    xB = system.sample_initial(B, TrajectoryRNG(7, B))
    assert xB.shape == (B, D) and float((xB - P).abs().max()) < 1e-2
    for b in range(B):
        assert torch.equal(system.sample_initial(1, TrajectoryRNG(7, 1, first=b)), xB[b:b + 1])
    rB = QR.estimate(system, 50, transient=5, batch=B, seed=3)
    for b in (0, 2):
        r1 = QR.estimate(system, 50, transient=5, batch=1, seed=(3, b))
        np.testing.assert_allclose(r1.per_trajectory[0], rB.per_trajectory[b], rtol=1e-9, atol=1e-12)


def test_torch_generator_escape_hatch_is_seeded_but_batch_dependent():
    def init(batch, generator):
        return P + 1e-3 * torch.randn(batch, D, generator=generator.torch_generator(), dtype=torch.float64)
    system = rs.Map("mine", _step, D, sample_initial=init)
    g = TrajectoryRNG(5, 4)
    a = system.sample_initial(4, g)
    assert g.counter == 1  # one draw, like generator.normal(...)
    assert torch.equal(a, system.sample_initial(4, TrajectoryRNG(5, 4)))           # reproducible
    assert not torch.equal(a, system.sample_initial(4, TrajectoryRNG(6, 4)))       # the seed matters
    assert not torch.equal(a[:1], system.sample_initial(1, TrajectoryRNG(5, 1)))   # but the batch matters too
    # the next draw differs from this one
    g2 = TrajectoryRNG(5, 4)
    assert not torch.equal(torch.randn(3, generator=g2.torch_generator()), torch.randn(3, generator=g2.torch_generator()))
    assert np.isfinite(QR.estimate(system, 10, transient=2, batch=4, seed=0).exponents).all()
