"""``neural-tangents``: the three ``empirical_ntk_fn`` implementations on the harness MLP rebuilt in JAX.

neural-tangents' ``empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=...)``
returns ``Theta[a, b, i, j]`` [N1, N2, O, O] (``trace_axes=()`` keeps both output indices; the
harness's layout), by one of (Novak et al., "Fast Finite Width Neural Tangent Kernel", 2022):

- ``neural-tangents/jacobian`` (``NtkImplementation.JACOBIAN_CONTRACTION``): per-sample Jacobians
  contracted, as the harness's ``jacobian``;
- ``neural-tangents/ntk-vector-products`` (``NTK_VECTOR_PRODUCTS``): jvps of vjps, never holding
  the Jacobian;
- ``neural-tangents/structured`` (``STRUCTURED_DERIVATIVES``): the Jacobian's structure per
  primitive (here: dense layers), contracted without materializing it.

The network is :func:`harness.ntk.adapters.jax_mlp.stax_network` of
:func:`harness.ntk.adapters.arrays.mlp_arrays` ``(f, params)``: the same weights (transposed to
JAX's [in, out]), the same parametrization scales and biases, computed in float64 (JAX's x64
mode) whatever the inputs' dtype; the result is cast to the inputs' dtype and device. The
kernel function is jit-compiled once per architecture and implementation (a cache in this module).

Conventions that differ from torch's: ``stax.Relu`` is ``jnp.maximum(x, 0)``, whose derivative at
0 is 1/2 (torch: 0), which matters only where a pre-activation is exactly 0 (a zero input of a
network without bias, dead units); inputs and weights cross to JAX as float64 numpy arrays on the
CPU (JAX's device here). Supports the harness MLP only (a torch ``nn.Module`` has no JAX
counterpart here); not vmappable under torch.func.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from harness.ntk.adapters.arrays import mlp_arrays

_REASON = ("neural-tangents computes the NTK of JAX functions: the adapter rebuilds the harness MLP in "
           "neural_tangents.stax and has no JAX counterpart of a torch nn.Module")


def _supports(f) -> bool:
    from harness.networks import MLP

    return isinstance(f, MLP)


@functools.lru_cache(maxsize=64)
def _kernel_fn(implementation: str, same: bool):
    """The jitted ``(params, x1, x2) -> Theta`` of one implementation (the network is an argument)."""
    import jax
    import neural_tangents as nt

    from harness.ntk.adapters import jax_mlp  # noqa: F401  (turns on x64 before any array is made)

    method = getattr(nt.NtkImplementation, implementation)

    def kernel(apply_fn, params, x1, x2):
        ntk = nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=method)
        return ntk(x1, None if same else x2, params)

    return jax.jit(kernel, static_argnums=(0,))


@functools.lru_cache(maxsize=64)
def _apply_fn(key):
    """The stax apply_fn of one architecture (``key``: layer sizes, activation, parametrization, biases,
    sigma_w2, sigma_b2), cached so that the jitted kernel is reused across networks."""
    from harness.ntk.adapters.arrays import MLPArrays
    from harness.ntk.adapters.jax_mlp import stax_network

    sizes, activation, parametrization, has_bias, sigma_w2, sigma_b2 = key
    zeros = MLPArrays(weights=tuple(np.zeros((sizes[i], sizes[i + 1])) for i in range(len(sizes) - 1)),
                      biases=tuple(np.zeros(n) for n in sizes[1:]) if has_bias else None,
                      weight_scales=(1.0,) * (len(sizes) - 1), bias_scale=1.0, activation=activation,
                      parametrization=parametrization)
    apply_fn, _ = stax_network(zeros, sigma_w2, sigma_b2)
    return apply_fn


def _neural_tangents_ntk(implementation: str, f, params, x1, x2):
    from harness.ntk.adapters.jax_mlp import stax_network

    arrays = mlp_arrays(f, params)
    architecture = f.architecture
    key = (architecture.layer_sizes, architecture.activation, architecture.parametrization,
           arrays.biases is not None, float(architecture.sigma_w2), float(architecture.sigma_b2))
    apply_fn = _apply_fn(key)
    _, jax_params = stax_network(arrays, architecture.sigma_w2, architecture.sigma_b2)
    same = x2 is x1
    a = np.asarray(x1.detach().to("cpu", torch.float64).numpy())
    b = a if same else np.asarray(x2.detach().to("cpu", torch.float64).numpy())
    theta = np.asarray(_kernel_fn(implementation, same)(apply_fn, jax_params, a, b))   # [N1, N2, O, O]
    result = torch.as_tensor(theta.copy(), dtype=torch.float64)
    result = result[:, :, 0, 0] if result.shape[-1] == 1 else result
    return result.to(dtype=x1.dtype, device=x1.device).contiguous()


def jacobian_contraction(f, params, x1, x2):
    """neural-tangents' JACOBIAN_CONTRACTION; [N1, N2] or [N1, N2, O, O]."""
    return _neural_tangents_ntk("JACOBIAN_CONTRACTION", f, params, x1, x2)


def ntk_vector_products(f, params, x1, x2):
    """neural-tangents' NTK_VECTOR_PRODUCTS; [N1, N2] or [N1, N2, O, O]."""
    return _neural_tangents_ntk("NTK_VECTOR_PRODUCTS", f, params, x1, x2)


def structured_derivatives(f, params, x1, x2):
    """neural-tangents' STRUCTURED_DERIVATIVES; [N1, N2] or [N1, N2, O, O]."""
    return _neural_tangents_ntk("STRUCTURED_DERIVATIVES", f, params, x1, x2)


for _function in (jacobian_contraction, ntk_vector_products, structured_derivatives):
    _function.vmappable = False
    _function.supports = _supports
    _function.supports_reason = _REASON
