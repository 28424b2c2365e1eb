"""``kind = "dispersion"``: the NTK's dispersion at initialization against theory (spec, torch-free).

One case = one architecture. The runner (:mod:`harness.kinds.dispersion.run`) draws
``sampling.networks`` networks, computes the row Theta(x_0, X_j) of each with the selected
NTK implementation (:mod:`harness.montecarlo`), summarizes every entry
(:mod:`harness.statistics`) and checks it against the references the case asks for:

- ``exact``: the exact finite-width law of the NTK.
  * The diagonal Theta(x_0, x_0) of a ReLU network with sigma_b^2 = 0, by its exact O(L)
    law (:class:`reference.ExactLaw`): each statistic in ``expect.statistics`` must fall in
    its calibrated acceptance interval (:func:`reference.acceptance_intervals`; by default the
    verdict is decided from the replicates it needs, :func:`reference.acceptance_decisions`,
    ``--ntk-calibration``) and the goodness-of-fit p-value must exceed its share of the
    false-alarm rate.
  * Every other entry (the off-diagonal ones; all of them for tanh, erf, linear or
    sigma_b^2 > 0), by the exact joint law of the row (:class:`reference.JointLaw`,
    Gaussian conditioning): one exact sample of at least as many rows as networks, then
    per statistic a two-sample permutation test over the entries jointly and a KS test per
    entry (:mod:`reference.two_sample`).
  Bonferroni: alpha is split equally between the families present (the diagonal law, the
  joint law, infinite-width), then between the checks of each family, so a correct
  implementation fails a case by chance with probability at most
  ``expect.false_alarm_rate``.
- ``asymptotic``: the measured dispersion against the n, L -> infinity limit at
  lambda = L / n, within ``expect.tolerance.<phase>`` (relative). Approximate at finite
  size by construction; the result also shows the exact finite-width value, so the
  deviation of the theory itself is visible.
- ``infinite-width``: the mean of each Theta(x_0, X_j) against the infinite-width NTK;
  passes when the mean's t-interval at its share of alpha meets the band
  reference * (1 +- ``expect.mean_tolerance.<phase>``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.cases.schema import FieldError
from harness.cases.sections import InputsSection, NetworkSection, SamplingSection, doc
from harness.constants import PHASES, THEORIES, STATISTICS
from harness.kinds.base import Kind
from harness.kinds.dispersion.result import DispersionResult


@dataclass
class PhaseTolerance:
    """A relative tolerance for each phase; a comment in the case file says why."""

    ordered: float = field(metadata=doc("relative tolerance, ordered phase", min=0))
    eoc: float = field(metadata=doc("relative tolerance, edge of chaos", min=0))
    chaotic: float = field(metadata=doc("relative tolerance, chaotic phase", min=0))

    def for_phase(self, phase: str) -> float:
        assert phase in PHASES
        return getattr(self, phase)


@dataclass
class DispersionExpectation:
    """``[case.expect]`` of a dispersion case: which theories, which statistics, how strict."""

    theories: list[str] = field(
        default_factory=lambda: ["exact"], metadata=doc("theories to check the measurement against", choices=THEORIES,
                                                        min_length=1))
    statistics: list[str] = field(
        default_factory=lambda: list(STATISTICS),
        metadata=doc("statistics checked against the exact law", choices=STATISTICS))
    joint_statistics: list[str] | None = field(
        default=None, metadata=doc("statistics of the other entries compared with the exact joint law by permutation "
                                   "tests (default: the same as statistics)", choices=STATISTICS))
    goodness_of_fit: bool = field(default=True, metadata=doc("KS test of the samples against the exact law"))
    false_alarm_rate: float = field(
        default=1e-3, metadata=doc("probability that a correct NTK fails the case", min_exclusive=0, max_exclusive=1))
    power: bool = field(default=True, metadata=doc(
        "report the smallest scale error Theta -> c Theta the exact-law checks catch with probability 0.9"))
    tolerance: PhaseTolerance | None = field(default=None, metadata=doc("for the asymptotic dispersion"))
    mean_tolerance: PhaseTolerance | None = field(default=None, metadata=doc("for infinite-width means"))

    @property
    def other_statistics(self) -> list[str]:
        """The statistics compared with the exact joint law (``joint_statistics``, else ``statistics``)."""
        return list(self.statistics if self.joint_statistics is None else self.joint_statistics)

    def validate(self) -> None:
        if "asymptotic" in self.theories and self.tolerance is None:
            raise FieldError("expect.tolerance",
                             "the asymptotic theory needs [case.expect.tolerance] with ordered, eoc, chaotic")
        if "infinite-width" in self.theories and self.mean_tolerance is None:
            raise FieldError("expect.mean_tolerance", "the infinite-width theory needs "
                                                      "[case.expect.mean_tolerance] with ordered, eoc, chaotic")
        for key in ("theories", "statistics", "joint_statistics"):
            values = getattr(self, key) or []
            if len(set(values)) != len(values):
                raise FieldError(f"expect.{key}", f"expected each entry once, got {values}")
        if "exact" in self.theories and not (self.statistics or self.goodness_of_fit or self.joint_statistics):
            raise FieldError("expect.statistics",
                             "the exact theory needs at least one statistic or goodness_of_fit = true")


@dataclass
class DispersionSections:
    """The sections of a dispersion case: ``[case.network]``, ``[case.inputs]``, ``[case.sampling]``,
    ``[case.expect]``."""

    network: NetworkSection
    inputs: InputsSection
    sampling: SamplingSection
    expect: DispersionExpectation


class DispersionKind(Kind):
    name = "dispersion"
    markers = ("dispersion",)
    sections = DispersionSections
    result_type = DispersionResult
    run_module = "harness.kinds.dispersion.run"
    #: the layer-wise factorization (fast, no parameter-sized Jacobian), held to the reference
    #: ``jacobian`` entry by entry by the differential check on a subset of the case's networks
    default_implementation = "structured"

    def validate(self, case) -> None:
        from harness.checks_at_start import check_device_key, check_network_size

        network: NetworkSection = case.sections.network
        expect: DispersionExpectation = case.sections.expect
        inputs: InputsSection = case.sections.inputs
        sampling: SamplingSection = case.sections.sampling
        # before anything builds the layers: refuse what no machine could compute
        check_network_size(network, inputs.number_of_inputs(), sampling.dtype,
                           inputs_key="inputs.count" if inputs.kind == "random" else "inputs.inner_products")
        check_device_key("sampling.device", sampling.device)
        if network.output_dim != 1:
            raise FieldError("network.output_dim",
                             f"dispersion cases study scalar outputs; expected 1, got {network.output_dim}")
        smallest_rate = 1e-6   # the calibration draws ~14 / alpha replicate data sets per check (reference.acceptance)
        if expect.false_alarm_rate < smallest_rate:
            raise FieldError("expect.false_alarm_rate", (
                f"expected a value >= {smallest_rate:g} (the calibrated intervals draw about 14 / alpha "
                f"replicate data sets per check), got {expect.false_alarm_rate!r}"))
        exact_ok = network.activation == "relu" and network.sigma_b2 == 0
        if "asymptotic" in expect.theories and not exact_ok:
            raise FieldError("expect.theories",
                             "the asymptotic theory holds for ReLU networks with sigma_b2 = 0 "
                             f"(got activation {network.activation!r}, sigma_b2 {network.sigma_b2}); the exact "
                             "theory (the joint law of every entry) applies")
        if "infinite-width" in expect.theories and network.activation != "relu":
            raise FieldError("expect.theories", "the infinite-width NTK is implemented for ReLU only; "
                                                 f"got activation {network.activation!r}")
        if "asymptotic" in expect.theories and network.parametrization != "standard":
            raise FieldError("expect.theories", "the asymptotic theory is for the standard parametrization")
        input_dim = network.architecture().input_dim
        needed = inputs.directions_needed()
        if needed > input_dim:
            raise FieldError("inputs.inner_products",
                             f"{len(inputs.inner_products)} inputs at distinct angles need input_dim >= {needed}; "
                             f"the network has input_dim {input_dim}")

    def settings(self, case) -> SamplingSection:
        return case.sections.sampling

    def phase(self, case) -> str:
        return case.sections.network.phase

    def case_id(self, case) -> str:
        return "-".join(case.sections.network.id_parts())


KIND = DispersionKind()
