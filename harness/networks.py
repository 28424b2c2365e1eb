"""Fully connected networks as pure functions of a parameter dict.

This module owns the functional network ``f(params, x)`` of an
:class:`~harness.architecture.Architecture` (:class:`MLP`) and the random initialization
of many networks at once (:func:`init_parameters`).

Notation (Seleznova & Kutyniok 2022, standard parametrization)::

    h^1 = W^1 x + b^1,   x^l = phi(h^l),   h^{l+1} = W^{l+1} x^l + b^{l+1},   f = h^{L+1}
    W^l_ij ~ N(0, sigma_w2 / n_{l-1}),   b^l_i ~ N(0, sigma_b2)

with input dimension n_0, hidden widths n_1..n_L and output dimension n_{L+1}.
In the NTK parametrization the trainable parameters are standard normal and the layer
reads ``h^l = sqrt(sigma_w2 / n_{l-1}) w^l x^{l-1} + sqrt(sigma_b2) beta^l``.

Parameters are named ``layers.{i}.weight`` (shape ``[n_{i+1}, n_i]``) and
``layers.{i}.bias`` (shape ``[n_{i+1}]``) for ``i = 0..L``; ``layers.{L}`` is the readout.
Biases are in the dict only when they are trainable; frozen biases must be zero
(``sigma_b2 = 0``), so the dict always holds every parameter of the network.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

import numpy as np
import torch

from harness.architecture import Architecture
from harness.constants import ACTIVATIONS

__all__ = ["Architecture", "MLP", "activation_function", "init_parameters", "network_seed", "unstack"]


def activation_function(name: str):
    """The elementwise activation phi for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name == "relu":
        return torch.relu
    if name == "tanh":
        return torch.tanh
    if name == "erf":
        return torch.erf
    if name == "linear":
        return lambda h: h
    raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {name!r}")


class MLP:
    """The network as a function ``f(params, x) -> [N, O]`` of a parameter dict.

    ``x`` has shape ``[N, n_0]``; ``params`` maps the names of
    :meth:`Architecture.parameter_shapes` to tensors of those shapes. It composes with
    ``torch.func`` (``vmap`` over stacked parameters, ``jacrev``, ``jvp``).
    """

    def __init__(self, architecture: Architecture):
        self.architecture = architecture
        self._phi = activation_function(architecture.activation)
        sizes = architecture.layer_sizes
        if architecture.parametrization == "ntk":
            self._weight_scale = [math.sqrt(architecture.sigma_w2 / sizes[i]) for i in range(len(sizes) - 1)]
            self._bias_scale = math.sqrt(architecture.sigma_b2)
        else:
            self._weight_scale = [1.0] * (len(sizes) - 1)
            self._bias_scale = 1.0

    @property
    def num_layers(self) -> int:
        """L + 1 affine layers (L hidden, one readout)."""
        return self.architecture.depth + 1

    def preactivation(self, params: Mapping[str, torch.Tensor], i: int, inputs: torch.Tensor) -> torch.Tensor:
        """``h^{i+1} = W^{i+1} x^i + b^{i+1}`` for inputs ``x^i`` of shape [N, n_i]; returns [N, n_{i+1}]."""
        h = inputs @ params[f"layers.{i}.weight"].T
        if self._weight_scale[i] != 1.0:
            h = h * self._weight_scale[i]
        bias = params.get(f"layers.{i}.bias")
        if bias is not None:
            h = h + (bias * self._bias_scale if self._bias_scale != 1.0 else bias)
        return h

    def __call__(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = x
        for i in range(self.num_layers - 1):
            h = self._phi(self.preactivation(params, i, h))
        return self.preactivation(params, self.num_layers - 1, h)


def network_seed(seed: int, index: int) -> int:
    """The seed of network ``index`` in a Monte Carlo run seeded with ``seed``.

    Derived with numpy's SeedSequence so that nearby (seed, index) pairs give
    independent streams, and so that a network's weights depend only on (seed, index):
    the same numbers whatever the chunking, the number of workers or devices.
    """
    # a Python int before the shift: NumPy 1.x refuses uint64 >> int (no common integer type)
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0]) >> 1


def _init_scale(architecture: Architecture, name: str, shape: tuple[int, ...]) -> float:
    """sqrt(sigma_w2 / fan_in) for weights, sqrt(sigma_b2) for biases (standard); 1 (NTK)."""
    if architecture.parametrization == "ntk":
        return 1.0
    if name.endswith("weight"):
        return math.sqrt(architecture.sigma_w2 / shape[1])
    return math.sqrt(architecture.sigma_b2)


def init_parameters(
    architecture: Architecture,
    seed: int,
    indices: Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    draw_dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Initialize the networks ``indices`` of a run seeded with ``seed``, stacked.

    Returns name -> tensor of shape ``[len(indices), *shape]`` in ``dtype`` on ``device``.

    Each network draws its standard normals, parameter by parameter in layer order, from
    a ``torch.Generator`` seeded with :func:`network_seed` on ``device`` (Mersenne
    Twister on CPU, Philox on CUDA), in ``draw_dtype``, then scales them: ``W = sqrt(sigma_w2 / fan_in) * z`` and
    ``b = sqrt(sigma_b2) * z`` in the standard parametrization, ``z`` itself in the NTK
    parametrization. Drawing in float32 is about 4.5x faster than float64 on CPU; each
    value is an exact N(0, 1) draw rounded to 24 bits, which moves the law of any NTK
    statistic by ~1e-7 relative, far below Monte Carlo error at any feasible sample count.
    Pass ``draw_dtype=torch.float64`` to draw at full precision.
    """
    device = torch.device(device)
    shapes = architecture.parameter_shapes()
    count = len(indices)
    draws = {name: torch.empty((count, *shape), dtype=draw_dtype, device=device) for name, shape in shapes.items()}

    def fill(rows: range) -> None:
        generator = torch.Generator(device=device)
        for row in rows:
            generator.manual_seed(network_seed(seed, indices[row]))
            for name, shape in shapes.items():
                torch.randn(shape, generator=generator, dtype=draw_dtype, device=device, out=draws[name][row])

    # A generator draws on one thread; networks are independent (each has its own seed),
    # so on CPU their rows are split between threads, one per intra-op thread.
    threads = min(torch.get_num_threads(), count) if device.type == "cpu" else 1
    if threads > 1:
        bounds = [count * t // threads for t in range(threads + 1)]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(fill, [range(bounds[t], bounds[t + 1]) for t in range(threads)]))
    else:
        fill(range(count))
    params: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        scale = _init_scale(architecture, name, shape)
        # cast, then scale in place: a mixed-dtype multiply is several times slower on CPU
        value = draws.pop(name).to(dtype)
        params[name] = value.mul_(scale) if scale != 1.0 else value
    return params


def unstack(params: Mapping[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """Network ``index`` of stacked parameters (each [M, ...] -> [...])."""
    return {name: value[index] for name, value in params.items()}
