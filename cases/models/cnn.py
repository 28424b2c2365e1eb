"""A small CNN on [1, 8, 8] images: convolution, ReLU, max and average pooling, a linear readout.

Exercises 4-D convolution kernels (a Jacobian of shape [O, C_out, C_in, 3, 3] per input,
where an implementation that flattens the kernel axes differently on the two sides is
wrong while every 2-D weight stays right) and pooling (max pooling routes each gradient
through one input of its window).

    x [N, C_in, 8, 8] -> conv 3x3 (pad 1) -> ReLU -> max pool 2 -> [N, c, 4, 4]
                      -> conv 3x3 (pad 1) -> ReLU -> average pool 2 -> [N, c, 2, 2]
                      -> flatten -> linear -> [N, outputs]

Parameters: 9 c (C_in + c) + 2 c + 4 c outputs + outputs; 205 for the defaults
(channels 4, outputs 1, input_channels 1), 239 with outputs 3.
"""
from torch import nn


def make_cnn(channels: int = 4, outputs: int = 1, input_channels: int = 1) -> nn.Module:
    """The CNN above, in eval mode, with PyTorch's default initialization."""
    return nn.Sequential(
        nn.Conv2d(input_channels, channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * 4, outputs),
    ).eval()
