"""Structured NTK of a fully connected network: layer-wise factorization.

For layer l (``l = 1..L+1``; parameter names ``layers.{l-1}.*``) the layer computes
``h^l = s_l W^l x^{l-1} + t b^l`` with weight scale ``s_l`` (1 in the standard
parametrization, ``sqrt(sigma_w2 / n_{l-1})`` in the NTK one) and bias scale ``t``
(1, or ``sqrt(sigma_b2)``). With ``delta^l_i(x) = d f_i(x) / d h^l`` ([n_l]), the
gradients are ``df_i/dW^l = s_l delta^l_i x^{l-1}^T`` and ``df_i/db^l = t delta^l_i``, so::

    Theta[a, b, i, j] = sum_l <delta^l_i(x1_a), delta^l_j(x2_b)>
                              * (s_l^2 <x^{l-1}(x1_a), x^{l-1}(x2_b)> + t^2 [b^l in params])

All ``x^{l-1}`` come from one forward pass per batch; all ``delta^l_i`` from one backward
pass per output (a vjp with respect to additive zero perturbations of every
pre-activation, batched over outputs with ``vmap``). No parameter-sized Jacobian is
built. Cost: O((N1 + N2) O P) for the passes plus O(N1 N2 O^2 sum_l n_l) for the
contractions; memory O((N1 + N2) O sum_l n_l).

Only networks of :class:`harness.networks.MLP` are supported; any other ``f`` raises
:class:`~harness.ntk.registry.ImplementationError`.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch.func import vjp, vmap

from harness.networks import MLP, _activation


def _not_supported(f) -> Exception:
    from harness.ntk.registry import ImplementationError

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


def _inputs_and_deltas(mlp: MLP, params: Mapping[str, torch.Tensor], x: torch.Tensor):
    """Layer inputs ``[x^0 .. x^L]`` (each [N, n_l]) and ``delta^l`` for l = 1..L+1 (each [O, N, n_l])."""
    phi = _activation(mlp.architecture.activation)
    sizes = mlp.architecture.layer_sizes
    num_layers = mlp.num_layers
    zeros = [x.new_zeros(x.shape[0], sizes[k + 1]) for k in range(num_layers)]

    def forward(perturbations):
        inputs = [x]
        h = x
        for k in range(num_layers):
            h = mlp.preactivation(params, k, inputs[-1]) + perturbations[k]
            if k < num_layers - 1:
                inputs.append(phi(h))
        return h, inputs

    out, pullback, inputs = vjp(forward, zeros, has_aux=True)
    num_outputs = out.shape[-1]
    if num_outputs == 1:  # one pullback, no vmap (its overhead dominates small networks)
        (deltas,) = pullback(torch.ones_like(out))
        return inputs, [d.unsqueeze(0) for d in deltas], 1
    # Row i of the cotangent batch selects output i of every input at once; inputs do not
    # interact, so one pullback gives every input's delta for that output.
    cotangents = torch.eye(num_outputs, dtype=out.dtype, device=out.device)[:, None, :].expand(
        num_outputs, out.shape[0], num_outputs
    )
    (deltas,) = vmap(pullback)(cotangents)
    return inputs, deltas, num_outputs


def structured_ntk(f: Callable, params: Mapping[str, torch.Tensor], x1: torch.Tensor,
                   x2: torch.Tensor) -> torch.Tensor:
    """Empirical NTK of an MLP by layer-wise factorization; [N1, N2] for O = 1, else [N1, N2, O, O]."""
    if not isinstance(f, MLP):
        raise _not_supported(f)
    weight_scales, bias_scale = _scales(f)
    inputs1, deltas1, num_outputs = _inputs_and_deltas(f, params, x1)
    if x2 is x1:
        inputs2, deltas2 = inputs1, deltas1
    else:
        inputs2, deltas2, _ = _inputs_and_deltas(f, params, x2)
    theta = None
    for k in range(f.num_layers):
        layer_factor = inputs1[k] @ inputs2[k].T  # [N1, N2]
        if weight_scales[k] != 1.0:
            layer_factor = layer_factor * weight_scales[k] ** 2
        if f"layers.{k}.bias" in params:
            layer_factor = layer_factor + bias_scale**2
        if num_outputs == 1:
            term = (deltas1[k][0] @ deltas2[k][0].T) * layer_factor
        else:
            term = torch.einsum("ian,jbn->abij", deltas1[k], deltas2[k]) * layer_factor[:, :, None, None]
        theta = term if theta is None else theta + term
    return theta


structured_ntk.vmappable = True
