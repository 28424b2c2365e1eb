"""Structured NTK of a fully connected network: layer-wise factorization.

For layer l (``l = 1..L+1``; parameter names ``layers.{l-1}.*``) the layer computes
``h^l = s_l W^l x^{l-1} + t b^l`` with weight scale ``s_l`` (1 in the standard
parametrization, ``sqrt(sigma_w2 / n_{l-1})`` in the NTK one) and bias scale ``t``
(1, or ``sqrt(sigma_b2)``). With ``delta^l_i(x) = d f_i(x) / d h^l`` ([n_l]), the
gradients are ``df_i/dW^l = s_l delta^l_i x^{l-1}^T`` and ``df_i/db^l = t delta^l_i``, so::

    Theta[a, b, i, j] = sum_l <delta^l_i(x1_a), delta^l_j(x2_b)>
                              * (s_l^2 <x^{l-1}(x1_a), x^{l-1}(x2_b)> + t^2 [b^l in params])

All ``x^{l-1}`` come from one forward pass per batch; all ``delta^l_i`` from one backward
pass, written out (``delta^l = phi'(h^l) * (s_{l+1} delta^{l+1} W^{l+1})``, all outputs at
once), with plain tensor operations, so it composes with ``torch.func.vmap`` and costs no
autograd overhead. No parameter-sized Jacobian is built. Cost: O((N1 + N2) O P) for the passes plus O(N1 N2 O^2 sum_l n_l) for the
contractions; memory O((N1 + N2) O sum_l n_l).

The output-trace NTK ``Theta_trace[a, b] = sum_i Theta[a, b, i, i]`` (the paper's training
measurement) is :func:`structured_trace_ntk`: the sum over outputs moves inside each layer's
delta Gram, ``sum_i <delta^l_i(x1_a), delta^l_i(x2_b)>`` = one [N1, O n_l] x [O n_l, N2]
product, so it costs O((N1 + N2) O P) for the passes plus O(N1 N2 O sum_l n_l) for the
contractions, O times less than the full blocks' contractions, and the same memory.

Only networks of :class:`harness.networks.MLP` are supported; any other ``f`` raises
:class:`~harness.ntk.registry.ImplementationError`.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch.func import jvp

from harness.networks import MLP, activation_function
from harness.ntk.registry import ImplementationError


def _not_supported(f) -> Exception:
    return ImplementationError(
        "NTK implementation 'structured': supports only fully connected networks "
        f"(harness.networks.MLP); got f = {f!r} of type {type(f).__name__}"
    )


def _scales(mlp: MLP) -> tuple[list[float], float]:
    """Weight scale s_l per affine layer and the bias scale t (see the module docstring)."""
    arch = mlp.architecture
    sizes = arch.layer_sizes
    if arch.parametrization == "ntk":
        return [math.sqrt(arch.sigma_w2 / sizes[i]) for i in range(len(sizes) - 1)], math.sqrt(arch.sigma_b2)
    return [1.0] * (len(sizes) - 1), 1.0


# phi'(h) of the activations of harness.networks, written out: autograd's vjp through the
# network costs 2-4x more for small and deep networks (per-op overhead of torch.func).
# Each matches autograd's own derivative (relu'(0) = 0). An activation missing here falls
# back to a forward-mode derivative (correct, slower).
ACTIVATION_DERIVATIVES = {
    "relu": lambda h: (h > 0).to(h.dtype),
    "tanh": lambda h: 1 - torch.tanh(h) ** 2,
    "erf": lambda h: (2 / math.sqrt(math.pi)) * torch.exp(-h * h),
    "linear": torch.ones_like,
}


def _activation_derivative(name: str):
    derivative = ACTIVATION_DERIVATIVES.get(name)
    if derivative is not None:
        return derivative
    phi = activation_function(name)
    return lambda h: jvp(phi, (h,), (torch.ones_like(h),))[1]  # elementwise phi: its Jacobian is diagonal


def _inputs_and_deltas(mlp: MLP, params: Mapping[str, torch.Tensor], x: torch.Tensor, weight_scales: list[float]):
    """Layer inputs ``[x^0 .. x^L]`` (each [N, n_l]) and ``delta^l`` for l = 1..L+1 (each [O, N, n_l]).

    Forward: ``x^l = phi(h^l)``, keeping ``phi'(h^l)``. Backward, for all O outputs at once:
    ``delta^{L+1}_i = e_i`` and ``delta^l = phi'(h^l) * (s_{l+1} delta^{l+1} W^{l+1})``.
    """
    phi = activation_function(mlp.architecture.activation)
    derivative = _activation_derivative(mlp.architecture.activation)
    num_layers = mlp.num_layers
    inputs, slopes = [x], []
    for k in range(num_layers - 1):
        h = mlp.preactivation(params, k, inputs[-1])
        inputs.append(phi(h))
        slopes.append(derivative(h))
    num_outputs = mlp.architecture.output_dim
    delta = torch.eye(num_outputs, dtype=x.dtype, device=x.device)[:, None, :].expand(num_outputs, x.shape[0], num_outputs)
    deltas = [delta]
    for k in range(num_layers - 1, 0, -1):
        delta = (delta @ params[f"layers.{k}.weight"]) * slopes[k - 1]
        if weight_scales[k] != 1.0:
            delta = delta * weight_scales[k]
        deltas.append(delta)
    return inputs, deltas[::-1], num_outputs


def _layers(f: Callable, params: Mapping[str, torch.Tensor], x1: torch.Tensor, x2: torch.Tensor):
    """Per layer k: (the input factor ``s_k^2 <x^{k-1}(x1_a), x^{k-1}(x2_b)> + t^2 [bias]`` [N1, N2],
    the deltas of x1 [O, N1, n_k], the deltas of x2 [O, N2, n_k]); the deltas are the same
    tensor object when x2 is x1."""
    if not isinstance(f, MLP):
        raise _not_supported(f)
    weight_scales, bias_scale = _scales(f)
    inputs1, deltas1, _ = _inputs_and_deltas(f, params, x1, weight_scales)
    if x2 is x1:
        inputs2, deltas2 = inputs1, deltas1
    else:
        inputs2, deltas2, _ = _inputs_and_deltas(f, params, x2, weight_scales)
    for k in range(f.num_layers):
        layer_factor = inputs1[k] @ inputs2[k].T  # [N1, N2]
        if weight_scales[k] != 1.0:
            layer_factor = layer_factor * weight_scales[k] ** 2
        if f"layers.{k}.bias" in params:
            layer_factor = layer_factor + bias_scale**2
        yield layer_factor, deltas1[k], deltas2[k]


def structured_ntk(f: Callable, params: Mapping[str, torch.Tensor], x1: torch.Tensor,
                   x2: torch.Tensor) -> torch.Tensor:
    """Empirical NTK of an MLP by layer-wise factorization; [N1, N2] for O = 1, else [N1, N2, O, O]."""
    theta = None
    for layer_factor, d1, d2 in _layers(f, params, x1, x2):
        if d1.shape[0] == 1:
            term = (d1[0] @ d2[0].T) * layer_factor
        else:
            term = torch.einsum("ian,jbn->abij", d1, d2) * layer_factor[:, :, None, None]
        theta = term if theta is None else theta + term
    return theta


structured_ntk.vmappable = True


def structured_trace_ntk(f: Callable, params: Mapping[str, torch.Tensor], x1: torch.Tensor,
                         x2: torch.Tensor) -> torch.Tensor:
    """Output-trace NTK ``sum_i Theta[a, b, i, i]`` of an MLP by layer-wise factorization: [N1, N2].

    Per layer l: ``(sum_i delta^l_i(x1_a) . delta^l_i(x2_b)) * (s_l^2 x^{l-1}(x1_a) . x^{l-1}(x2_b) + t^2)``,
    the first factor one matrix product of the deltas flattened to [N, O * n_l]. For O = 1
    it equals :func:`structured_ntk`. Example: width 300, depth 20, O = 10, N1 = N2 = 100
    costs about 2 GFLOP for the backward pass and 0.6 GFLOP for the Grams (no Jacobian).
    """
    theta = None
    for layer_factor, deltas1, deltas2 in _layers(f, params, x1, x2):
        d1 = deltas1.permute(1, 0, 2).reshape(x1.shape[0], -1)  # [N1, O * n_l]
        d2 = d1 if deltas2 is deltas1 else deltas2.permute(1, 0, 2).reshape(x2.shape[0], -1)
        term = (d1 @ d2.T) * layer_factor
        theta = term if theta is None else theta + term
    return theta


structured_trace_ntk.vmappable = True
structured_ntk.supports = lambda f: isinstance(f, MLP)


def _memory_per_network(architecture, num_inputs: int, itemsize: int) -> int:
    """What one call holds besides the parameters: the layer inputs and deltas of every input
    and output, and the products of the contraction (a generous factor 4)."""
    sizes = architecture.layer_sizes
    return 4 * itemsize * num_inputs * (architecture.output_dim + 1) * sum(sizes) + 4 * itemsize * num_inputs ** 2 \
        * architecture.output_dim ** 2 * len(sizes)


structured_ntk.memory_per_network = _memory_per_network
structured_ntk.supports_reason = "structured supports the harness's fully connected networks (harness.networks.MLP) only"
