"""The slow, obvious baseline: one backward pass per input and output.

For each input x_a and output i, ``torch.autograd.grad`` gives the flat gradient
``g_{a,i} = d f_i(x_a) / dp`` ([P]); stacking them gives G1 [N1 * O, P] and G2
[N2 * O, P] and ``Theta = G1 G2^T`` reshaped to [N1, N2, O, O]::

    Theta[a, b, i, j] = <g_{a,i}(x1), g_{b,j}(x2)>

Cost: (N1 + N2) O backward passes of a single input, each in its own autograd call
(Python overhead per call), plus the O(N1 N2 O^2 P) product. Memory: O((N1 + N2) O P).
Not composable with ``torch.func.vmap`` (it calls ``torch.autograd.grad``).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch


def _gradients(f: Callable, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """[N, O, P]: the flat gradient of every output at every input, one backward each."""
    leaves = list(params.values())
    rows = []
    for a in range(x.shape[0]):
        out = f(params, x[a : a + 1])[0]  # [O]
        per_output = []
        for i in range(out.shape[0]):
            grads = torch.autograd.grad(out[i], leaves, retain_graph=i + 1 < out.shape[0], allow_unused=True)
            per_output.append(
                torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, leaves)])
            )
        rows.append(torch.stack(per_output))
    return torch.stack(rows)


def autograd_loop_ntk(f: Callable, params: Mapping[str, torch.Tensor], x1: torch.Tensor,
                      x2: torch.Tensor) -> torch.Tensor:
    """Empirical NTK from per-input, per-output gradients; [N1, N2] for O = 1, else [N1, N2, O, O]."""
    leaves = {name: value.detach().requires_grad_(True) for name, value in params.items()}
    with torch.enable_grad():
        g1 = _gradients(f, leaves, x1.detach())
        g2 = g1 if x2 is x1 else _gradients(f, leaves, x2.detach())
    theta = torch.einsum("aip,bjp->abij", g1, g2)
    if theta.shape[-1] == 1:
        return theta[..., 0, 0]
    return theta
