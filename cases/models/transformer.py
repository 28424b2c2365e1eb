"""A one-layer transformer encoder built from torch's own modules, with a mean-pooled readout.

Exercises the parameters and kernels of ``nn.MultiheadAttention`` as users meet them: one packed
input projection (``in_proj_weight`` [3d, d] and ``in_proj_bias`` [3d], names without a
``.bias`` suffix), the output projection (``out_proj.weight``, ``out_proj.bias``), two
``nn.LayerNorm`` (``weight``, ``bias``: affine normalization parameters) and a ReLU
feed-forward block:

    a = MultiheadAttention(x)                    [T, d], heads of d / heads dimensions
    y = LayerNorm_1(x + a)
    z = LayerNorm_2(y + W_2 relu(W_1 y + b_1) + b_2)
    f = W_r mean_t(z_t) + b_r                    [outputs]

In eval mode with no gradient required, torch runs ``nn.MultiheadAttention`` through its
fused kernel ``aten::_native_multi_head_attention``, which has no forward-mode derivative; an
implementation built on ``jvp`` meets that operation (see ``cases/models/models.toml``).
Parameters: 3d^2 + 3d (in_proj) + d^2 + d (out_proj) + 4d (two LayerNorms) + 2 d h + h + d
(feed-forward of width h) + (d + 1) outputs; 609 for the defaults (d 8, 2 heads, h 16, 1 output).
"""
import torch
from torch import nn


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, outputs: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.readout = nn.Linear(dim, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, T, d]
        attended, _ = self.attention(x, x, x, need_weights=False)
        y = self.norm1(x + attended)
        z = self.norm2(y + self.feed_forward(y))
        return self.readout(z.mean(dim=-2))


def make_transformer(dim: int = 8, heads: int = 2, hidden: int = 16, outputs: int = 1) -> nn.Module:
    """The encoder block above, in eval mode, with PyTorch's default initialization."""
    return EncoderBlock(dim, heads, hidden, outputs).eval()
