"""``kind = "training"``: does the NTK stay put during training, phase by phase?

A training case trains S seeded networks of ``[case.network]`` on real data
(``[case.training]``: scikit-learn's bundled digits by default), computes each network's
empirical NTK on a class-grouped probe set at the checkpoints, and compares the measured
movement of the NTK with the expectations of the network's phase (``[case.expect.ordered]``,
``[case.expect.eoc]``, ``[case.expect.chaotic]``; the phase comes from
:func:`reference.phase_of`). Only the table of the case's own phase applies, so one file
can sweep ``sigma_w2 = [1.0, 2.0, 2.2]`` and state all three phases' expectations.

Three families of checks, each optional:

- level checks on the base network (``depth``, ``width`` of ``[case.network]``), at the last
  checkpoint: ``<quantity>_at_most`` / ``<quantity>_at_least`` compare the MEAN over seeds
  with the bound; the seed-mean's t-interval is printed. A bound is set in the case file
  with a margin over the calibrated spread (the case comments say how many standard errors),
  which is what bounds the false-alarm rate when seeds or platforms change;
- a depth trend (``[case.depth_trend] depths = [...]``, same width): least squares of
  ``log(quantity)`` on depth over all (seed, depth) points with the t-interval of the slope;
  ``depth_slope_above = b`` passes iff the interval lies above b (significant growth; the
  probability of passing when the true slope is b is at most (1 - confidence)/2),
  ``depth_slope_not_above = b`` passes iff its lower end is at most b (no significant growth;
  false-alarm rate at most (1 - confidence)/2 when the true slope is at most b);
- a width scaling (``[case.scaling] widths = [...]``, ``depth_to_width`` fixed, depth =
  max(1, round(lambda * width))): the exponent alpha of ``quantity ~ A width^alpha`` by least
  squares of log quantity on log width over all (seed, width) points, with its t-interval;
  ``width_exponent_below = b`` passes iff the interval lies below b (the change vanishes with
  width), ``width_exponent_not_below = b`` passes iff its upper end is at least b (not
  significantly below; false-alarm rate at most (1 - confidence)/2 when alpha >= b).

Every run also checks that training did not diverge (a NaN or infinite loss ends the case
with a failure naming the step and the learning rate).

Quantities (see :mod:`harness.training.experiment`): ``relative_change``
``|Theta_T - Theta_0|_F / |Theta_0|_F`` of the output-trace NTK, ``relative_change_full`` (all
output blocks), ``alignment`` (cosine of Theta_T and Theta_0), ``misalignment`` (1 - alignment),
``top_eigenvalue_change``, ``block_ratio`` (within- over between-class mean |entry|),
``block_ratio_growth`` (block_ratio_T / block_ratio_0), ``train_loss``, ``test_loss``,
``test_accuracy``.

Compute dtype float32 by default (``[case.training] dtype``); the probe NTK is chunked over
probe inputs to ``RunOptions.memory_budget_bytes`` (:mod:`harness.training.probe`).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from harness.cases.sections import NetworkSection
from harness.kinds.base import Check, Outcome, RunOptions, resolve_device, resolve_dtype
from harness.networks import Architecture
from harness.ntk import get_implementation
from harness.training import metrics
from harness.training.data import DATASETS, NORMALIZATIONS, DataError, check_probe_fits, load_dataset, raw_data
from harness.training.experiment import QUANTITIES, ExperimentResult, run_experiment
from harness.training.loop import LOSSES, OPTIMIZERS, DivergenceError, TrainingConfig, checkpoint_steps

PHASES = ("ordered", "eoc", "chaotic")
#: Quantities that may be fitted in log space (positive at the last checkpoint).
FITTABLE = ("relative_change", "relative_change_full", "misalignment", "block_ratio", "block_ratio_growth")


def _doc(text: str, **rules):
    return dict(doc=text, **rules)


def phase_of(network: NetworkSection) -> str:
    """``ordered``, ``eoc`` or ``chaotic`` from :func:`reference.phase_of`."""
    from reference import phase_of as reference_phase_of

    return reference_phase_of(network.sigma_w2, network.sigma_b2, network.activation)


@dataclass
class TrainingSection:
    """``[case.training]``: data, optimizer, loss, checkpoints, probe set and seeds.

    ``digits`` has 64 inputs and 10 classes; ``teacher_student`` has 32 inputs and ``classes``
    classes. ``[case.network]`` must give ``input_dim`` and ``output_dim`` to match (checked at
    collection): one output per class, MSE against one-hot targets or cross-entropy.
    """

    learning_rate: float = field(metadata=_doc("learning rate", min_exclusive=0))
    steps: int = field(metadata=_doc("number of parameter updates", min=1))
    optimizer: str = field(default="sgd", metadata=_doc("optimizer", choices=OPTIMIZERS))
    momentum: float = field(default=0.0, metadata=_doc("SGD momentum (sgd only)", min=0, max_exclusive=1))
    batch_size: int = field(default=64, metadata=_doc("minibatch size (>= training set size: full batch)", min=1))
    loss: str = field(default="mse", metadata=_doc("mse (one-hot targets) | cross_entropy", choices=LOSSES))
    checkpoints: list[int] = field(default_factory=list, metadata=_doc(
        "steps at which the NTK is measured (0 and steps always added); empty: 5 evenly spaced", min=0))
    dataset: str = field(default="digits", metadata=_doc("dataset", choices=DATASETS))
    normalization: str = field(default="unit_norm", metadata=_doc("input normalization", choices=NORMALIZATIONS))
    test_fraction: float = field(default=0.25, metadata=_doc("held-out fraction per class", min=0, max_exclusive=1))
    data_seed: int = field(default=0, metadata=_doc("seed of the split, the probe set and the teacher", min=0))
    samples: int = field(default=2000, metadata=_doc("teacher_student: number of samples", min=2))
    classes: int = field(default=10, metadata=_doc("teacher_student: number of classes", min=2))
    probe_per_class: int = field(default=10, metadata=_doc(
        "probe inputs per class (NTK on classes x this); at least 2 for within-class entries", min=2))
    seeds: int = field(default=4, metadata=_doc("independently initialized and trained networks", min=2))
    seed: int = field(default=0, metadata=_doc("run seed; network i uses a seed derived from (seed, i)", min=0))
    eigenvalues: int = field(default=5, metadata=_doc("top eigenvalues of the probe NTK recorded", min=1))
    confidence: float = field(default=0.95, metadata=_doc("level of every interval", min_exclusive=0, max_exclusive=1))
    dtype: str = field(default="float32", metadata=_doc("compute dtype", choices=("float32", "float64")))
    device: str = field(default="auto", metadata=_doc("auto (CUDA if present, else CPU), cpu, cuda, ..."))

    def validate(self) -> None:
        bad = [t for t in self.checkpoints if t > self.steps]
        if bad:
            raise ValueError(f"training.checkpoints: expected steps between 0 and steps = {self.steps}, got {bad}")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"training.momentum: applies to optimizer 'sgd' only, got optimizer {self.optimizer!r}")
        if self.dataset == "digits":
            _, labels = raw_data("digits")
        else:
            labels = np.arange(self.samples) * self.classes // self.samples
        try:
            check_probe_fits(labels, self.test_fraction, self.probe_per_class, self.dataset)
        except DataError as exc:
            raise ValueError(f"training.probe_per_class: {exc}") from None

    def config(self) -> TrainingConfig:
        return TrainingConfig(
            optimizer=self.optimizer, learning_rate=self.learning_rate, steps=self.steps,
            batch_size=self.batch_size, loss=self.loss, momentum=self.momentum,
            checkpoints=checkpoint_steps(self.steps, self.checkpoints),
        )

    def input_dim(self) -> int:
        return 64 if self.dataset == "digits" else 32

    def num_classes(self) -> int:
        return 10 if self.dataset == "digits" else self.classes


@dataclass
class DepthTrendSection:
    """``[case.depth_trend]``: the same width at several depths (empty ``depths``: no trend check)."""

    depths: list[int] = field(default_factory=list, metadata=_doc("depths L trained at the network's width", min=1))
    quantity: str = field(default="relative_change", metadata=_doc("quantity fitted (log) against depth",
                                                                    choices=FITTABLE))

    def validate(self) -> None:
        if self.depths and len(set(self.depths)) < 2:
            raise ValueError(f"depth_trend.depths: expected at least two distinct depths, got {self.depths}")


@dataclass
class ScalingSection:
    """``[case.scaling]``: several widths at a fixed depth-to-width ratio (empty ``widths``: no fit).

    With ``depth`` given, every width is trained at that fixed depth instead (the
    infinite-width, fixed-depth setting of Jacot et al.: a control in which the NTK must
    freeze as the width grows).
    """

    widths: list[int] = field(default_factory=list, metadata=_doc("hidden widths n", min=1))
    depth_to_width: float = field(default=0.125, metadata=_doc("lambda = L / n; depth = max(1, round(lambda n))",
                                                                 min_exclusive=0))
    depth: int | None = field(default=None, metadata=_doc("fixed depth for every width (overrides depth_to_width)",
                                                            min=1))
    quantity: str = field(default="relative_change", metadata=_doc("quantity fitted (log-log) against width",
                                                                    choices=FITTABLE))

    def validate(self) -> None:
        if self.widths and len(set(self.widths)) < 2:
            raise ValueError(f"scaling.widths: expected at least two distinct widths, got {self.widths}")

    def depth_at(self, width: int) -> int:
        if self.depth is not None:
            return self.depth
        return max(1, int(round(self.depth_to_width * width)))

    def describe(self) -> str:
        return f"L={self.depth}" if self.depth is not None else f"lambda={self.depth_to_width:g}"


def _bound(text: str):
    return field(default=None, metadata=_doc(text))


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
class ExpectSection:
    """``[case.expect]`` with one sub-table per phase: ``[case.expect.ordered]`` etc."""

    ordered: PhaseExpectation = field(default_factory=PhaseExpectation)
    eoc: PhaseExpectation = field(default_factory=PhaseExpectation)
    chaotic: PhaseExpectation = field(default_factory=PhaseExpectation)


LEVEL_BOUNDS = {
    f"{quantity}_{side}": (quantity, side)
    for quantity in ("relative_change", "relative_change_full", "alignment", "block_ratio_growth", "train_loss")
    for side in ("at_most", "at_least")
}


def _architecture(network: NetworkSection, depth: int | None = None, width: int | None = None) -> Architecture:
    changes = {}
    if depth is not None or width is not None:
        changes = {"widths": None, "depth": depth or network.num_hidden_layers,
                   "width": width or network.hidden_widths[0]}
    return dataclasses.replace(network, **changes).architecture() if changes else network.architecture()


class TrainingKind:
    name = "training"
    sections = {"network": NetworkSection, "training": TrainingSection, "depth_trend": DepthTrendSection,
                "scaling": ScalingSection, "expect": ExpectSection}
    markers = ("training",)

    # ------------------------------------------------------------ collection
    def validate(self, case) -> None:
        network: NetworkSection = case.sections["network"]
        training: TrainingSection = case.sections["training"]
        if network.input_dim is None:
            raise ValueError(f"network.input_dim: expected {training.input_dim()} (the input dimension of dataset "
                             f"{training.dataset!r}), got nothing")
        if network.input_dim != training.input_dim():
            raise ValueError(f"network.input_dim: expected {training.input_dim()} for dataset {training.dataset!r}, "
                             f"got {network.input_dim}")
        if network.output_dim != training.num_classes():
            raise ValueError(f"network.output_dim: expected {training.num_classes()} (one output per class of "
                             f"{training.dataset!r}; the {training.loss} loss uses one-hot targets), "
                             f"got {network.output_dim}")
        trend: DepthTrendSection = case.sections["depth_trend"]
        if trend.depths and network.widths is not None and len(set(network.widths)) > 1:
            raise ValueError("depth_trend.depths: needs a network of equal hidden widths ('depth' and 'width')")

    def phase(self, network: NetworkSection) -> str:
        return phase_of(network)

    def case_id(self, case) -> str:
        network: NetworkSection = case.sections["network"]
        training: TrainingSection = case.sections["training"]
        parts = network.id_parts(self.phase(network), with_input_dim=False)  # the dataset fixes it
        parts += [f"{training.optimizer}{training.learning_rate:g}", f"T{training.steps}"]
        if training.dataset != "digits":
            parts.append(training.dataset)
        return "-".join(parts)

    # ------------------------------------------------------------ running
    def run(self, case, options: RunOptions) -> Outcome:
        started = time.perf_counter()
        network: NetworkSection = case.sections["network"]
        training: TrainingSection = case.sections["training"]
        trend: DepthTrendSection = case.sections["depth_trend"]
        scaling: ScalingSection = case.sections["scaling"]
        phase = self.phase(network)
        expect: PhaseExpectation = getattr(case.sections["expect"], phase)
        confidence = training.confidence
        device = resolve_device(options.device if options.device is not None else training.device)
        dtype = resolve_dtype(options.dtype if options.dtype is not None else training.dtype)
        implementation = get_implementation(options.implementation or case.implementation or "jacobian")
        dataset = load_dataset(
            training.dataset, normalization=training.normalization, test_fraction=training.test_fraction,
            probe_per_class=training.probe_per_class, data_seed=training.data_seed, samples=training.samples,
            input_dim=training.input_dim(), classes=training.num_classes(),
        )
        config = training.config()
        outcome = Outcome(
            parameters={
                "phase": phase, "sigma_w2": network.sigma_w2, "depth": network.num_hidden_layers,
                "width": network.hidden_widths[0], "output_dim": network.output_dim,
                "optimizer": training.optimizer, "learning_rate": training.learning_rate,
                "steps": training.steps, "batch_size": training.batch_size, "loss": training.loss,
                "dataset": training.dataset, "probe_size": int(dataset.x_probe.shape[0]),
                "seeds": training.seeds, "device": str(device), "dtype": str(dtype).removeprefix("torch."),
                "implementation": implementation.name, "checkpoints": list(config.checkpoints),
            },
            checks=[],
        )
        results: dict[tuple[int, int], ExperimentResult] = {}

        def experiment(depth: int, width: int) -> ExperimentResult:
            key = (depth, width)
            if key not in results:
                arch = _architecture(network, depth, width)
                results[key] = run_experiment(
                    arch, dataset, config, seeds=training.seeds, seed=training.seed,
                    implementation=implementation, memory_budget_bytes=options.memory_budget_bytes,
                    device=device, dtype=dtype, eigenvalues=training.eigenvalues)
            return results[key]

        base_key = (network.num_hidden_layers, network.hidden_widths[0])
        try:
            if network.widths is not None and len(set(network.widths)) > 1:
                base = run_experiment(network.architecture(), dataset, config, seeds=training.seeds,
                                      seed=training.seed, implementation=implementation,
                                      memory_budget_bytes=options.memory_budget_bytes, device=device,
                                      dtype=dtype, eigenvalues=training.eigenvalues)
                results[base_key] = base
            else:
                base = experiment(*base_key)
            self._level_checks(outcome, base, expect, confidence)
            if trend.depths:
                self._trend_check(outcome, [experiment(d, base_key[1]) for d in trend.depths], trend, expect,
                                  confidence)
            if scaling.widths:
                self._scaling_check(outcome, [experiment(scaling.depth_at(w), w) for w in scaling.widths], scaling,
                                    expect, confidence)
            outcome.checks.insert(0, Check("training converged without divergence", True,
                                           expected="finite losses at every step",
                                           detail=f"{len(results)} architectures x {training.seeds} seeds"))
        except DivergenceError as exc:
            outcome.checks.insert(0, Check("training converged without divergence", False, measured=exc.value,
                                           expected="finite losses at every step", detail=str(exc)))
        outcome.extra["experiments"] = [self._series(r) for r in results.values()]
        if base_key in results:
            base = results[base_key]
            outcome.extra["probe_ntk"] = dict(base.probe_ntk, network=0, depth=base.architecture.depth,
                                              width=base.architecture.widths[1])
            outcome.extra["final"] = {}
            for q in QUANTITIES:
                estimate = metrics.mean_interval(base.final(q), confidence)
                outcome.measured[q] = estimate.mean
                outcome.extra["final"][q] = {"mean": estimate.mean, "interval": (estimate.low, estimate.high),
                                             "per_seed": base.final(q), "confidence": confidence}
            outcome.measured["relative_change_interval"] = outcome.extra["final"]["relative_change"]["interval"]
        outcome.timing = {
            "total_seconds": time.perf_counter() - started,
            "training_seconds": sum(r.timing["training_s"] for r in results.values()),
            "ntk_seconds": sum(r.timing["ntk_s"] for r in results.values()),
        }
        return outcome

    # ------------------------------------------------------------ checks
    @staticmethod
    def _series(result: ExperimentResult) -> dict:
        arch = result.architecture
        return {"depth": arch.depth, "width": arch.widths[1], "checkpoints": result.checkpoints,
                "series": result.series, "eigenvalues": result.eigenvalues, "timing": result.timing}

    def _level_checks(self, outcome: Outcome, base: ExperimentResult, expect: PhaseExpectation,
                      confidence: float) -> None:
        for key, (quantity, side) in LEVEL_BOUNDS.items():
            bound = getattr(expect, key, None)
            if bound is None:
                continue
            estimate = metrics.mean_interval(base.final(quantity), confidence)
            passed = estimate.mean <= bound if side == "at_most" else estimate.mean >= bound
            relation = "<=" if side == "at_most" else ">="
            series = [metrics.mean_interval(v, confidence).mean for v in base.series[quantity]]
            outcome.checks.append(Check(
                f"{quantity} {relation} {bound:g} (L={base.architecture.depth}, n={base.architecture.widths[1]})",
                bool(passed), measured=estimate.mean, measured_interval=(estimate.low, estimate.high),
                expected=f"mean over seeds {relation} {bound:g}",
                detail=(f"{quantity} at the last checkpoint: {estimate}; per seed "
                        f"{_fmt_list(base.final(quantity))}; mean per checkpoint {base.checkpoints}: "
                        f"{_fmt_list(series)}"),
            ))

    def _trend_check(self, outcome: Outcome, runs: list[ExperimentResult], trend: DepthTrendSection,
                     expect: PhaseExpectation, confidence: float) -> None:
        if expect.depth_slope_above is None and expect.depth_slope_not_above is None:
            return
        depths, values = _points(runs, trend.quantity, lambda r: r.architecture.depth)
        fit = metrics.least_squares_fit(depths, np.log(values), confidence)
        table = _table(runs, trend.quantity, confidence, lambda r: f"L={r.architecture.depth}")
        outcome.extra["depth_trend"] = {"quantity": trend.quantity, "slope": fit.slope, "interval": fit.interval,
                                        "intercept": fit.intercept}
        if expect.depth_slope_above is not None:
            b = expect.depth_slope_above
            outcome.checks.append(Check(
                f"{trend.quantity} grows with depth (slope of log vs L > {b:g})", bool(fit.interval[0] > b),
                measured=fit.slope, measured_interval=fit.interval,
                expected=f"{confidence:.0%} interval of the slope above {b:g}",
                detail=f"fit of log {trend.quantity} on depth: {fit}; {table}"))
        if expect.depth_slope_not_above is not None:
            b = expect.depth_slope_not_above
            outcome.checks.append(Check(
                f"{trend.quantity} does not grow with depth (slope of log vs L not above {b:g})",
                bool(fit.interval[0] <= b), measured=fit.slope, measured_interval=fit.interval,
                expected=f"{confidence:.0%} interval of the slope reaching down to {b:g} or below",
                detail=f"fit of log {trend.quantity} on depth: {fit}; {table}"))

    def _scaling_check(self, outcome: Outcome, runs: list[ExperimentResult], scaling: ScalingSection,
                       expect: PhaseExpectation, confidence: float) -> None:
        if expect.width_exponent_below is None and expect.width_exponent_not_below is None:
            return
        widths, values = _points(runs, scaling.quantity, lambda r: r.architecture.widths[1])
        fit = metrics.power_law_fit(widths, values, confidence)
        table = _table(runs, scaling.quantity, confidence,
                       lambda r: f"n={r.architecture.widths[1]},L={r.architecture.depth}")
        outcome.extra["width_scaling"] = {"quantity": scaling.quantity, "exponent": fit.slope,
                                          "interval": fit.interval, "depth_to_width": scaling.depth_to_width,
                                          "fixed_depth": scaling.depth}
        where = scaling.describe()
        if expect.width_exponent_below is not None:
            b = expect.width_exponent_below
            outcome.checks.append(Check(
                f"{scaling.quantity} vanishes with width (exponent < {b:g}, {where})", bool(fit.interval[1] < b),
                measured=fit.slope, measured_interval=fit.interval,
                expected=f"{confidence:.0%} interval of the exponent below {b:g}",
                detail=f"power-law fit {scaling.quantity} ~ width^alpha: {fit}; {table}"))
        if expect.width_exponent_not_below is not None:
            b = expect.width_exponent_not_below
            outcome.checks.append(Check(
                f"{scaling.quantity} does not vanish with width (exponent not below {b:g}, {where})",
                bool(fit.interval[1] >= b), measured=fit.slope, measured_interval=fit.interval,
                expected=f"{confidence:.0%} interval of the exponent reaching {b:g} or above",
                detail=f"power-law fit {scaling.quantity} ~ width^alpha: {fit}; {table}"))


def _points(runs, quantity, x_of):
    xs, ys = [], []
    for r in runs:
        values = r.final(quantity)
        xs += [x_of(r)] * len(values)
        ys += values
    ys = np.asarray(ys, dtype=float)
    # A quantity that is exactly 0 for some seed (the NTK did not move at all) cannot be fitted
    # in log space; clamp to the smallest positive float so the fit reports a very steep drop.
    return np.asarray(xs, dtype=float), np.maximum(ys, np.finfo(float).tiny)


def _table(runs, quantity, confidence, label) -> str:
    return "; ".join(f"{label(r)}: {metrics.mean_interval(r.final(quantity), confidence)}" for r in runs)


def _fmt_list(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


KIND = TrainingKind()
