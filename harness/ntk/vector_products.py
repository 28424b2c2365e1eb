"""NTK-vector products: the kernel from vjp and jvp, never holding a batch of Jacobians.

For inputs x1 [N1, d], x2 [N2, d], a network with P parameters and O outputs, and
``J(x) = df(x)/dp`` ([O, P] per input)::

    u_{a,i}  = J(x1_a)^T e_i                    one vjp of the single input x1_a   [P]
    Theta[a, :, i, :] = J(x2) u_{a,i}           one jvp over the whole batch x2    [N2, O]

The N1 * O vjp/jvp pairs are batched with ``torch.func.vmap`` in chunks of
``chunk_size`` basis vectors, so at most ``chunk_size`` parameter-sized vectors exist at
once (the Jacobian of the batch, [N1 * O, P], is never built).

Cost: N1 * O single-input backward passes (~2P flops each) plus N1 * O batched jvps
over N2 inputs (~4 N2 P flops each for a fully connected net): O(N1 N2 O P), against the
O(N1 N2 O^2 P) contraction of :mod:`harness.ntk.jacobian`. Memory: O(chunk_size * P).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch.func import jvp, vjp, vmap

# Bytes of parameter-sized vectors one vmapped chunk may hold (each basis vector of the
# chunk carries a full parameter-sized tangent through the jvp as well).
CHUNK_BYTES = 256 * 2**20


def _chunk_size(params: Mapping[str, torch.Tensor], rows: int) -> int:
    bytes_per_vector = sum(p.numel() * p.element_size() for p in params.values())
    return max(1, min(rows, CHUNK_BYTES // max(1, 4 * bytes_per_vector)))


def ntk_vector_products(f: Callable, params: Mapping[str, torch.Tensor], x1: torch.Tensor,
                        x2: torch.Tensor) -> torch.Tensor:
    """Empirical NTK by vjp/jvp products; [N1, N2] for O = 1, else [N1, N2, O, O]."""
    params = dict(params)
    n1 = x1.shape[0]

    def output_of_one(p, xi):
        return f(p, xi.unsqueeze(0)).squeeze(0)  # [O]

    def output_of_batch(p):
        return f(p, x2)  # [N2, O]

    # One probe to learn O (the outputs of x1's first input; cheap, no derivative).
    num_outputs = output_of_one(params, x1[0]).shape[-1]

    def row(xi, basis_vector):
        # u = J(xi)^T e_i  (a parameter-sized dict), then J(x2) u  -> [N2, O]
        _, pullback = vjp(lambda p: output_of_one(p, xi), params)
        (direction,) = pullback(basis_vector)
        _, tangent_out = jvp(output_of_batch, (params,), (direction,))
        return tangent_out

    eye = torch.eye(num_outputs, dtype=x1.dtype, device=x1.device)
    inputs = x1.repeat_interleave(num_outputs, dim=0)  # [N1 * O, d], row (a, i)
    basis = eye.repeat(n1, 1)  # [N1 * O, O], row (a, i) is e_i
    rows = vmap(row, chunk_size=_chunk_size(params, n1 * num_outputs))(inputs, basis)  # [N1*O, N2, O]
    theta = rows.reshape(n1, num_outputs, x2.shape[0], num_outputs).permute(0, 2, 1, 3)
    if num_outputs == 1:
        return theta[..., 0, 0]
    return theta.contiguous()


ntk_vector_products.vmappable = True
