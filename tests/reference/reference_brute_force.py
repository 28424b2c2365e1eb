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


# ---------------------------------------------------------------------------------------------
# Full NTK matrices on k inputs, O outputs, any activation (for reference.joint)
# ---------------------------------------------------------------------------------------------
_ACTIVATIONS = {
    "relu": (torch.relu, lambda h: (h > 0).to(h.dtype)),
    "tanh": (torch.tanh, lambda h: 1.0 - torch.tanh(h) ** 2),
    "erf": (torch.erf, lambda h: (2.0 / math.sqrt(math.pi)) * torch.exp(-h * h)),
    "linear": (lambda h: h, torch.ones_like),
}


def _standard_normal_network(dims, batch, generator):
    """Standard normal parameters of ``batch`` networks, in layer order: a list of
    ``(w [B, n_l, n_{l-1}], beta [B, n_l])`` for l = 1..L+1 (``dims = (n_0, .., n_L, O)``)."""
    out = []
    for l in range(1, len(dims)):
        w = torch.randn(batch, dims[l], dims[l - 1], generator=generator, dtype=torch.float64)
        beta = torch.randn(batch, dims[l], generator=generator, dtype=torch.float64)
        out.append((w, beta))
    return out


def _coefficients(dims, sigma_w2, sigma_b2, trainable_bias, parametrization):
    """Per layer l = 1..L+1: (weight term coefficient, bias term coefficient) of the NTK."""
    out = []
    for l in range(1, len(dims)):
        if parametrization == "ntk":
            out.append((sigma_w2 / dims[l - 1], sigma_b2 if trainable_bias else 0.0))
        else:
            out.append((1.0, 1.0 if trainable_bias else 0.0))
    return out


def ntk_matrix_batched(widths, sigma_w2, inputs, count, seed, *, sigma_b2=0.0, activation="relu",
                       trainable_bias=True, parametrization="standard", output_dim=1, batch=1000) -> np.ndarray:
    """``count`` NTK matrices of independently drawn real networks, numpy ``[count, k, k, O, O]``.

    ``inputs``: [k, n_0] (rows).  Effective weights ``sqrt(sigma_w2 / n_{l-1}) w`` and biases
    ``sqrt(sigma_b2) beta`` with ``w, beta`` standard normal (the same network in both
    parametrizations).  Explicit backprop: ``delta^l = phi'(h^l) * W^{l+1 T} delta^{l+1}``, one
    column per (output i, input a); ``Theta = sum_l (delta^T delta) * (c_w <x^{l-1}, y^{l-1}> + c_b)``.
    """
    phi, dphi = _ACTIVATIONS[activation]
    g = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(np.asarray(inputs, dtype=float), dtype=torch.float64)
    k = X.shape[0]
    O = output_dim
    dims = list(widths) + [O]
    coefs = _coefficients(dims, sigma_w2, sigma_b2, trainable_bias, parametrization)
    out, done = [], 0
    while done < count:
        b = min(batch, count - done)
        params = _standard_normal_network(dims, b, g)
        weights = [math.sqrt(sigma_w2 / dims[l]) * w for l, (w, _) in enumerate(params)]
        biases = [math.sqrt(sigma_b2) * beta for _, beta in params]
        acts = [X.T.expand(b, -1, -1)]                         # x^{l-1}: [B, n_{l-1}, k]
        derivs = []
        for l, (W, c) in enumerate(zip(weights, biases)):
            h = torch.bmm(W, acts[-1]) + c.unsqueeze(-1)
            if l < len(weights) - 1:
                derivs.append(dphi(h))
                acts.append(phi(h))
        delta = torch.eye(O, dtype=torch.float64).repeat_interleave(k, dim=1).expand(b, -1, -1)  # [B, O, O k]
        theta = torch.zeros(b, O * k, O * k, dtype=torch.float64)
        for l in range(len(weights) - 1, -1, -1):              # paper's layer l + 1
            gram_in = torch.bmm(acts[l].transpose(1, 2), acts[l]).repeat(1, O, O)
            cw, cb = coefs[l]
            theta += torch.bmm(delta.transpose(1, 2), delta) * (cw * gram_in + cb)
            if l > 0:
                delta = torch.bmm(weights[l].transpose(1, 2), delta) * derivs[l - 1].repeat(1, 1, O)
        out.append(theta.reshape(b, O, k, O, k).permute(0, 2, 4, 1, 3).numpy())
        done += b
    return np.concatenate(out)


def ntk_matrix_autograd(widths, sigma_w2, inputs, seed, *, sigma_b2=0.0, activation="relu",
                        trainable_bias=True, parametrization="standard", output_dim=1) -> np.ndarray:
    """The NTK matrix [k, k, O, O] of ONE network (the first one :func:`ntk_matrix_batched` draws
    with the same seed) by ``torch.autograd.grad`` over every trainable parameter, in the
    parametrization's own parameters (NTK: the standard normal ``w, beta``)."""
    phi, _ = _ACTIVATIONS[activation]
    g = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(np.asarray(inputs, dtype=float), dtype=torch.float64)
    dims = list(widths) + [output_dim]
    params = _standard_normal_network(dims, 1, g)
    leaves = []
    for l, (w, beta) in enumerate(params):
        ws, bs = math.sqrt(sigma_w2 / dims[l]), math.sqrt(sigma_b2)
        if parametrization == "ntk":
            leaves.append((w[0].clone().requires_grad_(True), ws, beta[0].clone().requires_grad_(trainable_bias), bs))
        else:
            leaves.append(((ws * w[0]).requires_grad_(True), 1.0, (bs * beta[0]).requires_grad_(trainable_bias), 1.0))

    def f(x):
        h = x
        for l, (w, ws, beta, bs) in enumerate(leaves):
            h = ws * (w @ h) + bs * beta
            if l < len(leaves) - 1:
                h = phi(h)
        return h

    trainable = [p for w, _, beta, _ in leaves for p in ((w, beta) if trainable_bias else (w,))]
    k = X.shape[0]
    grads = torch.stack([torch.cat([gr.reshape(-1) for gr in torch.autograd.grad(f(X[a])[i], trainable)])
                         for a in range(k) for i in range(output_dim)])      # rows (a, i)
    theta = (grads @ grads.T).reshape(k, output_dim, k, output_dim).permute(0, 2, 1, 3)
    return theta.detach().numpy()
