"""The harness's output layout from the layouts libraries return.

The harness wants ``Theta[a, b]`` [N1, N2] for one output and ``Theta[a, b, i, j]`` [N1, N2, O, O]
for O outputs, where ``Theta[a, b, i, j] = sum_p df_i(x1_a)/dp df_j(x2_b)/dp``.
"""
from __future__ import annotations

import torch


def from_rows(matrix: torch.Tensor, n1: int, n2: int, outputs: int) -> torch.Tensor:
    """From the [N1 O, N2 O] matrix ``J1 J2^T`` whose rows are (input, output) pairs in row-major
    order (row a * O + i): ``matrix[a O + i, b O + j] = Theta[a, b, i, j]``."""
    if tuple(matrix.shape) != (n1 * outputs, n2 * outputs):
        raise ValueError(f"from_rows: expected a [{n1 * outputs}, {n2 * outputs}] matrix; got {list(matrix.shape)}")
    theta = matrix.reshape(n1, outputs, n2, outputs)
    return theta[:, 0, :, 0] if outputs == 1 else theta.permute(0, 2, 1, 3)


def from_output_major(theta: torch.Tensor) -> torch.Tensor:
    """From ``G[i, a, j, b]`` [O, N1, O, N2] (output index before input index)."""
    if theta.dim() != 4:
        raise ValueError(f"from_output_major: expected [O, N1, O, N2]; got {list(theta.shape)}")
    theta = theta.permute(1, 3, 0, 2)
    return theta[:, :, 0, 0] if theta.shape[-1] == 1 else theta


def from_input_major(theta: torch.Tensor) -> torch.Tensor:
    """From ``Theta[a, b, i, j]`` [N1, N2, O, O] (neural-tangents with ``trace_axes=()``)."""
    if theta.dim() != 4:
        raise ValueError(f"from_input_major: expected [N1, N2, O, O]; got {list(theta.shape)}")
    return theta[:, :, 0, 0] if theta.shape[-1] == 1 else theta
