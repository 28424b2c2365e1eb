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

import numpy as np

from harness.devices import resolve_device, resolve_dtype
from harness.kinds.base import KindOutcome
from harness.kinds.training import (LEVEL_BOUNDS, DepthTrendSection, PhaseExpectation, PhasesSection, ScalingSection,
                                    TrainingSection, phase_networks)
from harness.ntk import get_implementation
from harness.options import RunOptions
from harness.records import Check, Interval, Timing, TrainingResult
from harness.records.training import (ExperimentSeries, Fit, MeasureClaim, PhaseComparison, PhaseValue, ProbeNTK,
                                      RatioTestResult)
from harness.training import metrics
from harness.training.data import load_dataset
from harness.training.experiment import QUANTITIES, ExperimentResult, run_experiment
from harness.training.loop import DivergenceError, TrainingConfig

DEFAULT_IMPLEMENTATION = "jacobian"


def training_config(training: TrainingSection) -> TrainingConfig:
    return TrainingConfig(optimizer=training.optimizer, learning_rate=training.learning_rate, steps=training.steps,
                          batch_size=training.batch_size, loss=training.loss, momentum=training.momentum,
                          checkpoints=training.checkpoint_steps())


def run(case, options: RunOptions) -> KindOutcome:
    started = time.perf_counter()
    network = case.sections["network"]
    training: TrainingSection = case.sections["training"]
    trend: DepthTrendSection = case.sections["depth_trend"]
    scaling: ScalingSection = case.sections["scaling"]
    phases: PhasesSection = case.sections["phases"]
    expectations = case.sections["expect"]
    confidence = training.confidence
    device = resolve_device(options.device if options.device is not None else training.device)
    dtype_name = options.dtype if options.dtype is not None else training.dtype
    dtype = resolve_dtype(dtype_name)
    implementation = get_implementation(options.implementation or case.implementation or DEFAULT_IMPLEMENTATION)
    dataset = load_dataset(
        training.dataset, normalization=training.normalization, test_fraction=training.test_fraction,
        probe_per_class=training.probe_per_class, data_seed=training.data_seed, samples=training.samples,
        input_dim=training.input_dim(), classes=training.num_classes(), data_path=training.data_path,
    )
    config = training_config(training)
    used = "structured (output trace)" + (f", {implementation.name} (full blocks)" if training.full_blocks else "")
    outcome = KindOutcome(implementation=used, device=str(device), dtype=dtype_name, seed=training.seed)
    results: dict[tuple, ExperimentResult] = {}
    depth_trend = width_scaling = comparison = None
    phase_keys: set = set()

    def experiment(section, depth: int | None = None, width: int | None = None) -> ExperimentResult:
        architecture = section.architecture(depth=depth, width=width)
        key = (section.sigma_w2, architecture.depth, architecture.hidden_widths[0]) if depth is not None else (
            section.sigma_w2, "base")
        if key not in results:
            results[key] = run_experiment(
                architecture, dataset, config, networks=training.networks, seed=training.seed,
                implementation=implementation, memory_budget_bytes=options.memory_budget_bytes, device=device,
                dtype=dtype, eigenvalues=training.eigenvalues, full_blocks=training.full_blocks,
                matrix_checkpoints=tuple(training.matrix_checkpoints))
        return results[key]

    uniform = len(set(network.layer_widths)) == 1
    base_shape = (network.depth_count, network.layer_widths[0]) if uniform else ()
    sections = phase_networks(case)
    try:
        bases = []
        for section in sections:
            base = experiment(section, *base_shape)
            bases.append(base)
            expect: PhaseExpectation = getattr(expectations, section.phase)
            outcome.checks += level_checks(base, expect, confidence,
                                           label=f"{section.phase}, " if len(sections) > 1 else "")
        if phases.sigma_w2:
            checks, comparison = phase_check(bases, [s.phase for s in sections], phases, confidence)
            outcome.checks += checks
            phase_keys = {(s.sigma_w2, *base_shape) if uniform else (s.sigma_w2, "base") for s in sections}
        expect = getattr(expectations, network.phase) if network.sigma_w2 is not None else None
        if trend.depths:
            checks, depth_trend = trend_check([experiment(network, d, base_shape[1]) for d in trend.depths], trend,
                                              expect, confidence)
            outcome.checks += checks
        if scaling.width_values:
            checks, width_scaling = scaling_check(
                [experiment(network, scaling.depth_at(w), w) for w in scaling.width_values], scaling, expect,
                confidence)
            outcome.checks += checks
        outcome.checks.insert(0, Check("training converged without divergence", True,
                                       expected="finite losses at every step",
                                       detail=f"{len(results)} architectures x {training.networks} networks"))
    except DivergenceError as exc:
        outcome.checks.insert(0, Check("training converged without divergence", False, measured=exc.value,
                                       expected="finite losses at every step", detail=str(exc)))
    result = TrainingResult(
        architecture=sections[0].architecture(), optimizer=training.optimizer, learning_rate=training.learning_rate,
        steps=training.steps, batch_size=training.batch_size, loss=training.loss, dataset=training.dataset,
        normalization=training.normalization, probe_size=int(dataset.x_probe.shape[0]), networks=training.networks,
        checkpoints=list(config.checkpoints),
        experiments=[_series(r) for key, r in results.items() if key not in phase_keys],
        depth_trend=depth_trend, width_scaling=width_scaling, regime=phases.regime, phases=comparison)
    own = results.get((sections[0].sigma_w2, *base_shape) if uniform else (sections[0].sigma_w2, "base"))
    if own is not None:
        result.probe_ntk = ProbeNTK(labels=own.probe_ntk["labels"], initial=own.probe_ntk.get("initial", []),
                                    final=own.probe_ntk.get("final", []), depth=own.architecture.depth,
                                    width=own.architecture.widths[1])
        for q in QUANTITIES:
            if q in own.series and own.series[q]:
                result.final[q] = metrics.mean_interval(own.final(q), confidence)
                result.per_network[q] = list(own.final(q))
    outcome.result = result
    outcome.timing = Timing(total_seconds=time.perf_counter() - started,
                            training_seconds=sum(r.timing["training_s"] for r in results.values()),
                            ntk_seconds=sum(r.timing["ntk_s"] for r in results.values()))
    return outcome


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
