"""NTK-vector products: the kernel from vjp and jvp, never holding a batch of Jacobians.

For inputs x1 [N1, d], x2 [N2, d], a network with P parameters and O outputs, and
``J(x) = df(x)/dp`` ([O, P] per input)::

    u_{a,i}  = J(x1_a)^T e_i                    one vjp of the single input x1_a   [P]
    Theta[a, :, i, :] = J(x2) u_{a,i}           one jvp over the batch x2          [N2, O]

The inputs x1 are taken in chunks; the O * chunk vjp/jvp pairs of a chunk are batched
with ``torch.func.vmap``, so at most O * chunk parameter-sized vectors exist at once
(``CHUNK_BYTES`` bounds them; the Jacobian of the batch, [N1 O, P], is never built).
When ``x2 is x1`` the kernel is symmetric, and the chunk of rows starting at input a0
needs the jvp only over ``x1[a0:]``; the rest is filled in by symmetry, which nearly halves
the work (at least ``SYMMETRIC_CHUNKS`` chunks: 9/16 of the full square).

Cost: N1 O single-input backward passes (~3P flops each) plus N1 O jvps over N2 inputs
(~4 N2 P flops each for a fully connected net; half that on average when x2 is x1):
O(N1 N2 O P), against the O(N1 N2 O^2 P) contraction of :mod:`harness.ntk.jacobian`.
Memory: O(CHUNK_BYTES) for the directions plus the jvp's activations.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, Mapping

import torch
from torch.func import jvp, vjp, vmap

# Bytes of parameter-sized vectors one chunk may hold (each vjp result u_{a,i} and the
# weight-gradient temporaries that produce it).
CHUNK_BYTES = 2**30


# With x2 is x1, a chunk's jvp runs over the inputs from the chunk's first one on: with k
# chunks that is (k + 1) / (2k) of the full square, so K(x, x) uses at least this many
# chunks, once the jvps' work (~4 O N^2 P flops) outweighs the ~1 ms overhead of a chunk.
SYMMETRIC_CHUNKS = 8
SYMMETRIC_MIN_FLOPS = 1e8


_FORWARD_AD_READY = False


def _load_forward_ad_rules() -> None:
    """Import torch's forward-AD decompositions once, without their DeprecationWarning.

    The first forward-mode derivative of a process (``torch.func.jvp`` -> ``make_dual``)
    imports ``torch._decomp.decompositions_for_jvp``, which registers its rules with
    ``torch.jit.script``; since torch 2.9 that call warns "`torch.jit.script` is deprecated"
    (a DeprecationWarning torch raises about itself: nothing here uses TorchScript). Under
    ``-W error`` the warning is an exception, and the first jvp fails. So the module is
    imported here, under the same condition torch imports it (``PYTORCH_JIT`` on, no ``-O``),
    with exactly that warning ignored; the filter is local (``catch_warnings`` restores the
    caller's filters), so every other warning, and this one raised by anyone else, still shows.
    """
    global _FORWARD_AD_READY
    if _FORWARD_AD_READY:
        return
    if os.environ.get("PYTORCH_JIT", "1") == "1" and __debug__:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is (deprecated|not supported)",
                                    category=DeprecationWarning)
            try:
                import torch._decomp.decompositions_for_jvp  # noqa: F401
            except ImportError:  # a torch without the module: jvp needs nothing pre-loaded
                pass
    _FORWARD_AD_READY = True


def _inputs_per_chunk(params: Mapping[str, torch.Tensor], num_outputs: int, n1: int, symmetric: bool) -> int:
    num_parameters = sum(p.numel() for p in params.values())
    bytes_per_vector = sum(p.numel() * p.element_size() for p in params.values())
    size = min(n1, CHUNK_BYTES // max(1, 3 * num_outputs * bytes_per_vector))
    if symmetric and 4 * num_outputs * n1 * n1 * num_parameters > SYMMETRIC_MIN_FLOPS:
        size = min(size, -(-n1 // SYMMETRIC_CHUNKS))
    return max(1, size)


def ntk_vector_products(f: Callable, params: Mapping[str, torch.Tensor], x1: torch.Tensor,
                        x2: torch.Tensor) -> torch.Tensor:
    """Empirical NTK by vjp/jvp products; [N1, N2] for O = 1, else [N1, N2, O, O]."""
    _load_forward_ad_rules()
    params = dict(params)
    symmetric = x2 is x1
    n1 = x1.shape[0]

    def output_of_one(p, xi):
        return f(p, xi.unsqueeze(0)).squeeze(0)  # [O]

    num_outputs = output_of_one(params, x1[0]).shape[-1]  # a forward probe, no derivative
    eye = torch.eye(num_outputs, dtype=x1.dtype, device=x1.device)

    def rows(chunk: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """[C, O, N', O]: J(others) J(x_a)^T e_i for every input x_a of the chunk and output i."""

        def row(xi, basis_vector):
            _, pullback = vjp(lambda p: output_of_one(p, xi), params)
            (direction,) = pullback(basis_vector)
            return jvp(lambda p: f(p, others), (params,), (direction,))[1]  # [N', O]

        inputs = chunk.repeat_interleave(num_outputs, dim=0)  # row (a, i)
        basis = eye.repeat(chunk.shape[0], 1)
        if inputs.shape[0] == 1:  # one row: vmap would only add its overhead
            out = row(inputs[0], basis[0]).unsqueeze(0)
        else:
            out = vmap(row)(inputs, basis)  # [C O, N', O]
        return out.reshape(chunk.shape[0], num_outputs, others.shape[0], num_outputs)

    size = _inputs_per_chunk(params, num_outputs, n1, symmetric)
    blocks = []  # row blocks [C, O, N2, O]
    upper = []  # when symmetric: rows of inputs [a0, a1) against x1[a0:]
    for a0 in range(0, n1, size):
        a1 = min(a0 + size, n1)
        if not symmetric:
            blocks.append(rows(x1[a0:a1], x2))
            continue
        block = rows(x1[a0:a1], x1[a0:])  # [C, O, N1 - a0, O]
        upper.append((a0, block))
        # columns before a0 come from earlier blocks by symmetry: Theta[a, b, i, j] = Theta[b, a, j, i]
        left = [earlier[:, :, a0 - b0 : a1 - b0, :].permute(2, 3, 0, 1) for b0, earlier in upper[:-1]]
        blocks.append(torch.cat(left + [block], dim=2))
    theta = torch.cat(blocks, dim=0).permute(0, 2, 1, 3)  # [N1, N2, O, O]
    if num_outputs == 1:
        return theta[..., 0, 0]
    return theta.contiguous()


ntk_vector_products.vmappable = True
