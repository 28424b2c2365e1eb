"""Independent brute-force NTKs of real torch networks, for testing ``reference/``.

Two implementations that share no code with ``reference``:

* :func:`diagonal_ntk_batched` -- a batch of B networks as stacked weight tensors, forward
  with ``bmm``, explicit backprop; ``Theta(x, x) = sum_l |delta^l|^2 (|x^{l-1}|^2 + beta)``
  (weight gradient ``delta^l x^{l-1 T}``, bias gradient ``delta^l``).
* :func:`ntk_autograd` -- one ``torch.nn``-style network, ``Theta(x, y)`` as the inner
  product of ``torch.autograd.grad`` over every parameter (weights and biases).

Standard parametrization: ``W^l ~ N(0, sigma_w2 / n_{l-1})``, ``b^l ~ N(0, sigma_b2)``
(zero when sigma_b2 = 0), scalar output, float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def unit_input(dim: int, seed: int = 12345) -> torch.Tensor:
    """A fixed unit-norm input of shape [dim] (float64)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(dim, generator=g, dtype=torch.float64)
    return x / x.norm()


def sample_weights(widths, sigma_w2, batch, generator, sigma_b2=0.0):
    """Weights [B, n_l, n_{l-1}] for l = 1..L+1 (n_{L+1} = 1) and biases [B, n_l]."""
    dims = list(widths) + [1]
    weights, biases = [], []
    for l in range(1, len(dims)):
        std = math.sqrt(sigma_w2 / dims[l - 1])
        weights.append(torch.randn(batch, dims[l], dims[l - 1], generator=generator, dtype=torch.float64) * std)
        biases.append(torch.randn(batch, dims[l], generator=generator, dtype=torch.float64) * math.sqrt(sigma_b2))
    return weights, biases


def diagonal_ntk_batched(widths, sigma_w2, count, seed, *, trainable_bias=True, input_norm_sq=1.0,
                         parametrization="standard", batch=2000) -> np.ndarray:
    """``count`` independent draws of Theta(x, x) from real networks; numpy array [count]."""
    g = torch.Generator().manual_seed(seed)
    x0 = unit_input(widths[0]) * math.sqrt(input_norm_sq)
    beta = 1.0 if trainable_bias else 0.0
    out = []
    done = 0
    while done < count:
        b = min(batch, count - done)
        weights, _ = sample_weights(widths, sigma_w2, b, g)
        acts = [x0.expand(b, -1).unsqueeze(-1)]          # x^{l-1}: [B, n_{l-1}, 1]
        masks = []
        h = None
        for l, W in enumerate(weights):
            h = torch.bmm(W, acts[-1])
            if l < len(weights) - 1:
                mask = (h > 0).to(h.dtype)
                masks.append(mask)
                acts.append(h * mask)
        # backward: delta^{L+1} = 1
        delta = torch.ones(b, 1, 1, dtype=torch.float64)
        theta = torch.zeros(b, dtype=torch.float64)
        for l in range(len(weights) - 1, -1, -1):        # layer index l+1 in the paper
            in_sq = (acts[l] ** 2).sum(dim=(1, 2))
            d_sq = (delta ** 2).sum(dim=(1, 2))
            if parametrization == "standard":
                theta += d_sq * (in_sq + beta)
            else:
                theta += d_sq * in_sq * (sigma_w2 / widths[l])
            if l > 0:
                delta = masks[l - 1] * torch.bmm(weights[l].transpose(1, 2), delta)
        out.append(theta.numpy())
        done += b
    return np.concatenate(out)


def ntk_autograd(widths, sigma_w2, x, y, generator, *, sigma_b2=0.0, trainable_bias=True) -> float:
    """Theta(x, y) of one freshly drawn network by autograd over all parameters."""
    weights, biases = sample_weights(widths, sigma_w2, 1, generator, sigma_b2)
    params = []
    for W, b in zip(weights, biases):
        params.append(W[0].clone().requires_grad_(True))
        params.append(b[0].clone().requires_grad_(True))

    def f(inp):
        h = inp
        for i in range(0, len(params), 2):
            h = params[i] @ h + params[i + 1]
            if i < len(params) - 2:
                h = torch.relu(h)
        return h[0]

    gx = torch.autograd.grad(f(x), params)
    gy = torch.autograd.grad(f(y), params)
    total = 0.0
    for i, (a, c) in enumerate(zip(gx, gy)):
        if i % 2 == 1 and not trainable_bias:
            continue
        total += float((a * c).sum())
    return total


def ntk_autograd_diagonal_same_network(widths, sigma_w2, seed, trainable_bias=True):
    """(autograd Theta(x, x), explicit batched Theta(x, x)) for the same single network."""
    g1 = torch.Generator().manual_seed(seed)
    x = unit_input(widths[0])
    auto = ntk_autograd(widths, sigma_w2, x, x, g1, trainable_bias=trainable_bias)
    explicit = diagonal_ntk_batched(widths, sigma_w2, 1, seed, trainable_bias=trainable_bias, batch=1)[0]
    return auto, explicit


def ntk_pair_batched(widths, sigma_w2, count, seed, x, y, *, sigma_b2=0.0, trainable_bias=True,
                     batch=100) -> np.ndarray:
    """``count`` draws of Theta(x, y) (random biases when sigma_b2 > 0), explicit backprop:
    ``Theta(x, y) = sum_l <delta^l(x), delta^l(y)> (<x^{l-1}, y^{l-1}> + beta)``; numpy [count]."""
    g = torch.Generator().manual_seed(seed)
    beta = 1.0 if trainable_bias else 0.0
    out, done = [], 0
    while done < count:
        b = min(batch, count - done)
        weights, biases = sample_weights(widths, sigma_w2, b, g, sigma_b2)
        inp = torch.stack([x, y], dim=1).expand(b, -1, -1)       # [B, n_0, 2]
        acts, masks = [inp], []
        for l, (W, c) in enumerate(zip(weights, biases)):
            h = torch.bmm(W, acts[-1]) + c.unsqueeze(-1)
            if l < len(weights) - 1:
                mask = (h > 0).to(h.dtype)
                masks.append(mask)
                acts.append(h * mask)
        delta = torch.ones(b, 1, 2, dtype=torch.float64)
        theta = torch.zeros(b, dtype=torch.float64)
        for l in range(len(weights) - 1, -1, -1):
            inner_in = (acts[l][:, :, 0] * acts[l][:, :, 1]).sum(1)
            inner_delta = (delta[:, :, 0] * delta[:, :, 1]).sum(1)
            theta += inner_delta * (inner_in + beta)
            if l > 0:
                delta = masks[l - 1] * torch.bmm(weights[l].transpose(1, 2), delta)
        out.append(theta.numpy())
        done += b
    return np.concatenate(out)
