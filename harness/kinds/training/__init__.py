"""``kind = "training"``: does the NTK stay put during training, phase by phase? (spec, torch-free)

A training case trains S networks (one per seed index) of ``[case.network]`` on real data
(``[case.training]``: scikit-learn's bundled digits by default), computes each network's
empirical NTK on a class-grouped probe set at the checkpoints, and compares the measured
movement of the NTK with the expectations of the network's phase (``[case.expect.ordered]``,
``[case.expect.eoc]``, ``[case.expect.chaotic]``; the phase comes from
:func:`reference.phase_of`). Only the table of the case's own phase applies, so one file
can sweep ``sigma_w2 = [1.0, 2.0, 2.2]`` and state all three phases' expectations.

Three families of checks, each optional (:mod:`harness.kinds.training.run`):

- level checks on the base network at the last checkpoint: ``<quantity>_at_most`` /
  ``<quantity>_at_least`` compare the MEAN over networks with the bound; the mean's
  t-interval is printed. A bound is set in the case file with a margin over a calibrated
  spread measured with OTHER seeds (the case comments say how);
- a depth trend (``[case.depth_trend] depths = [...]``, same width): least squares of
  ``log(quantity)`` on depth over all (network, depth) points with the t-interval of the
  slope; ``depth_slope_above = b`` passes iff the interval lies above b,
  ``depth_slope_not_above = b`` passes iff its lower end is at most b;
- a width scaling (``[case.scaling] width_values = [...]``, ``depth_to_width`` fixed, depth =
  max(1, round(lambda * width))): the exponent alpha of ``quantity ~ A width^alpha`` by least
  squares of log quantity on log width, with its t-interval; ``width_exponent_below = b``
  passes iff the interval lies below b, ``width_exponent_not_below = b`` iff its upper end is
  at least b.

And a fourth, across phases (claim 3 of the paper as it states it):

- a phase comparison (``[case.phases] sigma_w2 = [1.0, 2.0, 2.2]``, instead of the network's
  own ``sigma_w2``): the SAME architecture and training at every listed sigma_w^2, one pytest
  item; for each measure of ``quantities``, the check "``<measure>`` at the last checkpoint is
  smallest in the ordered phase" passes iff, for every non-ordered phase, a one-sided Welch
  t-test on the logs of the per-network values (:func:`harness.training.metrics.welch_ratio_test`)
  puts the ratio ordered / other below 1 at ``level`` (default 0.05). Claim-holds is the
  intersection of those tests, so its size is ``level``: when the ordered phase's value is in
  fact not smaller than some other phase's, the check passes with probability at most
  ``level``. The default measures are the Frobenius relative change
  ``|Theta_T - Theta_0|_F / |Theta_0|_F`` and the paper's own Fig. 4 measure: the change
  ``|r(T) - r(0)|`` of each scale-free ratio r = Theta_c / Theta_d, Theta_n / Theta_d
  (:func:`harness.training.metrics.class_block_ratios`) and its largest excursion
  ``max_t |r(t) - r(0)|`` over the checkpoints. The two kinds of measure can disagree: an NTK
  that grows uniformly has a large relative change and unchanged ratios. Each phase's own
  ``[case.expect.<phase>]`` level bounds apply to its experiment. A measure on which the claim
  is measured not to hold in this regime is declared in ``[case.phases.expected_failures]``
  (measure = "reason with the numbers"): a strict expected failure of that check; the case is
  xfailed when exactly the declared checks fail, xpassed (a failure) when one of them passes,
  and failed when any other check fails.

Every run also checks that training did not diverge (a NaN or infinite loss ends the case
with a failure naming the step and the learning rate).

Level bounds are decided on intervals, not on means: ``<quantity>_at_most = b`` passes iff
the ``confidence`` t-interval of the mean over networks lies at or below b, ``_at_least``
iff it lies at or above b (a one-sided test at ``(1 - confidence) / 2`` that the mean is on
the accepted side). Bounds are never fitted on the runs they check: they come from theory,
or from calibration runs with other seeds recorded in the case file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from harness.cases.schema import FieldError
from harness.cases.sections import NetworkSection, doc
from harness.constants import DATASETS, DTYPE_NAMES, LOSSES, NORMALIZATIONS, OPTIMIZERS
from harness.kinds.base import Kind
from harness.kinds.training.result import TrainingResult

#: Quantities that may be fitted in log space (positive at the last checkpoint).
FITTABLE = ("relative_change", "relative_change_full", "misalignment", "block_ratio", "block_ratio_growth")
#: Quantities a phase comparison may rank (positive; smaller = the NTK moved less, or its class-block
#: structure grew less). The last four are the paper's own measure (its Fig. 4): the change of the
#: scale-free ratios Theta_c / Theta_d and Theta_n / Theta_d between step 0 and the last checkpoint,
#: and their largest excursion over the checkpoints (harness.training.metrics.class_block_ratios).
COMPARABLE = ("relative_change", "relative_change_full", "misalignment", "block_ratio_growth", "class_block_change",
              "off_class_change", "class_block_excursion", "off_class_excursion")
#: What a phase comparison decides by default: claim 3 on the Frobenius relative change and on
#: the paper's Fig. 4 measure, each its own check.
DEFAULT_CLAIM_QUANTITIES = ("relative_change", "class_block_change", "off_class_change", "class_block_excursion",
                            "off_class_excursion")


def checkpoint_steps(steps: int, checkpoints, count: int = 5) -> tuple[int, ...]:
    """The given checkpoints, or ``count`` steps evenly spaced from 0 to ``steps``; 0 and ``steps`` always included."""
    if checkpoints:
        chosen = set(int(t) for t in checkpoints)
    else:
        chosen = set(int(round(t)) for t in np.linspace(0, steps, count))
    chosen |= {0, steps}
    return tuple(sorted(chosen))


@dataclass
class TrainingSection:
    """``[case.training]``: data, optimizer, loss, checkpoints, probe set and networks.

    ``digits`` has 64 inputs and 10 classes; ``teacher_student`` has 32 inputs and ``classes``
    classes. ``[case.network]`` must give ``input_dim`` and ``output_dim`` to match (checked at
    collection): one output per class, MSE against one-hot targets or cross-entropy.
    """

    learning_rate: float = field(metadata=doc("learning rate", min_exclusive=0))
    steps: int = field(metadata=doc("number of parameter updates", min=1))
    optimizer: str = field(default="sgd", metadata=doc("optimizer", choices=OPTIMIZERS))
    momentum: float = field(default=0.0, metadata=doc("SGD momentum (sgd only)", min=0, max_exclusive=1))
    batch_size: int = field(default=64, metadata=doc("minibatch size (>= training set size: full batch)", min=1))
    loss: str = field(default="mse", metadata=doc("mse (one-hot targets) | cross_entropy", choices=LOSSES))
    checkpoints: list[int] = field(default_factory=list, metadata=doc(
        "steps at which the NTK is measured (0 and steps always added); empty: 5 evenly spaced", min=0))
    dataset: str = field(default="digits", metadata=doc("dataset", choices=tuple(DATASETS)))
    normalization: str = field(default="unit_norm", metadata=doc("input normalization", choices=NORMALIZATIONS))
    test_fraction: float = field(default=0.25, metadata=doc("held-out fraction per class", min=0, max_exclusive=1))
    data_seed: int = field(default=0, metadata=doc("seed of the split, the probe set and the teacher", min=0))
    dataset_size: int = field(default=2000, metadata=doc(
        "teacher_student: number of samples drawn; mnist: size of a class-stratified subset", min=2))
    data_path: str | None = field(default=None, metadata=doc(
        "mnist: folder of the IDX files or an .npz (default: $NTK_HARNESS_MNIST)"))
    classes: int = field(default=10, metadata=doc("teacher_student: number of classes", min=2))
    probe_per_class: int = field(default=10, metadata=doc(
        "probe inputs per class (NTK on classes x this); at least 2 for within-class entries", min=2))
    networks: int = field(default=4, metadata=doc("independently initialized and trained networks", min=2))
    seed: int = field(default=0, metadata=doc("run seed; network i uses a seed derived from (seed, i)", min=0))
    eigenvalues: int = field(default=5, metadata=doc("top eigenvalues of the probe NTK recorded", min=1))
    confidence: float = field(default=0.95, metadata=doc("level of every interval", min_exclusive=0, max_exclusive=1))
    dtype: str = field(default="float32", metadata=doc("compute dtype", choices=DTYPE_NAMES))
    device: str = field(default="auto", metadata=doc("auto (CUDA if present, else CPU), cpu, cuda, ..."))
    matrix_checkpoints: list[int] = field(default_factory=list, metadata=doc(
        "steps at which network 0's probe NTK matrix is recorded (for heatmaps; the paper's Fig. 4 shows 0, 100, "
        "500, 2000); each must be a checkpoint", min=0))
    full_blocks: bool = field(default=False, metadata=doc(
        "also compute the full per-output NTK blocks [N, N, O, O] with the case's implementation and record "
        "relative_change_full (O^2 times the contractions; a parameter-sized Jacobian per probe chunk with the "
        "jacobian implementation: minutes per NTK at the paper's size); default: the output trace only, "
        "through the structured path"))

    def validate(self) -> None:
        bad = [t for t in self.checkpoints if t > self.steps]
        if bad:
            raise FieldError("training.checkpoints", f"expected steps between 0 and steps = {self.steps}, got {bad}")
        missing = [t for t in self.matrix_checkpoints if t not in self.checkpoint_steps()]
        if missing:
            raise FieldError("training.matrix_checkpoints", f"expected checkpoints of the case "
                                                            f"{list(self.checkpoint_steps())}, got {missing}")
        if self.momentum and self.optimizer != "sgd":
            raise FieldError("training.momentum", f"applies to optimizer 'sgd' only, got optimizer {self.optimizer!r}")
        if self.dataset == "mnist":
            from harness.training.data import DataError, mnist_path

            try:
                mnist_path(self.data_path)
            except DataError as exc:
                raise FieldError("training.data_path", str(exc)) from None
        if self.normalization == "pixels" and self.dataset == "teacher_student":
            raise FieldError("training.normalization", "pixels applies to image datasets (digits, mnist)")
        smallest = self.smallest_class()
        train = smallest - int(round(smallest * self.test_fraction))
        if train < self.probe_per_class:
            raise FieldError("training.probe_per_class", (
                f"probe set larger than the data: probe_per_class = {self.probe_per_class} needs "
                f"{self.probe_per_class} training samples of each of {self.num_classes()} classes, but dataset "
                f"{self.dataset!r} with test_fraction = {self.test_fraction} has only {train} in its smallest class"))

    def input_dim(self) -> int:
        return DATASETS[self.dataset]["input_dim"]

    def num_classes(self) -> int:
        return DATASETS[self.dataset]["classes"] or self.classes

    def smallest_class(self) -> int:
        """Samples of the smallest class before the split (from :data:`harness.constants.DATASETS`)."""
        known = DATASETS[self.dataset]["smallest_class"]
        if self.dataset == "mnist":   # a stratified subset of `samples` images (smallest class: 9.0%)
            return min(known, int(self.dataset_size * 0.09))
        return known if known is not None else self.dataset_size // self.classes

    def checkpoint_steps(self) -> tuple[int, ...]:
        return checkpoint_steps(self.steps, self.checkpoints)


@dataclass
class DepthTrendSection:
    """``[case.depth_trend]``: the same width at several depths (empty ``depths``: no trend check)."""

    depths: list[int] = field(default_factory=list, metadata=doc("depths L trained at the network's width", min=1))
    quantity: str = field(default="relative_change", metadata=doc("quantity fitted (log) against depth",
                                                                   choices=FITTABLE))

    def validate(self) -> None:
        if self.depths and len(set(self.depths)) < 2:
            raise FieldError("depth_trend.depths", f"expected at least two distinct depths, got {self.depths}")


@dataclass
class ScalingSection:
    """``[case.scaling]``: several widths at a fixed depth-to-width ratio (empty ``width_values``: no fit).

    With ``depth`` given, every width is trained at that fixed depth instead (the
    infinite-width, fixed-depth setting of Jacot et al.: a control in which the NTK must
    freeze as the width grows).
    """

    width_values: list[int] = field(default_factory=list, metadata=doc("values of the hidden width n", min=1))
    depth_to_width: float = field(default=0.125, metadata=doc("lambda = L / n; depth = max(1, round(lambda n))",
                                                                min_exclusive=0))
    depth: int | None = field(default=None, metadata=doc("fixed depth for every width (overrides depth_to_width)",
                                                           min=1))
    quantity: str = field(default="relative_change", metadata=doc("quantity fitted (log-log) against width",
                                                                   choices=FITTABLE))

    def validate(self) -> None:
        if self.width_values and len(set(self.width_values)) < 2:
            raise FieldError("scaling.width_values", f"expected at least two distinct widths, got {self.width_values}")

    def depth_at(self, width: int) -> int:
        if self.depth is not None:
            return self.depth
        return max(1, int(round(self.depth_to_width * width)))

    def describe(self) -> str:
        return f"L={self.depth}" if self.depth is not None else f"lambda={self.depth_to_width:g}"


@dataclass
class PhasesSection:
    """``[case.phases]``: the same network and training at several sigma_w^2, compared (claim 3).

    Give the sigma_w^2 values here and leave ``[case.network] sigma_w2`` out. At least one
    value must be in the ordered phase and one outside it (:func:`reference.phase_of`).
    """

    sigma_w2: list[float] = field(default_factory=list, metadata=doc(
        "weight variances trained with the same architecture and training (empty: no comparison)",
        min_exclusive=0))
    quantities: list[str] = field(default_factory=lambda: list(DEFAULT_CLAIM_QUANTITIES), metadata=doc(
        "measures at the last checkpoint that must each be smallest in the ordered phase (one check each; default: "
        "the Frobenius relative change and the paper's Fig. 4 measure)", choices=COMPARABLE, min_length=1))
    expected_failures: dict = field(default_factory=dict, metadata=doc(
        "measure -> reason: the claim is measured not to hold on that measure in this regime (a strict expected "
        "failure of that check, with the numbers)"))
    level: float = field(default=0.05, metadata=doc(
        "size of the claim test: chance that it passes although the ordered phase's value is not smaller",
        min_exclusive=0, max_exclusive=0.5))
    regime: str = field(default="", metadata=doc(
        "what sets this regime apart, for the report's claim table (e.g. 'SGD 0.5, unit norm')"))

    def validate(self) -> None:
        if self.sigma_w2 and len(set(self.sigma_w2)) != len(self.sigma_w2):
            raise FieldError("phases.sigma_w2", f"expected distinct values, got {self.sigma_w2}")
        if len(set(self.quantities)) != len(self.quantities):
            raise FieldError("phases.quantities", f"expected each measure once, got {self.quantities}")
        for quantity, reason in self.expected_failures.items():
            if quantity not in self.quantities:
                raise FieldError(f"phases.expected_failures.{quantity}",
                                 f"expected one of the measures of phases.quantities {self.quantities}")
            if not isinstance(reason, str) or not reason.strip():
                raise FieldError(f"phases.expected_failures.{quantity}",
                                 f"expected the reason (a non-empty string with the measured numbers), got {reason!r}")


@dataclass
class TrainingNetworkSection(NetworkSection):
    """``[case.network]`` of a training case: as everywhere, except that ``sigma_w2`` is left out
    when ``[case.phases]`` lists several."""

    sigma_w2: float | None = field(default=None, metadata=doc(
        "weight variance sigma_w^2 (W ~ N(0, sigma_w^2 / fan_in)); leave out when [case.phases] gives several",
        min_exclusive=0))


def _bound(text: str):
    return field(default=None, metadata=doc(text))


@dataclass
class PhaseExpectation:
    """What one phase should show; every bound is optional (None: not checked)."""

    relative_change_at_most: float | None = _bound("mean final relative change of the output-trace NTK <= this")
    relative_change_at_least: float | None = _bound("mean final relative change >= this")
    relative_change_full_at_most: float | None = _bound("same for the full per-output NTK")
    relative_change_full_at_least: float | None = _bound("same for the full per-output NTK")
    alignment_at_least: float | None = _bound("mean final alignment (cosine with Theta_0) >= this")
    alignment_at_most: float | None = _bound("mean final alignment <= this")
    block_ratio_growth_at_least: float | None = _bound("mean block_ratio_T / block_ratio_0 >= this")
    block_ratio_growth_at_most: float | None = _bound("mean block_ratio_T / block_ratio_0 <= this")
    train_loss_at_most: float | None = _bound("mean final training loss <= this (the network did train)")
    depth_slope_above: float | None = _bound("depth trend: slope interval of log(quantity) vs depth above this")
    depth_slope_not_above: float | None = _bound("depth trend: slope interval's lower end <= this")
    width_exponent_below: float | None = _bound("width scaling: exponent interval below this")
    width_exponent_not_below: float | None = _bound("width scaling: exponent interval's upper end >= this")


@dataclass
class TrainingExpectation:
    """``[case.expect]`` of a training case: one sub-table per phase, ``[case.expect.ordered]`` etc."""

    ordered: PhaseExpectation = field(default_factory=PhaseExpectation)
    eoc: PhaseExpectation = field(default_factory=PhaseExpectation)
    chaotic: PhaseExpectation = field(default_factory=PhaseExpectation)


#: ``<quantity>_<side>`` bounds of :class:`PhaseExpectation` that compare a final mean.
LEVEL_BOUNDS = {
    f"{quantity}_{side}": (quantity, side)
    for quantity in ("relative_change", "relative_change_full", "alignment", "block_ratio_growth", "train_loss")
    for side in ("at_most", "at_least")
}


def phase_networks(case) -> list[NetworkSection]:
    """The network section of every phase a case trains: the case's own, or one per
    ``[case.phases] sigma_w2`` value (same everything else)."""
    import dataclasses

    network = case.sections.network
    phases: PhasesSection = case.sections.phases
    if not phases.sigma_w2:
        return [network]
    return [dataclasses.replace(network, sigma_w2=value) for value in phases.sigma_w2]


@dataclass
class TrainingSections:
    """The sections of a training case."""

    network: TrainingNetworkSection
    training: TrainingSection
    depth_trend: DepthTrendSection
    scaling: ScalingSection
    phases: PhasesSection
    expect: TrainingExpectation


class TrainingKind(Kind):
    name = "training"
    sections = TrainingSections
    result_type = TrainingResult
    #: computes the full per-output blocks (full_blocks = true); the output trace goes through the
    #: structured path of harness.training.probe
    default_implementation = "jacobian"
    markers = ("training",)
    run_module = "harness.kinds.training.run"

    def validate(self, case) -> None:
        from harness.checks_at_start import MAX_CASE_DEPTH, check_device_key, check_network_size

        network: NetworkSection = case.sections.network
        training: TrainingSection = case.sections.training
        trend: DepthTrendSection = case.sections.depth_trend
        scaling: ScalingSection = case.sections.scaling
        phases: PhasesSection = case.sections.phases
        self._validate_phases(case, network, phases)
        if case.expected_failure and phases.expected_failures:
            raise FieldError("phases.expected_failures", "give the expected failure either for the whole case "
                                                         "(expected_failure) or per measure, not both")
        # every network the case trains, before anything builds its layers: the probe NTK of one
        size = dict(inputs=training.probe_per_class * training.num_classes(), dtype=training.dtype,
                    inputs_key="training.probe_per_class")
        check_network_size(network, **size)
        check_device_key("training.device", training.device)
        for depth in trend.depths:
            check_network_size(network, depth=depth, key="depth_trend.depths", **size)
        for width in scaling.width_values:   # at depth 1 first: then depth_at(width) is a float product
            check_network_size(network, width=width, depth=1, key="scaling.width_values", **size)
            if scaling.depth is None and not scaling.depth_to_width * width <= MAX_CASE_DEPTH:
                raise FieldError("scaling.depth_to_width", (
                    f"expected depth_to_width x width <= {MAX_CASE_DEPTH} hidden layers, got "
                    f"{scaling.depth_to_width!r} x {width}"))
            check_network_size(network, width=width, depth=scaling.depth_at(width), key="scaling.width_values", **size)
        if network.input_dim is None:
            raise FieldError("network.input_dim", f"expected {training.input_dim()} (the input dimension of dataset "
                                                  f"{training.dataset!r}), got nothing")
        if network.input_dim != training.input_dim():
            raise FieldError("network.input_dim", f"expected {training.input_dim()} for dataset "
                                                  f"{training.dataset!r}, got {network.input_dim}")
        if network.output_dim != training.num_classes():
            raise FieldError("network.output_dim", f"expected {training.num_classes()} (one output per class of "
                                                   f"{training.dataset!r}; the {training.loss} loss uses one-hot "
                                                   f"targets), got {network.output_dim}")
        if trend.depths and len(set(network.layer_widths)) > 1:
            raise FieldError("depth_trend.depths", "needs a network of equal hidden widths ('depth' and 'width')")
        if not math.isfinite(training.learning_rate):
            raise FieldError("training.learning_rate", "expected a finite number")
        if not training.full_blocks:
            expect: TrainingExpectation = case.sections.expect
            for phase in ("ordered", "eoc", "chaotic"):
                for key in ("relative_change_full_at_most", "relative_change_full_at_least"):
                    if getattr(getattr(expect, phase), key) is not None:
                        raise FieldError(f"expect.{phase}.{key}", "needs the full per-output blocks: set "
                                                                  "full_blocks = true in [case.training]")
            for section, quantity in (("depth_trend", trend.quantity), ("scaling", case.sections.scaling.quantity),
                                      *(("phases", q) for q in phases.quantities)):
                if quantity == "relative_change_full":
                    raise FieldError(f"{section}.quantity", "relative_change_full needs the full per-output "
                                                            "blocks: set full_blocks = true in [case.training]")

    @staticmethod
    def _validate_phases(case, network, phases: PhasesSection) -> None:
        import reference

        if not phases.sigma_w2:
            if network.sigma_w2 is None:
                raise FieldError("network.sigma_w2", "required key is missing; expected a number > 0 (or several "
                                                     "in [case.phases] sigma_w2)")
            return
        if network.sigma_w2 is not None:
            raise FieldError("network.sigma_w2", "give sigma_w2 either here or as the list [case.phases] sigma_w2, "
                                                 f"not both (got {network.sigma_w2} and {phases.sigma_w2})")
        found = [reference.phase_of(s, network.sigma_b2, network.activation) for s in phases.sigma_w2]
        if "ordered" not in found or all(p == "ordered" for p in found):
            raise FieldError("phases.sigma_w2", f"expected at least one ordered and one other phase, got "
                                                f"{dict(zip(phases.sigma_w2, found))}")
        if case.sections.depth_trend.depths or case.sections.scaling.width_values:
            raise FieldError("phases.sigma_w2", "a phase comparison trains one architecture per phase; "
                                                "put depth trends and width scalings in cases of their own")

    def settings(self, case) -> TrainingSection:
        return case.sections.training

    def phase(self, case) -> str | None:
        network = case.sections.network
        return network.phase if network.sigma_w2 is not None else None

    def expected_failure(self, case) -> str | None:
        """The case's own reason, or the reasons of the measures ``[case.phases] expected_failures``
        names (each on its measure)."""
        reasons = [f"{quantity}: {reason}" for quantity, reason in case.sections.phases.expected_failures.items()]
        return case.expected_failure or ("; ".join(reasons) if reasons else None)

    def case_id(self, case) -> str:
        network: NetworkSection = case.sections.network
        training: TrainingSection = case.sections.training
        phases: PhasesSection = case.sections.phases
        if phases.sigma_w2:
            import dataclasses

            parts = dataclasses.replace(network, sigma_w2=phases.sigma_w2[0]).id_parts(with_input_dim=False)
            parts[parts.index(f"s{phases.sigma_w2[0]:g}")] = "s" + "_".join(f"{s:g}" for s in phases.sigma_w2)
            parts.remove(reference_phase(network, phases.sigma_w2[0]))
            parts.insert(0, "phases")
        else:
            parts = network.id_parts(with_input_dim=False)  # the dataset fixes it
        parts += [f"{training.optimizer}{training.learning_rate:g}", f"T{training.steps}"]
        if training.normalization != "unit_norm":
            parts.append(training.normalization)
        if training.dataset != "digits":
            parts.append(training.dataset)
        return "-".join(parts)


def reference_phase(network: NetworkSection, sigma_w2: float) -> str:
    import reference

    return reference.phase_of(sigma_w2, network.sigma_b2, network.activation)


KIND = TrainingKind()
