"""Device and dtype arguments: checked, normalised, synchronised.

``resolve_device`` and ``resolve_dtype`` turn what a user passes ('cpu',
'cuda', 'cuda:1', torch.device; 'float64', torch.float32) into torch objects
or raise an error naming the argument and what is allowed.
"""
from __future__ import annotations

import torch

from suite.core.errors import DeviceError, InvalidArgumentError

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def canonical_device(device) -> torch.device:
    """``torch.device(device)`` with a CUDA index filled in ('cuda' -> 'cuda:N', N the current device).

    Tensors always report an indexed device ('cuda:0'), and torch.device('cuda')
    != torch.device('cuda:0'); comparing canonical devices avoids treating the
    same GPU as two devices.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        dev = torch.device("cuda", index)
    return dev



def resolve_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"invalid device={device!r}: allowed 'cpu', 'cuda', 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"invalid device={device!r}: CUDA is not available on this machine "
                              "(torch.cuda.is_available() is False); allowed: 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"invalid device={device!r}: allowed cuda:0..cuda:{torch.cuda.device_count() - 1}")
        dev = canonical_device(dev)  # 'cuda' -> 'cuda:N', the device tensors report
    elif dev.type != "cpu":
        raise DeviceError(f"invalid device={device!r}: allowed 'cpu', 'cuda', 'cuda:N'")
    return dev


def resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in (torch.float32, torch.float64):
        return dtype
    raise InvalidArgumentError("dtype", dtype, "torch.float32, torch.float64, 'float32' or 'float64'")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
