"""What a disagreement with the reference looks like: worst entries, missing parameter
groups, constant factors, swapped outputs, stale parameters; and the symmetric, PSD and
fresh-parameter checks of one network's kernels.

All functions take float64 tensors: ``result`` and ``reference`` of the same shape
([N1, N2] or [N1, N2, O, O]).
"""
from __future__ import annotations

import traceback
from typing import Callable

import torch

from harness.ntk.jacobian import jacobian_ntk


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    scale = reference.abs().max().item()
    diff = (result - reference).abs().max().item()
    return diff / scale if scale > 0 else diff


def largest(values: list[float]) -> float | None:
    """max of ``values``, NaN if any is NaN (Python's max would depend on the order)."""
    if not values:
        return None
    return float("nan") if any(v != v for v in values) else max(values)


def _format_index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, index)) + "]"


def worst_entries(result: torch.Tensor, reference: torch.Tensor, count: int = 3) -> str:
    diff = (result - reference).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
    flat = diff.flatten()
    top = torch.topk(flat, min(count, flat.numel())).indices
    scale = reference.abs().max().item() or 1.0
    parts = []
    for position in top.tolist():
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(position), diff.shape))
        got, want = result[index].item(), reference[index].item()
        parts.append(
            f"K{_format_index(index)} = {got:.10g}, reference {want:.10g} "
            f"(off by {got - want:.3g}, {abs(got - want) / scale:.3g} of max|K_ref|)"
        )
    return "; ".join(parts)


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _normalization_parameters(module, params) -> list[str]:
    """The counted parameters that belong to normalization layers (BatchNorm, LayerNorm, GroupNorm, ...)."""
    from torch import nn

    kinds = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
    found = []
    for prefix, sub in module.named_modules():
        if isinstance(sub, kinds):
            found += [f"{prefix}.{name}" if prefix else name for name, _ in sub.named_parameters(recurse=False)]
    return [name for name in found if name in params]


def parameter_groups(params: dict[str, torch.Tensor], num_layers: int | None,
                     module=None) -> list[tuple[str, list[str]]]:
    """Named subsets of parameters whose omission an implementation might commit, by the model's
    own names: every bias (every name ending in ``bias``, ``in_proj_bias`` included), every weight;
    for the harness MLP (``num_layers``) each layer ``layers.{k}.*``; for a user's model
    (``module``) the normalization layers' parameters, each family of names that several modules
    share (``every in_proj_bias``), each module (names sharing a prefix); and each single tensor."""
    groups: list[tuple[str, list[str]]] = []
    biases = [n for n in params if _leaf(n).endswith("bias")]
    weights = [n for n in params if _leaf(n).endswith("weight")]
    if biases:
        groups.append(("every bias", biases))
        groups.append(("every weight", weights))
    if num_layers is not None:
        for k in range(num_layers):
            layer = [n for n in params if n.startswith(f"layers.{k}.")]
            label = "the readout layer" if k == num_layers - 1 else f"hidden layer {k + 1}"
            groups.append((f"{label} ({', '.join(layer)})", layer))
            if len(layer) > 1:
                groups += [(name, [name]) for name in layer]
        return groups
    if module is not None:
        norms = _normalization_parameters(module, params)
        if norms:
            groups.append((f"the normalization layers' parameters ({', '.join(norms)})", norms))
    families: dict[str, list[str]] = {}
    for name in params:
        families.setdefault(_leaf(name), []).append(name)
    groups += [(f"every {leaf} ({', '.join(names)})", names) for leaf, names in families.items()
               if len(names) > 1 and leaf not in ("weight", "bias")]
    modules: dict[str, list[str]] = {}
    for name in params:
        modules.setdefault(name.rsplit(".", 1)[0] if "." in name else name, []).append(name)
    for module, names in modules.items():
        if len(names) > 1:
            groups.append((f"module {module} ({', '.join(names)})", names))
    groups += [(name, [name]) for name in params]
    return groups


def contribution(f: Callable, params: dict[str, torch.Tensor], names: list[str], x1, x2) -> torch.Tensor:
    """The reference kernel restricted to the parameters ``names``."""
    fixed = dict(params)

    def restricted(sub, x):
        return f({**fixed, **sub}, x)

    return jacobian_ntk(restricted, {n: params[n] for n in names}, x1, x2)


def diagnose(result, reference, *, f, params64, x1, x2, num_layers, rtol, earlier) -> str:
    """Say what the difference between ``result`` and ``reference`` looks like."""
    explain_tol = max(10 * rtol, 1e-12)
    result = result.to(torch.float64)
    hints = []
    if torch.isfinite(result).all():
        for label, names in parameter_groups(params64, num_layers, getattr(f, "module", None)):
            candidate = reference - contribution(f, params64, names, x1, x2)
            if relative_error(result, candidate) <= explain_tol:
                hints.append(f"it equals the reference without {label}: that parameter group is missing")
                break
        denominator = (reference * reference).sum()
        if not hints and denominator > 0:
            factor = ((result * reference).sum() / denominator).item()
            if abs(factor - 1) > rtol and relative_error(result, factor * reference) <= explain_tol:
                hints.append(f"it equals the reference times {factor:.12g}")
        if not hints and result.dim() == 4:
            if relative_error(result.transpose(-1, -2), reference) <= explain_tol:
                hints.append("it equals the reference with the two output indices swapped")
        for index, earlier_reference in earlier:
            if relative_error(result, earlier_reference) <= explain_tol:
                hints.append(f"it equals the kernel of network {index}, an earlier network: stale parameters")
                break
    return " ".join(h[0].upper() + h[1:] + "." for h in hints)


def check_symmetric(matrix: torch.Tensor, num_outputs: int, rtol: float) -> tuple[float, str | None]:
    """(max|K - K^T| / max|K|, the problem or None) of K(x1, x1) as an [N1 O, N1 O] matrix."""
    scale = matrix.abs().max().item()
    skew = (matrix - matrix.T).abs().max().item() / scale if scale > 0 else 0.0
    if skew <= rtol:
        return skew, None
    i, j = divmod(int((matrix - matrix.T).abs().argmax()), matrix.shape[0])
    return skew, (
        f"max|K - K^T| / max|K| = {skew:.3g} > {rtol:g}, worst at rows (input, output) "
        f"{divmod(i, num_outputs)} and {divmod(j, num_outputs)}: {matrix[i, j].item():.10g} vs "
        f"{matrix[j, i].item():.10g}"
    )


def check_psd(matrix: torch.Tensor, rtol: float) -> tuple[float | None, str | None]:
    """(smallest / largest |eigenvalue| of the symmetric part, the problem or None); None if not finite."""
    if not torch.isfinite(matrix).all():
        return None, None  # reported by the finite check
    eigenvalues = torch.linalg.eigvalsh((matrix + matrix.T) / 2)
    largest = eigenvalues.abs().max().item()
    ratio = eigenvalues.min().item() / largest if largest > 0 else 0.0
    if ratio >= -rtol:
        return ratio, None
    return ratio, (
        f"smallest eigenvalue {eigenvalues.min().item():.6g} = {ratio:.3g} x the largest |eigenvalue| "
        f"{largest:.6g}, below -{rtol:g}"
    )


def check_fresh(result, reference, earlier_results, earlier_refs, rtol: float) -> str | None:
    """A K(x1, x2) equal to an earlier network's result or kernel while this network's differs."""
    for index, earlier in earlier_results:
        if relative_error(result, earlier) <= rtol and relative_error(reference, earlier) > 1e3 * rtol:
            return (f"K(x1, x2) equals the result for network {index} although the networks differ: "
                    "parameters or results are reused across calls")
    for index, earlier in earlier_refs:
        # (networks whose kernels coincide, e.g. dead networks whose kernel is the output bias's
        # constant, are not evidence of reuse)
        if relative_error(result, earlier) <= 10 * rtol and relative_error(reference, earlier) > 1e3 * rtol:
            return (f"K(x1, x2) equals the reference kernel of network {index}: the implementation used an "
                    "earlier network's parameters")
    return None


#: How torch says an operation has no rule for a transform: (pattern, what is missing).
_UNSUPPORTED = (
    (r"forward AD with (\S+?) that does not support it", "no forward-mode derivative (jvp)"),
    (r"[Bb]atching rule not implemented for (\S+?)[.;:\s]", "no vmap (batching) rule"),
    (r"derivative for (\S+?) is not implemented", "no derivative"),
    (r"vmap: (.+?) is not (?:yet )?supported", "not supported under vmap"),
)


def unsupported_operation(exc: BaseException) -> str | None:
    """What the exception says is missing, with the operation, when it says an operation has no
    rule for a transform (forward AD, vmap, autograd): e.g. "no forward-mode derivative (jvp)
    for aten::_native_multi_head_attention"; None for any other error (a bug)."""
    import re

    text = str(exc)
    for pattern, missing in _UNSUPPORTED:
        found = re.search(pattern, text)
        if found:
            return f"{missing} for {found.group(1)}"
    if isinstance(exc, NotImplementedError):
        return f"an operation is not implemented: {text.splitlines()[0] if text else type(exc).__name__}"
    return None


def user_frame(exc: BaseException) -> str:
    """The innermost traceback frame outside torch, where the user's code failed."""
    frames = [fr for fr in traceback.extract_tb(exc.__traceback__) if "/torch/" not in fr.filename]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {frame.filename}:{frame.lineno} in {frame.name})"
