"""A residual MLP with LayerNorm (pre-norm blocks), on inputs of shape [input_dim].

Exercises normalization layers with trainable parameters (LayerNorm's weight and bias,
which have no buffers) and skip connections (each block's input reaches the output both
through the block and around it).

    h_0 = W_in x + b_in
    h_k = h_{k-1} + W_k tanh(LayerNorm_k(h_{k-1})) + b_k      k = 1..blocks
    f   = W_out LayerNorm_out(h_blocks) + b_out

Parameters: (input_dim + 1) width + blocks (width^2 + 3 width) + 2 width
+ (width + 1) outputs; 929 for the defaults (input_dim 16, width 16, blocks 2, outputs 1).
"""
import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.linear(torch.tanh(self.norm(h)))


class ResidualMLP(nn.Module):
    def __init__(self, input_dim: int, width: int, blocks: int, outputs: int):
        super().__init__()
        self.embed = nn.Linear(input_dim, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.norm(self.blocks(self.embed(x))))


def make_residual_mlp(input_dim: int = 16, width: int = 16, blocks: int = 2, outputs: int = 1) -> nn.Module:
    """The residual MLP above, in eval mode, with PyTorch's default initialization."""
    return ResidualMLP(input_dim, width, blocks, outputs).eval()
