"""Infinite-width NTK of a fully connected ReLU network (Jacot et al. 2018), at given widths.

Owns: :func:`infinite_width_ntk`, the large-width limit of ``E[Theta(x, y)]`` for any pair
of inputs; the harness compares off-diagonal NTK means against it.

Network (standard parametrization), widths ``(n_0, n_1, ..., n_L)``, scalar output::

    h^1 = W^1 x + b^1,  x^l = relu(h^l),  h^{l+1} = W^{l+1} x^l + b^{l+1},  f = h^{L+1}
    W^l_ij ~ N(0, sigma_w2 / n_{l-1}),  b^l_i ~ N(0, sigma_b2)

Forward (``Q^l(x, y) = <x^l, y^l>``, a width-extensive inner product, and the per-neuron
pre-activation covariance ``Sigma^l``)::

    Q^0 = <x, y>,   Sigma^l = (sigma_w2 / n_{l-1}) Q^{l-1} + sigma_b2
    Q^l = n_l E[relu(u) relu(v)],   (u, v) ~ N(0, [[Sigma^l_xx, Sigma^l_xy], [Sigma^l_xy, Sigma^l_yy]])

Backward (``Pi^l = <df(x)/dh^l, df(y)/dh^l>``): ``delta^l = D^l W^{l+1 T} delta^{l+1}``; in
the limit the ``n_l`` neurons of layer l each contribute ``(sigma_w2 / n_l) E[relu'(u)
relu'(v)] Pi^{l+1}``, so the widths cancel::

    Pi^{L+1} = 1,   Pi^l = sigma_w2 E[relu'(u) relu'(v)] Pi^{l+1}   (expectation under Sigma^l)

NTK: the gradient wrt ``W^l`` is ``delta^l x^{l-1 T}`` and wrt ``b^l`` is ``delta^l``::

    Theta(x, y) = sum_{l=1}^{L+1} Pi^l (Q^{l-1} + beta),  beta = 1 if biases are trainable

ReLU Gaussian expectations are the arc-cosine kernels (Cho & Saul 2009), with
``rho = Sigma_xy / sqrt(Sigma_xx Sigma_yy)``::

    E[relu(u) relu(v)]   = sqrt(Sigma_xx Sigma_yy) (sqrt(1 - rho^2) + (pi - arccos rho) rho) / (2 pi)
    E[relu'(u) relu'(v)] = (pi - arccos rho) / (2 pi)

(a zero-variance pre-activation is exactly 0 and ``relu'(0) = 0`` as in torch).

NTK parametrization (``W^l = sqrt(sigma_w2 / n_{l-1}) w^l``, ``b^l = sqrt(sigma_b2) c^l``,
``w, c ~ N(0, 1)`` trained): same forward/backward, the weight term of layer l is
multiplied by ``sigma_w2 / n_{l-1}`` and the bias term by ``sigma_b2``.

With ``x = y`` and ``sigma_b2 = 0`` this equals the exact finite-width ``E[Theta(x, x)]``
up to the dead-layer correction of order ``2^{-n}`` (the ``1 - 2/n`` backward factors and
the ``2/n`` "switch" terms cancel exactly), which the tests use as a cross-check.
"""

from __future__ import annotations

import math

from ._validate import nonnegative_float, parametrization_name, positive_float, widths_tuple


def _arccos_kernels(sxx: float, syy: float, sxy: float) -> tuple[float, float, float, float, float]:
    """Return (E[relu(u)^2], E[relu(v)^2], E[relu(u)relu(v)], E[relu'(u)relu'(v)]) and rho."""
    if sxx <= 0.0 or syy <= 0.0:
        return 0.5 * max(sxx, 0.0), 0.5 * max(syy, 0.0), 0.0, 0.0, 0.0
    rho = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
    theta = math.acos(rho)
    k0 = (math.pi - theta) / (2.0 * math.pi)
    k1 = math.sqrt(sxx * syy) * (math.sqrt(max(0.0, 1.0 - rho * rho)) + (math.pi - theta) * rho) / (2.0 * math.pi)
    return 0.5 * sxx, 0.5 * syy, k1, k0, rho


def infinite_width_ntk(inner: float, norm_x_sq: float, norm_y_sq: float, widths, sigma_w2: float,
                       sigma_b2: float = 0.0, trainable_bias: bool = True,
                       parametrization: str = "standard") -> float:
    """Infinite-width limit of ``E[Theta(x, y)]`` (scalar output) at widths ``(n_0, ..., n_L)``.

    Args:
        inner: ``<x, y>``; norm_x_sq, norm_y_sq: ``|x|^2``, ``|y|^2`` (>= 0, Cauchy-Schwarz
            must hold up to rounding).
        widths: ``(n_0, n_1, ..., n_L)``, input dimension then hidden widths.
        sigma_w2 > 0, sigma_b2 >= 0, trainable_bias: beta = 1 (else 0), parametrization:
            "standard" or "ntk".
    Returns: the scalar ``Theta(x, y)`` of the module docstring.
    """
    widths = widths_tuple(widths)
    sigma_w2 = positive_float("sigma_w2", sigma_w2)
    sigma_b2 = nonnegative_float("sigma_b2", sigma_b2)
    parametrization = parametrization_name(parametrization)
    norm_x_sq = nonnegative_float("norm_x_sq", norm_x_sq)
    norm_y_sq = nonnegative_float("norm_y_sq", norm_y_sq)
    inner = float(inner)
    if not math.isfinite(inner) or inner * inner > norm_x_sq * norm_y_sq * (1.0 + 1e-9) + 1e-300:
        raise ValueError(f"inner must satisfy |inner|^2 <= norm_x_sq * norm_y_sq (got {inner!r})")
    beta = 1.0 if trainable_bias else 0.0
    depth = len(widths) - 1

    # Forward: Q^{l-1} (inputs to layer l) and the derivative kernels of each hidden layer.
    qxx, qyy, qxy = norm_x_sq, norm_y_sq, inner
    inputs = []       # Q^{l-1}(x, y) for l = 1..L+1
    derivative = []   # E[relu'(u) relu'(v)] under Sigma^l, l = 1..L
    for l in range(1, depth + 1):
        inputs.append(qxy)
        scale = sigma_w2 / widths[l - 1]
        sxx, syy, sxy = scale * qxx + sigma_b2, scale * qyy + sigma_b2, scale * qxy + sigma_b2
        exx, eyy, exy, dxy, _ = _arccos_kernels(sxx, syy, sxy)
        n = widths[l]
        qxx, qyy, qxy = n * exx, n * eyy, n * exy
        derivative.append(dxy)
    inputs.append(qxy)

    # Backward: Pi^{L+1} = 1, Pi^l = sigma_w2 * E[relu' relu'] * Pi^{l+1}.
    total = 0.0
    pi_next = 1.0
    for l in range(depth + 1, 0, -1):
        pi_l = pi_next if l == depth + 1 else sigma_w2 * derivative[l - 1] * pi_next
        if parametrization == "standard":
            total += pi_l * (inputs[l - 1] + beta)
        else:
            total += pi_l * ((sigma_w2 / widths[l - 1]) * inputs[l - 1] + sigma_b2 * beta)
        pi_next = pi_l
    return total
