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


#: float32's and float64's unit roundoff (2^-24, 2^-53)
FLOAT32_EPS = 2.0 ** -24
FLOAT64_EPS = 2.0 ** -53
#: a residual "at the level of a dtype's rounding": this many units roundoff, relative to max|K_ref|
#: (the contraction sums N P products; 1000 eps is what a float64 kernel of the harness's sizes reaches)
ROUNDING_UNITS = 1000.0
#: the band of relative errors read as "float32 rounding in a float64 case" when no structured cause
#: explains the difference (a small group's contribution rounded in float32 can be far below 1e-7)
FLOAT32_BAND = (0.0, 1e-4)


def _case_eps(rtol: float) -> float:
    """The unit roundoff of the dtype a case runs in, from its tolerance: float64 cases check at
    rtol < 1e-7 (1e-10 by default), float32 cases at 1e-4 or more."""
    return FLOAT64_EPS if rtol < 1e-7 else FLOAT32_EPS


def _hint_group(f, result, reference, params64, groups, contributions, explain_tol, missing: bool) -> str | None:
    """A parameter group whose contribution alone explains the difference: missing (``without``,
    when ``missing``) or else counted c times, c != 0: ``result = reference + (c - 1) K_G`` with
    ``K_G`` the group's contribution (c by least squares)."""
    difference = result - reference
    for label, names in groups:
        own = contributions(names)
        norm = (own * own).sum()
        if norm <= 0:
            continue
        excess = ((difference * own).sum() / norm).item()   # c - 1, least squares
        if relative_error(result, reference + excess * own) > explain_tol:
            continue
        factor = 1.0 + excess
        if (abs(factor) <= 10 * explain_tol) != missing or abs(excess) <= 10 * explain_tol:
            continue
        if missing:
            return f"it equals the reference without {label}: that parameter group is missing"
        return (f"the error is confined to {label}: it equals the reference with that group's contribution "
                f"times {factor:.10g}")
    return None


def _differentiable_norms(module):
    """A copy of ``module`` whose eval-mode BatchNorm layers are written out, so that their running
    statistics (buffers) can be differentiated (torch's batch_norm refuses it)."""
    import copy

    from torch import nn

    class Written(nn.Module):
        def __init__(self, norm):
            super().__init__()
            self.eps, self.weight, self.bias = norm.eps, norm.weight, norm.bias
            self.register_buffer("running_mean", norm.running_mean)
            self.register_buffer("running_var", norm.running_var)
            self.register_buffer("num_batches_tracked", norm.num_batches_tracked)

        def forward(self, x):
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = (x - self.running_mean.reshape(shape)) / torch.sqrt(self.running_var.reshape(shape) + self.eps)
            return y * self.weight.reshape(shape) + self.bias.reshape(shape) if self.weight is not None else y

    copied = copy.deepcopy(module)
    for _, parent in list(copied.named_modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and child.running_mean is not None:
                setattr(parent, child_name, Written(child))
    return copied


def _hint_counted_fixed(f, result, reference, params64, x1, x2, explain_tol) -> str | None:
    """A kernel that also differentiates what the model holds fixed: its frozen parameters
    (``requires_grad = False``) or its floating-point buffers (BatchNorm's running statistics)."""
    from harness.models import ModelFunction
    from torch.func import functional_call

    if not isinstance(f, ModelFunction):
        return None
    fixed = f.fixed_tensors(x1.dtype, x1.device)
    frozen = [n for n in f.frozen_parameter_names if n in fixed]
    buffers = [n for n in f.buffer_names if n in fixed and fixed[n].is_floating_point()]
    found = []
    if frozen:
        extra = contribution(f, {**params64, **{n: fixed[n] for n in frozen}}, frozen, x1, x2)
        if relative_error(result, reference + extra) <= explain_tol:
            return (f"it equals the reference plus the contribution of the frozen parameters ({', '.join(frozen)}): "
                    "the implementation counts parameters with requires_grad = False")
        found.append((frozen, extra))
    if buffers:
        module = _differentiable_norms(f.module)

        def g(p, x):
            return functional_call(module, {**fixed, **params64, **p}, (x,)).reshape(x.shape[0], -1)

        try:
            extra = jacobian_ntk(g, {n: fixed[n] for n in buffers}, x1, x2)
        except RuntimeError:   # a buffer this rewrite cannot make differentiable: no hint
            return None
        if relative_error(result, reference + extra) <= explain_tol:
            return (f"it equals the reference plus the contribution of the buffers ({', '.join(buffers)}): the "
                    "implementation differentiates buffers, which the model holds fixed")
        if found and relative_error(result, reference + extra + found[0][1]) <= explain_tol:
            return (f"it equals the reference plus the contributions of the frozen parameters and of the buffers "
                    f"({', '.join(frozen + buffers)}): the implementation differentiates everything the model holds fixed")
    return None


def _hint_untied(f, result, reference, params64, x1, x2, explain_tol) -> str | None:
    """A kernel that treats each name of a tied parameter as a parameter of its own."""
    from harness.models import ModelFunction
    from torch.func import functional_call

    if not isinstance(f, ModelFunction) or not f.tied:
        return None
    fixed = f.fixed_tensors(x1.dtype, x1.device)
    groups = [group for group in f.tied if group[0] in params64]
    if not groups:
        return None
    untied = dict(params64)
    for group in groups:
        for alias in group[1:]:
            untied[alias] = params64[group[0]].clone()

    def g(p, x):
        return functional_call(f.module, {**fixed, **p}, (x,), tie_weights=False).reshape(x.shape[0], -1)

    if relative_error(result, jacobian_ntk(g, untied, x1, x2)) > explain_tol:
        return None
    ties = "; ".join(" = ".join(group) for group in groups)
    return (f"it equals the reference with the tied parameters ({ties}) differentiated as separate parameters, "
            "each use on its own: the tie is lost (one tensor under several names is ONE parameter)")


def _kink_inputs(f, params64, x) -> torch.Tensor | None:
    """[N] bool: the inputs at which some hidden pre-activation of the harness MLP is exactly 0
    (a zero input of a network without biases, dead units); None when not a ReLU MLP."""
    from harness.networks import MLP

    if not isinstance(f, MLP) or f.architecture.activation != "relu":
        return None
    hits = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    h = x
    for i in range(f.num_layers - 1):
        pre = f.preactivation(params64, i, h)
        hits |= (pre == 0).any(dim=1)
        h = torch.relu(pre)
    return hits


def _relu_with(value: float):
    """relu whose derivative at exactly 0 is ``value`` (torch's is 0); composes with torch.func."""

    def phi(h):
        at_zero = (h == 0).to(h.dtype)
        return torch.relu(h) + value * at_zero * (h - h.detach())

    return phi


def _hint_kink(f, result, reference, params64, x1, x2, rtol, explain_tol) -> str | None:
    """A difference confined to the entries of inputs whose pre-activations are exactly 0: the
    derivative convention at relu's kink; which value (1/2 or 1) reproduces the result."""
    import copy

    kinks1 = _kink_inputs(f, params64, x1)
    if kinks1 is None:
        return None
    kinks2 = kinks1 if x2 is x1 else _kink_inputs(f, params64, x2)
    if not (kinks1.any() or kinks2.any()):
        return None
    touched = kinks1[:, None] | kinks2[None, :]
    while touched.dim() < result.dim():
        touched = touched[..., None]
    scale = reference.abs().max().item() or 1.0
    difference = (result - reference).abs()
    outside = torch.where(touched, torch.zeros_like(difference), difference).max().item() / scale
    inside = torch.where(touched, difference, torch.zeros_like(difference)).max().item() / scale
    if outside > explain_tol or inside <= rtol:
        return None
    where = [f"x1[{i}]" for i in kinks1.nonzero().flatten().tolist()[:3]]
    if x2 is not x1:
        where += [f"x2[{i}]" for i in kinks2.nonzero().flatten().tolist()[:3]]
    seen = "no value of 1/2 or 1 reproduces it"
    for value, text in ((1.0, "1"), (0.5, "1/2")):
        other = copy.copy(f)
        other._phi = _relu_with(value)
        if relative_error(result, jacobian_ntk(other, params64, x1, x2)) <= explain_tol:
            seen = f"it equals the reference with relu'(0) = {text}"
            break
    return (f"the disagreement is confined to the entries of inputs whose pre-activations are exactly zero "
            f"({', '.join(where)}: a zero input or dead units): the derivative convention at relu's kink; {seen} "
            "(the reference, as torch's autograd, uses relu'(0) = 0)")


def _round32(value: torch.Tensor) -> torch.Tensor:
    return value.to(torch.float32).to(torch.float64)


def _hint_float32(f, result, reference, params64, x1, x2, rtol, groups, contributions) -> str | None:
    """A float64 case that disagrees at the level of float32 rounding; on which parameters: a tensor
    whose rounding to float32 reproduces the kernel (a float32 copy of it), or a group whose
    contribution computed in float32 reproduces it; else somewhere not localized to one group."""
    error = relative_error(result, reference)
    if _case_eps(rtol) != FLOAT64_EPS or not FLOAT32_BAND[0] < error <= FLOAT32_BAND[1]:
        return None
    text = (f"it disagrees at the level of float32 rounding (relative error {error:.2g}; float32 rounds to "
            f"{FLOAT32_EPS:.2g}, float64 to {FLOAT64_EPS:.2g}): the implementation seems to compute in float32 "
            "somewhere")
    exact = ROUNDING_UNITS * FLOAT64_EPS
    for name in params64:
        if relative_error(result, jacobian_ntk(f, {**params64, name: _round32(params64[name])}, x1, x2)) <= exact:
            return text + f", on {name}: rounding it alone to float32 reproduces the kernel to float64 rounding"
    if relative_error(result, jacobian_ntk(f, params64, _round32(x1), x1 if x2 is x1 else _round32(x2))) <= exact:
        return text + ", on the inputs: rounding x1 and x2 to float32 reproduces the kernel to float64 rounding"
    params32 = {n: v.to(torch.float32) for n, v in params64.items()}
    for label, names in groups:
        own32 = contribution(f, params32, names, x1.to(torch.float32), x2.to(torch.float32)).to(torch.float64)
        if relative_error(result, reference - contributions(names) + own32) <= exact:
            return text + f", on {label}: its contribution computed in float32 reproduces the kernel"
    return text + ("; no single parameter tensor, the inputs or one parameter group reproduces it (every group, "
                   "or the forward and backward passes they share, may be in float32)")


def _hint_factor(result, reference, rtol, rounding: float) -> str | None:
    """``It equals the reference times c`` when removing the factor leaves only rounding (``rounding``:
    the dtype's, ``ROUNDING_UNITS`` units roundoff)."""
    denominator = (reference * reference).sum()
    if denominator <= 0:
        return None
    factor = ((result * reference).sum() / denominator).item()
    if abs(factor - 1) > rtol and relative_error(result, factor * reference) <= rounding:
        return f"it equals the reference times {factor:.12g}"
    return None


def diagnose(result, reference, *, f, params64, x1, x2, num_layers, rtol, earlier) -> str:
    """Say what the difference between ``result`` and ``reference`` looks like, one sentence per cause.

    ``result`` and ``reference`` are [N1, N2] or [N1, N2, O, O] (``result`` is compared in float64);
    ``f``, ``params64`` (float64), ``x1``, ``x2`` the network and call; ``rtol`` the case's tolerance
    (below 1e-7: a float64 case). A hint "explains" the result when the residual
    ``max|K - K_candidate| / max|K_ref|`` is at most 10 rtol and a tenth of the difference. In order:

    - a parameter group missing (``without every bias``);
    - a model's frozen parameters or buffers counted (``plus the contribution of ...``);
    - tied parameters untied;
    - the disagreement confined to inputs with pre-activations exactly 0 (relu's kink), with the
      value of relu'(0) that reproduces it (1 or 1/2);
    - a constant factor, only when the residual after it is at the dtype's rounding
      (``ROUNDING_UNITS`` units roundoff);
    - one parameter group counted c times (``the error is confined to ...``);
    - in a float64 case, one of the above up to float32 rounding (two causes at once: the candidate
      leaves at most ``ROUNDING_UNITS`` float32 units and 1% of the difference);
    - a float64 case off by float32 rounding (relative error at most 1e-4), with the parameter or
      group that reproduces it when one does;
    - the output indices swapped; an earlier network's kernel (stale parameters).
    """
    result = result.to(torch.float64)
    if not torch.isfinite(result).all():
        return ""
    error = relative_error(result, reference)
    if error <= rtol:
        return ""
    # a candidate explains the result when it leaves at most 10 rtol and a tenth of the difference
    explain_tol = max(min(10 * rtol, 0.1 * error), 1e-13)
    groups = parameter_groups(params64, num_layers, getattr(f, "module", None))
    cache: dict[tuple[str, ...], torch.Tensor] = {}

    def contributions(names):
        key = tuple(names)
        if key not in cache:
            cache[key] = contribution(f, params64, list(names), x1, x2)
        return cache[key]

    def structured(tol: float, rounding: float) -> str | None:
        return (_hint_group(f, result, reference, params64, groups, contributions, tol, missing=True)
                or _hint_counted_fixed(f, result, reference, params64, x1, x2, tol)
                or _hint_untied(f, result, reference, params64, x1, x2, tol)
                or _hint_kink(f, result, reference, params64, x1, x2, rtol, tol)
                or _hint_factor(result, reference, rtol, rounding)
                or _hint_group(f, result, reference, params64, groups, contributions, tol, missing=False))

    hints = []
    hint = structured(explain_tol, ROUNDING_UNITS * _case_eps(rtol))
    if hint is None and _case_eps(rtol) == FLOAT64_EPS:
        # two causes at once: a structured one up to float32 rounding (a candidate that leaves at most
        # float32's rounding and at most 1% of the difference)
        loose = min(ROUNDING_UNITS * FLOAT32_EPS, 0.01 * error)
        if loose > explain_tol:
            hint = structured(loose, loose)
            if hint is not None:
                hint += (f", up to float32 rounding (a residual of at most {loose:.2g} of max|K_ref| remains): the "
                         "implementation also seems to compute in float32 somewhere")
    if hint is None:
        hint = _hint_float32(f, result, reference, params64, x1, x2, rtol, groups, contributions)
    if hint:
        hints.append(hint)
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
