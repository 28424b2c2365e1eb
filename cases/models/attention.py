"""A single-head self-attention block on a short sequence, with a mean-pooled linear readout.

Exercises a model whose inputs are sequences ([T, d] per input: T tokens of dimension d)
and whose output mixes tokens through a softmax of products of two parameter-dependent
projections (queries and keys), so each attention weight depends on two weight matrices
at once.

    q, k, v = x W_q^T + b_q, x W_k^T + b_k, x W_v^T + b_v           [T, d] each
    A = softmax(q k^T / sqrt(d))                                    [T, T], rows sum to 1
    y = x + (A v) W_o^T + b_o                                       residual
    f = W_r mean_t(y_t) + b_r                                       [outputs]

Parameters: 4 (d^2 + d) + (d + 1) outputs; 297 for the defaults (d 8, outputs 1).
The sequence length T is free (any input shape [T, d]); the cases use T = 4 or T = 8
(digits as 8 rows of 8 pixels).
"""
import math

import torch
from torch import nn


class SelfAttentionBlock(nn.Module):
    def __init__(self, dim: int, outputs: int):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.readout = nn.Linear(dim, outputs)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, T, d]
        scores = self.query(x) @ self.key(x).transpose(-1, -2) * self.scale  # [N, T, T]
        mixed = torch.softmax(scores, dim=-1) @ self.value(x)
        y = x + self.out(mixed)
        return self.readout(y.mean(dim=-2))


def make_attention(dim: int = 8, outputs: int = 1) -> nn.Module:
    """The attention block above, in eval mode, with PyTorch's default initialization."""
    return SelfAttentionBlock(dim, outputs).eval()
