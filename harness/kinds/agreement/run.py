"""Running an agreement case: every selected implementation against the reference, network by
network, call shape by call shape.

:func:`run` builds the :class:`Subject` (the harness MLP of ``[case.network]`` or a user's
model of ``[case.model]``: network functions, parameters, inputs of every call shape),
resolves which implementations to check (the selected one, else every built-in) and calls
:func:`check_implementation` for each; that function calls the implementation on each
network in each call shape, compares with the float64 reference
(:func:`harness.ntk.jacobian.jacobian_ntk`), collects problems per check (:class:`Problems`)
and turns them into :class:`~harness.records.Check` rows. The checks and call shapes are
listed in :mod:`harness.kinds.agreement`; what a disagreement looks like is said by
:mod:`harness.ntk.diagnosis`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.constants import REFERENCE_IMPLEMENTATION
from harness.kinds.agreement import AgreementSection, AgreementSections, ModelSection
from harness.ntk.diagnosis import (check_fresh, check_psd, check_symmetric, diagnose, largest,
                                               relative_error, unsupported_operation, user_frame, worst_entries)
from harness.kinds.base import KindOutcome, Resolution
from harness.networks import MLP, init_parameters, network_seed, unstack
from harness.ntk.jacobian import jacobian_ntk
from harness.ntk.precision import Tolerance, full_precision, reference_float32_error, tolerance
from harness.ntk.registry import BUILTINS, ImplementationError, NTKImplementation, get_implementation
from harness.options import RunOptions
from harness.kinds.agreement.result import AgreementResult, ImplementationAgreement, ModelDescription
from harness.records import Check, Timing

MAX_DIAGNOSED = 3  # failures per case whose cause is looked for (the message shows three)
LOADS = "a callable fn(f, params, x1, x2)"
CHECK_KEYS = ("shape", "dtype", "finite", "agreement", "symmetric", "psd", "fresh", "inputs")


@dataclass
class CallShape:
    """One way of calling the implementation: ``K(xa, xb)``; ``same`` when xb is xa; ``split``:
    the row at which the ``blocks`` shape splits ``xa`` (it computes four calls and assembles them)."""

    name: str
    xa: torch.Tensor
    xb: torch.Tensor
    same: bool = False
    split: int | None = None

    def label(self) -> str:
        if self.name == "self":
            return "K(x1, x1)"
        if self.split is not None:
            return f"K[blocks] (K(x1, x1) assembled from K(x1_a, x1_b), x1 split at row {self.split})"
        return f"K[{self.name}]"


@dataclass
class Subject:
    """What the implementations are checked on: one network function per network (the same
    object for every network of the harness MLP), the parameters of every network stacked in
    float64 (name -> [M, ...]), the call shapes' inputs in float64, and the number of outputs O."""

    functions: list
    stacked64: dict[str, torch.Tensor]
    shapes: list[CallShape]
    num_outputs: int
    num_layers: int | None
    model: ModelDescription | None = None

    @property
    def networks(self) -> int:
        return next(iter(self.stacked64.values())).shape[0]

    def shape(self, name: str) -> CallShape | None:
        return next((s for s in self.shapes if s.name == name), None)


@dataclass
class Problems:
    """Per check, what went wrong on which network (messages), plus the measured numbers."""

    found: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in CHECK_KEYS})
    errors: list[float] = field(default_factory=list)
    asymmetry: list[float] = field(default_factory=list)
    smallest_ratio: list[float] = field(default_factory=list)
    hints: dict[str, list[str]] = field(default_factory=dict)   # a diagnosis -> where it was made
    implementation_seconds: float = 0.0
    reference_seconds: float = 0.0


def run(case, resolution: Resolution, options: RunOptions) -> KindOutcome:
    """Check every implementation of the resolution (the selected one, else every built-in, so that
    the default suite tests them all, with their checks prefixed ``[name]``)."""
    start = time.perf_counter()
    sections: AgreementSections = case.sections
    section = sections.agreement
    device = resolution.torch_device
    if sections.model is not None:
        subject = model_subject(sections.model, section, device, Path(case.source).parent)
    else:
        subject = mlp_subject(sections.network, section, device)
    tolerance = case_tolerance(subject, resolution.dtype, section.case_rtol(resolution.dtype), options.tf32)
    rtol = tolerance.rtol
    outcome = KindOutcome()
    agreements = []
    for spec in resolution.implementation_specs:
        checks, agreement = check_implementation(spec, subject, resolution.torch_dtype, device, rtol)
        if resolution.every_builtin:
            for check in checks:
                check.name = f"[{spec}] {check.name}"
        outcome.checks += checks
        agreements.append(agreement)
    skipped = [a for a in agreements if a.skipped is not None]
    if len(skipped) == len(agreements):
        outcome.skipped = "; ".join(a.skipped for a in skipped)
    network = sections.network
    outcome.result = AgreementResult(
        networks=section.networks, inputs=section.inputs, other_inputs=section.other_inputs, rtol=rtol,
        implementations=agreements, architecture=network.architecture() if network is not None else None,
        model=subject.model, call_shapes=[s.name for s in subject.shapes], tolerance_rule=tolerance.rule,
        reference_float32_error=tolerance.reference_float32_error)
    ntk = sum(a.implementation_seconds + a.reference_seconds for a in agreements)
    outcome.timing = Timing(total_seconds=time.perf_counter() - start, ntk_seconds=ntk)
    return outcome


def case_tolerance(subject: "Subject", dtype_name: str, case_rtol: float | None, tf32: str) -> Tolerance:
    """The case's tolerance (:mod:`harness.ntk.precision`); in float32 without a case rtol, from the
    reference's own float32 error on every network and call shape of the subject."""
    error = None
    if dtype_name == "float32" and case_rtol is None:
        error = max(reference_float32_error(
            subject.functions[m], unstack(subject.stacked64, m),
            [(s.xa, s.xa if s.same else s.xb) for s in subject.shapes if s.split is None])
            for m in range(subject.networks))
    return tolerance(dtype_name, case_rtol=case_rtol, reference_error=error, tf32=tf32)


# ---------------------------------------------------------------------- subjects
def call_shapes(names: list[str], make_inputs, n1: int, n2: int, zero_input: bool) -> list[CallShape]:
    """The inputs of every call shape; ``make_inputs(count)`` draws ``count`` fresh float64 inputs
    (x1, then x2, then x3 for the square shape, in that order, so that x1 and x2 do not depend on
    which shapes are asked for)."""
    x1, x2 = make_inputs(n1), make_inputs(n2)
    x3 = make_inputs(n1)
    if zero_input:
        x1 = x1.clone()
        x1[-1] = 0.0
    shapes = {
        "cross": CallShape("cross", x1, x2),
        "self": CallShape("self", x1, x1, same=True),
        "equal": CallShape("equal", x1, x1.clone()),
        "single": CallShape("single", x1[:1].clone(), x2),
        "square": CallShape("square", x1, x3),
        "containing": CallShape("containing", x1, torch.cat([x2, x1[:2]])),
        "duplicates": CallShape("duplicates", torch.cat([x1[:1], x1[:1], x1[1:]]), x2),
        "row": CallShape("row", x2[0:1], x2),
        "blocks": CallShape("blocks", x1, x1, same=True, split=max(1, n1 // 3)),
    }
    # a split needs two rows
    return [shapes[name] for name in names if not (name == "blocks" and n1 < 2)]


def mlp_subject(network, section: AgreementSection, device: torch.device) -> Subject:
    """The harness MLP of ``[case.network]``: ``section.networks`` networks drawn in float64 from
    ``section.seed``; inputs with i.i.d. N(0, 1/n_0) entries from a generator seeded with
    ``section.seed`` (x1 [N1, n_0] first, then x2 [N2, n_0], then x3)."""
    architecture = network.architecture()
    stacked64 = init_parameters(architecture, section.seed, range(section.networks), dtype=torch.float64,
                                device=device, draw_dtype=torch.float64)
    generator = torch.Generator().manual_seed(section.seed)
    n0 = architecture.input_dim

    def make_inputs(count: int) -> torch.Tensor:
        return (torch.randn(count, n0, generator=generator, dtype=torch.float64) / n0**0.5).to(device)

    f = MLP(architecture)
    shapes = call_shapes(section.call_shapes, make_inputs, section.inputs, section.other_inputs, section.zero_input)
    return Subject(functions=[f] * section.networks, stacked64=stacked64, shapes=shapes,
                   num_outputs=architecture.output_dim, num_layers=f.num_layers)


def model_subject(model: ModelSection, section: AgreementSection, device: torch.device, base_dir: Path) -> Subject:
    """A user's model: network 0 is the factory's draw under ``network_seed(seed, 0)`` and gives
    the fixed tensors (frozen parameters, buffers) of every network; network m's trainable
    parameters are the factory's draw under ``network_seed(seed, m)``. Anything the model does
    wrong (its factory, its forward pass, its inputs) is one line naming the case's model."""
    from harness.models import ModelError

    try:
        return _model_subject(model, section, device, base_dir)
    except ModelError as exc:
        raise ImplementationError(f"[case.model] {exc}") from exc   # the case cannot run: one line


def _model_subject(model: ModelSection, section: AgreementSection, device: torch.device, base_dir: Path) -> Subject:
    from harness.models import ModelFunction, load_factory, make_model, make_model_inputs

    factory = load_factory(model.factory, base_dir)
    modules = [make_model(factory, model.kwargs, seed=network_seed(section.seed, m), dtype=torch.float64,
                          device=device) for m in range(section.networks)]
    f = ModelFunction(modules[0], model.input_shape, parameters=model.parameters, label=model.factory)
    per_network = [ModelFunction(module, model.input_shape, parameters=model.parameters,
                                 label=model.factory).initial_parameters() for module in modules]
    stacked64 = {name: torch.stack([p[name] for p in per_network]) for name in f.parameter_names}
    counter = iter(range(10**6))

    def make_inputs(count: int) -> torch.Tensor:
        return make_model_inputs(model.inputs, model.input_shape, count, seed=section.seed * 1000 + next(counter),
                                 dtype=torch.float64, device=device)

    shapes = call_shapes(section.call_shapes, make_inputs, section.inputs, section.other_inputs, section.zero_input)
    description = ModelDescription(
        factory=model.factory, kwargs=dict(model.kwargs), input_shape=list(model.input_shape), inputs=model.inputs,
        output_dim=f.output_dim, parameter_count=f.parameter_count(),
        frozen_parameters=list(f.frozen_parameter_names), buffers=list(f.buffer_names),
        tied=[list(group) for group in f.tied])
    return Subject(functions=[f] * section.networks, stacked64=stacked64, shapes=shapes, num_outputs=f.output_dim,
                   num_layers=None, model=description)


# ---------------------------------------------------------------------- checks
def check_implementation(spec: str, subject: Subject, dtype: torch.dtype, device: torch.device,
                         rtol: float) -> tuple[list[Check], ImplementationAgreement]:
    """Every check of one implementation on every network and call shape of ``subject``."""
    agreement = ImplementationAgreement(implementation_spec=spec)
    try:
        implementation = get_implementation(spec)
    except ImplementationError as exc:
        return [Check("loads", False, expected=LOADS, detail=str(exc))], agreement
    checks = [Check("loads", True, expected=LOADS)]
    reason = implementation.supports(subject.functions[0]) or _probe(implementation, subject, dtype)
    if reason is not None:
        agreement.skipped = reason
        return checks, agreement
    label = f"NTK implementation {implementation.name!r}"
    shapes = [(s, s.xa.to(dtype), s.xa.to(dtype) if s.same else s.xb.to(dtype)) for s in subject.shapes]
    problems = Problems()
    earlier: Earlier = Earlier(fresh_shape=next((s for s, _, _ in shapes if not s.same), shapes[0][0]).name)
    for m in range(subject.networks):
        params64 = unstack(subject.stacked64, m)
        results = _call_every_shape(implementation, label, subject, m, shapes, params64, dtype, problems, checks)
        if results is None:   # the implementation raised or returned no tensor: reported in checks
            return checks, _finish(agreement, problems)
        _compare_with_reference(results, subject, m, params64, dtype, device, rtol, problems, earlier)
    checks += _verdicts(problems, label, len(shapes), any(s.same for s, _, _ in shapes), dtype, device, rtol)
    if problems.found["shape"] or problems.found["finite"]:
        # the primary check failed: comparing values would only repeat it
        return checks, _finish(agreement, problems)
    if implementation.vmappable and not problems.found["agreement"] and len({id(g) for g in subject.functions}) == 1:
        cross = next(((s, xa, xb) for s, xa, xb in shapes if s.name == earlier.fresh_shape), shapes[0])
        checks.append(check_vmap(implementation, label, subject, dtype, cross[1], cross[2], earlier.references, rtol))
    return checks, _finish(agreement, problems)


def _probe(implementation, subject: Subject, dtype) -> str | None:
    """Why the implementation cannot run this model, from one small call K(x1[:1], x1[:1]) on network
    0: an operation without a rule for its transform (forward AD, vmap) makes it unsupported here,
    a skip with the operation named, never a pass. The reference must support every model: its
    errors, and every other error, are failures of the checks that follow."""
    if implementation.name == REFERENCE_IMPLEMENTATION or not subject.shapes:
        return None
    x = subject.shapes[0].xa[:1].to(dtype)
    params = {name: value.to(dtype, copy=True) for name, value in unstack(subject.stacked64, 0).items()}
    try:
        implementation(subject.functions[0], params, x, x)
    except Exception as exc:  # the user's code: classify, never crash
        missing = unsupported_operation(exc)
        if missing is not None:
            return f"{implementation.name} cannot run this model: {missing} (a probe call K(x1[:1], x1[:1]) raised " \
                   f"{type(exc).__name__})"
    return None


@dataclass
class Earlier:
    """The earlier networks' kernels and references in the call shape checked for freshness."""

    fresh_shape: str
    references: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    results: list[tuple[int, torch.Tensor]] = field(default_factory=list)


def _call_every_shape(implementation, label: str, subject: Subject, m: int, shapes, params64, dtype,
                      problems: Problems, checks: list[Check]) -> dict | None:
    """Network m's kernel in every call shape, on copies of its arguments (an implementation that
    writes into them must not corrupt the reference); None when it raised or returned no tensor."""
    f = subject.functions[m]
    params = {name: value.to(dtype, copy=True) for name, value in params64.items()}
    results = {}
    for shape, xa, xb in shapes:
        given_a = xa.clone()
        given_b = given_a if shape.same else xb.clone()
        if shape.name == "row":   # the paper's call: x1 a view of x2's first row
            given_b = xb.clone()
            given_a = given_b[0:1]
        start = time.perf_counter()
        try:
            result = (_assembled(implementation, f, params, given_a, shape.split) if shape.split is not None
                      else implementation(f, params, given_a, given_b))
        except Exception as exc:  # the user's code: report, never crash the session
            checks.append(Check("runs", False, expected="a tensor",
                                detail=f"{label} raised {type(exc).__name__}: {exc}{user_frame(exc)} "
                                       f"(network {m} of {subject.networks}, {shape.label()})"))
            return None
        problems.implementation_seconds += time.perf_counter() - start
        if not isinstance(result, torch.Tensor):
            checks.append(Check("runs", False, expected="a tensor",
                                detail=f"{label} returned {type(result).__name__} for {shape.label()}, "
                                       "expected a torch.Tensor"))
            return None
        changed = [name for name, value in params.items() if not torch.equal(value, params64[name].to(dtype))]
        changed += [n for n, v, x in (("x1", given_a, xa), ("x2", given_b, xb)) if not torch.equal(v, x)]
        if changed:
            problems.found["inputs"].append(f"network {m}, {shape.label()}: modified its arguments in place: "
                                            f"{', '.join(sorted(set(changed)))}")
        results[shape.name] = (shape, result)
    return results


def _assembled(implementation, f, params, x: torch.Tensor, split: int):
    """K(x, x) from the four calls K(x_a, x_b) on the rows before and after ``split``; a block that
    is not a tensor of the shape [N_a, N_b, ...] its call asks for is returned as it is, for the
    shape and type checks to name."""
    parts = (x[:split], x[split:])
    blocks = [[implementation(f, params, a, b) for b in parts] for a in parts]
    for a, row in zip(parts, blocks):
        for b, block in zip(parts, row):
            if not isinstance(block, torch.Tensor) or tuple(block.shape[:2]) != (a.shape[0], b.shape[0]):
                return block
    try:
        return torch.cat([torch.cat(row, dim=1) for row in blocks], dim=0)
    except RuntimeError:   # blocks of different output layouts: the first block shows the shape
        return blocks[0][0]


def _compare_with_reference(results: dict, subject: Subject, m: int, params64, dtype, device, rtol: float,
                            problems: Problems, earlier: Earlier) -> None:
    """Network m's kernels against the float64 reference: shape, dtype, finiteness, agreement,
    symmetry and positive semi-definiteness, freshness."""
    f = subject.functions[m]
    for name, (shape, result) in results.items():
        xa64, xb64 = shape.xa, (shape.xa if shape.same else shape.xb)
        start = time.perf_counter()
        with full_precision():   # the reference never runs in TF32
            reference = jacobian_ntk(f, params64, xa64, xb64)
        problems.reference_seconds += time.perf_counter() - start
        block = (subject.num_outputs,) * 2 if subject.num_outputs > 1 else ()
        want = (xa64.shape[0], xb64.shape[0]) + block
        if not _shape_dtype_finite(problems, m, shape.label(), result, want, dtype, device):
            continue
        result64 = result.detach().to(torch.float64)
        fresh = name == earlier.fresh_shape
        _agreement(problems, m, shape.label(), result64, reference, f, subject, params64, xa64, xb64, rtol,
                   earlier.references if fresh else [])
        if shape.same:
            _matrix_checks(problems, m, result64, xa64.shape[0], subject.num_outputs, rtol)
        if fresh:
            problem = check_fresh(result64, reference, earlier.results, earlier.references, rtol)
            if problem:
                problems.found["fresh"].append(f"network {m}: {problem}")
            earlier.results.append((m, result64))
            earlier.references.append((m, reference))


def _verdicts(problems: Problems, label: str, shapes: int, any_same: bool, dtype, device, rtol: float) -> list[Check]:
    """One check per kind of problem, with the first three found and each diagnosis once."""
    checks = []

    def add(check_name: str, key: str, expected: str, measured: float | None = None, target: float | None = None):
        found = problems.found[key]
        detail = f"{label}: " + " | ".join(found[:3]) if found else ""
        if len(found) > 3:
            detail += f" | ... ({len(found) - 3} more)"
        if key == "agreement":   # each diagnosis once, on its own line, with where it was made
            detail += "".join(f"\n{hint} ({', '.join(where)})" for hint, where in problems.hints.items())
        checks.append(Check(check_name, not found, measured=measured, target=target, expected=expected,
                            detail=detail))

    checks.append(Check("runs", True, expected="a tensor"))
    add("shape", "shape", "[N1, N2] for one output, [N1, N2, O, O] for O outputs, in every call shape")
    add("dtype", "dtype", f"{dtype} on {device}")
    add("finite", "finite", "no NaN or infinity")
    if problems.found["shape"] or problems.found["finite"]:
        return checks
    add("agrees with jacobian", "agreement", f"max|K - K_ref| / max|K_ref| <= {rtol:g} in {shapes} call shapes",
        measured=largest(problems.errors), target=rtol)
    if any_same:
        add("symmetric", "symmetric", f"max|K - K^T| / max|K| <= {rtol:g}", measured=largest(problems.asymmetry),
            target=rtol)
        add("positive semi-definite", "psd", f"smallest eigenvalue >= -{rtol:g} x largest",
            measured=min(problems.smallest_ratio) if problems.smallest_ratio else None, target=-rtol)
    add("fresh parameters", "fresh", "each network's kernel computed from its own parameters")
    add("arguments unchanged", "inputs", "params, x1 and x2 as they were passed")
    return checks


def _shape_dtype_finite(problems: Problems, m: int, what: str, result, want, dtype, device) -> bool:
    """Record shape, dtype/device and finiteness problems; False when the values cannot be compared."""
    if tuple(result.shape) != tuple(want):
        problems.found["shape"].append(f"network {m}: {what} has shape {list(result.shape)}, expected {list(want)}")
        return False
    if result.dtype != dtype or result.device != device:
        problems.found["dtype"].append(f"network {m}: {what} is {result.dtype} on {result.device}, "
                                       f"expected {dtype} on {device}")
    if result.is_floating_point() and not torch.isfinite(result).all():
        bad = (~torch.isfinite(result)).nonzero().tolist()
        kind = "NaN" if torch.isnan(result).any() else "infinity"
        shown = ", ".join("[" + ", ".join(map(str, index)) + "]" for index in bad[:3])
        problems.found["finite"].append(f"network {m}: {what} returned {kind} at entries {shown}"
                                        + (f" and {len(bad) - 3} more" if len(bad) > 3 else ""))
        return False
    return True


def _agreement(problems: Problems, m: int, what: str, result, reference, f, subject: Subject, params64, xa, xb,
               rtol, earlier) -> None:
    error = relative_error(result, reference)
    problems.errors.append(error)
    if error <= rtol:
        return
    # the diagnosis costs a reference per parameter group: only for the first failures shown
    hint = "" if len(problems.found["agreement"]) >= MAX_DIAGNOSED else diagnose(
        result, reference, f=f, params64=params64, x1=xa, x2=xb, num_layers=subject.num_layers, rtol=rtol,
        earlier=earlier)
    problems.found["agreement"].append(
        f"network {m}: {what} relative error {error:.3g} > {rtol:g}; worst entries: "
        f"{worst_entries(result, reference)}.")
    if hint:
        problems.hints.setdefault(hint, []).append(f"network {m} {what}")


def _matrix_checks(problems: Problems, m: int, own64, n: int, outputs: int, rtol: float) -> None:
    """K(x1, x1) as the [N1 O, N1 O] matrix of entries (a, i) x (b, j): symmetric and PSD."""
    matrix = own64.reshape(n, n, outputs, outputs).permute(0, 2, 1, 3).reshape(n * outputs, -1)
    skew, problem = check_symmetric(matrix, outputs, rtol)
    problems.asymmetry.append(skew)
    if problem:
        problems.found["symmetric"].append(f"network {m}: {problem}")
    ratio, problem = check_psd(matrix, rtol)
    if ratio is not None:
        problems.smallest_ratio.append(ratio)
    if problem:
        problems.found["psd"].append(f"network {m}: {problem}")


def check_vmap(implementation: NTKImplementation, label: str, subject: Subject, dtype, x1, x2, references,
               rtol: float) -> Check:
    expected = "under torch.func.vmap over stacked parameters, the same kernels"
    stacked = {name: value.to(dtype, copy=True) for name, value in subject.stacked64.items()}
    try:
        batched = torch.func.vmap(implementation.function, in_dims=(None, 0, None, None))(
            subject.functions[0], stacked, x1, x2)
    except Exception as exc:
        return Check("vmap", False, expected=expected,
                     detail=f"{label} sets vmappable = True but fails under torch.func.vmap: "
                            f"{type(exc).__name__}: {exc}{user_frame(exc)}")
    problems = []
    for m, ref in references:
        if tuple(batched.shape[1:]) != tuple(ref.shape):
            problems.append(f"network {m}: shape {list(batched.shape[1:])}, expected {list(ref.shape)}")
            break
        error = relative_error(batched[m].detach().to(torch.float64), ref)
        if not error <= rtol:
            problems.append(f"network {m}: relative error {error:.3g} > {rtol:g} under vmap")
    return Check("vmap", not problems, expected=expected,
                 detail=(f"{label} sets vmappable = True but " + "; ".join(problems[:3])) if problems else "")


def _finish(agreement: ImplementationAgreement, problems: Problems) -> ImplementationAgreement:
    agreement.relative_errors = list(problems.errors)
    agreement.max_relative_error = largest(problems.errors)
    agreement.asymmetry = largest(problems.asymmetry)
    agreement.smallest_eigenvalue_ratio = min(problems.smallest_ratio) if problems.smallest_ratio else None
    agreement.implementation_seconds = problems.implementation_seconds
    agreement.reference_seconds = problems.reference_seconds
    return agreement
