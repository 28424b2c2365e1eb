"""``nngeometry``: the NTK as nngeometry's Gram matrix of the network's Jacobian.

nngeometry's ``GramMatrix(model, examples)`` (backend ``TorchHooksJacobianBackend``) is the
function-space matrix ``G[i, a, j, b] = sum_p d f_i(x_a)/dp d f_j(x_b)/dp`` [O, N, O, N] over
the inputs of one data set, computed layer by layer from each layer's input and output gradient
(forward and backward hooks, one backward pass per output). It takes one set of inputs, so
``K(x1, x2)`` is the block ``[:, :N1, :, N1:]`` of the Gram matrix of ``cat([x1, x2])``
(``K(x1, x1)`` when ``x2 is x1``). Time O backward passes over N1 + N2 inputs and
(N1 + N2)^2 O^2 per-layer contractions; memory (N1 + N2)^2 O^2.

The parameters differentiated are those of nngeometry's ``LayerCollection.from_model``: every
parameter of every layer it knows (Linear, Conv1d/2d, ConvTranspose2d, BatchNorm1d/2d,
GroupNorm, LayerNorm, ...), whether or not it has ``requires_grad``. The adapter leaves that
default as it is, so a model with frozen parameters gets nngeometry's kernel over all of them
(see docs/third-party.md and the report for what the harness says about it).

The harness MLP is rebuilt as ``nn.Sequential`` of ``nn.Linear`` (the weights and biases
themselves) and activation modules; relu'(0) = 0 (torch's autograd). nngeometry's Linear
layer has one output gradient for its weight and bias, so the NTK parametrization's different
scales for the two (``h = s W x + t b``, s = sqrt(sigma_w2 / n), t = sqrt(sigma_b2)) cannot be
expressed with the weights and biases as the parameters: the adapter supports the standard
parametrization and the NTK parametrization without trainable biases (``nn.Linear`` without
bias followed by a parameter-free scale), and skips the rest with that reason. A user's model
is supported when nngeometry knows every module that owns parameters.

float32 and float64; not vmappable.
"""
from __future__ import annotations

import torch
from torch import nn

from harness.ntk.adapters.layout import from_output_major
from harness.ntk.adapters.module import activation_module, mlp_scales, model_module

# the module classes nngeometry 0.4's LayerCollection turns into layers (LayerCollection._known_modules)
_KNOWN_FALLBACK = ("Linear", "Conv2d", "ConvTranspose2d", "Conv1d", "BatchNorm1d", "BatchNorm2d", "GroupNorm",
                   "WeightNorm1d", "WeightNorm2d", "Cosine1d", "Affine1d", "LayerNorm")


class Scale(nn.Module):
    """``x -> scale * x`` without parameters."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _known_modules() -> tuple[str, ...]:
    try:
        from nngeometry.layercollection import LayerCollection

        return tuple(LayerCollection._known_modules)
    except (ImportError, AttributeError):
        return _KNOWN_FALLBACK


def _unknown_module(f) -> str | None:
    known = _known_modules()
    for prefix, module in f.module.named_modules():
        if list(module.parameters(recurse=False)) and type(module).__name__ not in known:
            return f"{prefix or 'the top-level module'} ({type(module).__name__})"
    return None


def _supports(f) -> bool:
    from harness.models import ModelFunction
    from harness.networks import MLP

    if isinstance(f, MLP):
        return f.architecture.parametrization == "standard" or not f.architecture.trainable_bias
    return isinstance(f, ModelFunction) and _unknown_module(f) is None


def _reason(f) -> str:
    from harness.models import ModelFunction
    from harness.networks import MLP

    if isinstance(f, MLP):
        return ("nngeometry: the NTK parametrization with trainable biases (h = s W x + t b with s != t) cannot be "
                "written as nn.Linear layers whose parameters are W and b: nngeometry's Linear layer gives the weight "
                "and the bias one output gradient")
    if isinstance(f, ModelFunction):
        return f"nngeometry: LayerCollection does not know {_unknown_module(f)}, which owns parameters"
    return f"nngeometry supports the harness MLP and nn.Module models; not {type(f).__name__}"


def _mlp_sequential(f, params, dtype, device) -> nn.Sequential:
    modules: list[nn.Module] = []
    for i, (weight_scale, _) in enumerate(mlp_scales(f)):
        if i > 0:
            modules.append(activation_module(f.architecture.activation))
        weight = params[f"layers.{i}.weight"]
        bias = params.get(f"layers.{i}.bias")
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=dtype, device=device)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
        modules.append(layer)
        if weight_scale != 1.0:
            modules.append(Scale(weight_scale))
    return nn.Sequential(*modules)


class _Flat(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        return out.reshape(out.shape[0], -1)


def nngeometry_ntk(f, params, x1, x2):
    """Theta(x1, x2) as a block of nngeometry's GramMatrix; [N1, N2] or [N1, N2, O, O]."""
    from harness.models import ModelFunction
    from nngeometry import GramMatrix

    dtype, device = x1.dtype, x1.device
    if isinstance(f, ModelFunction):
        module = _Flat(model_module(f, params, dtype, device))
    else:
        module = _mlp_sequential(f, params, dtype, device)
    n1 = x1.shape[0]
    x = x1 if x2 is x1 else torch.cat([x1, x2])
    with torch.enable_grad():
        gram = GramMatrix(module, (x.detach().clone(),)).to_torch()   # [O, N, O, N]
    gram = gram.detach()
    block = gram if x2 is x1 else gram[:, :n1, :, n1:]
    return from_output_major(block).contiguous()


nngeometry_ntk.vmappable = False
nngeometry_ntk.supports = _supports
nngeometry_ntk.supports_reason = _reason
