"""The typed result of an agreement case and its table in a report.

An agreement case checks one or more NTK implementations entry by entry against the
reference (``jacobian`` in float64) on several networks of one architecture (the harness's
MLP, or a user's model built by a factory). Per implementation it keeps the largest
relative error max|K - K_ref| / max|K_ref| over all networks and call shapes, the
asymmetry of K(x1, x1), the smallest eigenvalue ratio, the time spent, or why it was
skipped (an implementation that does not support the model).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.architecture import Architecture
from harness.records.base import KindResult
from harness.records.serialize import Record
from harness.records.format import fmt, verdict


@dataclass
class ModelDescription(Record):
    """A user's model: the factory that builds it, its keyword arguments, the input shape and
    generator, and the parameters that count (trainable ones; buffers held fixed)."""

    factory: str
    kwargs: dict = field(default_factory=dict)
    input_shape: list[int] = field(default_factory=list)
    inputs: str = "gaussian"
    output_dim: int = 1
    parameter_count: int = 0
    frozen_parameters: list[str] = field(default_factory=list)
    buffers: list[str] = field(default_factory=list)
    tied: list[list[str]] = field(default_factory=list)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.factory}({args})"


@dataclass
class ImplementationAgreement(Record):
    """One implementation's agreement with the reference; ``skipped`` says why it did not run."""

    implementation_spec: str
    max_relative_error: float | None = None
    asymmetry: float | None = None
    smallest_eigenvalue_ratio: float | None = None
    relative_errors: list[float] = field(default_factory=list)
    implementation_seconds: float = 0.0
    reference_seconds: float = 0.0
    skipped: str | None = None


@dataclass
class AgreementResult(KindResult):
    """What an agreement case checked: the network (an MLP ``architecture`` or a user ``model``),
    how many networks, the input counts N1 and N2, the call shapes, the tolerance, and one
    :class:`ImplementationAgreement` per implementation."""

    kind = "agreement"

    networks: int
    inputs: int
    other_inputs: int
    rtol: float
    implementations: list[ImplementationAgreement]
    architecture: Architecture | None = None
    model: ModelDescription | None = None
    call_shapes: list[str] = field(default_factory=list)
    #: how rtol was decided (harness.ntk.precision), and in float32 the reference's own float32
    #: error on the case's networks that it was derived from
    tolerance_rule: str = ""
    reference_float32_error: float | None = None
    #: the reference ran with TF32 off (harness.ntk.precision.full_precision): always
    reference_tf32: bool = False

    @property
    def max_relative_error(self) -> float | None:
        values = [i.max_relative_error for i in self.implementations if i.max_relative_error is not None]
        if not values:
            return None
        return float("nan") if any(v != v for v in values) else max(values)

    def describe(self) -> list[tuple[str, object]]:
        if self.model is not None:
            network = [("model", self.model.describe()), ("input_shape", self.model.input_shape),
                       ("parameters", self.model.parameter_count)]
        else:
            a = self.architecture
            network = [("input_dim", a.input_dim), ("hidden_widths", list(a.hidden_widths)),
                       ("output_dim", a.output_dim), ("sigma_w2", a.sigma_w2), ("sigma_b2", a.sigma_b2),
                       ("activation", a.activation), ("trainable_bias", a.trainable_bias),
                       ("parametrization", a.parametrization), ("parameters", a.parameter_count())]
        return network + [("networks", self.networks), ("inputs", self.inputs), ("other_inputs", self.other_inputs),
                          ("rtol", self.rtol)]

    @classmethod
    def table(cls, records) -> tuple[list[str], list[list[str]]]:
        headers = ["case", "network", "implementations", "dtype", "device", "checks passed", "max relative error",
                   "rtol", "verdict"]
        rows = []
        for record in records:
            r: AgreementResult = record.result
            checks = record.checks
            if r is None:
                rows.append([record.case, "", record.implementation_spec or "", record.dtype or "", record.device or "",
                             f"{sum(c.passed for c in checks)}/{len(checks)}", "", "", verdict(record)])
                continue
            if r.model is not None:
                network = f"{r.model.describe()}, {r.model.parameter_count} parameters"
            else:
                a = r.architecture
                network = f"L={a.depth}, n={'-'.join(map(str, a.hidden_widths))}, O={a.output_dim}, " \
                          f"{a.parameter_count()} parameters"
            ran = [i.implementation_spec for i in r.implementations if i.skipped is None]
            skipped = [f"{i.implementation_spec} (skipped)" for i in r.implementations if i.skipped is not None]
            rows.append([record.case, network, ", ".join(ran + skipped), record.dtype or "", record.device or "",
                         f"{sum(c.passed for c in checks)}/{len(checks)}", fmt(r.max_relative_error, 3),
                         fmt(r.rtol), verdict(record)])
        return headers, rows
