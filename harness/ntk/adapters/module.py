"""Networks as ``torch.nn.Module`` objects carrying given parameters, and the ``takes_module``
decorator for NTK implementations written against modules.

The harness calls an implementation as ``fn(f, params, x1, x2)`` (a functional network and a
dict of parameters). Libraries built on ``nn.Module`` hooks and users' module-based code need
a module instead. :func:`as_module` builds one that computes exactly ``f(params, x)``:

- for the harness MLP (:class:`harness.networks.MLP`): an :class:`MLPModule` whose layers
  ``layers.{i}`` hold ``weight`` [n_{i+1}, n_i] and ``bias`` [n_{i+1}] (when trainable) as
  ``nn.Parameter`` s under the harness's own names. In the standard parametrization each layer
  is an ``nn.Linear`` (``h = W x + b``); in the NTK parametrization it is a
  :class:`ScaledLinear` (``h = s W x + t b`` with ``s = sqrt(sigma_w2 / n_i)``,
  ``t = sqrt(sigma_b2)``, :meth:`harness.networks.MLP.preactivation`), which is deliberately
  not a subclass of ``nn.Linear``: a hook-based library that assumes ``nn.Linear``'s forward
  would otherwise be silently wrong. Activations are modules (``nn.ReLU``, ``nn.Tanh``,
  :class:`Erf`, ``nn.Identity``); relu'(0) = 0 as in torch's autograd;
- for a user's model (:class:`harness.models.ModelFunction`): a deep copy of ``f.module`` in
  the dtype and on the device of the inputs, with ``params`` loaded into its counted parameters
  (``requires_grad = True``), its frozen parameters and buffers set to the values the
  ModelFunction holds fixed (``requires_grad = False``); tied parameters stay tied. Its output
  keeps the module's own shape; the NTK's output index is its flattening to [N, O].

The module never shares storage with ``params`` (an implementation that writes into the
module cannot change the caller's tensors).
"""
from __future__ import annotations

import copy
import functools
from typing import Callable, Mapping

import torch
from torch import nn


class ScaledLinear(nn.Module):
    """``h = weight_scale * x @ weight.T + bias_scale * bias``: a layer of the NTK parametrization.

    weight: [out, in]; bias: [out] or None; the scales are Python floats.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, weight_scale: float, bias_scale: float):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None
        self.weight_scale = float(weight_scale)
        self.bias_scale = float(bias_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.linear(x, self.weight) * self.weight_scale
        if self.bias is not None:
            h = h + self.bias * self.bias_scale
        return h

    def extra_repr(self) -> str:
        return (f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, weight_scale={self.weight_scale:g}, "
                f"bias_scale={self.bias_scale:g}, bias={self.bias is not None}")


class Erf(nn.Module):
    """The elementwise error function as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(x)


def activation_module(name: str) -> nn.Module:
    """The activation ``name`` of :data:`harness.constants.ACTIVATIONS` as a module."""
    modules = {"relu": nn.ReLU, "tanh": nn.Tanh, "erf": Erf, "linear": nn.Identity}
    if name not in modules:
        raise ValueError(f"activation must be one of {', '.join(modules)}; got {name!r}")
    return modules[name]()


class MLPModule(nn.Module):
    """The harness MLP as a module: ``layers`` (a ModuleList of L + 1 affine layers) with the
    activation between them; parameters named ``layers.{i}.weight`` and ``layers.{i}.bias``."""

    def __init__(self, layers: list[nn.Module], activation: str):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.activation = activation_module(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def _is_mlp(f) -> bool:
    from harness.networks import MLP

    return isinstance(f, MLP)


def _is_model(f) -> bool:
    from harness.models import ModelFunction

    return isinstance(f, ModelFunction)


def _check_params(label: str, params) -> None:
    if not isinstance(params, Mapping) or not params:
        raise TypeError(f"{label}: params must be a non-empty dict name -> tensor; got {type(params).__name__}")
    for name, value in params.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{label}: params[{name!r}] must be a tensor; got {type(value).__name__}")


def mlp_module(f, params: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> MLPModule:
    """The harness MLP ``f`` with weights ``params`` as an :class:`MLPModule` (module docstring)."""
    _check_params("mlp_module", params)
    architecture = f.architecture
    expected = architecture.parameter_shapes()
    missing = [n for n in expected if n not in params]
    unknown = [n for n in params if n not in expected]
    if missing or unknown:
        raise ValueError(f"mlp_module: params must hold exactly {list(expected)}; "
                         + "; ".join(([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])))
    for name, shape in expected.items():
        if tuple(params[name].shape) != tuple(shape):
            raise ValueError(f"mlp_module: params[{name!r}] has shape {list(params[name].shape)}, expected {list(shape)} "
                             "(unstack stacked parameters first: harness.networks.unstack)")
    scales = mlp_scales(f)
    layers: list[nn.Module] = []
    for i in range(f.num_layers):
        weight = params[f"layers.{i}.weight"].detach().to(dtype=dtype, device=device).clone()
        bias = params.get(f"layers.{i}.bias")
        bias = bias.detach().to(dtype=dtype, device=device).clone() if bias is not None else None
        weight_scale, bias_scale = scales[i]
        if architecture.parametrization == "standard":
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                              dtype=weight.dtype)
            with torch.no_grad():
                layer.weight.copy_(weight)
                if bias is not None:
                    layer.bias.copy_(bias)
        else:
            layer = ScaledLinear(weight, bias, weight_scale, bias_scale)
        layers.append(layer)
    return MLPModule(layers, architecture.activation)


def mlp_scales(f) -> list[tuple[float, float]]:
    """Per layer i = 0..L, ``(s_i, t)``: ``h = s_i W x + t b``; (1, 1) in the standard parametrization,
    ``(sqrt(sigma_w2 / n_i), sqrt(sigma_b2))`` in the NTK parametrization (:class:`harness.networks.MLP`)."""
    import math

    architecture = f.architecture
    sizes = architecture.layer_sizes
    if architecture.parametrization == "standard":
        return [(1.0, 1.0)] * (len(sizes) - 1)
    return [(math.sqrt(architecture.sigma_w2 / sizes[i]), math.sqrt(architecture.sigma_b2))
            for i in range(len(sizes) - 1)]


def model_module(f, params: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> nn.Module:
    """A copy of the ModelFunction's module with ``params`` loaded (module docstring)."""
    _check_params("model_module", params)
    wanted = set(f.parameter_names)
    if set(params) != wanted:
        raise ValueError(f"model_module: params must hold exactly the counted parameters {list(f.parameter_names)}; "
                         f"got {list(params)}")
    reference = next(iter(params.values()))
    dtype = dtype or reference.dtype
    device = device or reference.device
    module = copy.deepcopy(f.module).to(dtype=dtype, device=device).eval()
    values = {**f.fixed_tensors(dtype, device), **params}
    named = dict(module.named_parameters(remove_duplicate=False))
    buffers = dict(module.named_buffers())
    with torch.no_grad():
        for name, value in values.items():
            target = named.get(name, buffers.get(name))
            if target is None:
                raise ValueError(f"model_module: {name!r} is neither a parameter nor a buffer of {f.label}")
            target.copy_(value.detach().to(dtype=target.dtype if not target.is_floating_point() else dtype))
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(name in wanted)
    return module


def as_module(f, params: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> nn.Module:
    """``f`` with ``params`` as an ``nn.Module`` computing ``f(params, x)`` (up to the output's
    flattening to [N, O] for a model); see the module docstring. ``dtype`` / ``device`` default
    to those of ``params``. Raises TypeError for any other kind of ``f``."""
    if _is_mlp(f):
        return mlp_module(f, params, dtype, device)
    if _is_model(f):
        return model_module(f, params, dtype, device)
    raise TypeError(f"as_module: f must be a harness.networks.MLP or a harness.models.ModelFunction; "
                    f"got {type(f).__name__}")


def takes_module(fn: Callable) -> Callable:
    """Turn a module-based NTK ``fn(model: nn.Module, x1, x2) -> Tensor`` into the harness's
    ``fn(f, params, x1, x2)``.

    ``model`` is :func:`as_module` ``(f, params)`` in the dtype and on the device of ``x1``: the
    NTK is over its parameters with ``requires_grad = True`` (exactly ``params``), and ``fn``
    returns ``Theta[a, b]`` [N1, N2] for one output or ``Theta[a, b, i, j]`` [N1, N2, O, O]
    for O outputs (flattened model outputs). ``x2 is x1`` is kept for K(X, X). The result is
    not vmappable (a module holds one network's parameters); ``supports`` is left unset.
    """
    if not callable(fn):
        raise TypeError(f"takes_module: fn must be callable; got {type(fn).__name__}")

    @functools.wraps(fn)
    def ntk(f, params, x1, x2):
        model = as_module(f, params, dtype=x1.dtype, device=x1.device)
        return fn(model, x1, x2)

    ntk.vmappable = False
    return ntk


__all__ = ["Erf", "MLPModule", "ScaledLinear", "activation_module", "as_module", "mlp_module", "mlp_scales",
           "model_module", "takes_module"]
