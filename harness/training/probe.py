"""The empirical NTK on the probe set: its output trace (fast, structured) and its full blocks (chunked).

The training cases measure the output-trace NTK ``Theta_trace[a, b] = sum_i Theta[a, b, i, i]``
([N, N]). :func:`probe_trace_ntk` computes it for a :class:`harness.networks.MLP` by the
layer-wise factorization (:func:`harness.ntk.structured.structured_trace_ntk`: no
parameter-sized Jacobian, O(N O P + N^2 O sum_l n_l); about 1 s at the paper's width 300,
depth 20, 10 outputs, 100 probes on one CPU core, against several minutes for the chunked
Jacobian blocks) and falls back to the output trace of :func:`probe_ntk` for any other network.

The full per-output blocks ``Theta[a, b, i, j]`` ([N, N, O, O]) come from :func:`probe_ntk`
with the case's implementation, only when a case asks for them (``full_blocks = true``):

For a network with P parameters and O outputs, the NTK on N probe inputs needs, with the
Jacobian-contraction implementation, the Jacobian of N * O outputs: ``N * O * P * itemsize``
bytes (7.2 GB for the paper's width 300, depth 20, 10 outputs, 100 probes in float32).
:func:`probe_ntk` splits the probe set into chunks of ``c`` inputs so that the two Jacobians
of one block, ``2 * c * O * P * itemsize`` bytes, fit in ``memory_budget_bytes``, and asks
the implementation for every block ``Theta[chunk_i, chunk_j]`` with ``i <= j``; the blocks
below the diagonal are transposes: ``Theta[b, a, j, i] = Theta[a, b, i, j]``. The result is
the same matrix as one unchunked call (up to floating-point summation order).

Cost: with k chunks, each chunk's Jacobian is computed k + 1 times instead of once; the
budget is a trade of memory for time.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch


def jacobian_bytes(num_inputs: int, num_outputs: int, num_parameters: int, itemsize: int) -> int:
    """Bytes of the Jacobian of ``num_inputs * num_outputs`` outputs over ``num_parameters`` parameters."""
    return num_inputs * num_outputs * num_parameters * itemsize


def chunk_size(num_inputs: int, num_outputs: int, num_parameters: int, itemsize: int, memory_budget_bytes: int) -> int:
    """Probe inputs per chunk: all of them if their one Jacobian fits the budget, else the
    largest ``c`` with two chunk Jacobians in the budget (at least 1)."""
    if jacobian_bytes(num_inputs, num_outputs, num_parameters, itemsize) <= memory_budget_bytes:
        return num_inputs
    per_input = 2 * jacobian_bytes(1, num_outputs, num_parameters, itemsize)
    return max(1, min(num_inputs, memory_budget_bytes // per_input))


def _as_blocks(theta: torch.Tensor) -> torch.Tensor:
    """[N1, N2] (O = 1) -> [N1, N2, 1, 1]; [N1, N2, O, O] unchanged."""
    return theta[..., None, None] if theta.dim() == 2 else theta


def probe_ntk(
    implementation: Callable,
    f: Callable,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    num_outputs: int,
    memory_budget_bytes: int,
) -> torch.Tensor:
    """Empirical NTK of ONE network on probe inputs x [N, d]: always [N, N, O, O].

    ``implementation(f, params, x1, x2)`` returns [N1, N2] (O = 1) or [N1, N2, O, O], as the
    implementations of :mod:`harness.ntk` do.
    """
    n = x.shape[0]
    num_parameters = sum(p.numel() for p in params.values())
    itemsize = next(iter(params.values())).element_size()
    c = chunk_size(n, num_outputs, num_parameters, itemsize, memory_budget_bytes)
    if c >= n:
        return _as_blocks(implementation(f, params, x, x))
    starts = list(range(0, n, c))
    result = torch.empty((n, n, num_outputs, num_outputs), dtype=x.dtype, device=x.device)
    for i, a in enumerate(starts):
        xa = x[a : a + c]
        for b in starts[i:]:
            xb = xa if b == a else x[b : b + c]
            block = _as_blocks(implementation(f, params, xa, xb))
            result[a : a + c, b : b + c] = block
            if b != a:
                result[b : b + c, a : a + c] = block.permute(1, 0, 3, 2)
    return result


def probe_trace_ntk(
    implementation: Callable,
    f: Callable,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    num_outputs: int,
    memory_budget_bytes: int,
) -> torch.Tensor:
    """Output-trace NTK ``sum_i Theta[a, b, i, i]`` of ONE network on probe inputs x [N, d]: [N, N].

    An :class:`~harness.networks.MLP` goes through :func:`~harness.ntk.structured.structured_trace_ntk`
    (``implementation`` unused); any other network through ``implementation``'s full blocks
    (:func:`probe_ntk`, chunked to ``memory_budget_bytes``) and their trace.
    """
    from harness.networks import MLP
    from harness.ntk.structured import structured_trace_ntk

    if isinstance(f, MLP):
        return structured_trace_ntk(f, params, x, x)
    return output_trace(probe_ntk(implementation, f, params, x, num_outputs, memory_budget_bytes))


def output_trace(theta: torch.Tensor) -> torch.Tensor:
    """The output-trace NTK ``sum_i Theta[a, b, i, i]``: [N, N, O, O] -> [N, N] ([N, N] unchanged)."""
    if theta.dim() == 2:
        return theta
    return torch.diagonal(theta, dim1=2, dim2=3).sum(-1)


def number_of_chunks(n: int, c: int) -> int:
    return math.ceil(n / c)
