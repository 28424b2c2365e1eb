"""Devices and dtypes by name, resolved to torch objects when a case runs."""
from __future__ import annotations

import torch

from harness.constants import DTYPE_NAMES

DTYPES = {"float64": torch.float64, "float32": torch.float32}
assert tuple(DTYPES) == DTYPE_NAMES


class DeviceError(ValueError):
    """A device that is not available here; the message names it."""


def resolve_device(requested: str | None) -> torch.device:
    """``auto``/None -> CUDA when available, else CPU; anything else as torch reads it."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise DeviceError(f"device {requested!r} is not a device name torch knows ({exc})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {requested!r} was requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {requested!r} was requested but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {requested!r} was requested but MPS is not available on this machine")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {name!r}") from None
