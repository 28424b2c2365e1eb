"""``kind = "agreement"``: an NTK implementation agrees exactly with the reference (spec, torch-free).

A case fixes one architecture (``[case.network]``) and draws ``networks`` independently
initialized networks of it (``[case.agreement]``), all evaluated at the same inputs
x1 [N1, n_0] and x2 [N2, n_0]. The selected implementation (``--ntk-impl``, else the
case's ``implementation``; with neither, every built-in in turn, its checks prefixed with
its name) is called on the networks in sequence, with the same network function ``f``
each time, and every result is checked (:mod:`harness.kinds.agreement.run`):

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

from dataclasses import dataclass, field

from harness.cases.schema import FieldError
from harness.cases.sections import NetworkSection, doc
from harness.constants import DTYPE_NAMES
from harness.kinds.base import Kind

#: Agreement tolerance by dtype: max|K - K_ref| / max|K_ref|.
DEFAULT_RTOL = {"float64": 1e-10, "float32": 1e-4}


@dataclass
class AgreementSection:
    """``[case.agreement]``: how many networks, which inputs, which precision."""

    networks: int = field(default=3, metadata=doc("independently initialized networks checked in sequence", min=2))
    inputs: int = field(default=5, metadata=doc("N1, the number of inputs x1", min=1))
    other_inputs: int = field(default=3, metadata=doc("N2, the number of inputs x2 (N2 != N1 exposes transposes)",
                                                      min=1))
    seed: int = field(default=0, metadata=doc("seed of the networks and the inputs", min=0))
    dtype: str = field(default="float64", metadata=doc("dtype of parameters and inputs", choices=DTYPE_NAMES))
    device: str = field(default="auto", metadata=doc("auto (CUDA if present, else CPU), cpu, cuda, ..."))
    rtol: float | None = field(
        default=None, metadata=doc("relative tolerance (default 1e-10 in float64, 1e-4 in float32)", min_exclusive=0))

    def validate(self) -> None:
        if self.inputs == self.other_inputs:
            raise FieldError("agreement.other_inputs", f"expected a count different from inputs ({self.inputs}) "
                                                       "so that a transposed result has the wrong shape")

    def tolerance(self, dtype_name: str) -> float:
        """The case's rtol, or the default of ``dtype_name``; never below the default of a
        dtype that overrides the case's own (``--ntk-dtype float32`` on a float64 case)."""
        rtol = self.rtol if self.rtol is not None else DEFAULT_RTOL[dtype_name]
        if dtype_name != self.dtype:
            rtol = max(rtol, DEFAULT_RTOL[dtype_name])
        return rtol


class AgreementKind(Kind):
    name = "agreement"
    sections = {"network": NetworkSection, "agreement": AgreementSection}
    markers = ("agreement",)
    run_module = "harness.kinds.agreement.run"

    def case_id(self, case) -> str:
        network: NetworkSection = case.sections["network"]
        agreement: AgreementSection = case.sections["agreement"]
        hidden = network.layer_widths
        width = f"w{hidden[0]}" if len(set(hidden)) == 1 else "w" + "-".join(map(str, hidden))
        parts = [f"L{len(hidden)}", width, f"o{network.output_dim}", "bias" if network.trainable_bias else "nobias",
                 network.activation, network.parametrization, agreement.dtype]
        return "-".join(parts)


KIND = AgreementKind()
