"""A frozen feature extractor, a BatchNorm layer in eval mode, and a trainable head.

Exercises what the NTK must NOT count: the feature extractor's parameters have
``requires_grad = False`` (a frozen pretrained backbone), and BatchNorm's running mean and
variance are buffers, held fixed (in eval mode BatchNorm normalizes with them; they are
statistics, not parameters). BatchNorm's affine weight and bias are trainable and count.

    h = tanh(A x + a)                      A, a frozen          (features)
    u = gamma (h - mu) / sqrt(var + eps) + beta                 (norm; mu, var buffers)
    f = V relu(U u + c) + d                                     (head)

The running statistics are set to values that differ from BatchNorm's defaults (mean 0,
variance 1), as after training, drawn from the seeded generator, so that holding them fixed
and differentiating them give different kernels.

Parameters: (width + 1) width + 2 width + (width + 1) outputs trainable; 97 for the
defaults (input_dim 8, width 8, outputs 1), plus (input_dim + 1) width = 72 frozen and
2 width running statistics (and BatchNorm's integer batch counter).
"""
import torch
from torch import nn


class FrozenFeatures(nn.Module):
    def __init__(self, input_dim: int, width: int, outputs: int):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(input_dim, width), nn.Tanh())
        self.features.requires_grad_(False)
        self.norm = nn.BatchNorm1d(width)
        with torch.no_grad():
            self.norm.running_mean.normal_(0.0, 0.3)
            self.norm.running_var.uniform_(0.2, 0.6)
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.normal_(0.0, 0.1)
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.features(x)))


def make_frozen(input_dim: int = 8, width: int = 8, outputs: int = 1) -> nn.Module:
    """The model above, in eval mode (BatchNorm uses its running statistics)."""
    return FrozenFeatures(input_dim, width, outputs).eval()
