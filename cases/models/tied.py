"""A tied autoencoder with a readout: one weight matrix W used twice (W, then W^T).

Exercises weight tying: the decoder registers the encoder's weight as its own parameter
(``decoder.weight`` is ``encoder.weight``, the way language models share the embedding
and the output projection), so ``named_parameters()`` lists W once and the NTK must count
it once, its derivative summing both uses. Treating the two names as independent
parameters drops the cross terms between the uses.

    h = tanh(W x + b)          W: [hidden, input_dim]   (encoder.weight)
    z = tanh(W^T h + c)        the same W               (decoder.weight)
    f = V z + d                                          (readout)

Parameters (W counted once): hidden input_dim + hidden + input_dim + (input_dim + 1) outputs;
80 for the defaults (input_dim 8, hidden 6, outputs 2).
"""
import torch
from torch import nn


class TransposedLinear(nn.Module):
    """``z = h W^T^T + c = h W + c``: the decoder of a tied autoencoder, W shared with the encoder."""

    def __init__(self, weight: nn.Parameter, out_features: int):
        super().__init__()
        self.weight = weight  # the SAME Parameter object: registered under a second name
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.weight + self.bias


class TiedAutoencoder(nn.Module):
    def __init__(self, input_dim: int, hidden: int, outputs: int):
        super().__init__()
        self.encoder = nn.Linear(input_dim, hidden)
        self.decoder = TransposedLinear(self.encoder.weight, input_dim)
        self.readout = nn.Linear(input_dim, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(torch.tanh(self.decoder(torch.tanh(self.encoder(x)))))


def make_tied(input_dim: int = 8, hidden: int = 6, outputs: int = 2) -> nn.Module:
    """The tied autoencoder above, in eval mode; the decoder bias starts at zero."""
    return TiedAutoencoder(input_dim, hidden, outputs).eval()
