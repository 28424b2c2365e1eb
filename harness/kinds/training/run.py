"""Running a training case: train the networks, then the level, depth-trend and width-scaling checks.

Data flow: case -> dataset (:mod:`harness.training.data`) -> one experiment per architecture
(:func:`harness.training.experiment.run_experiment`: training plus the probe NTK at every
checkpoint) -> the check families (:func:`level_checks`, :func:`trend_check`,
:func:`scaling_check`, described in :mod:`harness.kinds.training`) -> :class:`TrainingResult`.
"""
from __future__ import annotations

import time

import numpy as np

from harness.devices import resolve_device, resolve_dtype
from harness.kinds.base import KindOutcome
from harness.kinds.training import LEVEL_BOUNDS, DepthTrendSection, PhaseExpectation, ScalingSection, TrainingSection
from harness.ntk import get_implementation
from harness.options import RunOptions
from harness.records import Check, Interval, Timing, TrainingResult
from harness.records.training import ExperimentSeries, Fit, ProbeNTK
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
    phase = network.phase
    expect: PhaseExpectation = getattr(case.sections["expect"], phase)
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
    outcome = KindOutcome(implementation=implementation.name, device=str(device), dtype=dtype_name, seed=training.seed)
    results: dict[tuple, ExperimentResult] = {}
    depth_trend = width_scaling = None

    def experiment(depth: int | None = None, width: int | None = None) -> ExperimentResult:
        architecture = network.architecture(depth=depth, width=width)
        key = (architecture.depth, architecture.hidden_widths[0]) if depth is not None else ("base",)
        if key not in results:
            results[key] = run_experiment(
                architecture, dataset, config, networks=training.networks, seed=training.seed,
                implementation=implementation, memory_budget_bytes=options.memory_budget_bytes, device=device,
                dtype=dtype, eigenvalues=training.eigenvalues)
        return results[key]

    uniform = len(set(network.layer_widths)) == 1
    base_key = (network.depth_count, network.layer_widths[0])
    try:
        base = experiment(*base_key) if uniform else experiment()
        outcome.checks += level_checks(base, expect, confidence)
        if trend.depths:
            checks, depth_trend = trend_check([experiment(d, base_key[1]) for d in trend.depths], trend, expect,
                                              confidence)
            outcome.checks += checks
        if scaling.width_values:
            checks, width_scaling = scaling_check([experiment(scaling.depth_at(w), w) for w in scaling.width_values],
                                                  scaling, expect, confidence)
            outcome.checks += checks
        outcome.checks.insert(0, Check("training converged without divergence", True,
                                       expected="finite losses at every step",
                                       detail=f"{len(results)} architectures x {training.networks} networks"))
    except DivergenceError as exc:
        outcome.checks.insert(0, Check("training converged without divergence", False, measured=exc.value,
                                       expected="finite losses at every step", detail=str(exc)))
    result = TrainingResult(
        architecture=network.architecture(), optimizer=training.optimizer, learning_rate=training.learning_rate,
        steps=training.steps, batch_size=training.batch_size, loss=training.loss, dataset=training.dataset,
        normalization=training.normalization, probe_size=int(dataset.x_probe.shape[0]), networks=training.networks,
        checkpoints=list(config.checkpoints), experiments=[_series(r) for r in results.values()],
        depth_trend=depth_trend, width_scaling=width_scaling)
    own = results.get(base_key if uniform else ("base",))
    if own is not None:
        result.probe_ntk = ProbeNTK(labels=own.probe_ntk["labels"], initial=own.probe_ntk.get("initial", []),
                                    final=own.probe_ntk.get("final", []), depth=own.architecture.depth,
                                    width=own.architecture.widths[1])
        for q in QUANTITIES:
            result.final[q] = metrics.mean_interval(own.final(q), confidence)
            result.per_network[q] = list(own.final(q))
    outcome.result = result
    outcome.timing = Timing(total_seconds=time.perf_counter() - started,
                            training_seconds=sum(r.timing["training_s"] for r in results.values()),
                            ntk_seconds=sum(r.timing["ntk_s"] for r in results.values()))
    return outcome


def _series(result: ExperimentResult) -> ExperimentSeries:
    a = result.architecture
    return ExperimentSeries(depth=a.depth, width=a.widths[1], checkpoints=list(result.checkpoints),
                            series=result.series, eigenvalues=result.eigenvalues,
                            training_seconds=result.timing["training_s"], ntk_seconds=result.timing["ntk_s"])


def level_checks(base: ExperimentResult, expect: PhaseExpectation, confidence: float) -> list[Check]:
    """Each ``<quantity>_at_most`` / ``_at_least`` bound of the phase against the final mean."""
    checks = []
    for key, (quantity, side) in LEVEL_BOUNDS.items():
        bound = getattr(expect, key, None)
        if bound is None:
            continue
        values = base.final(quantity)
        estimate = metrics.mean_interval(values, confidence)
        passed = estimate.value <= bound if side == "at_most" else estimate.value >= bound
        relation = "<=" if side == "at_most" else ">="
        series = [metrics.mean_interval(v, confidence).value for v in base.series[quantity]]
        checks.append(Check(
            f"{quantity} {relation} {bound:g} (L={base.architecture.depth}, n={base.architecture.widths[1]})",
            bool(passed), measured=estimate.value, measured_interval=estimate.interval,
            expected=f"mean over networks {relation} {bound:g}",
            detail=(f"{quantity} at the last checkpoint: {metrics.describe(estimate, len(values))}; per network "
                    f"{_fmt_list(values)}; mean per checkpoint {base.checkpoints}: {_fmt_list(series)}"),
        ))
    return checks


def trend_check(runs: list[ExperimentResult], trend: DepthTrendSection, expect: PhaseExpectation,
                confidence: float) -> tuple[list[Check], Fit | None]:
    """The slope of log(quantity) against depth, against the phase's bounds; and the fit."""
    if expect.depth_slope_above is None and expect.depth_slope_not_above is None:
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
    if expect.width_exponent_below is None and expect.width_exponent_not_below is None:
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
