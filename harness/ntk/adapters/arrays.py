"""The harness MLP as plain arrays, for JAX, flax or numpy users.

:func:`mlp_arrays` exports one network's parameters in the layout JAX libraries use::

    h^{l+1} = s_l * (x^l @ weights[l]) + t * biases[l],   x^{l+1} = phi(h^{l+1}),   f = h^{L+1}

- ``weights[l]``: [n_l, n_{l+1}], the TRANSPOSE of torch's ``layers.{l}.weight`` [n_{l+1}, n_l]
  (inputs are rows: ``x @ W``, as ``flax.linen.Dense`` and ``neural_tangents.stax.Dense`` store them);
- ``biases[l]``: [n_{l+1}], or None for every layer when biases are not trainable;
- ``weight_scales[l]`` = s_l and ``bias_scale`` = t: 1 and 1 in the standard parametrization,
  ``sqrt(sigma_w2 / n_l)`` and ``sqrt(sigma_b2)`` in the NTK parametrization
  (:meth:`harness.networks.MLP.preactivation`);
- ``activation``: ``relu`` (relu'(0) = 0 in torch's autograd; ``jax.nn.relu`` also has 0, but
  ``jnp.maximum(x, 0)`` has 1/2), ``tanh``, ``erf`` or ``linear``.

:func:`apply` evaluates the exported network with numpy (a check that the export is complete).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch


@dataclass(frozen=True)
class MLPArrays:
    """One harness MLP as float64 numpy arrays (module docstring for the layout)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...] | None
    weight_scales: tuple[float, ...]
    bias_scale: float
    activation: str
    parametrization: str

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """(n_0, n_1, ..., n_{L+1})."""
        return (self.weights[0].shape[0],) + tuple(w.shape[1] for w in self.weights)


def mlp_arrays(f, params: Mapping[str, torch.Tensor]) -> MLPArrays:
    """Export network ``f`` (a :class:`harness.networks.MLP`) with parameters ``params`` (one
    network's, unstacked) as :class:`MLPArrays` in float64."""
    from harness.networks import MLP
    from harness.ntk.adapters.module import mlp_scales

    if not isinstance(f, MLP):
        raise TypeError(f"mlp_arrays: f must be a harness.networks.MLP; got {type(f).__name__}")
    shapes = f.architecture.parameter_shapes()
    for name, shape in shapes.items():
        if name not in params:
            raise ValueError(f"mlp_arrays: params lacks {name!r} (expected {list(shapes)})")
        if tuple(params[name].shape) != tuple(shape):
            raise ValueError(f"mlp_arrays: params[{name!r}] has shape {list(params[name].shape)}, expected {list(shape)}")

    def array(name: str) -> np.ndarray:
        return params[name].detach().to("cpu", torch.float64).numpy().copy()

    layers = range(f.num_layers)
    weights = tuple(array(f"layers.{i}.weight").T.copy() for i in layers)
    biases = tuple(array(f"layers.{i}.bias") for i in layers) if f.architecture.trainable_bias else None
    scales = mlp_scales(f)
    return MLPArrays(weights=weights, biases=biases, weight_scales=tuple(s for s, _ in scales),
                     bias_scale=scales[0][1], activation=f.architecture.activation,
                     parametrization=f.architecture.parametrization)


def _phi(name: str, h: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(h, 0.0)
    if name == "tanh":
        return np.tanh(h)
    if name == "erf":
        from scipy.special import erf

        return erf(h)
    if name == "linear":
        return h
    raise ValueError(f"activation must be relu, tanh, erf or linear; got {name!r}")


def apply(arrays: MLPArrays, x: np.ndarray) -> np.ndarray:
    """[N, n_{L+1}]: the exported network at inputs ``x`` [N, n_0], in float64 numpy."""
    h = np.asarray(x, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != arrays.layer_sizes[0]:
        raise ValueError(f"apply: x must have shape [N, {arrays.layer_sizes[0]}]; got {list(h.shape)}")
    for i, weight in enumerate(arrays.weights):
        if i > 0:
            h = _phi(arrays.activation, h)
        h = arrays.weight_scales[i] * (h @ weight)
        if arrays.biases is not None:
            h = h + arrays.bias_scale * arrays.biases[i]
    return h


__all__ = ["MLPArrays", "apply", "mlp_arrays"]
