"""The harness MLP rebuilt in ``neural_tangents.stax`` with the same weights (JAX, float64).

From :func:`harness.ntk.adapters.arrays.mlp_arrays` (weights [n_l, n_{l+1}], the transpose of
torch's [out, in]) the network is::

    stax.serial(Dense(n_1), phi, Dense(n_2), phi, ..., Dense(n_{L+1}))

with ``stax.Dense(out, W_std, b_std, parameterization)``:

- standard parametrization: ``parameterization="standard"``, ``z = x W + b`` (``W_std`` and
  ``b_std`` only scale stax's own initialization, which is not used: the harness's draws are
  passed in), matching ``h = W x + b``;
- NTK parametrization: ``parameterization="ntk"``, ``W_std = sqrt(sigma_w2)``,
  ``b_std = sqrt(sigma_b2)``: stax computes ``z = W_std / sqrt(n_l) x W + b_std b``, matching
  ``h = sqrt(sigma_w2 / n_l) W x + sqrt(sigma_b2) b`` (:meth:`harness.networks.MLP.preactivation`);
- biases: stax's bias has shape [1, n_{l+1}] (a batch axis of 1); without trainable biases
  ``b_std = None`` and stax's layer has no bias.

Activations: ``stax.Relu()`` (``jnp.maximum(x, 0)``: its derivative at 0 is 1/2 in JAX, where
torch's autograd has 0: the one convention that differs, seen only where a pre-activation is
exactly 0), ``stax.Erf()`` (``erf(x)``), ``stax.Elementwise(fn=jnp.tanh)`` (stax has no tanh
layer; the empirical NTK needs only the function) and ``stax.Identity()`` for ``linear``.

Importing this module turns on JAX's 64-bit mode for the process (``jax_enable_x64``).
"""
from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after x64 is on)
from neural_tangents import stax  # noqa: E402

from harness.ntk.adapters.arrays import MLPArrays  # noqa: E402


def _activation(name: str):
    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()
    if name == "tanh":
        return stax.Elementwise(fn=jnp.tanh)
    if name == "linear":
        return stax.Identity()
    raise ValueError(f"activation must be relu, tanh, erf or linear; got {name!r}")


def stax_network(arrays: MLPArrays, sigma_w2: float, sigma_b2: float):
    """``(apply_fn, params)``: the stax network of the module docstring and its parameters (a list,
    one entry per stax layer: ``(W, b)`` for Dense, ``()`` for an activation), float64."""
    sizes = arrays.layer_sizes
    has_bias = arrays.biases is not None
    layers, params = [], []
    for i, weight in enumerate(arrays.weights):
        if i > 0:
            layers.append(_activation(arrays.activation))
            params.append(())
        if arrays.parametrization == "ntk":
            dense = stax.Dense(sizes[i + 1], W_std=sigma_w2 ** 0.5, b_std=sigma_b2 ** 0.5 if has_bias else None,
                               parameterization="ntk")
        else:
            dense = stax.Dense(sizes[i + 1], W_std=1.0, b_std=1.0 if has_bias else None, parameterization="standard")
        layers.append(dense)
        bias = jnp.asarray(arrays.biases[i], dtype=jnp.float64).reshape(1, -1) if has_bias else None
        params.append((jnp.asarray(weight, dtype=jnp.float64), bias))
    _, apply_fn, _ = stax.serial(*layers)
    return apply_fn, params
