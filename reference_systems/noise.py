"""Per-trajectory, counter-based random numbers for batched random systems.

Random systems (products of random matrices, networks with fresh weights each
step, input-driven RNNs, SGD) must give every trajectory in a batch its own,
independent noise, and the noise of trajectory ``b`` must not depend on how
many other trajectories run beside it: then a batch of B trajectories equals
B single runs, a grid may split a batch any way it likes, and a CPU run
matches a CUDA run draw for draw.

A :class:`TrajectoryRNG` holds one 64-bit key per trajectory and a draw
counter.  Draw number ``c``, element ``e`` of trajectory ``b`` is the
stateless hash

    z = mix64(key_b XOR mix64(c * 2**32 + e)),

with ``mix64`` the SplitMix64 finaliser (Steele, Lea & Flood 2014, "Fast
splittable pseudorandom number generators", OOPSLA), evaluated in int64
tensor arithmetic on the device where the numbers are wanted.  Uniforms take
the top 53 bits of ``z``; normals use Box-Muller on the two 32-bit halves of
``z`` (tails truncated beyond 6.6 sigma, probability 4e-11).  Keys are
``mix64(mix64(seed) + (b + 1) * GAMMA)`` for trajectory ``b`` of a run seeded
with ``seed``, so different seeds give independent streams.

Every call advances the counter by one, whatever the shape, so the sequence
of draws, not their sizes, fixes which numbers a trajectory sees.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from suite.core.args import check_int
from suite.core.devices import canonical_device

_MASK64 = (1 << 64) - 1


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= (1 << 63) else c


_GAMMA = 0x9E3779B97F4A7C15
_C1 = _signed(0xBF58476D1CE4E5B9)
_C2 = _signed(0x94D049BB133111EB)


def _srl(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser on an int64 tensor (wrapping arithmetic)."""
    z = (z ^ _srl(z, 30)) * _C1
    z = (z ^ _srl(z, 27)) * _C2
    return z ^ _srl(z, 31)


def mix64_int(z: int) -> int:
    """The same finaliser on a Python int (reference implementation)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def trajectory_keys(seed: int, first: int, batch: int) -> list[int]:
    """Keys of trajectories ``first .. first+batch-1`` of a run seeded ``seed``."""
    base = mix64_int(int(seed))
    return [_signed(mix64_int(base + (first + b + 1) * _GAMMA)) for b in range(batch)]


class TrajectoryRNG:
    """Independent random streams, one per trajectory of a batch.

    Parameters
    ----------
    seed : int
        Seed of the run, in 0..2**64 - 1 (a negative seed or a larger one would
        alias another: the keys are taken modulo 2**64).
    batch : int
        Number of trajectories.
    first : int
        Index of the first trajectory: ``TrajectoryRNG(s, 1, first=b)`` draws
        exactly what trajectory ``b`` of ``TrajectoryRNG(s, B)`` draws.
    device : torch device of the keys (numbers are produced there).

    Draw with :meth:`normal` and :meth:`uniform`; results have shape
    ``(batch, *shape)``.  It is not a ``torch.Generator``: torch's samplers
    (``torch.randn(..., generator=...)``) refuse it; :meth:`torch_generator`
    gives a seeded one for code that needs them, at the price of a
    batch-dependent stream.
    """

    def __init__(self, seed: int = 0, batch: int = 1, *, first: int = 0, device="cpu"):
        check_int("seed", seed, 0, _MASK64, allowed="an integer in 0..2**64 - 1")
        check_int("batch", batch, 1)
        check_int("first", first, 0)
        self.seed, self.first, self.batch = int(seed), int(first), int(batch)
        self.device = canonical_device(device)
        self.keys = torch.tensor(trajectory_keys(seed, first, batch), dtype=torch.int64,
                                 device=self.device)
        self.counter = 0

    @classmethod
    def from_keys(cls, keys: Sequence[int] | torch.Tensor, device="cpu") -> "TrajectoryRNG":
        self = cls.__new__(cls)
        self.seed, self.first = None, None
        self.keys = torch.as_tensor(keys, dtype=torch.int64, device=device).reshape(-1)
        self.batch, self.device, self.counter = self.keys.numel(), canonical_device(device), 0
        return self

    def to(self, device) -> "TrajectoryRNG":
        """The same streams (same counter) producing numbers on ``device``."""
        other = TrajectoryRNG.from_keys(self.keys.to(device), device=device)
        other.seed, other.first, other.counter = self.seed, self.first, self.counter
        return other

    def move_(self, device) -> "TrajectoryRNG":
        """Move these streams to ``device`` in place (the counter stays shared with the caller)."""
        self.device = canonical_device(device)
        self.keys = self.keys.to(self.device)
        return self

    def subset(self, index) -> "TrajectoryRNG":
        """Streams of the selected trajectories only, at the current counter."""
        other = TrajectoryRNG.from_keys(self.keys[index], device=self.device)
        other.counter = self.counter
        return other

    def _bits(self, shape: tuple[int, ...]) -> torch.Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])  # normal((2, 2)) as torch.randn((2, 2)) takes it
        for i, size in enumerate(shape):
            check_int(f"shape[{i}]", size, 0, allowed="an integer >= 0 (draw with generator.normal(d) or "
                                                        "generator.normal(d1, d2): shape (batch, *shape))")
        n = math.prod(shape)
        if n >= (1 << 32):
            raise ValueError(f"one draw is limited to 2**32 numbers per trajectory, got {n}")
        c = self.counter
        self.counter = c + 1  # not +=: a recorded step's counter is a tensor (suite.estimators.numerics.capture)
        ctr = torch.arange(n, dtype=torch.int64, device=self.device) + (c << 32)
        z = mix64(self.keys[:, None] ^ mix64(ctr)[None, :])
        return z.reshape((self.batch,) + tuple(shape))

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Uniform numbers in the open interval (low, high), shape (batch, *shape)."""
        z = self._bits(shape)
        u = (_srl(z, 11).to(torch.float64) + 0.5) * 2.0 ** -53
        return (low + (high - low) * u).to(dtype)

    def integers(self, high: int, *shape: int) -> torch.Tensor:
        """Indices uniform in 0..high-1 (int64), shape (batch, *shape): floor(high U), U from :meth:`uniform`."""
        u = self.uniform(*shape)
        return torch.clamp((u * high).floor().to(torch.int64), max=high - 1)

    def normal(self, *shape: int, mean: float = 0.0, std: float = 1.0,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Standard normal numbers (Box-Muller), shape (batch, *shape)."""
        z = self._bits(shape)
        hi = _srl(z, 32).to(torch.float64)
        lo = (z & 0xFFFFFFFF).to(torch.float64)
        u1 = (hi + 0.5) * 2.0 ** -32
        u2 = (lo + 0.5) * 2.0 ** -32
        g = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
        return (mean + std * g).to(dtype)

    def torch_generator(self) -> torch.Generator:
        """A ``torch.Generator`` on this generator's device, seeded from every trajectory's key and the
        draw counter (which advances by one, like any draw), for code that needs torch's own samplers:
        ``torch.randn(batch, d, generator=generator.torch_generator())``.

        The escape hatch gives up the per-trajectory streams: its numbers depend on the whole batch
        (a batch of B no longer equals B single runs, and splitting a batch changes the draws), though
        the same seed, batch and draw sequence give the same numbers.  Prefer :meth:`normal` and
        :meth:`uniform`, which return (batch, *shape) with each row drawn from its trajectory's stream.
        """
        c = int(self.counter)
        self.counter = c + 1
        h = mix64_int(c)
        for key in self.keys.tolist():
            h = mix64_int(h ^ (key & _MASK64))
        g = torch.Generator(device=self.device)
        g.manual_seed(h >> 1)  # 63 bits: every torch accepts it
        return g

    def __repr__(self) -> str:
        return (f"TrajectoryRNG(seed={self.seed}, batch={self.batch}, first={self.first}, "
                f"counter={self.counter}, device={self.device})")
