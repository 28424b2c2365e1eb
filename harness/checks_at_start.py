"""Checks of the run options that must fail before any case runs, with one line each.

Both front ends call these at start: the pytest plugin turns a :class:`StartError` into a
usage error (exit status 4), ``ntk-harness`` into ``error: ...`` (exit status 2). Nothing
here imports torch unless the option needs it (a CUDA device; a user's implementation).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.options import RunOptions


class StartError(ValueError):
    """An option that cannot work; the message names the option and what is wrong."""


def check_writable_dir(directory: Path, option: str) -> None:
    """Create ``directory`` if needed and write and remove a probe file in it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ntk-harness-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StartError(f"{option}: {directory} is not a writable directory ({exc.strerror or exc})") from None


def check_cache_dir(directory: Path | None) -> None:
    if directory is not None:
        check_writable_dir(Path(directory), "--ntk-cache-dir")


def check_implementation(spec: str) -> None:
    """The implementation resolves to a callable ``fn(f, params, x1, x2)`` (imports it)."""
    from harness.ntk.registry import ImplementationError, get_implementation

    try:
        get_implementation(spec)
    except ImplementationError as exc:
        raise StartError(f"--ntk-impl: {exc}") from None


def check_device(name: str | None) -> None:
    if name in (None, "auto", "cpu"):
        return
    from harness.devices import DeviceError, resolve_device

    try:
        resolve_device(name)
    except DeviceError as exc:
        raise StartError(f"--ntk-device: {exc}") from None


def check_options(options: RunOptions, *, explicit_cache: bool) -> None:
    """Device, implementation and (when given explicitly) cache directory; see the module docstring."""
    check_device(options.device)
    if options.implementation is not None:
        check_implementation(options.implementation)
    if explicit_cache:
        check_cache_dir(options.cache_dir)
