"""``kind = "agreement"``: an NTK implementation agrees exactly with the reference.

A case fixes one architecture (``[case.network]``) and draws ``networks`` independently
initialized networks of it (``[case.agreement]``), all evaluated at the same inputs
x1 [N1, n_0] and x2 [N2, n_0]. The selected implementation (``--ntk-impl``, else the
case's ``implementation``; with neither, every built-in in turn, its checks prefixed with
its name) is called on the networks in sequence, with
the same network function ``f`` each time, and every result is checked:

- ``loads``: the implementation resolves to a callable ``fn(f, params, x1, x2)``;
- ``runs``: it returns a tensor without raising;
- ``shape``: [N1, N2] for one output, [N1, N2, O, O] for O outputs;
- ``dtype``: the dtype and device of the inputs;
- ``finite``: no NaN or infinity;
- ``agrees with jacobian``: relative error ``max|K - K_ref| / max|K_ref| <= rtol`` where
  ``K_ref`` is :func:`harness.ntk.jacobian.jacobian_ntk` evaluated in float64 on the same
  (upcast) parameters and inputs; a failure names the worst entries and, where one
  explains the difference, the parameter group that is missing (a single parameter, a
  layer, every bias, the readout), a constant factor, transposed outputs or another
  network's parameters;
- ``symmetric``: ``K(x1, x1)[a, b, i, j] = K(x1, x1)[b, a, j, i]`` to rtol;
- ``positive semi-definite``: the [N1 O, N1 O] matrix of ``K(x1, x1)`` has smallest
  eigenvalue ``>= -rtol * (largest |eigenvalue|)``;
- ``fresh parameters``: no network's result equals an earlier network's kernel (an
  implementation that caches parameters or results across calls fails here);
- ``arguments unchanged``: params, x1 and x2 are as they were passed (the implementation
  gets copies, so writing into them cannot corrupt the reference, but it is reported);
- ``vmap``: only for an implementation that sets ``vmappable = True``: under
  ``torch.func.vmap`` over the stacked parameters of all networks it gives the same
  kernels.

Tolerances (``rtol``): 1e-10 in float64 and 1e-4 in float32 unless the case says
otherwise. These checks are exact (no randomness in the verdict): a correct
implementation passes on any seed; the seeds only choose which networks are tested.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from harness.cases.sections import DTYPE_NAMES, NetworkSection
from harness.kinds.base import Check, Outcome, RunOptions, resolve_device, resolve_dtype
from harness.networks import MLP, init_parameters, unstack
from harness.ntk.jacobian import jacobian_ntk
from harness.ntk.registry import BUILTINS, ImplementationError, get_implementation

DEFAULT_RTOL = {"float64": 1e-10, "float32": 1e-4}
MAX_DIAGNOSED = 3  # failures per case whose cause is looked for (the message shows three)


def _doc(text: str, **rules):
    return dict(doc=text, **rules)


@dataclass
class AgreementSection:
    """``[case.agreement]``: how many networks, which inputs, which precision."""

    networks: int = field(default=3, metadata=_doc("independently initialized networks checked in sequence", min=2))
    inputs: int = field(default=5, metadata=_doc("N1, the number of inputs x1", min=1))
    other_inputs: int = field(default=3, metadata=_doc("N2, the number of inputs x2 (N2 != N1 exposes transposes)", min=1))
    seed: int = field(default=0, metadata=_doc("seed of the networks and the inputs", min=0))
    dtype: str = field(default="float64", metadata=_doc("dtype of parameters and inputs", choices=DTYPE_NAMES))
    device: str = field(default="auto", metadata=_doc("auto (CUDA if present, else CPU), cpu, cuda, ..."))
    rtol: float | None = field(
        default=None, metadata=_doc("relative tolerance (default 1e-10 in float64, 1e-4 in float32)", min_exclusive=0)
    )

    def validate(self) -> None:
        if self.inputs == self.other_inputs:
            raise ValueError(
                f"agreement.other_inputs: expected a count different from inputs ({self.inputs}) "
                "so that a transposed result has the wrong shape"
            )


def _relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    scale = reference.abs().max().item()
    diff = (result - reference).abs().max().item()
    return diff / scale if scale > 0 else diff


def _largest(values: list[float]) -> float | None:
    """max of ``values``, NaN if any is NaN (Python's max would depend on the order)."""
    if not values:
        return None
    return float("nan") if any(v != v for v in values) else max(values)


def _format_index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, index)) + "]"


def _worst_entries(result: torch.Tensor, reference: torch.Tensor, count: int = 3) -> str:
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


def _parameter_groups(params: dict[str, torch.Tensor], num_layers: int) -> list[tuple[str, list[str]]]:
    """Named subsets of parameters whose omission an implementation might commit."""
    groups: list[tuple[str, list[str]]] = []
    biases = [n for n in params if n.endswith(".bias")]
    weights = [n for n in params if n.endswith(".weight")]
    if biases:
        groups.append(("every bias", biases))
        groups.append(("every weight", weights))
    for k in range(num_layers):
        layer = [n for n in params if n.startswith(f"layers.{k}.")]
        label = "the readout layer" if k == num_layers - 1 else f"hidden layer {k + 1}"
        groups.append((f"{label} ({', '.join(layer)})", layer))
        if len(layer) > 1:
            groups += [(name, [name]) for name in layer]
    return groups


def _contribution(f: Callable, params: dict[str, torch.Tensor], names: list[str], x1, x2) -> torch.Tensor:
    """The reference kernel restricted to the parameters ``names``."""
    fixed = dict(params)

    def restricted(sub, x):
        return f({**fixed, **sub}, x)

    return jacobian_ntk(restricted, {n: params[n] for n in names}, x1, x2)


def _diagnose(result, reference, *, f, params64, x1, x2, num_layers, rtol, earlier) -> str:
    """Say what the difference between ``result`` and ``reference`` looks like."""
    explain_tol = max(10 * rtol, 1e-12)
    result = result.to(torch.float64)
    hints = []
    if torch.isfinite(result).all():
        for label, names in _parameter_groups(params64, num_layers):
            candidate = reference - _contribution(f, params64, names, x1, x2)
            if _relative_error(result, candidate) <= explain_tol:
                hints.append(f"it equals the reference without {label}: that parameter group is missing")
                break
        denominator = (reference * reference).sum()
        if not hints and denominator > 0:
            factor = ((result * reference).sum() / denominator).item()
            if abs(factor - 1) > rtol and _relative_error(result, factor * reference) <= explain_tol:
                hints.append(f"it equals the reference times {factor:.12g}")
        if not hints and result.dim() == 4:
            if _relative_error(result.transpose(-1, -2), reference) <= explain_tol:
                hints.append("it equals the reference with the two output indices swapped")
        for index, earlier_reference in earlier:
            if _relative_error(result, earlier_reference) <= explain_tol:
                hints.append(f"it equals the kernel of network {index}, an earlier network: stale parameters")
                break
    return " ".join(h[0].upper() + h[1:] + "." for h in hints)


def _check_symmetric(matrix: torch.Tensor, num_outputs: int, rtol: float) -> tuple[float, str | None]:
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


def _check_psd(matrix: torch.Tensor, rtol: float) -> tuple[float | None, str | None]:
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


def _check_fresh(result, reference, earlier_results, earlier_refs, rtol: float) -> str | None:
    """A K(x1, x2) equal to an earlier network's result or kernel while this network's differs."""
    for index, earlier in earlier_results:
        if _relative_error(result, earlier) <= rtol and _relative_error(reference, earlier) > 1e3 * rtol:
            return (f"K(x1, x2) equals the result for network {index} although the networks differ: "
                    "parameters or results are reused across calls")
    for index, earlier in earlier_refs:
        if _relative_error(result, earlier) <= 10 * rtol:
            return (f"K(x1, x2) equals the reference kernel of network {index}: the implementation used an "
                    "earlier network's parameters")
    return None


def _user_frame(exc: BaseException) -> str:
    """The innermost traceback frame outside torch, where the user's code failed."""
    frames = [fr for fr in traceback.extract_tb(exc.__traceback__) if "/torch/" not in fr.filename]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {frame.filename}:{frame.lineno} in {frame.name})"


class AgreementKind:
    name = "agreement"
    sections = {"network": NetworkSection, "agreement": AgreementSection}
    markers = ("agreement",)

    def case_id(self, case) -> str:
        network: NetworkSection = case.sections["network"]
        agreement: AgreementSection = case.sections["agreement"]
        hidden = network.hidden_widths
        width = f"w{hidden[0]}" if len(set(hidden)) == 1 else "w" + "-".join(map(str, hidden))
        parts = [
            f"L{len(hidden)}",
            width,
            f"o{network.output_dim}",
            "bias" if network.trainable_bias else "nobias",
            network.activation,
            network.parametrization,
            agreement.dtype,
        ]
        return "-".join(parts)

    # ------------------------------------------------------------------ running
    def run(self, case, options: RunOptions) -> Outcome:
        """Check the selected implementation (``--ntk-impl``, else the case's); with none
        selected, check every built-in, so that the default suite tests them all."""
        selected = options.implementation or case.implementation
        if selected is not None:
            return self._run_one(case, options, selected)
        outcomes = {name: self._run_one(case, options, name) for name in BUILTINS}
        merged = Outcome(parameters={}, checks=[])
        for name, outcome in outcomes.items():
            merged.parameters = {**outcome.parameters, "implementation": list(outcomes)}
            for check in outcome.checks:
                check.name = f"[{name}] {check.name}"
                merged.checks.append(check)
            merged.measured[name] = outcome.measured
            merged.reference[name] = outcome.reference
            for key, seconds in outcome.timing.items():
                merged.timing[key] = merged.timing.get(key, 0.0) + seconds
        return merged

    def _run_one(self, case, options: RunOptions, spec: str) -> Outcome:
        network: NetworkSection = case.sections["network"]
        section: AgreementSection = case.sections["agreement"]
        dtype_name = options.dtype or section.dtype
        dtype = resolve_dtype(dtype_name)
        device = resolve_device(options.device if options.device is not None else section.device)
        rtol = section.rtol if section.rtol is not None else DEFAULT_RTOL[dtype_name]
        if dtype_name != section.dtype:
            rtol = max(rtol, DEFAULT_RTOL[dtype_name])
        architecture = network.architecture()
        parameters: dict[str, Any] = {
            "implementation": spec,
            "architecture": asdict(architecture),
            "networks": section.networks,
            "inputs": section.inputs,
            "other_inputs": section.other_inputs,
            "seed": section.seed,
            "dtype": dtype_name,
            "device": str(device),
            "rtol": rtol,
        }
        outcome = Outcome(parameters=parameters, checks=[])
        checks = outcome.checks

        try:
            implementation = get_implementation(spec)
        except ImplementationError as exc:
            checks.append(Check("loads", False, expected="a callable fn(f, params, x1, x2)", detail=str(exc)))
            return outcome
        checks.append(Check("loads", True, expected="a callable fn(f, params, x1, x2)"))

        f = MLP(architecture)
        stacked64 = init_parameters(
            architecture, section.seed, range(section.networks), dtype=torch.float64, device=device,
            draw_dtype=torch.float64,
        )
        generator = torch.Generator().manual_seed(section.seed)
        n0 = architecture.input_dim
        x1_64 = (torch.randn(section.inputs, n0, generator=generator, dtype=torch.float64) / n0**0.5).to(device)
        x2_64 = (torch.randn(section.other_inputs, n0, generator=generator, dtype=torch.float64) / n0**0.5).to(device)
        x1, x2 = x1_64.to(dtype), x2_64.to(dtype)
        num_outputs = architecture.output_dim
        shape_cross = (section.inputs, section.other_inputs) + ((num_outputs, num_outputs) if num_outputs > 1 else ())
        shape_self = (section.inputs, section.inputs) + ((num_outputs, num_outputs) if num_outputs > 1 else ())
        label = f"NTK implementation {implementation.name!r}"

        failures: dict[str, list[str]] = {k: [] for k in ("shape", "dtype", "finite", "agreement", "symmetric", "psd", "fresh", "inputs")}
        errors: list[float] = []
        asymmetry: list[float] = []
        smallest_ratio: list[float] = []
        earlier_refs: list[tuple[int, torch.Tensor]] = []
        earlier_results: list[tuple[int, torch.Tensor]] = []
        time_impl = time_ref = 0.0

        for m in range(section.networks):
            params64 = unstack(stacked64, m)
            # copies: an implementation that writes into its arguments must not corrupt the reference
            params = {name: value.to(dtype, copy=True) for name, value in params64.items()}
            given_x1, given_x2 = x1.clone(), x2.clone()
            start = time.perf_counter()
            try:
                cross = implementation(f, params, given_x1, given_x2)
                own = implementation(f, params, given_x1, given_x1)
            except Exception as exc:  # the user's code: report, never crash the session
                checks.append(Check(
                    "runs", False, expected="a tensor",
                    detail=f"{label} raised {type(exc).__name__}: {exc}{_user_frame(exc)} "
                           f"(network {m} of {section.networks})",
                ))
                return outcome
            time_impl += time.perf_counter() - start
            bad = [(what, r) for what, r in (("K(x1, x2)", cross), ("K(x1, x1)", own)) if not isinstance(r, torch.Tensor)]
            if bad:
                what, r = bad[0]
                checks.append(Check("runs", False, expected="a tensor",
                                    detail=f"{label} returned {type(r).__name__} for {what}, expected a torch.Tensor"))
                return outcome

            changed = [name for name, value in params.items() if not torch.equal(value, params64[name].to(dtype))]
            changed += [name for name, value, x in (("x1", given_x1, x1), ("x2", given_x2, x2)) if not torch.equal(value, x)]
            if changed:
                failures["inputs"].append(f"network {m}: modified its arguments in place: {', '.join(changed)}")

            start = time.perf_counter()
            ref_cross = jacobian_ntk(f, params64, x1_64, x2_64)
            ref_own = jacobian_ntk(f, params64, x1_64, x1_64)
            time_ref += time.perf_counter() - start

            shapes_ok = True
            for what, r, want in (("K(x1, x2)", cross, shape_cross), ("K(x1, x1)", own, shape_self)):
                if tuple(r.shape) != want:
                    shapes_ok = False
                    failures["shape"].append(f"network {m}: {what} has shape {list(r.shape)}, expected {list(want)}")
                if r.dtype != dtype or r.device != device:
                    failures["dtype"].append(
                        f"network {m}: {what} is {r.dtype} on {r.device}, expected {dtype} on {device}"
                    )
                if r.is_floating_point() and not torch.isfinite(r).all():
                    count = int((~torch.isfinite(r)).sum())
                    failures["finite"].append(f"network {m}: {what} has {count} non-finite entries of {r.numel()}")
            if not shapes_ok:
                continue
            cross64, own64 = cross.detach().to(torch.float64), own.detach().to(torch.float64)

            for what, r, ref, xb in (("K(x1, x2)", cross64, ref_cross, x2_64), ("K(x1, x1)", own64, ref_own, x1_64)):
                error = _relative_error(r, ref)
                errors.append(error)
                if not error <= rtol:
                    # the diagnosis costs a reference per parameter group: only for the first failures shown
                    hint = "" if len(failures["agreement"]) >= MAX_DIAGNOSED else _diagnose(
                        r, ref, f=f, params64=params64, x1=x1_64, x2=xb, num_layers=f.num_layers, rtol=rtol,
                        earlier=earlier_refs if what == "K(x1, x2)" else [],
                    )
                    failures["agreement"].append(
                        f"network {m}: {what} relative error {error:.3g} > {rtol:g}; worst entries: "
                        f"{_worst_entries(r, ref)}." + (f" {hint}" if hint else "")
                    )

            n = section.inputs  # K(x1, x1) as the [N1 O, N1 O] matrix of entries (a, i) x (b, j)
            matrix = own64.reshape(n, n, num_outputs, num_outputs).permute(0, 2, 1, 3).reshape(n * num_outputs, -1)
            skew, problem = _check_symmetric(matrix, num_outputs, rtol)
            asymmetry.append(skew)
            if problem:
                failures["symmetric"].append(f"network {m}: {problem}")
            ratio, problem = _check_psd(matrix, rtol)
            if ratio is not None:
                smallest_ratio.append(ratio)
            if problem:
                failures["psd"].append(f"network {m}: {problem}")
            problem = _check_fresh(cross64, ref_cross, earlier_results, earlier_refs, rtol)
            if problem:
                failures["fresh"].append(f"network {m}: {problem}")
            earlier_results.append((m, cross64))
            earlier_refs.append((m, ref_cross))

        def add(name: str, key: str, expected: str, measured: float | None = None, reference: float | None = None):
            problems = failures[key]
            detail = f"{label}: " + " | ".join(problems[:3]) if problems else ""
            if len(problems) > 3:
                detail += f" | ... ({len(problems) - 3} more)"
            checks.append(Check(name, not problems, measured=measured, reference=reference, expected=expected,
                                detail=detail))

        checks.append(Check("runs", True, expected="a tensor"))
        add("shape", "shape", f"{list(shape_cross)} and {list(shape_self)}")
        add("dtype", "dtype", f"{dtype} on {device}")
        add("finite", "finite", "no NaN or infinity")
        if failures["shape"]:
            return self._finish(outcome, errors, asymmetry, smallest_ratio, time_impl, time_ref)
        add("agrees with jacobian", "agreement", f"max|K - K_ref| / max|K_ref| <= {rtol:g}",
            measured=_largest(errors), reference=rtol)
        add("symmetric", "symmetric", f"max|K - K^T| / max|K| <= {rtol:g}",
            measured=_largest(asymmetry), reference=rtol)
        add("positive semi-definite", "psd", f"smallest eigenvalue >= -{rtol:g} x largest",
            measured=min(smallest_ratio) if smallest_ratio else None, reference=-rtol)
        add("fresh parameters", "fresh", "each network's kernel computed from its own parameters")
        add("arguments unchanged", "inputs", "params, x1 and x2 as they were passed")

        if implementation.vmappable:
            checks.append(self._check_vmap(implementation, label, f, stacked64, dtype, x1, x2, earlier_refs, rtol))
        return self._finish(outcome, errors, asymmetry, smallest_ratio, time_impl, time_ref)

    @staticmethod
    def _check_vmap(implementation, label, f, stacked64, dtype, x1, x2, references, rtol) -> Check:
        expected = "under torch.func.vmap over stacked parameters, the same kernels"
        stacked = {name: value.to(dtype) for name, value in stacked64.items()}
        try:
            batched = torch.func.vmap(implementation.function, in_dims=(None, 0, None, None))(f, stacked, x1, x2)
        except Exception as exc:
            return Check("vmap", False, expected=expected,
                         detail=f"{label} sets vmappable = True but fails under torch.func.vmap: "
                                f"{type(exc).__name__}: {exc}{_user_frame(exc)}")
        problems = []
        for m, ref in references:
            if tuple(batched.shape[1:]) != tuple(ref.shape):
                problems.append(f"network {m}: shape {list(batched.shape[1:])}, expected {list(ref.shape)}")
                break
            error = _relative_error(batched[m].detach().to(torch.float64), ref)
            if not error <= rtol:
                problems.append(f"network {m}: relative error {error:.3g} > {rtol:g} under vmap")
        return Check("vmap", not problems, expected=expected,
                     detail=(f"{label} sets vmappable = True but " + "; ".join(problems[:3])) if problems else "")

    @staticmethod
    def _finish(outcome, errors, asymmetry, smallest_ratio, time_impl, time_ref) -> Outcome:
        outcome.measured.update(
            relative_errors=errors,
            max_relative_error=_largest(errors),
            asymmetry=_largest(asymmetry),
            smallest_eigenvalue_ratio=min(smallest_ratio) if smallest_ratio else None,
        )
        outcome.timing.update(implementation_s=time_impl, reference_s=time_ref)
        return outcome


KIND = AgreementKind()
