"""Checks that must fail before any case runs, with one line each.

Run options: both front ends call these at start: the pytest plugin turns a
:class:`StartError` into a usage error (exit status 4), ``ntk-harness`` into ``error: ...``
(exit status 2). Nothing here imports torch unless the option needs it (a CUDA device; a
user's implementation).

Case sizes: :func:`check_ntk_size`, called by the kinds' ``validate`` at collection, refuses
a case whose single network's NTK could not be computed on any machine the harness targets
(``MAX_CASE_NTK_BYTES``), before anything is allocated; the run-time ``--ntk-memory-budget``
check (:mod:`harness.montecarlo`) then sizes the chunks of the cases that pass.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from harness.options import RunOptions


class StartError(ValueError):
    """An option that cannot work; the message names the option and what is wrong."""


#: Collection-time ceiling on the memory of ONE network's NTK computation (bytes): a fixed
#: 64 GiB, the largest a single accelerator or workstation of the harness's users holds, so
#: that a typo (width = 100000) fails at collection with the estimate instead of exhausting
#: memory at run time. Independent of ``--ntk-memory-budget``, which only chunks networks.
MAX_CASE_NTK_BYTES = 64 * 2**30
#: Collection-time ceiling on the number of hidden layers of a case's network (the deepest
#: the reference computes in seconds, as ``ntk-harness theory --depth``).
MAX_CASE_DEPTH = 100_000

_ITEMSIZE = {"float64": 8, "float32": 4}


def ntk_bytes(parameter_count: int, inputs: int, outputs: int = 1, dtype: str = "float64",
              input_dim: int = 0) -> int:
    """Estimated peak bytes of one network's NTK on N = ``inputs`` inputs with O = ``outputs``
    outputs, P = ``parameter_count`` parameters::

        itemsize * (P (2 + 2 N O) + (N O)^2 + N n_0)

    the parameters and their gradient (2 P), the per-sample Jacobians [N O, P] of the reference
    implementation with the temporaries of their contraction (2 N O P, the estimate of
    :func:`harness.montecarlo.bytes_per_network`), the kernel [N O, N O] and the inputs [N, n_0]."""
    p, n, o = int(parameter_count), int(inputs), int(outputs)
    return _ITEMSIZE.get(dtype, 8) * (p * (2 + 2 * n * o) + (n * o) ** 2 + n * int(input_dim))


def format_bytes(count: int) -> str:
    """``count`` bytes in the largest binary unit that keeps the number >= 1 (``3.2 TiB``);
    beyond the float range as a power of ten."""
    if count >= 2**1000:
        return f"10^{math.log10(count):.0f} bytes"
    for unit, size in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20),
                       ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count:.0f} B"


def _count(n: int) -> str:
    """An integer in full, or as a power of ten when it is too long to read (or to print)."""
    return str(n) if n < 10**20 else f"~10^{math.log10(n):.1f}"


def _parameter_count(sizes: list[int], trainable_bias: bool) -> int:
    """P of a fully connected net with layer sizes ``(n_0, ..., n_L, O)``."""
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return weights + (sum(sizes[1:]) if trainable_bias else 0)


def check_network_size(network, inputs: int, dtype: str, *, inputs_key: str | None = None,
                       depth: int | None = None, width: int | None = None, key: str | None = None) -> None:
    """Refuse (``FieldError``) a ``[case.network]`` whose single network's NTK on ``inputs``
    inputs would need more than :data:`MAX_CASE_NTK_BYTES` (estimate: :func:`ntk_bytes`), or
    that has more than :data:`MAX_CASE_DEPTH` hidden layers.

    ``network``: a :class:`harness.cases.sections.NetworkSection` (duck-typed: ``width``,
    ``depth``, ``hidden_widths``, ``input_dim``, ``output_dim``, ``trainable_bias``); the
    parameter count is computed from its numbers without building the layers, so that
    ``depth = 10**12`` is refused at once. ``depth``/``width`` replace the section's (equal
    widths), as :meth:`~harness.cases.sections.NetworkSection.architecture` does. The message
    names ``key`` (default: the section key that sets the size), or ``inputs_key`` when the
    network alone would fit and the inputs make it too big."""
    from harness.cases.schema import FieldError

    explicit = network.hidden_widths is not None and depth is None and width is None
    if explicit:
        hidden = list(network.hidden_widths)
        count = len(hidden)
        key = key or "network.hidden_widths"
    else:
        hidden_list = network.hidden_widths
        count = depth if depth is not None else (network.depth if network.depth is not None else len(hidden_list))
        layer = width if width is not None else (network.width if network.width is not None else hidden_list[0])
        key = key or ("network.depth" if count > MAX_CASE_DEPTH else "network.width")
    if count > MAX_CASE_DEPTH:
        raise FieldError(key, f"expected at most {MAX_CASE_DEPTH} hidden layers, got {_count(count)}")
    if explicit:
        sizes = [network.input_dim or hidden[0]] + hidden + [network.output_dim]
        widths_text = f"hidden widths {_count(min(hidden))}..{_count(max(hidden))}, depth {count}"
    else:
        sizes = [network.input_dim or layer, layer, layer, network.output_dim]
        widths_text = f"width {_count(layer)}, depth {count}"
    if explicit:
        parameters = _parameter_count(sizes, network.trainable_bias)
    else:   # L - 1 equal hidden-to-hidden layers, without building them
        n0, n, o = sizes[0], layer, network.output_dim
        parameters = n0 * n + (count - 1) * n * n + n * o + ((count * n + o) if network.trainable_bias else 0)
    _refuse_if_too_big(key, parameters, inputs, network.output_dim, dtype, sizes[0], widths_text, inputs_key)


def _refuse_if_too_big(key, parameters, inputs, outputs, dtype, input_dim, widths_text, inputs_key) -> None:
    from harness.cases.schema import FieldError

    needed = ntk_bytes(parameters, inputs, outputs, dtype, input_dim)
    if needed <= MAX_CASE_NTK_BYTES:
        return
    if inputs_key is not None and ntk_bytes(parameters, 1, outputs, dtype, input_dim) <= MAX_CASE_NTK_BYTES:
        key, advice = inputs_key, "use fewer inputs"
    else:
        advice = "shrink the network"
    raise FieldError(key, (
        f"one network's NTK needs about {format_bytes(needed)} ({widths_text}: {_count(parameters)} parameters, "
        f"{_count(inputs)} inputs x {_count(outputs)} outputs, {dtype}), more than the collection-time ceiling "
        f"of {format_bytes(MAX_CASE_NTK_BYTES)} for one network; {advice}"))


def check_device_key(key: str, name: str) -> None:
    """Refuse (``FieldError(key, ...)``) a case's device name torch would not read, at collection
    (the same rule as ``--ntk-device``: :func:`harness.options.check_device_name`)."""
    from harness.cases.schema import FieldError
    from harness.options import OptionError, check_device_name

    try:
        check_device_name(name)
    except OptionError as exc:
        raise FieldError(key, str(exc).split(": ", 1)[1]) from None


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
        raise StartError(f"--ntk-implementation: {exc}") from None


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
    if options.implementation_spec is not None:
        check_implementation(options.implementation_spec)
    if explicit_cache:
        check_cache_dir(options.cache_dir)
