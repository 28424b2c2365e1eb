"""A user's ``torch.nn.Module`` as a network function for NTK implementations.

This module owns the model path of a case: finding the user's factory
(:func:`load_factory`), building a seeded model (:func:`make_model`), turning it into
the ``f(params, x)`` the NTK implementations take (:class:`ModelFunction`), the dict of
parameters that count (:func:`trainable_parameters`) and inputs of the model's shape
(:func:`make_model_inputs`).

The network function of a module ``m`` with input shape ``S`` and output dimension O::

    f(params, x) = functional_call(m, {**fixed, **params}, (x,)).reshape(N, O)

for ``x`` of shape [N, *S]. ``params`` holds the parameters that count (by default every
parameter with ``requires_grad``, each tensor once); ``fixed`` holds everything else the
forward pass reads, as constants an NTK never differentiates: parameters with
``requires_grad = False`` (a frozen sub-module) and every buffer (BatchNorm running
statistics, masks, ...). The empirical NTK of the model is therefore::

    Theta[a, b, i, j] = sum over counted p of df_i(x1_a)/dp * df_j(x2_b)/dp

and a tensor registered under several names (weight tying: an encoder weight reused by a
decoder) is ONE parameter, as ``named_parameters()`` counts it: its derivative sums the
contributions of every use.

The model is evaluated as built: :func:`make_model` puts it in eval mode, so BatchNorm
uses its running statistics (a per-input function, which is what the NTK of a network
means) and dropout is off.
"""
from __future__ import annotations

import fnmatch
import math
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from harness.constants import MODEL_INPUTS

INPUT_KINDS = MODEL_INPUTS

class ModelError(ValueError):
    """A model could not be loaded, built or called; the message names the factory spec."""


# --------------------------------------------------------------------------- loading


def load_factory(spec: str, base_dir: Path | str | None = None) -> Callable[..., nn.Module]:
    """The callable named by ``spec`` (``package.module:function`` or ``path/to/file.py:function``),
    found by :func:`harness.imports.load_object` from the import path, else ``base_dir`` (the
    case file's folder) and each of its parents; a relative file path is relative to
    ``base_dir`` (or the working directory). Any failure raises :class:`ModelError` naming
    ``spec``. The result is only checked to be callable; :func:`make_model` checks that it
    returns an ``nn.Module``.
    """
    from harness.imports import SpecError, folder_and_parents, load_object

    try:
        target = load_object(spec, "model factory", folder_and_parents(base_dir) if base_dir is not None else [])
    except SpecError as exc:
        raise ModelError(str(exc)) from exc.__cause__
    if not callable(target):
        attribute = spec.rpartition(":")[2]
        raise ModelError(f"model factory {spec!r}: {attribute!r} is a {type(target).__name__}, not callable")
    return target


# --------------------------------------------------------------------------- building


def _label(factory: Callable | str) -> str:
    if isinstance(factory, str):
        return factory
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"


def make_model(factory: Callable[..., nn.Module] | str, kwargs: Mapping | None = None, seed: int = 0,
               dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu", *,
               base_dir: Path | str | None = None) -> nn.Module:
    """``factory(**kwargs)`` with weights that depend only on ``seed``, in eval mode.

    ``factory`` is a callable or a spec for :func:`load_factory` (resolved against
    ``base_dir``). The factory runs with torch's CPU random generator seeded with
    ``seed`` inside ``torch.random.fork_rng`` (the caller's global random state is
    restored afterwards), on the CPU in torch's default dtype; the module is then cast
    to ``dtype``, moved to ``device`` and put in eval mode. So the weights depend only on
    (factory, kwargs, seed) and the torch version: a float64 model holds exactly the
    float32 model's draws, on every device. For many networks of one run, seed network m
    with e.g. :func:`harness.networks.network_seed` ``(seed, m)``.

    Raises :class:`ModelError` if the factory raises or returns something other than an
    ``nn.Module``.
    """
    label = _label(factory)
    if isinstance(factory, str):
        factory = load_factory(factory, base_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            module = factory(**dict(kwargs or {}))
        except Exception as exc:
            raise ModelError(f"model factory {label!r}: factory raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise ModelError(f"model factory {label!r}: factory did not return a torch.nn.Module "
                         f"(got {type(module).__name__})")
    return module.to(dtype=dtype, device=device).eval()


def trainable_parameters(module: nn.Module, dtype: torch.dtype | None = None,
                         device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """name -> detached copy of every parameter with ``requires_grad``, each tensor once.

    Tied parameters appear under their first name (``named_parameters()``'s default
    de-duplication). ``dtype``/``device`` default to the parameter's own.
    """
    return {
        name: value.detach().to(dtype=dtype or value.dtype, device=device or value.device).clone()
        for name, value in module.named_parameters()
        if value.requires_grad
    }


# --------------------------------------------------------------------------- the function


class ModelFunction:
    """An ``nn.Module`` as ``f(params, x) -> [N, O]`` for NTK implementations.

    ``x`` has shape [N, *input_shape]; the module's output for it, of shape [N] (O = 1)
    or [N, ...] (flattened to O = prod of the trailing dimensions), is returned as
    [N, O]. ``params`` must hold exactly the tensors named in :attr:`parameter_names`
    (each [*shape], or stacked [M, *shape] under ``torch.func.vmap``); it may also
    override a fixed tensor by name (a frozen parameter or a buffer), which is then
    differentiated like any other entry of ``params`` by whoever differentiates ``f``.
    Composes with ``torch.func`` (``vmap`` over stacked parameters or over inputs,
    ``jacrev``, ``vjp``, ``jvp``); calling it never changes the module. The module must
    be in eval mode (:class:`ModelError` otherwise).

    Attributes:
        module: the wrapped module; its frozen parameters and buffers are copied when the
            ModelFunction is built (:meth:`fixed_tensors`), its trainable ones only read by
            :meth:`initial_parameters`.
        input_shape: the shape of one input, a tuple.
        output_dim: O.
        parameter_names: the parameters that count, in ``named_parameters()`` order; a
            tied tensor under its first name.
        frozen_parameter_names: parameters held fixed: ``requires_grad = False``, or not
            selected by ``parameters``.
        buffer_names: every buffer, held fixed (BatchNorm running statistics, ...).
        tied: groups of names that share one parameter tensor, first name first
            (``(("encoder.weight", "decoder.weight"),)``); ``functional_call`` keeps them
            tied, so the single entry in ``params`` feeds every use.

    ``parameters`` (optional): glob patterns (``fnmatch``) over the trainable parameter
    names selecting those that count; the other trainable ones are held fixed too.

    The fixed tensors are cast to the dtype and device of ``x`` when they differ (a
    float32 model evaluated on upcast float64 parameters and inputs uses its float32
    buffers' values, exactly).
    """

    def __init__(self, module: nn.Module, input_shape: Sequence[int], *, parameters: Sequence[str] | None = None,
                 label: str | None = None):
        if not isinstance(module, nn.Module):
            raise ModelError(f"model {label or '?'}: expected a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.label = label or type(module).__name__
        if any(sub.training for sub in module.modules()):
            # in training mode BatchNorm would normalize with batch statistics (the output for one
            # input would depend on the others) and write its running statistics, and dropout is random
            raise ModelError(f"model {self.label}: the module (or a sub-module) is in training mode; call "
                             ".eval() first (make_model does): the NTK is taken of the network at inference")
        self.input_shape = tuple(int(n) for n in input_shape)
        if not self.input_shape or any(n < 1 for n in self.input_shape):
            raise ModelError(f"model {self.label}: input_shape must be a non-empty list of positive sizes; "
                             f"got {list(input_shape)}")

        groups: dict[int, list[str]] = {}
        tensors: dict[int, nn.Parameter] = {}
        for name, value in module.named_parameters(remove_duplicate=False):
            groups.setdefault(id(value), []).append(name)
            tensors[id(value)] = value
        self.tied: tuple[tuple[str, ...], ...] = tuple(tuple(g) for g in groups.values() if len(g) > 1)
        trainable = [g[0] for key, g in groups.items() if tensors[key].requires_grad]
        if parameters is not None:
            patterns = [str(p) for p in parameters]
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(n, pattern) for n in trainable):
                    raise ModelError(f"model {self.label}: parameters pattern {pattern!r} matches no trainable "
                                     f"parameter (trainable: {', '.join(trainable) or 'none'})")
            trainable = [n for n in trainable if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        self.parameter_names: tuple[str, ...] = tuple(trainable)
        self.frozen_parameter_names: tuple[str, ...] = tuple(
            g[0] for g in groups.values() if g[0] not in self.parameter_names)
        self.buffer_names: tuple[str, ...] = tuple(name for name, _ in module.named_buffers())
        if not self.parameter_names:
            raise ModelError(f"model {self.label}: no trainable parameters (every parameter has "
                             "requires_grad = False or is not selected); its NTK would be zero")

        # a snapshot: later changes to the module (training it, loading weights) do not move f
        fixed = {name: tensors[key].detach().clone() for key, g in groups.items() for name in g[:1]
                 if name in self.frozen_parameter_names}
        fixed.update({name: value.detach().clone() for name, value in module.named_buffers()})
        self._fixed = fixed
        self._fixed_cast: dict[tuple, dict[str, torch.Tensor]] = {}
        self._allowed = set(self.parameter_names) | set(fixed)
        self._required = set(self.parameter_names)

        reference = next(iter(module.parameters()))
        probe = torch.zeros((2, *self.input_shape), dtype=reference.dtype, device=reference.device)
        with torch.no_grad():
            try:
                out = self._forward(self._fixed, probe, check=False)
            except Exception as exc:
                raise ModelError(f"model {self.label}: forward pass on inputs of shape {list(probe.shape)} "
                                 f"(input_shape {list(self.input_shape)}) raised {type(exc).__name__}: {exc}") from exc
        self.output_dim = int(out.shape[1])

    # -- the function

    def fixed_tensors(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
                      ) -> dict[str, torch.Tensor]:
        """name -> the held-fixed tensors (frozen parameters, buffers); floating ones cast to ``dtype``."""
        if dtype is None and device is None:
            return dict(self._fixed)
        key = (dtype, str(device))
        cast = self._fixed_cast.get(key)
        if cast is None:
            cast = {
                name: value.to(dtype=dtype if value.is_floating_point() and dtype is not None else value.dtype,
                               device=device if device is not None else value.device)
                for name, value in self._fixed.items()
            }
            self._fixed_cast[key] = cast
        return cast

    def initial_parameters(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
                           ) -> dict[str, torch.Tensor]:
        """name -> detached copy of the module's own value of every counted parameter."""
        values = dict(self.module.named_parameters())
        return {name: values[name].detach().to(dtype=dtype or values[name].dtype,
                                               device=device or values[name].device).clone()
                for name in self.parameter_names}

    def parameter_count(self) -> int:
        """P, the number of scalars the NTK sums over."""
        values = dict(self.module.named_parameters())
        return sum(values[name].numel() for name in self.parameter_names)

    def _forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, check: bool = True) -> torch.Tensor:
        if check:
            names = set(params)
            if names != self._required:
                unknown, missing = names - self._allowed, self._required - names
                if unknown or missing:
                    raise ModelError(
                        f"model {self.label}: params " + "; ".join(
                            ([f"has unknown names {sorted(unknown)}"] if unknown else [])
                            + ([f"lacks {sorted(missing)}"] if missing else []))
                        + f" (expected {list(self.parameter_names)})")
            if tuple(x.shape[1:]) != self.input_shape:
                raise ModelError(f"model {self.label}: inputs have shape {list(x.shape)}, expected "
                                 f"[N, {', '.join(map(str, self.input_shape))}]")
        if check:
            # compute in the dtype of the inputs (of the parameters for integer inputs such as token ids)
            dtype = x.dtype if x.is_floating_point() else next(iter(params.values())).dtype
            fixed = self.fixed_tensors(dtype, x.device)
        else:
            fixed = self._fixed
        out = functional_call(self.module, {**fixed, **params}, (x,), tie_weights=True)
        if not isinstance(out, torch.Tensor):
            raise ModelError(f"model {self.label}: forward returned {type(out).__name__}, expected a Tensor")
        if out.dim() == 0 or out.shape[0] != x.shape[0]:
            raise ModelError(f"model {self.label}: output has shape {list(out.shape)} for {x.shape[0]} inputs; "
                             f"expected [{x.shape[0]}] or [{x.shape[0]}, ...]")
        return out.reshape(x.shape[0], -1)

    def __call__(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """[N, O]: the module's output at ``x`` [N, *input_shape] with the given parameters."""
        return self._forward(params, x)

    def __repr__(self) -> str:
        return (f"ModelFunction({self.label}, input_shape={list(self.input_shape)}, output_dim={self.output_dim}, "
                f"parameters={self.parameter_count()})")

    def describe(self) -> str:
        """One line for reports: what counts and what is held fixed."""
        parts = [f"{len(self.parameter_names)} parameter tensors ({self.parameter_count()} scalars) count"]
        if self.frozen_parameter_names:
            parts.append(f"held fixed: frozen parameters {', '.join(self.frozen_parameter_names)}")
        if self.buffer_names:
            parts.append(f"held fixed: buffers {', '.join(self.buffer_names)}")
        for group in self.tied:
            parts.append(f"tied (one parameter): {' = '.join(group)}")
        return f"{self.label}: " + "; ".join(parts)


# --------------------------------------------------------------------------- inputs


def _digits_images() -> np.ndarray:
    from harness.training.data import raw_data

    images, _ = raw_data("digits")
    return images  # [1797, 64], values 0..16


def make_model_inputs(kind: str, input_shape: Sequence[int], count: int, seed: int,
                      dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """``count`` inputs of shape ``input_shape``: a tensor [count, *input_shape], seeded.

    - ``gaussian``: i.i.d. N(0, 1) / sqrt(prod(input_shape)) entries (expected squared
      norm 1), drawn in float64 from numpy's generator seeded with ``seed``;
    - ``digits``: ``count`` distinct images of scikit-learn's bundled ``load_digits``
      (1797 images of 8x8 pixels, no download), chosen by a permutation seeded with
      ``seed``, each scaled to unit norm and reshaped in row-major order to
      ``input_shape``, which must hold 64 values ([1, 8, 8] for a CNN, [64] for an MLP,
      [8, 8] for a sequence of 8 rows).

    Built in float64 and then cast, so the float32 and float64 inputs are the same up to
    rounding, on every device.
    """
    shape = tuple(int(n) for n in input_shape)
    size = math.prod(shape)
    if count < 1:
        raise ModelError(f"inputs: count must be >= 1; got {count}")
    rng = np.random.default_rng(int(seed))
    if kind == "gaussian":
        values = rng.standard_normal((count, *shape)) / math.sqrt(size)
    elif kind == "digits":
        if size != 64:
            raise ModelError(f"inputs: digits are 8x8 images (64 values); input_shape {list(shape)} holds {size}; "
                             "use [1, 8, 8], [8, 8] or [64]")
        images = _digits_images()
        if count > images.shape[0]:
            raise ModelError(f"inputs: digits has {images.shape[0]} images; {count} requested")
        chosen = images[rng.permutation(images.shape[0])[:count]]
        values = (chosen / np.linalg.norm(chosen, axis=1, keepdims=True)).reshape(count, *shape)
    else:
        raise ModelError(f"inputs: kind must be one of {', '.join(INPUT_KINDS)}; got {kind!r}")
    return torch.as_tensor(values, dtype=torch.float64).to(dtype=dtype, device=device)


__all__ = ["INPUT_KINDS", "ModelError", "ModelFunction", "load_factory", "make_model", "make_model_inputs",
           "trainable_parameters"]
