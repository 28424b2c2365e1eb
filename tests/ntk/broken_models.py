"""NTK implementations that are right on the harness's MLP and wrong on one model feature.

Each function has the implementation signature ``fn(f, params, x1, x2)``. On a network
that is not a :class:`harness.models.ModelFunction` (the harness's
:class:`~harness.networks.MLP` of the built-in cases) it is the reference
:func:`~harness.ntk.jacobian.jacobian_ntk` itself, or a contraction that differs from it
only on 4-D weights, which an MLP has none of; so each passes every built-in MLP case. On
a user's model it gets one feature wrong, and on the models without that feature it is
still right (tests/models/test_models.py checks all three claims):

=========================  ==========  =================================================
function                   breaks on   what it gets wrong
=========================  ==========  =================================================
unties_shared_weights      tied        a weight registered under two names is two
                                       independent parameters (the cross terms between
                                       its two uses are lost)
counts_frozen_parameters   frozen      differentiates the ``requires_grad = False``
                                       parameters of a frozen sub-module too
differentiates_buffers     frozen      differentiates the floating-point buffers too
                                       (BatchNorm's running mean and variance)
flattens_conv_kernels      cnn         flattens the Jacobian of each 4-D weight (a
                                       convolution kernel) in reversed axis order on the
                                       x1 side only, so the kernel entries it pairs up
                                       are not the same parameter
drops_in_proj_bias         transformer leaves out nn.MultiheadAttention's in_proj_bias
                                       (a bias whose name does not end in ``.bias``);
                                       the diagnosis must name it by the model's own
                                       parameter name
=========================  ==========  =================================================

:data:`BROKEN_ON_MODELS` maps each name to ``(model, phrase)``: the example model of
``cases/models`` it must fail on (``cnn``, ``residual_mlp``, ``tied``, ``frozen``,
``attention``) and a phrase the failing check's message must contain. Each returns a
kernel of the right shape, dtype and device, and the first three a symmetric positive
semi-definite ``K(x, x)`` (a sum of Gram matrices); ``flattens_conv_kernels`` pairs
different kernel entries and so may also fail the symmetry and eigenvalue checks. The
check every one of them fails is the comparison of values against the reference: the
phrase is ``"relative error"``, the words the agreement check's value comparison prints
today (``tests/ntk/broken.py`` uses it the same way). What the failure must contain, for
each of these, is therefore:

- the implementation's spec ``tests.ntk.broken_models:<name>`` (the agreement check
  names the implementation it failed; this is what ties the failure to the feature,
  since each function fails on one feature only), and
- the phrase, in the check that compares values with the reference.

If the wording of that check changes, change :data:`VALUE_MISMATCH` here and nothing
else. Usable from the command line once a case can name a model::

    python -m pytest cases/models --ntk-implementation tests.ntk.broken_models:unties_shared_weights
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call

from harness.models import ModelFunction
from harness.ntk.jacobian import _per_sample_jacobians, jacobian_ntk


def _fixed_for(f: ModelFunction, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return f.fixed_tensors(x.dtype, x.device)


def unties_shared_weights(f, params, x1, x2):
    """Treats a tied weight as one independent parameter per name it is registered under.

    Every alias of a tied tensor gets its own copy in the parameter dict and
    ``functional_call`` runs with ``tie_weights=False``, so each use is differentiated on
    its own: ``sum_use <J_use(x1), J_use(x2)>`` instead of
    ``<sum_use J_use(x1), sum_use J_use(x2)>``.
    """
    if not isinstance(f, ModelFunction) or not f.tied:
        return jacobian_ntk(f, params, x1, x2)
    untied = dict(params)
    for group in f.tied:
        source = params.get(group[0])
        if source is None:
            source = _fixed_for(f, x1)[group[0]]
        for alias in group[1:]:
            untied[alias] = source.clone()

    def g(p, x):
        out = functional_call(f.module, {**_fixed_for(f, x), **p}, (x,), tie_weights=False)
        return out.reshape(x.shape[0], -1)

    return jacobian_ntk(g, untied, x1, x2)


def counts_frozen_parameters(f, params, x1, x2):
    """Differentiates every parameter of ``f.module.named_parameters()``, frozen ones included."""
    if not isinstance(f, ModelFunction):
        return jacobian_ntk(f, params, x1, x2)
    everything = {name: value.detach().to(dtype=x1.dtype, device=x1.device)
                  for name, value in f.module.named_parameters()}
    everything.update(params)
    return jacobian_ntk(f, everything, x1, x2)


class _DifferentiableBatchNorm(nn.Module):
    """Eval-mode BatchNorm written out, so that its running statistics can be differentiated
    (``torch.nn.functional.batch_norm`` refuses a gradient for them)."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.eps = norm.eps
        self.weight = norm.weight
        self.bias = norm.bias
        self.register_buffer("running_mean", norm.running_mean)
        self.register_buffer("running_var", norm.running_var)
        self.register_buffer("num_batches_tracked", norm.num_batches_tracked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)  # the channel axis is 1
        y = (x - self.running_mean.reshape(shape)) / torch.sqrt(self.running_var.reshape(shape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


def differentiates_buffers(f, params, x1, x2):
    """Treats every floating-point buffer (BatchNorm's running mean and variance) as a parameter."""
    if not isinstance(f, ModelFunction):
        return jacobian_ntk(f, params, x1, x2)
    buffers = {name: value for name, value in _fixed_for(f, x1).items()
               if name in f.buffer_names and value.is_floating_point()}
    if not buffers:
        return jacobian_ntk(f, params, x1, x2)
    module = copy.deepcopy(f.module)
    for name, child in list(module.named_modules()):
        for child_name, grandchild in list(child.named_children()):
            if isinstance(grandchild, nn.modules.batchnorm._BatchNorm):
                setattr(child, child_name, _DifferentiableBatchNorm(grandchild))

    def g(p, x):
        return functional_call(module, {**_fixed_for(f, x), **p}, (x,)).reshape(x.shape[0], -1)

    return jacobian_ntk(g, {**params, **buffers}, x1, x2)


def flattens_conv_kernels(f, params, x1, x2):
    """Contracts per-parameter Jacobians like the reference, but flattens each 4-D weight's
    Jacobian on the x1 side in reversed axis order ([kw, kh, C_in, C_out] instead of
    [C_out, C_in, kh, kw]): 1-D and 2-D parameters (every MLP parameter) are unaffected."""
    j1 = _per_sample_jacobians(f, params, x1)
    j2 = j1 if x2 is x1 else _per_sample_jacobians(f, params, x2)
    n1, n2 = x1.shape[0], x2.shape[0]
    outputs = next(iter(j1.values())).shape[1]
    theta = None
    for name, jacobian in j1.items():
        a = jacobian
        if jacobian.dim() == 6:  # [N, O, C_out, C_in, kh, kw]
            a = jacobian.permute(0, 1, 5, 4, 3, 2)
        a = a.reshape(n1 * outputs, -1)
        b = j2[name].reshape(n2 * outputs, -1)
        term = a @ b.T
        theta = term if theta is None else theta + term
    theta = theta.reshape(n1, outputs, n2, outputs)
    if outputs == 1:
        return theta[:, 0, :, 0]
    return theta.permute(0, 2, 1, 3)


VALUE_MISMATCH = "relative error"

# name -> (the example model of cases/models it must fail on, a phrase the failure must contain)
BROKEN_ON_MODELS: dict[str, tuple[str, str]] = {
    "unties_shared_weights": ("tied", VALUE_MISMATCH),
    "counts_frozen_parameters": ("frozen", VALUE_MISMATCH),
    "differentiates_buffers": ("frozen", VALUE_MISMATCH),
    "flattens_conv_kernels": ("cnn", VALUE_MISMATCH),
}


def drops_in_proj_bias(f, params, x1, x2):
    """Leaves out every parameter named ``*in_proj_bias`` (nn.MultiheadAttention's packed query, key
    and value biases, whose names do not end in ``.bias``): the NTK of the other parameters."""
    kept = {name: value for name, value in params.items() if not name.endswith("in_proj_bias")}
    if len(kept) == len(params):
        return jacobian_ntk(f, params, x1, x2)

    def restricted(sub, x):
        return f({**params, **sub}, x)

    return jacobian_ntk(restricted, kept, x1, x2)


BROKEN_ON_MODELS["drops_in_proj_bias"] = ("transformer", "without attention.in_proj_bias")

#: name -> the phrase the diagnosis of its failure must contain, by the model's own parameter names
DIAGNOSED_ON_MODELS: dict[str, str] = {
    "counts_frozen_parameters": "plus the contribution of the frozen parameters (features.0.weight, features.0.bias)",
    "differentiates_buffers": "plus the contribution of the buffers (norm.running_mean, norm.running_var)",
    "unties_shared_weights": "the tie is lost",
    "drops_in_proj_bias": "without attention.in_proj_bias",
}
