"""Running an agreement case: every selected implementation against the reference, network by network.

:func:`run` resolves which implementations to check (the selected one, else every
built-in) and calls :func:`check_implementation` for each; that function calls the
implementation on each network, compares with the float64 reference
(:func:`harness.ntk.jacobian.jacobian_ntk`) and collects problems per check
(:class:`Problems`), then turns them into :class:`~harness.records.Check` rows. The checks
are listed in :mod:`harness.kinds.agreement`; what a disagreement looks like is said by
:mod:`harness.kinds.agreement.diagnosis`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from harness.devices import resolve_device, resolve_dtype
from harness.kinds.agreement import AgreementSection
from harness.kinds.agreement.diagnosis import (check_fresh, check_psd, check_symmetric, diagnose, largest,
                                               relative_error, user_frame, worst_entries)
from harness.kinds.base import KindOutcome
from harness.networks import MLP, init_parameters, unstack
from harness.ntk.jacobian import jacobian_ntk
from harness.ntk.registry import BUILTINS, ImplementationError, NTKImplementation, get_implementation
from harness.options import RunOptions
from harness.records import AgreementResult, Check, ImplementationAgreement, Timing

MAX_DIAGNOSED = 3  # failures per case whose cause is looked for (the message shows three)
LOADS = "a callable fn(f, params, x1, x2)"


@dataclass
class Subject:
    """What the implementations are checked on: the network function ``f``, the parameters of
    every network stacked in float64 (name -> [M, ...]), the inputs in float64 and the number
    of outputs O."""

    f: object
    stacked64: dict[str, torch.Tensor]
    x1_64: torch.Tensor
    x2_64: torch.Tensor
    num_outputs: int
    num_layers: int

    @property
    def networks(self) -> int:
        return next(iter(self.stacked64.values())).shape[0]


@dataclass
class Problems:
    """Per check, what went wrong on which network (messages), plus the measured numbers."""

    found: dict[str, list[str]] = field(default_factory=lambda: {
        k: [] for k in ("shape", "dtype", "finite", "agreement", "symmetric", "psd", "fresh", "inputs")})
    errors: list[float] = field(default_factory=list)
    asymmetry: list[float] = field(default_factory=list)
    smallest_ratio: list[float] = field(default_factory=list)
    implementation_seconds: float = 0.0
    reference_seconds: float = 0.0


def run(case, options: RunOptions) -> KindOutcome:
    """Check the selected implementation (``--ntk-impl``, else the case's); with none selected,
    check every built-in, so that the default suite tests them all (checks prefixed ``[name]``)."""
    start = time.perf_counter()
    section: AgreementSection = case.sections["agreement"]
    dtype_name = options.dtype or section.dtype
    device = resolve_device(options.device if options.device is not None else section.device)
    rtol = section.tolerance(dtype_name)
    subject = mlp_subject(case.sections["network"], section, device)
    selected = options.implementation or case.implementation
    specs = [selected] if selected is not None else list(BUILTINS)
    outcome = KindOutcome(implementation=selected or ",".join(specs), device=str(device), dtype=dtype_name,
                          seed=section.seed)
    agreements = []
    for spec in specs:
        checks, agreement = check_implementation(spec, subject, resolve_dtype(dtype_name), device, rtol)
        if selected is None:
            for check in checks:
                check.name = f"[{spec}] {check.name}"
        outcome.checks += checks
        agreements.append(agreement)
    outcome.result = AgreementResult(
        networks=section.networks, inputs=section.inputs, other_inputs=section.other_inputs, rtol=rtol,
        implementations=agreements, architecture=case.sections["network"].architecture(),
        call_shapes=["K(x1, x2)", "K(x1, x1)"])
    ntk = sum(a.implementation_seconds + a.reference_seconds for a in agreements)
    outcome.timing = Timing(total_seconds=time.perf_counter() - start, ntk_seconds=ntk)
    return outcome


def mlp_subject(network, section: AgreementSection, device: torch.device) -> Subject:
    """The harness MLP of ``[case.network]``: ``section.networks`` networks drawn in float64 from
    ``section.seed``, inputs x1 [N1, n_0] and x2 [N2, n_0] with i.i.d. N(0, 1/n_0) entries
    from a generator seeded with ``section.seed``."""
    architecture = network.architecture()
    stacked64 = init_parameters(architecture, section.seed, range(section.networks), dtype=torch.float64,
                                device=device, draw_dtype=torch.float64)
    generator = torch.Generator().manual_seed(section.seed)
    n0 = architecture.input_dim
    x1 = (torch.randn(section.inputs, n0, generator=generator, dtype=torch.float64) / n0**0.5).to(device)
    x2 = (torch.randn(section.other_inputs, n0, generator=generator, dtype=torch.float64) / n0**0.5).to(device)
    f = MLP(architecture)
    return Subject(f=f, stacked64=stacked64, x1_64=x1, x2_64=x2, num_outputs=architecture.output_dim,
                   num_layers=f.num_layers)


def check_implementation(spec: str, subject: Subject, dtype: torch.dtype, device: torch.device,
                         rtol: float) -> tuple[list[Check], ImplementationAgreement]:
    """Every check of one implementation on every network of ``subject``."""
    agreement = ImplementationAgreement(implementation=spec)
    try:
        implementation = get_implementation(spec)
    except ImplementationError as exc:
        return [Check("loads", False, expected=LOADS, detail=str(exc))], agreement
    checks = [Check("loads", True, expected=LOADS)]
    label = f"NTK implementation {implementation.name!r}"
    x1, x2 = subject.x1_64.to(dtype), subject.x2_64.to(dtype)
    n1, n2, outputs = x1.shape[0], x2.shape[0], subject.num_outputs
    block = (outputs, outputs) if outputs > 1 else ()
    shape_cross, shape_self = (n1, n2) + block, (n1, n1) + block
    problems = Problems()
    earlier_refs: list[tuple[int, torch.Tensor]] = []
    earlier_results: list[tuple[int, torch.Tensor]] = []

    for m in range(subject.networks):
        params64 = unstack(subject.stacked64, m)
        # copies: an implementation that writes into its arguments must not corrupt the reference
        params = {name: value.to(dtype, copy=True) for name, value in params64.items()}
        given_x1, given_x2 = x1.clone(), x2.clone()
        start = time.perf_counter()
        try:
            cross = implementation(subject.f, params, given_x1, given_x2)
            own = implementation(subject.f, params, given_x1, given_x1)
        except Exception as exc:  # the user's code: report, never crash the session
            checks.append(Check("runs", False, expected="a tensor",
                                detail=f"{label} raised {type(exc).__name__}: {exc}{user_frame(exc)} "
                                       f"(network {m} of {subject.networks})"))
            return checks, _finish(agreement, problems)
        problems.implementation_seconds += time.perf_counter() - start
        bad = [(what, r) for what, r in (("K(x1, x2)", cross), ("K(x1, x1)", own)) if not isinstance(r, torch.Tensor)]
        if bad:
            what, r = bad[0]
            checks.append(Check("runs", False, expected="a tensor",
                                detail=f"{label} returned {type(r).__name__} for {what}, expected a torch.Tensor"))
            return checks, _finish(agreement, problems)

        changed = [name for name, value in params.items() if not torch.equal(value, params64[name].to(dtype))]
        changed += [name for name, value, x in (("x1", given_x1, x1), ("x2", given_x2, x2)) if not torch.equal(value, x)]
        if changed:
            problems.found["inputs"].append(f"network {m}: modified its arguments in place: {', '.join(changed)}")

        start = time.perf_counter()
        ref_cross = jacobian_ntk(subject.f, params64, subject.x1_64, subject.x2_64)
        ref_own = jacobian_ntk(subject.f, params64, subject.x1_64, subject.x1_64)
        problems.reference_seconds += time.perf_counter() - start

        if not _shapes_dtypes_finite(problems, m, ((("K(x1, x2)", cross, shape_cross), ("K(x1, x1)", own, shape_self))),
                                     dtype, device):
            continue
        cross64, own64 = cross.detach().to(torch.float64), own.detach().to(torch.float64)
        for what, r, ref, xb in (("K(x1, x2)", cross64, ref_cross, subject.x2_64),
                                 ("K(x1, x1)", own64, ref_own, subject.x1_64)):
            _agreement(problems, m, what, r, ref, subject, params64, xb, rtol,
                       earlier_refs if what == "K(x1, x2)" else [])
        _matrix_checks(problems, m, own64, n1, outputs, rtol)
        problem = check_fresh(cross64, ref_cross, earlier_results, earlier_refs, rtol)
        if problem:
            problems.found["fresh"].append(f"network {m}: {problem}")
        earlier_results.append((m, cross64))
        earlier_refs.append((m, ref_cross))

    def add(name: str, key: str, expected: str, measured: float | None = None, reference: float | None = None):
        found = problems.found[key]
        detail = f"{label}: " + " | ".join(found[:3]) if found else ""
        if len(found) > 3:
            detail += f" | ... ({len(found) - 3} more)"
        checks.append(Check(name, not found, measured=measured, reference=reference, expected=expected,
                            detail=detail))

    checks.append(Check("runs", True, expected="a tensor"))
    add("shape", "shape", f"{list(shape_cross)} and {list(shape_self)}")
    add("dtype", "dtype", f"{dtype} on {device}")
    add("finite", "finite", "no NaN or infinity")
    if problems.found["shape"]:
        return checks, _finish(agreement, problems)
    add("agrees with jacobian", "agreement", f"max|K - K_ref| / max|K_ref| <= {rtol:g}",
        measured=largest(problems.errors), reference=rtol)
    add("symmetric", "symmetric", f"max|K - K^T| / max|K| <= {rtol:g}", measured=largest(problems.asymmetry),
        reference=rtol)
    add("positive semi-definite", "psd", f"smallest eigenvalue >= -{rtol:g} x largest",
        measured=min(problems.smallest_ratio) if problems.smallest_ratio else None, reference=-rtol)
    add("fresh parameters", "fresh", "each network's kernel computed from its own parameters")
    add("arguments unchanged", "inputs", "params, x1 and x2 as they were passed")
    if implementation.vmappable:
        checks.append(check_vmap(implementation, label, subject, dtype, x1, x2, earlier_refs, rtol))
    return checks, _finish(agreement, problems)


def _shapes_dtypes_finite(problems: Problems, m: int, results, dtype, device) -> bool:
    """Record shape, dtype/device and finiteness problems; False when a shape is wrong."""
    shapes_ok = True
    for what, r, want in results:
        if tuple(r.shape) != want:
            shapes_ok = False
            problems.found["shape"].append(f"network {m}: {what} has shape {list(r.shape)}, expected {list(want)}")
        if r.dtype != dtype or r.device != device:
            problems.found["dtype"].append(f"network {m}: {what} is {r.dtype} on {r.device}, expected {dtype} on {device}")
        if r.is_floating_point() and not torch.isfinite(r).all():
            count = int((~torch.isfinite(r)).sum())
            problems.found["finite"].append(f"network {m}: {what} has {count} non-finite entries of {r.numel()}")
    return shapes_ok


def _agreement(problems: Problems, m: int, what: str, result, reference, subject: Subject, params64, xb, rtol,
               earlier) -> None:
    error = relative_error(result, reference)
    problems.errors.append(error)
    if error <= rtol:
        return
    # the diagnosis costs a reference per parameter group: only for the first failures shown
    hint = "" if len(problems.found["agreement"]) >= MAX_DIAGNOSED else diagnose(
        result, reference, f=subject.f, params64=params64, x1=subject.x1_64, x2=xb, num_layers=subject.num_layers,
        rtol=rtol, earlier=earlier)
    problems.found["agreement"].append(
        f"network {m}: {what} relative error {error:.3g} > {rtol:g}; worst entries: "
        f"{worst_entries(result, reference)}." + (f" {hint}" if hint else ""))


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
        batched = torch.func.vmap(implementation.function, in_dims=(None, 0, None, None))(subject.f, stacked, x1, x2)
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
