"""The reference implementation: per-sample Jacobians with torch.func, contracted.

For inputs x1 [N1, d], x2 [N2, d] and a network with P parameters and O outputs::

    J1[a, i, p] = d f_i(x1_a) / d p        (jacrev per sample, vmap over the batch)
    Theta[a, b, i, j] = sum_p J1[a, i, p] J2[b, j, p]

Memory: O(N1 * O * P + N2 * O * P) for the Jacobians; cost O((N1 + N2) * O * forward)
for the Jacobians plus O(N1 * N2 * O^2 * P) for the contraction.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch.func import jacrev, vmap


def _per_sample_jacobians(f: Callable, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> dict:
    """name -> [N, O, *param.shape], the Jacobian of each output at each input."""

    def single(p, xi):
        return f(p, xi.unsqueeze(0)).squeeze(0)

    return vmap(jacrev(single), in_dims=(None, 0))(dict(params), x)


def jacobian_ntk(f: Callable, params: Mapping[str, torch.Tensor], x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Empirical NTK by explicit Jacobian contraction; [N1, N2] for O = 1, else [N1, N2, O, O]."""
    j1 = _per_sample_jacobians(f, params, x1)
    j2 = j1 if x2 is x1 else _per_sample_jacobians(f, params, x2)
    n1, n2 = x1.shape[0], x2.shape[0]
    theta = None
    for name, jacobian in j1.items():
        # one matrix product per parameter tensor, summed: no concatenated copy of the
        # Jacobians (a 4-index einsum here is several times slower, under vmap especially)
        a = jacobian.reshape(n1 * jacobian.shape[1], -1)  # [N1 * O, P_name]
        b = a if j2 is j1 else j2[name].reshape(n2 * jacobian.shape[1], -1)
        term = a @ b.T
        theta = term if theta is None else theta + term
    outputs = next(iter(j1.values())).shape[1]
    theta = theta.reshape(n1, outputs, n2, outputs)
    if outputs == 1:
        return theta[:, 0, :, 0]
    return theta.permute(0, 2, 1, 3)


jacobian_ntk.vmappable = True
