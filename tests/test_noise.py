"""Per-trajectory counter-based random numbers."""
import math

import pytest
import torch
from scipy import stats

from reference_systems.noise import TrajectoryRNG, mix64, mix64_int
from suite.core.errors import InvalidArgumentError


def test_mix64_matches_reference_implementation():
    vals = [0, 1, 2, 12345, 2 ** 62 + 7, 2 ** 63 - 1, -1, -(2 ** 63)]
    got = mix64(torch.tensor(vals, dtype=torch.int64)).tolist()
    assert [g & (2 ** 64 - 1) for g in got] == [mix64_int(v) for v in vals]


def test_trajectory_streams_do_not_depend_on_batch():
    big = TrajectoryRNG(7, 5)
    a, b = big.normal(4, 3), big.uniform(6)
    for j in range(5):
        one = TrajectoryRNG(7, 1, first=j)
        assert torch.equal(one.normal(4, 3)[0], a[j]) and torch.equal(one.uniform(6)[0], b[j])


def test_seeds_and_draws_differ():
    x = TrajectoryRNG(0, 2).normal(1000)
    y = TrajectoryRNG(1, 2).normal(1000)
    assert not torch.equal(x[0], x[1]) and not torch.equal(x[0], y[0])
    assert abs(float(torch.corrcoef(torch.stack([x[0], y[0]]))[0, 1])) < 0.15  # 4.7 sigma at n = 1000


def test_distributions():
    g = TrajectoryRNG(3, 4)
    z = g.normal(50_000).flatten().numpy()
    u = g.uniform(50_000).flatten().numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-4
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    assert 0 < u.min() and u.max() < 1
    # consecutive draws are uncorrelated
    z2 = g.normal(50_000).flatten().numpy()
    assert abs(float((z * z2).mean())) < 5 / math.sqrt(z.size)


def test_cuda_device_names_are_canonical_without_a_gpu():
    from suite.core.devices import canonical_device
    assert canonical_device("cuda") == torch.device("cuda", 0) if not torch.cuda.is_available() else True
    assert canonical_device("cpu") == torch.device("cpu")


def test_a_generator_on_another_device_is_moved_in_place_and_keeps_advancing():
    """Regression: System.step once copied a generator whose device differed from the state's
    (torch.device('cuda') vs 'cuda:0'), so the caller's counter never advanced and a random
    system drew the same noise at every step (Gaussian products on CUDA: lambda_1 off by 0.13).
    Simulated on the CPU by a generator whose device label differs from the state's."""
    import reference_systems as rs
    system = rs.get("gaussian_products", N=3)
    g = TrajectoryRNG(0, 2)
    g.device = torch.device("meta")  # any label != x.device
    x = torch.zeros(2, 3, dtype=torch.float64)
    system.step(x, g)
    system.step(x, g)
    assert g.counter == 2 and g.device == torch.device("cpu") and g.keys.device.type == "cpu"
    # the same draws as a generator that lived on the CPU all along
    h = TrajectoryRNG(0, 2)
    h.normal(3, 3)
    h.normal(3, 3)
    torch.testing.assert_close(g.normal(3, 3), h.normal(3, 3), rtol=0, atol=0)


def test_a_shape_as_a_tuple_is_taken_and_a_bad_one_named():
    """normal((2, 2)) as torch.randn((2, 2)) takes it (it raised TypeError: '>=' between tuple and int)."""
    g = TrajectoryRNG(0, 3)
    assert g.normal((2, 2)).shape == (3, 2, 2) and g.uniform([4]).shape == (3, 4)
    with pytest.raises(InvalidArgumentError, match=r"shape\[0\]=2.5"):
        g.normal(2.5)
