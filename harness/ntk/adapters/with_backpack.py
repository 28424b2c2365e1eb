"""``backpack``: the NTK from BackPACK's per-sample gradients (the ``BatchGrad`` extension).

For each output i, one forward and one backward pass of ``sum_a f_i(x_a)`` through a BackPACK-extended module
with ``BatchGrad`` stores, on each parameter, ``grad_batch[a] = d f_i(x_a) / d p``: the
per-sample Jacobian ``J[a, i, p]`` [N, O, P] after O backward passes. Then::

    Theta[a, b, i, j] = sum_p J1[a, i, p] J2[b, j, p]

Memory N O P (as the reference); time O backward passes per batch plus the contraction.

The harness MLP is rebuilt as ``nn.Sequential`` of ``nn.Linear`` layers (the only modules whose
parameters BackPACK differentiates) with the activation modules in between. In the NTK
parametrization ``h = s W x + t b`` the ``nn.Linear`` holds the effective weights ``s W`` and
``t b``; by the chain rule ``d f / d W = s d f / d(sW)``, so the per-sample gradients are
multiplied by s (weights) and t (biases) before the contraction. relu'(0) = 0 (BackPACK's
first-order extensions take the output gradient from torch's autograd). ``erf`` has no torch
module: it runs as :class:`harness.ntk.adapters.module.Erf`, which BackPACK's first-order
extensions do not need to know (they only read each ``nn.Linear``'s input and output gradient).

A user's model is supported when every module that owns a counted parameter directly is of a
type ``BatchGrad`` has an extension for (Linear, Conv1d/2d/3d, ConvTranspose, BatchNorm, RNN,
LSTM, Embedding) and owns no other kind of parameter; otherwise the case is skipped with the
module named. BackPACK's documentation adds that a module used more than once in a forward
pass, and per-sample gradients through BatchNorm, are outside what BatchGrad computes; the
harness's agreement cases check what it returns on those (docs/third-party.md, the report).

float32 and float64; not vmappable.
"""
from __future__ import annotations

import torch
from torch import nn

from harness.ntk.adapters.layout import from_rows
from harness.ntk.adapters.module import activation_module, mlp_scales, model_module

_PARAMETRIZED = ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
                 "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "RNN", "LSTM", "Embedding")


def _mlp_sequential(f, params, dtype, device) -> tuple[nn.Sequential, dict[str, tuple[str, float]]]:
    """(the MLP as nn.Sequential with effective weights, harness name -> (its Sequential name, scale))."""
    scales = mlp_scales(f)
    modules: list[nn.Module] = []
    names: dict[str, tuple[str, float]] = {}
    for i in range(f.num_layers):
        if i > 0:
            modules.append(activation_module(f.architecture.activation))
        weight = params[f"layers.{i}.weight"]
        bias = params.get(f"layers.{i}.bias")
        weight_scale, bias_scale = scales[i]
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=dtype, device=device)
        with torch.no_grad():
            layer.weight.copy_(weight_scale * weight)
            if bias is not None:
                layer.bias.copy_(bias_scale * bias)
        index = len(modules)
        names[f"layers.{i}.weight"] = (f"{index}.weight", weight_scale)
        if bias is not None:
            names[f"layers.{i}.bias"] = (f"{index}.bias", bias_scale)
        modules.append(layer)
    return nn.Sequential(*modules), names


def _unsupported_module(f) -> str | None:
    """The first module owning a counted parameter that BatchGrad has no extension for, or None."""
    counted = set(f.parameter_names)
    for prefix, module in f.module.named_modules():
        own = [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)]
        if any(name in counted for name in own) and type(module).__name__ not in _PARAMETRIZED:
            return f"{prefix or 'the top-level module'} ({type(module).__name__})"
    return None


def _supports(f) -> bool:
    from harness.models import ModelFunction
    from harness.networks import MLP

    if isinstance(f, MLP):
        return True
    return isinstance(f, ModelFunction) and _unsupported_module(f) is None


def _reason(f) -> str:
    from harness.models import ModelFunction

    if isinstance(f, ModelFunction):
        return (f"backpack: BackPACK's BatchGrad computes per-sample gradients only for the parameters of "
                f"{', '.join(_PARAMETRIZED)} modules; {_unsupported_module(f)} owns a counted parameter")
    return f"backpack supports the harness MLP and nn.Module models; not {type(f).__name__}"


def _per_sample_jacobian(module: nn.Module, parameters: dict[str, tuple[nn.Parameter, float]], x) -> torch.Tensor:
    """[N, O, P]: d f_i(x_a) / d p for every counted parameter, concatenated in ``parameters``' order."""
    from backpack import backpack, extend
    from backpack.extensions import BatchGrad

    extend(module)
    rows = []
    with torch.no_grad():
        outputs = module(x[:1]).reshape(1, -1).shape[1]
    with torch.enable_grad():
        for i in range(outputs):
            # one forward pass per output: BackPACK frees the module inputs and outputs it stored
            # in the forward pass at the end of each backward pass
            for parameter, _ in parameters.values():
                parameter.grad = None
            output = module(x).reshape(x.shape[0], -1)
            with backpack(BatchGrad()):
                output[:, i].sum().backward()
            rows.append(torch.cat([(scale * parameter.grad_batch).reshape(x.shape[0], -1)
                                   for parameter, scale in parameters.values()], dim=1))
    return torch.stack(rows, dim=1)


def backpack_ntk(f, params, x1, x2):
    """Theta(x1, x2) from BackPACK's per-sample gradients; [N1, N2] or [N1, N2, O, O]."""
    from harness.models import ModelFunction

    dtype, device = x1.dtype, x1.device
    if isinstance(f, ModelFunction):
        module = model_module(f, params, dtype, device)
        named = dict(module.named_parameters())
        parameters = {name: (named[name], 1.0) for name in params}
    else:
        module, names = _mlp_sequential(f, params, dtype, device)
        named = dict(module.named_parameters())
        parameters = {name: (named[names[name][0]], names[name][1]) for name in params}
    j1 = _per_sample_jacobian(module, parameters, x1)
    j2 = j1 if x2 is x1 else _per_sample_jacobian(module, parameters, x2)
    n1, n2, outputs = j1.shape[0], j2.shape[0], j1.shape[1]
    matrix = j1.reshape(n1 * outputs, -1) @ j2.reshape(n2 * outputs, -1).T
    return from_rows(matrix.detach(), n1, n2, outputs)


backpack_ntk.vmappable = False
backpack_ntk.supports = _supports
backpack_ntk.supports_reason = _reason
