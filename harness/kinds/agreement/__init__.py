"""``kind = "agreement"``: an NTK implementation agrees exactly with the reference (spec, torch-free).

A case fixes one network: the harness's fully connected network (``[case.network]``) or a
user's model built by a factory (``[case.model]``). It draws ``networks`` independently
initialized networks of it (``[case.agreement]``) and evaluates them at seeded inputs
x1 [N1, ...] and x2 [N2, ...] in every call shape of ``call_shapes``:

=============  ==============================================================
cross          K(x1, x2) (N1 != N2 exposes a transposed result)
self           K(x1, x1), the same tensor passed twice
equal          K(x1, x1'), x1' an equal but different tensor
single         K(x1[:1], x2): N1 = 1
square         K(x1, x3): N1 = N2 with x1 != x3
containing     K(x1, [x2; x1[:2]]): the second batch contains rows of the first
duplicates     K([x1[0]; x1[0]; x1[1:]], x2): a batch with a duplicated row
row            K(x2[0:1], x2): the paper's own call, one row against the set it comes
               from (x1 is a view of x2's first row)
blocks         K(x1, x1) assembled from the four blocks K(x1_a, x1_b) of an uneven split
               of x1 (at row max(1, N1 // 3)): batched equals unbatched
=============  ==============================================================

(``zero_input = true`` makes the last row of x1 exactly zero, so that pre-activations are
exactly 0 where biases are: the activation's derivative at 0 matters there.)

The selected implementation (``--ntk-implementation``, else the case's ``implementation``; with
neither, every built-in in turn, its checks prefixed with its name) is called on the
networks in sequence with the same network function ``f``, and every result is checked
(:mod:`harness.kinds.agreement.run`):

- ``loads``: the implementation resolves to a callable ``fn(f, params, x1, x2)``;
- ``runs``: it returns a tensor without raising;
- ``shape``: [N1, N2] for one output, [N1, N2, O, O] for O outputs;
- ``dtype``: the dtype and device of the inputs;
- ``finite``: no NaN or infinity;
- ``agrees with jacobian``: relative error ``max|K - K_ref| / max|K_ref| <= rtol`` in every
  call shape, where ``K_ref`` is :func:`harness.ntk.jacobian.jacobian_ntk` evaluated in
  float64 on the same (upcast) parameters and inputs; a failure names the call shape, the
  worst entries and, where one explains the difference, the parameter group that is
  missing (a single parameter, a layer or module, every bias, the readout), a constant
  factor, transposed outputs or another network's parameters;
- ``symmetric``: ``K(x1, x1)[a, b, i, j] = K(x1, x1)[b, a, j, i]`` to rtol;
- ``positive semi-definite``: the [N1 O, N1 O] matrix of ``K(x1, x1)`` has smallest
  eigenvalue ``>= -rtol * (largest |eigenvalue|)``;
- ``fresh parameters``: no network's result equals an earlier network's kernel;
- ``arguments unchanged``: params, x1 and x2 are as they were passed;
- ``vmap``: only for an implementation that sets ``vmappable = True``: under
  ``torch.func.vmap`` over the stacked parameters of all networks it gives the same kernels.

An implementation that states it does not support the network (``supports(f)``, e.g.
``structured`` on a user's model) is skipped with its reason, never passed.

Tolerances (``rtol``): 1e-10 in float64 and 1e-4 in float32 unless the case says
otherwise. These checks are exact (no randomness in the verdict): a correct
implementation passes on any seed; the seeds only choose which networks are tested.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from harness.cases.schema import FieldError
from harness.cases.sections import NetworkSection, doc
from harness.constants import DTYPE_NAMES, MODEL_INPUTS
from harness.kinds.agreement.result import AgreementResult
from harness.kinds.base import Kind


#: The call shapes an implementation is checked in (module docstring).
CALL_SHAPES = ("cross", "self", "equal", "single", "square", "containing", "duplicates", "row", "blocks")

#: scikit-learn's bundled digits (the inputs of a user's model may be drawn from them).
DIGITS_IMAGES = 1797



@dataclass
class AgreementSection:
    """``[case.agreement]``: how many networks, which inputs and call shapes, which precision."""

    networks: int = field(default=3, metadata=doc("independently initialized networks checked in sequence", min=2))
    inputs: int = field(default=5, metadata=doc("N1, the number of inputs x1 (1: no blocks call shape)", min=1))
    other_inputs: int = field(default=3, metadata=doc("N2, the number of inputs x2 (N2 != N1 exposes transposes)",
                                                      min=1))
    call_shapes: list[str] = field(default_factory=lambda: list(CALL_SHAPES),
                                   metadata=doc("call shapes checked", choices=CALL_SHAPES, min_length=1))
    zero_input: bool = field(default=False, metadata=doc("the last row of x1 is exactly zero"))
    seed: int = field(default=0, metadata=doc("seed of the networks and the inputs", min=0))
    dtype: str = field(default="float64", metadata=doc("dtype of parameters and inputs", choices=DTYPE_NAMES))
    device: str = field(default="auto", metadata=doc("auto (CUDA if present, else CPU), cpu, cuda, ..."))
    rtol: float | None = field(
        default=None, metadata=doc("relative tolerance in the case's own dtype (default: 1e-10 in float64; in float32 "
                                   "max(8 x the reference's own float32 error on the case's networks, 1e-6))",
                                   min_exclusive=0))

    def validate(self) -> None:
        if len(set(self.call_shapes)) != len(self.call_shapes):
            raise FieldError("agreement.call_shapes", f"expected each call shape once, got {self.call_shapes}")

    def case_rtol(self, dtype_name: str) -> float | None:
        """The case's own rtol when the case runs in its own dtype (not under --ntk-dtype of another)."""
        return self.rtol if dtype_name == self.dtype else None


@dataclass
class ModelSection:
    """``[case.model]``: a user's model instead of the harness's MLP.

    ``factory`` is ``package.module:function`` (importable, or a module found next to the
    case file or in a folder above it) or ``path/to/file.py:function`` relative to the case
    file; it is called with ``kwargs`` and must return a ``torch.nn.Module``. The counted
    parameters are every trainable parameter (``requires_grad``), or those matching the
    glob patterns of ``parameters``; frozen parameters and buffers (BatchNorm running
    statistics) are held fixed. Networks differ in their trainable parameters (network m
    is the factory's draw under seed ``network_seed(seed, m)``); the fixed tensors are
    those of network 0.
    """

    factory: str = field(metadata=doc("package.module:function or path/to/file.py:function returning an nn.Module"))
    input_shape: list[int] = field(metadata=doc("the shape of one input, e.g. [1, 8, 8]", min=1, min_length=1))
    kwargs: dict = field(default_factory=dict, metadata=doc("keyword arguments of the factory"))
    inputs: str = field(default="gaussian", metadata=doc("gaussian | digits", choices=MODEL_INPUTS))
    parameters: list[str] | None = field(default=None, metadata=doc(
        "glob patterns of the trainable parameters that count (default: all of them)", min_length=1))

    def validate(self) -> None:
        module, sep, function = self.factory.partition(":")
        if not sep or not module or not function:
            raise FieldError("model.factory", f"expected 'package.module:function' or 'path/to/file.py:function', "
                                              f"got {self.factory!r}")
        if self.inputs == "digits" and math.prod(self.input_shape) != 64:
            raise FieldError("model.input_shape", f"digits are 8x8 images (64 values); got input_shape "
                                                  f"{self.input_shape}")


@dataclass
class AgreementSections:
    """The sections of an agreement case: the harness MLP ``[case.network]`` or a user's model
    ``[case.model]`` (exactly one), and ``[case.agreement]``."""

    network: NetworkSection | None
    model: ModelSection | None
    agreement: AgreementSection


class AgreementKind(Kind):
    name = "agreement"
    sections = AgreementSections
    result_type = AgreementResult
    markers = ("agreement",)
    run_module = "harness.kinds.agreement.run"
    default_implementation = None   # every built-in in turn
    load_implementations = False    # a failure to load is the check "loads"

    def settings(self, case) -> AgreementSection:
        return case.sections.agreement

    def validate(self, case) -> None:
        network, model = case.sections.network, case.sections.model
        section = case.sections.agreement
        if model is not None and model.inputs == "digits" and max(section.inputs, section.other_inputs) > DIGITS_IMAGES:
            raise FieldError("agreement.inputs", f"digits has {DIGITS_IMAGES} images; inputs {section.inputs} and "
                                                 f"other_inputs {section.other_inputs} asked")
        if (network is None) == (model is None):
            raise FieldError("network", "give exactly one of [case.network] (the harness's MLP) and [case.model] "
                                        "(a model factory)")
        section: AgreementSection = case.sections.agreement
        from harness.checks_at_start import check_device_key

        check_device_key("agreement.device", section.device)
        if network is not None:
            from harness.checks_at_start import check_network_size

            # the largest call (x1 against x2 with x1's rows appended), the reference in float64; from
            # the section's numbers, before anything builds the layers (depth = 10**12 fails at once)
            count = section.inputs + max(section.inputs, section.other_inputs) + 2
            check_network_size(network, count, "float64", inputs_key="agreement.inputs")

    def case_id(self, case) -> str:
        section: AgreementSection = case.sections.agreement
        model = case.sections.model
        if model is not None:
            name = model.factory.rsplit(":", 1)[1]
            args = "-".join(f"{k}{v}" for k, v in sorted(model.kwargs.items()) if isinstance(v, (int, float, str)))
            return "-".join(p for p in (name, args, model.inputs, section.dtype) if p)
        network: NetworkSection = case.sections.network
        hidden = network.layer_widths
        width = f"w{hidden[0]}" if len(set(hidden)) == 1 else "w" + "-".join(map(str, hidden))
        parts = [f"L{len(hidden)}", width, f"o{network.output_dim}", "bias" if network.trainable_bias else "nobias",
                 network.activation, network.parametrization, section.dtype]
        if network.sigma_w2 != 2.0:
            parts.insert(2, f"s{network.sigma_w2:g}")
        if section.zero_input:
            parts.append("zero")
        defaults = {f.name: f.default for f in dataclasses.fields(AgreementSection)}
        if (section.inputs, section.other_inputs) != (defaults["inputs"], defaults["other_inputs"]):
            parts.append(f"N{section.inputs}x{section.other_inputs}")
        return "-".join(parts)


KIND = AgreementKind()
