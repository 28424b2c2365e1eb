"""Running a training case: train the networks, then the level, depth-trend, width-scaling and phase checks.

Data flow: case -> dataset (:mod:`harness.training.data`) -> one experiment per architecture
(:func:`harness.training.experiment.run_experiment`: training plus the probe NTK at every
checkpoint; one per phase for a phase comparison) -> the check families (:func:`level_checks`,
:func:`trend_check`, :func:`scaling_check`, :func:`phase_check`, described in
:mod:`harness.kinds.training`) -> :class:`TrainingResult`.

The probe NTK's output trace goes through the structured path for the harness's MLP
(:func:`harness.training.probe.probe_trace_ntk`); the case's implementation (default
``jacobian``) computes the full per-output blocks when ``full_blocks = true``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from harness.kinds.base import KindOutcome, Resolution
from harness.kinds.training import (LEVEL_BOUNDS, DepthTrendSection, PhaseExpectation, PhasesSection, ScalingSection,
                                    TrainingSection, TrainingSections, phase_networks)
from harness.options import RunOptions
from harness.records import Check, Interval, Timing
from harness.kinds.training.result import (ExperimentSeries, Fit, MeasureClaim, PhaseComparison, PhaseValue, ProbeNTK,
                                      RatioTestResult, TrainingResult)
from harness.training import metrics
from harness.training.data import load_dataset
from harness.training.experiment import QUANTITIES, ExperimentResult, run_experiment
from harness.training.loop import DivergenceError, TrainingConfig

def training_config(training: TrainingSection) -> TrainingConfig:
    return TrainingConfig(optimizer=training.optimizer, learning_rate=training.learning_rate, steps=training.steps,
                          batch_size=training.batch_size, loss=training.loss, momentum=training.momentum,
                          checkpoints=training.checkpoint_steps())


@dataclass
class Experiments:
    """Every architecture a case trains, each once: (sigma_w2, depth, width) -> its experiment."""

    dataset: object
    config: TrainingConfig
    training: TrainingSection
    resolution: Resolution
    options: RunOptions
    results: dict = field(default_factory=dict)

    def get(self, section, depth: int | None = None, width: int | None = None) -> ExperimentResult:
        architecture = section.architecture(depth=depth, width=width)
        key = self.key(section, depth, width)
        if key not in self.results:
            training, resolution = self.training, self.resolution
            self.results[key] = run_experiment(
                architecture, self.dataset, self.config, networks=training.networks, seed=resolution.seed,
                implementation=resolution.implementation, memory_budget_bytes=self.options.memory_budget_bytes,
                device=resolution.torch_device, dtype=resolution.torch_dtype, eigenvalues=training.eigenvalues,
                full_blocks=training.full_blocks, matrix_checkpoints=tuple(training.matrix_checkpoints))
        return self.results[key]

    @staticmethod
    def key(section, depth: int | None = None, width: int | None = None) -> tuple:
        if depth is None:
            return (section.sigma_w2, "base")
        return (section.sigma_w2, depth, width or section.layer_widths[0])


def run(case, resolution: Resolution, options: RunOptions) -> KindOutcome:
    """Train every architecture the case needs, then the level, phase, depth-trend and width checks."""
    started = time.perf_counter()
    sections: TrainingSections = case.sections
    training = sections.training
    dataset = load_dataset(
        training.dataset, normalization=training.normalization, test_fraction=training.test_fraction,
        probe_per_class=training.probe_per_class, data_seed=training.data_seed, dataset_size=training.dataset_size,
        input_dim=training.input_dim(), classes=training.num_classes(), data_path=training.data_path,
    )
    experiments = Experiments(dataset, training_config(training), training, resolution, options)
    computed_by = "structured (output trace)" + (f", {resolution.implementation.name} (full blocks)"
                                                 if training.full_blocks else "")
    outcome = KindOutcome()
    network = sections.network
    base_shape = (network.depth_count, network.layer_widths[0]) if len(set(network.layer_widths)) == 1 else ()
    phase_sections = phase_networks(case)
    fits: dict = {}
    try:
        outcome.checks += _checks(sections, phase_sections, base_shape, experiments, fits)
        outcome.checks.insert(0, Check("training converged without divergence", True,
                                       expected="finite losses at every step",
                                       detail=f"{len(experiments.results)} architectures x {training.networks} networks"))
    except DivergenceError as exc:
        outcome.checks.insert(0, Check("training converged without divergence", False, measured=exc.value,
                                       expected="finite losses at every step", detail=str(exc)))
    phase_keys = {experiments.key(s, *base_shape) for s in phase_sections} if sections.phases.sigma_w2 else set()
    result = TrainingResult(
        architecture=phase_sections[0].architecture(), optimizer=training.optimizer,
        learning_rate=training.learning_rate, steps=training.steps, batch_size=training.batch_size,
        loss=training.loss, dataset=training.dataset, normalization=training.normalization,
        probe_size=int(dataset.x_probe.shape[0]), networks=training.networks,
        checkpoints=list(experiments.config.checkpoints),
        experiments=[_series(r) for key, r in experiments.results.items() if key not in phase_keys],
        depth_trend=fits.get("depth_trend"), width_scaling=fits.get("width_scaling"), regime=sections.phases.regime,
        phases=fits.get("phases"), computed_by=computed_by)
    _own_network(result, experiments.results.get(experiments.key(phase_sections[0], *base_shape)),
                 training.confidence)
    outcome.result = result
    outcome.timing = Timing(total_seconds=time.perf_counter() - started,
                            training_seconds=sum(r.timing["training_s"] for r in experiments.results.values()),
                            ntk_seconds=sum(r.timing["ntk_s"] for r in experiments.results.values()))
    return outcome


def _checks(sections: TrainingSections, phase_sections, base_shape: tuple, experiments: Experiments,
            fits: dict) -> list[Check]:
    """The level checks of every phase, the phase comparison, the depth trend and the width scaling;
    the fits and the comparison go into ``fits``. Raises DivergenceError."""
    confidence = sections.training.confidence
    network, phases, trend, scaling = sections.network, sections.phases, sections.depth_trend, sections.scaling
    checks, bases = [], []
    for section in phase_sections:
        base = experiments.get(section, *base_shape)
        bases.append(base)
        expect: PhaseExpectation = getattr(sections.expect, section.phase)
        checks += level_checks(base, expect, confidence, label=f"{section.phase}, " if len(phase_sections) > 1 else "")
    if phases.sigma_w2:
        found, fits["phases"] = phase_check(bases, [s.phase for s in phase_sections], phases, confidence)
        checks += found
    expect = getattr(sections.expect, network.phase) if network.sigma_w2 is not None else None
    if trend.depths:
        found, fits["depth_trend"] = trend_check(
            [experiments.get(network, d, base_shape[1]) for d in trend.depths], trend, expect, confidence)
        checks += found
    if scaling.width_values:
        found, fits["width_scaling"] = scaling_check(
            [experiments.get(network, scaling.depth_at(w), w) for w in scaling.width_values], scaling, expect,
            confidence)
        checks += found
    return checks


def _own_network(result: TrainingResult, own: ExperimentResult | None, confidence: float) -> None:
    """The case's own network: its probe NTK before and after, and every quantity's final mean."""
    if own is None:
        return
    result.probe_ntk = ProbeNTK(labels=own.probe_ntk["labels"], initial=own.probe_ntk.get("initial", []),
                                final=own.probe_ntk.get("final", []), depth=own.architecture.depth,
                                width=own.architecture.widths[1])
    for q in QUANTITIES:
        if q in own.series and own.series[q]:
            result.final[q] = metrics.mean_interval(own.final(q), confidence)
            result.per_network[q] = list(own.final(q))


def _series(result: ExperimentResult, cls=ExperimentSeries, **extra) -> ExperimentSeries:
    a = result.architecture
    return cls(depth=a.depth, width=a.widths[1], checkpoints=list(result.checkpoints), series=result.series,
               eigenvalues=result.eigenvalues, sigma_w2=a.sigma_w2, training_seconds=result.timing["training_s"],
               ntk_seconds=result.timing["ntk_s"], train_loss_per_step=result.train_loss_per_step,
               test_loss_per_step=result.test_loss_per_step, ntk_matrices=result.ntk_matrices,
               probe_labels=list(result.probe_ntk.get("labels", [])), **extra)


def level_checks(base: ExperimentResult, expect: PhaseExpectation, confidence: float, label: str = "") -> list[Check]:
    """Each ``<quantity>_at_most`` / ``_at_least`` bound of the phase against the t-interval of the
    final mean: ``_at_most`` passes iff the whole interval is at or below the bound, ``_at_least``
    iff it is at or above it (each a one-sided test at ``(1 - confidence) / 2``)."""
    checks = []
    for key, (quantity, side) in LEVEL_BOUNDS.items():
        bound = getattr(expect, key, None)
        if bound is None:
            continue
        values = base.final(quantity)
        estimate = metrics.mean_interval(values, confidence)
        low, high = estimate.interval
        passed = high <= bound if side == "at_most" else low >= bound
        relation = "<=" if side == "at_most" else ">="
        end = "upper" if side == "at_most" else "lower"
        series = [metrics.mean_interval(v, confidence).value for v in base.series[quantity]]
        checks.append(Check(
            f"{label}{quantity} {relation} {bound:g} (L={base.architecture.depth}, n={base.architecture.widths[1]})",
            bool(passed), measured=estimate.value, measured_interval=estimate.interval,
            expected=f"{end} end of the {confidence:.0%} interval of the mean over networks {relation} {bound:g}",
            detail=(f"{quantity} at the last checkpoint: {metrics.describe(estimate, len(values))}; per network "
                    f"{_fmt_list(values)}; mean per checkpoint {base.checkpoints}: {_fmt_list(series)}"),
        ))
    return checks


def phase_check(bases: list[ExperimentResult], phase_names: list[str], phases: PhasesSection,
                confidence: float) -> tuple[list[Check], PhaseComparison]:
    """Claim 3 on every measure of ``phases.quantities``: each at the last checkpoint is smallest
    in the ordered phase (one check per measure, :func:`measure_claim`)."""
    values = [_series(base, PhaseValue, phase=phase) for base, phase in zip(bases, phase_names)]
    checks, claims = [], []
    for quantity in phases.quantities:
        check, claim = measure_claim(bases, phase_names, quantity, phases, confidence)
        checks.append(check)
        claims.append(claim)
    return checks, PhaseComparison(level=phases.level, regime=phases.regime, values=values, claims=claims)


def measure_claim(bases: list[ExperimentResult], phase_names: list[str], quantity: str, phases: PhasesSection,
                  confidence: float) -> tuple[Check, MeasureClaim]:
    """Claim 3 on one measure: ``quantity`` at the last checkpoint is smallest in the ordered phase.

    For every (ordered, other) pair, a one-sided Welch test on logs at ``phases.level``
    (:func:`harness.training.metrics.welch_ratio_test`); the claim holds iff the ordered value
    is significantly smaller than every other phase's (an intersection-union test of size
    ``level``). With several ordered sigma_w^2, each of them must be smaller than every other phase.
    """
    level = phases.level
    estimates, per_network = [], []
    for base in bases:
        final = list(base.final(quantity))
        positive = [v for v in final if v > 0]
        estimates.append(metrics.geometric_mean_interval(positive, confidence) if len(positive) == len(final)
                         else metrics.mean_interval(final, confidence))
        per_network.append(final)
    tests, lines = [], []
    for o, ordered in enumerate(phase_names):
        if ordered != "ordered":
            continue
        for k, other in enumerate(phase_names):
            if other == "ordered":
                continue
            test = metrics.welch_ratio_test(_positive(per_network[o]), _positive(per_network[k]), level)
            verdict = "smaller" if test.smaller else ("larger" if test.larger else "not resolved")
            sigma_o, sigma_k = bases[o].architecture.sigma_w2, bases[k].architecture.sigma_w2
            tests.append(RatioTestResult(ordered_sigma_w2=sigma_o, other_sigma_w2=sigma_k, other_phase=other,
                                         ratio=test.ratio, lower=test.lower, upper=test.upper, p_value=test.p_value,
                                         degrees_of_freedom=test.degrees_of_freedom, verdict=verdict))
            lines.append(f"ordered (sigma_w2 = {sigma_o:g}) / {other} (sigma_w2 = {sigma_k:g}): {test} -> "
                         f"ordered {verdict}")
    holds = all(t.verdict == "smaller" for t in tests)
    reason = phases.expected_failures.get(quantity)
    claim = MeasureClaim(quantity=quantity, values=estimates, per_network=per_network, tests=tests, holds=holds,
                         expected_failure=reason)
    table = "; ".join(f"{phase} (sigma_w2 = {base.architecture.sigma_w2:g}): {estimate} over {len(values)} networks, "
                      f"per network {_fmt_list(values)}"
                      for phase, base, estimate, values in zip(phase_names, bases, estimates, per_network))
    worst = max(tests, key=lambda t: t.upper)
    check = Check(
        f"claim 3: {quantity} smallest in the ordered phase" + (f" ({phases.regime})" if phases.regime else ""),
        bool(holds), measured=worst.ratio, measured_interval=(worst.lower, worst.upper),
        expected=(f"ordered / other ratio of geometric means below 1 for every other phase (one-sided Welch test on "
                  f"logs at level {level:g} each; false 'holds' rate <= {level:g})"),
        level=level, expected_failure=reason,
        detail=f"at the last checkpoint ({bases[0].checkpoints[-1]} steps): {table}. Tests: " + "; ".join(lines))
    return check, claim


def _positive(values):
    # A network whose NTK did not move at all (exactly 0) cannot enter a test on logs; the
    # smallest positive float stands for it (a change of 0 is smaller than anything).
    return [max(v, np.finfo(float).tiny) for v in values]


def trend_check(runs: list[ExperimentResult], trend: DepthTrendSection, expect: PhaseExpectation,
                confidence: float) -> tuple[list[Check], Fit | None]:
    """The slope of log(quantity) against depth, against the phase's bounds; and the fit."""
    if expect is None or expect.depth_slope_above is None and expect.depth_slope_not_above is None:
        return [], None
    depths, values = _points(runs, trend.quantity, lambda r: r.architecture.depth)
    fit = metrics.least_squares_fit(depths, np.log(values), confidence)
    table = _table(runs, trend.quantity, confidence, lambda r: f"L={r.architecture.depth}")
    fitted = Fit(trend.quantity, fit.slope, Interval(*fit.interval), fit.intercept, fit.points,
                               "log(quantity) = intercept + slope * depth")
    checks = []
    if expect.depth_slope_above is not None:
        b = expect.depth_slope_above
        checks.append(Check(
            f"{trend.quantity} grows with depth (slope of log vs L > {b:g})", bool(fit.interval[0] > b),
            measured=fit.slope, measured_interval=fit.interval,
            expected=f"{confidence:.0%} interval of the slope above {b:g}",
            detail=f"fit of log {trend.quantity} on depth: {fit}; {table}"))
    if expect.depth_slope_not_above is not None:
        b = expect.depth_slope_not_above
        checks.append(Check(
            f"{trend.quantity} does not grow with depth (slope of log vs L not above {b:g})",
            bool(fit.interval[0] <= b), measured=fit.slope, measured_interval=fit.interval,
            expected=f"{confidence:.0%} interval of the slope reaching down to {b:g} or below",
            detail=f"fit of log {trend.quantity} on depth: {fit}; {table}"))
    return checks, fitted


def scaling_check(runs: list[ExperimentResult], scaling: ScalingSection, expect: PhaseExpectation,
                  confidence: float) -> tuple[list[Check], Fit | None]:
    """The exponent of quantity ~ width^alpha at fixed lambda (or fixed depth), against the bounds; and the fit."""
    if expect is None or expect.width_exponent_below is None and expect.width_exponent_not_below is None:
        return [], None
    widths, values = _points(runs, scaling.quantity, lambda r: r.architecture.widths[1])
    fit = metrics.power_law_fit(widths, values, confidence)
    table = _table(runs, scaling.quantity, confidence, lambda r: f"n={r.architecture.widths[1]},L={r.architecture.depth}")
    fitted = Fit(scaling.quantity, fit.slope, Interval(*fit.interval), fit.intercept, fit.points,
                                 f"log(quantity) = intercept + exponent * log(width), {scaling.describe()}")
    where = scaling.describe()
    checks = []
    if expect.width_exponent_below is not None:
        b = expect.width_exponent_below
        checks.append(Check(
            f"{scaling.quantity} vanishes with width (exponent < {b:g}, {where})", bool(fit.interval[1] < b),
            measured=fit.slope, measured_interval=fit.interval,
            expected=f"{confidence:.0%} interval of the exponent below {b:g}",
            detail=f"power-law fit {scaling.quantity} ~ width^alpha: {fit}; {table}"))
    if expect.width_exponent_not_below is not None:
        b = expect.width_exponent_not_below
        checks.append(Check(
            f"{scaling.quantity} does not vanish with width (exponent not below {b:g}, {where})",
            bool(fit.interval[1] >= b), measured=fit.slope, measured_interval=fit.interval,
            expected=f"{confidence:.0%} interval of the exponent reaching {b:g} or above",
            detail=f"power-law fit {scaling.quantity} ~ width^alpha: {fit}; {table}"))
    return checks, fitted


def _points(runs, quantity, x_of):
    xs, ys = [], []
    for r in runs:
        values = r.final(quantity)
        xs += [x_of(r)] * len(values)
        ys += values
    ys = np.asarray(ys, dtype=float)
    # A quantity that is exactly 0 for some network (the NTK did not move at all) cannot be
    # fitted in log space; clamp to the smallest positive float so the fit reports a steep drop.
    return np.asarray(xs, dtype=float), np.maximum(ys, np.finfo(float).tiny)


def _table(runs, quantity, confidence, label) -> str:
    return "; ".join(f"{label(r)}: {metrics.describe(metrics.mean_interval(r.final(quantity), confidence), len(r.final(quantity)))}"
                     for r in runs)


def _fmt_list(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
