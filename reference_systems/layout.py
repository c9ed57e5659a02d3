"""Batch-last memory layout for batches of small states and frames on the CPU.

A batch of states x has shape (B, d) and a batch of frames V (B, d, k);
that is the contract, and it does not change.  Only the memory order does:
"batch-last" means the batch index is the fastest one (``x.stride(0) ==
1``), as for ``x.T.contiguous().T``.  For small d every column x[:, i] and
every entry V[:, i, j] is then one contiguous run of B numbers, so an
elementwise torch op is one vectorised pass, and the tangent product
J V becomes d broadcast multiply-adds over contiguous runs instead of B
tiny matrix products (``torch.bmm`` on B frames of 3 x 3 runs one small
GEMM after another).  On a 2-core x86 CPU a Lorenz-63 RK4 tangent step ran
1.50x faster at B = 2048 and 1.71x at B = 4096 in this layout on one torch
thread, but only 1.03x and 1.01x on two: ops under torch's parallel grain
(32,768 numbers) run on one thread, while bmm is threaded (same arithmetic,
measured side by side; ``asv run --bench FlowTangentStep``).

Elementwise torch ops keep the layout of their inputs, so once the state
and the frame are batch-last a whole run stays batch-last; a system opts
in (``Flow(..., batch_last=True)``) by writing ``rhs`` and ``jacobian`` so
that they return results in the layout of their input (:func:`stack_like`
does it for a stack of components).
"""
from __future__ import annotations

from typing import Sequence

import torch

# Flows of dimension <= this use the batch-last tangent step when they opt in: the J V product
# is d broadcast multiply-adds, so its cost grows with d where bmm's does not.
BATCH_LAST_MAX_DIM = 8


def is_batch_last(t: torch.Tensor) -> bool:
    """True if t's batch index (dim 0) is its fastest in memory (or the batch has one entry).

    Tensors that expose no strides (functorch's wrappers inside vmap / jvp) count as not
    batch-last."""
    try:
        return t.shape[0] == 1 or t.stride(0) == 1
    except (RuntimeError, NotImplementedError):
        return False


def to_batch_last(t: torch.Tensor) -> torch.Tensor:
    """t itself if it is batch-last, else a batch-last copy (same shape and values)."""
    if is_batch_last(t):
        return t
    return t.movedim(0, -1).contiguous().movedim(-1, 0)


def stored_batch_last(x: torch.Tensor) -> bool:
    """True if x holds more than one state and is batch-last: what is computed from it should be too
    (a single state counts as batch-last for :func:`is_batch_last` but is laid out batch-first)."""
    return x.shape[0] > 1 and is_batch_last(x)


def stack_like(x: torch.Tensor, columns: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack (B,) components into a (B, d) tensor in the layout of x (batch-first or batch-last)."""
    if stored_batch_last(x):
        return torch.stack(list(columns), dim=0).T
    return torch.stack(list(columns), dim=1)


def batch_last_matvec(J: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """J @ W for J (B, d, d) and W (B, d, k), as sum_l J[:, :, l] W[:, l, :] in batch-last layout.

    The products and sums are separate elementwise ops in a fixed order (no fused multiply-add),
    so a frame's bits do not depend on the batch size or its place in the batch."""
    J = to_batch_last(J)
    out = J[:, :, 0:1] * W[:, 0:1, :]
    for l in range(1, J.shape[2]):
        out = out + J[:, :, l:l + 1] * W[:, l:l + 1, :]
    return out
