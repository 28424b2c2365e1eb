"""Running a dispersion case: sample the networks, summarize every entry, check each family.

Data flow: case -> :func:`_sample` (networks -> NTK rows) -> :func:`_entries` (statistics
of each entry) -> the check families (:func:`_finite_check`, :func:`_exact_checks`,
:func:`_asymptotic_check`, :func:`_infinite_width_checks`) -> :class:`DispersionResult`.
The families and how alpha is split between them are described in
:mod:`harness.kinds.dispersion`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

import reference
from harness.devices import resolve_dtype
from harness.inputs import make_inputs
from harness.kinds.base import KindOutcome, Resolution
from harness.kinds.dispersion import DispersionExpectation, DispersionSections
from harness.constants import REFERENCE_IMPLEMENTATION
from harness.montecarlo import MemoryBudgetError, NTKSamples, differential_check, sample_ntk
from harness.networks import MLP
from harness.ntk.registry import ImplementationError, get_implementation
from harness.options import RunOptions
from harness.records import Check, Interval, Timing
from harness.kinds.dispersion.result import AsymptoticReference, DifferentialResult, DispersionResult, EntryResult
from harness.statistics import summarize, t_interval

CONFIDENCE = 0.95
#: Networks of a case recomputed by the differential check: this fraction of them, at least
#: DIFFERENTIAL_MIN and at most DIFFERENTIAL_MAX; a fixed count (not a time budget), so that
#: the record is reproducible. The reference costs a few times the structured Monte Carlo per
#: network, so this stays well under a quarter of a case's time (measured: the record's
#: differential.seconds against timing.total_seconds).
DIFFERENTIAL_FRACTION = 0.03
DIFFERENTIAL_MIN = 2
DIFFERENTIAL_MAX = 32
#: Fewest rows of the exact joint law a case draws (at least as many as its networks).
JOINT_MIN_ROWS = 200
#: Replicate data sets behind the minimum detectable scale error (its Monte Carlo error is
#: about 0.002 in c at 4000; reference.case_minimum_detectable_scale).
POWER_REPLICATES = 4000
#: Replicate data sets behind an entry's sampling band (figures only).
SAMPLING_BAND_REPLICATES = 400


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def run(case, resolution: Resolution, options: RunOptions) -> KindOutcome:
    """Sample the case's networks with the resolved implementation, then check every family."""
    total_start = time.perf_counter()
    sections: DispersionSections = case.sections
    architecture = sections.network.architecture()
    implementation = resolution.implementation
    outcome = KindOutcome()
    x, cosines = make_inputs(sections.inputs, architecture.input_dim)
    reason = implementation.supports(MLP(architecture))
    if reason is not None:   # the implementation says it cannot: skipped, never passed
        outcome.skipped = reason
        outcome.timing = Timing(total_seconds=time.perf_counter() - total_start)
        return outcome
    try:
        samples = _sample(architecture, x, sections.sampling, resolution, options)
    except (ImplementationError, MemoryBudgetError) as exc:
        outcome.checks.append(Check("NTK computed", False, detail=str(exc)))
        outcome.timing = Timing(total_seconds=time.perf_counter() - total_start)
        return outcome
    outcome.checks.append(_finite_check(samples, resolution.dtype, implementation.name))
    finite_rows = samples.row[np.isfinite(samples.row).all(axis=1)]
    result = DispersionResult(
        architecture=architecture, input_norm_sq=sections.inputs.norm**2, networks=sections.sampling.networks,
        entries=_entries(finite_rows, cosines, resolution.seed), nonfinite=samples.nonfinite,
        parameter_count=samples.parameter_count, chunk_size=samples.chunk_size,
    )
    reference_start = time.perf_counter()
    outcome.checks += _theory_checks(sections, result, x, finite_rows, resolution.seed, options)
    reference_seconds = time.perf_counter() - reference_start
    differential_seconds = 0.0
    if implementation.name != REFERENCE_IMPLEMENTATION:
        check, result.differential = _differential_check(architecture, x, samples, sections.sampling, resolution,
                                                         options)
        outcome.checks.append(check)
        differential_seconds = result.differential.seconds
    outcome.result = result
    outcome.timing = Timing(total_seconds=time.perf_counter() - total_start,
                            ntk_seconds=samples.seconds + differential_seconds, reference_seconds=reference_seconds)
    return outcome


@dataclass
class FalseAlarmSplit:
    """Bonferroni: the case's false-alarm rate split equally between the families of statistical
    checks present (``exact``: the exact law of the diagonal; ``joint``: the exact joint law of the
    entries it does not cover; ``infinite-width``: the means), then between each family's checks."""

    families: list[str]
    family: float
    exact: float
    joint: float
    mean: float

    @classmethod
    def of(cls, expect: DispersionExpectation, diagonal_law: bool, joint_entries: list[int],
           entries: int) -> FalseAlarmSplit:
        families = [name for name, present in (
            ("exact", "exact" in expect.theories and diagonal_law and bool(expect.statistics
                                                                            or expect.goodness_of_fit)),
            ("joint", "exact" in expect.theories and bool(joint_entries)
             and bool(expect.other_statistics or expect.goodness_of_fit)),
            ("infinite-width", "infinite-width" in expect.theories)) if present]
        family = expect.false_alarm_rate / max(len(families), 1)
        return cls(families=families, family=family,
                   exact=family / max(len(expect.statistics) + int(expect.goodness_of_fit), 1),
                   joint=family / max(len(expect.other_statistics) + int(expect.goodness_of_fit), 1),
                   mean=family / max(entries - 1, 1))   # column 0 is x_0 itself: the diagonal

    def per_check(self) -> dict[str, float]:
        return {name: {"exact": self.exact, "joint": self.joint, "infinite-width": self.mean}[name]
                for name in self.families}


def _theory_checks(sections: DispersionSections, result: DispersionResult, x: np.ndarray, finite_rows: np.ndarray,
                   seed: int, options: RunOptions) -> list[Check]:
    """Every family of checks the case asks for, against the laws of :mod:`reference`."""
    network, expect = sections.network, sections.expect
    architecture = result.architecture
    diagonal_law = network.activation == "relu" and network.sigma_b2 == 0
    joint_entries = list(range(1 if diagonal_law else 0, finite_rows.shape[1]))
    alphas = FalseAlarmSplit.of(expect, diagonal_law, joint_entries, finite_rows.shape[1])
    result.alpha_per_check = alphas.per_check()
    enough = finite_rows.shape[0] >= 2
    checks = []
    law = None
    if diagonal_law and ("exact" in expect.theories or "asymptotic" in expect.theories):
        law = reference.ExactLaw(architecture.widths, network.sigma_w2, trainable_bias=network.trainable_bias,
                                 input_norm_sq=sections.inputs.norm**2, parametrization=network.parametrization)
        diagonal = result.diagonal
        diagonal.exact_mean, diagonal.exact_second_moment = law.mean(), law.second_moment()
        diagonal.exact_dispersion = law.dispersion()
        if enough:
            diagonal.sampling_band = _sampling_band(law, finite_rows.shape[0], seed)
    if "exact" in expect.theories and diagonal_law and enough:
        checks += _exact_checks(law, finite_rows[:, 0], result.diagonal, expect, alphas.exact, seed, options)
        if expect.power and expect.statistics:
            _diagonal_power(law, finite_rows.shape[0], result, expect, alphas, seed, options)
    if "exact" in expect.theories and joint_entries and enough:
        checks += _joint_checks(architecture, x, finite_rows, joint_entries, result, expect, alphas.joint, seed,
                                sections.sampling.reference_draws)
    if "asymptotic" in expect.theories:
        checks.append(_asymptotic_check(result, expect, network.phase))
    if "infinite-width" in expect.theories:
        checks += _infinite_width_checks(result, finite_rows, expect, alphas.mean, network.phase)
    return checks


def _diagonal_power(law, networks: int, result: DispersionResult, expect, alphas: FalseAlarmSplit, seed: int,
                    options: RunOptions) -> None:
    """The scale error Theta -> c Theta this case's diagonal checks catch with probability 0.9:
    simulated through the case's own calibrated checks where their intervals are known
    (``--ntk-calibration full``, or a check failed and so drew every replicate), else the
    normal approximation of its best scale-sensitive check (reference.normal_detectable_scale:
    no replicates; within -5% / +30% of the simulated scale, tests/reference/test_reference_power.py)."""
    if len(result.diagonal.acceptance) == len(expect.statistics):   # every interval is known
        detectable = reference.case_minimum_detectable_scale(
            law, networks, alphas.family, tuple(expect.statistics), expect.goodness_of_fit,
            cache_dir=options.cache_dir, reference_seed=seed, replicates=POWER_REPLICATES)
        result.minimum_detectable_scale = Interval(detectable.low, detectable.high)
        result.detectable_scale_method = "replicates of the exact law through the case's own checks"
        return
    low, high = reference.normal_detectable_scale(law, networks, alphas.exact, tuple(expect.statistics),
                                                  reference_seed=seed)
    result.minimum_detectable_scale = Interval(low, high)
    result.detectable_scale_method = ("normal approximation of the best scale-sensitive check (log_mean, else mean) "
                                      "at its calibrated level")


def _differential_check(architecture, x, samples: NTKSamples, sampling, resolution: Resolution,
                        options: RunOptions) -> tuple[Check, DifferentialResult]:
    """The case's own networks, a seeded subset, recomputed with the reference entry by entry
    (:func:`harness.montecarlo.differential_check`): exact checking at the case's depth, width,
    inputs and call shape, whatever the statistics say."""
    from harness.ntk.precision import FLOAT32_FLOOR, FLOAT64_RTOL

    implementation = resolution.implementation
    rechecked = sampling.rechecked or min(DIFFERENTIAL_MAX, max(DIFFERENTIAL_MIN, math.ceil(
        DIFFERENTIAL_FRACTION * sampling.networks)))
    name = f"agrees with {REFERENCE_IMPLEMENTATION} on {rechecked} of its networks (differential)"
    rtol = FLOAT64_RTOL if resolution.dtype == "float64" else FLOAT32_FLOOR   # until the networks say more
    try:
        found = differential_check(
            architecture, x, samples.row, seed=resolution.seed, implementation=implementation,
            reference=get_implementation(REFERENCE_IMPLEMENTATION), dtype=resolution.torch_dtype,
            draw_dtype=resolve_dtype(sampling.draw_dtype), device=resolution.torch_device, rechecked=rechecked,
            tf32=options.tf32)
    except ImplementationError as exc:   # the statistics above stay; this check says what went wrong
        return (Check(name, False, expected=f"max|K - K_ref| / max|K_ref| <= {rtol:g} over every entry of K(X, X)",
                      detail=str(exc)),
                DifferentialResult(reference_implementation=REFERENCE_IMPLEMENTATION, rechecked=0,
                                   max_relative_error=float("nan"), rtol=rtol, worst=str(exc)))
    rtol = found.rtol
    result = DifferentialResult(reference_implementation=REFERENCE_IMPLEMENTATION, rechecked=found.rechecked,
                                max_relative_error=found.max_relative_error, rtol=rtol, worst=found.worst,
                                seconds=found.seconds, tolerance_rule=found.tolerance_rule,
                                reference_float32_error=found.reference_float32_error)
    passed = found.max_relative_error <= rtol
    check = Check(
        f"agrees with {REFERENCE_IMPLEMENTATION} on {found.rechecked} of its networks (differential)", passed,
        measured=found.max_relative_error, target=rtol,
        expected=f"max|K - K_ref| / max|K_ref| <= {rtol:g} over every entry of K(X, X)",
        detail=(f"NTK implementation {implementation.name!r}: relative error {found.max_relative_error:.3g} > "
                f"{rtol:g}; worst: {found.worst}" + (f"\n{found.diagnosis}" if found.diagnosis else "")
                if not passed else ""))
    return check, result


def _sample(architecture, x, sampling, resolution: Resolution, options: RunOptions) -> NTKSamples:
    """The NTK rows Theta_s(x_0, X_j) of the case's networks ([networks, N])."""
    return sample_ntk(
        architecture, x, networks=sampling.networks, seed=resolution.seed, implementation=resolution.implementation,
        dtype=resolution.torch_dtype, draw_dtype=resolve_dtype(sampling.draw_dtype), device=resolution.torch_device,
        memory_budget_bytes=options.memory_budget_bytes, progress=options.progress,
    )


def _finite_check(samples: NTKSamples, dtype_name: str, implementation_name: str) -> Check:
    """Every entry of every network finite; else say which: NaN (the implementation's doing)
    or infinity (an overflow of the dtype, as deep chaotic networks reach in float32)."""
    nonfinite = samples.nonfinite
    total = samples.row.shape[0]
    if not nonfinite:
        return Check("all NTK samples finite", True, measured=0.0, expected="0 non-finite samples")
    row = samples.row
    nan = np.argwhere(np.isnan(row))
    infinite = np.argwhere(np.isinf(row))
    parts = []
    for what, where in (("NaN", nan), ("infinity", infinite)):
        if len(where):
            shown = ", ".join(f"[network {int(s)}, entry {int(j)}]" for s, j in where[:3])
            parts.append(f"returned {what} at entries {shown}" + (f" and {len(where) - 3} more" if len(where) > 3
                                                                    else ""))
    cause = f" (an overflow of {dtype_name}: raise the dtype or lower the depth)" if len(infinite) and not len(nan) \
        else ""
    return Check(
        "all NTK samples finite", False, measured=float(nonfinite), expected="0 non-finite samples",
        detail=(f"NTK implementation {implementation_name!r} {'; '.join(parts)}{cause}: {nonfinite} of {total} "
                "networks; the statistics use the finite ones only"))


def _entries(finite_rows: np.ndarray, cosines: np.ndarray, seed: int) -> list[EntryResult]:
    """Statistics of every entry Theta(x_0, X_j), j = 0 the diagonal; entry j's bootstrap is
    seeded with seed + j."""
    entries = []
    for j in range(finite_rows.shape[1]):
        statistics = summarize(finite_rows[:, j], confidence=CONFIDENCE, seed=seed + j)
        # cosines like 0.0 come out of the construction as +-1e-17: round away the noise (and -0)
        entries.append(EntryResult(cosine=round(float(cosines[j]), 12) + 0.0, statistics=statistics))
    return entries


def _sampling_band(law, networks: int, seed: int) -> dict[str, Interval]:
    """The central 95% of the estimators of the mean and the dispersion at ``networks`` networks
    under the exact law (400 replicate data sets; for figures, not for verdicts)."""
    values = reference.replicate_estimates(law, networks, SAMPLING_BAND_REPLICATES, ("mean", "dispersion"),
                                           seed=seed)
    return {name: Interval(float(np.nanquantile(v, 0.025)), float(np.nanquantile(v, 0.975)))
            for name, v in values.items()}


def _exact_checks(law, diagonal_samples, diagonal: EntryResult, expect, alpha: float, seed: int,
                  options: RunOptions) -> list[Check]:
    """Each statistic of Theta(x_0, x_0) in its calibrated acceptance interval, and a KS test."""
    checks = []
    estimates = {name: diagonal.statistics.get(name) for name in expect.statistics}
    values = {name: e.value if e is not None else float("nan") for name, e in estimates.items()}
    decided = _calibrated(law, diagonal_samples.size, values, alpha, options) if expect.statistics else None
    intervals = decided.intervals if decided is not None and decided.intervals is not None else {}
    diagonal.acceptance = {name: Interval(*bounds) for name, bounds in intervals.items()}
    exact_values = {"mean": diagonal.exact_mean, "dispersion": diagonal.exact_dispersion}
    for name in expect.statistics:
        estimate = estimates[name]
        accepted = Interval(*intervals[name]) if name in intervals else None
        checks.append(Check(
            f"{name} in calibrated interval (exact law)", decided.accepted[name], measured=values[name],
            measured_interval=estimate.interval if estimate is not None else Interval(np.nan, np.nan),
            expected=(f"[{_fmt(accepted.low)}, {_fmt(accepted.high)}] at level {alpha:.2g}" if accepted is not None
                      else decided.describe(name, alpha)),
            target=exact_values.get(name), accepted=accepted, level=alpha,
        ))
    if expect.goodness_of_fit:
        p_value = reference.goodness_of_fit(law, diagonal_samples, seed=seed)
        diagonal.goodness_of_fit_p = p_value
        checks.append(Check("samples follow the exact law (KS)", bool(p_value >= alpha), measured=p_value,
                            expected=f"p >= {alpha:.2g}", level=alpha))
    return checks


def _calibrated(law, networks: int, values: dict[str, float], alpha: float, options: RunOptions):
    """The verdict of each statistic's calibrated acceptance interval (reference.acceptance):
    every replicate and the intervals with ``--ntk-calibration full``, else the same verdicts
    from the replicates they need (reference.acceptance_decisions)."""
    if options.calibration == "full":
        intervals = reference.acceptance_intervals(law, networks, alpha=alpha, statistics=tuple(values),
                                                   cache_dir=options.cache_dir)
        replicates = reference.replicate_count(alpha)
        return reference.AcceptanceDecisions({s: bool(lo <= values[s] <= hi) for s, (lo, hi) in intervals.items()},
                                             intervals, replicates, replicates)
    return reference.acceptance_decisions(law, networks, values, alpha=alpha, cache_dir=options.cache_dir)


def _joint_checks(architecture, x: np.ndarray, finite_rows: np.ndarray, entries: list[int], result: DispersionResult,
                  expect, alpha: float, seed: int, reference_draws: int) -> list[Check]:
    """Every entry the diagonal law does not cover (the off-diagonal ones; all of them for
    non-ReLU networks or sigma_b2 > 0) against the exact joint law of the row
    (:class:`reference.JointLaw`, Gaussian conditioning): one exact sample of
    ``reference_draws`` rows per network (at least :data:`JOINT_MIN_ROWS`), drawn from a seed
    derived from the case's; per statistic a joint two-sample permutation test over the
    entries (:func:`reference.two_sample.permutation_test`), and a two-sample KS test per entry
    (Bonferroni over the entries). Without a diagonal law, the case's detectable scale is the
    joint mean test's (:func:`reference.power.two_sample_detectable_scale`)."""
    from reference.two_sample import ks_entries, permutation_tests

    law = reference.JointLaw(architecture.widths, architecture.sigma_w2, x @ x.T, sigma_b2=architecture.sigma_b2,
                             activation=architecture.activation, trainable_bias=architecture.trainable_bias,
                             parametrization=architecture.parametrization)
    # Three words, so never equal to a network's two-word [seed, index] key.
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x501E7, 1]))
    exact_rows = law.sample(max(reference_draws * finite_rows.shape[0], JOINT_MIN_ROWS), rng)[:, 0, :]
    measured, exact = finite_rows[:, entries], exact_rows[:, entries]
    summaries = [reference.summarize_moments(exact[:, i]) for i in range(len(entries))]
    for i, j in enumerate(entries):
        entry = result.entries[j]
        entry.exact_mean, entry.exact_second_moment = summaries[i].mean, summaries[i].second_moment
        entry.exact_dispersion = summaries[i].dispersion
        entry.exact_errors = {"mean": summaries[i].mean_error, "second_moment": summaries[i].second_moment_error,
                              "dispersion": summaries[i].dispersion_error, "draws": float(summaries[i].draws)}
    if expect.power and "mean" in expect.other_statistics and result.minimum_detectable_scale is None:
        from reference.power import two_sample_detectable_scale

        low, high = two_sample_detectable_scale(exact, finite_rows.shape[0], alpha)
        result.minimum_detectable_scale = Interval(low, high)
        result.detectable_scale_method = ("normal approximation of the joint permutation test of the mean, Bonferroni "
                                          "over the entries (a lower bound on the case's power)")
    where = "every entry" if entries[0] == 0 else "the off-diagonal entries"
    permutations = int(np.ceil(2.0 / alpha))
    checks = []
    statistics = expect.other_statistics
    tests = permutation_tests(measured, exact, tuple(statistics), permutations=permutations,
                              seed=seed) if statistics else {}
    for name in statistics:
        found = tests[name]
        worst = int(np.argmax(np.abs(found["difference"]) / np.where(found["standard_deviation"] > 0,
                                                                      found["standard_deviation"], np.inf)))
        checks.append(Check(
            f"{name} of {where} match the exact joint law (permutation)", bool(found["p_value"] >= alpha),
            measured=found["p_value"], expected=f"p >= {alpha:.2g} ({permutations} permutations, "
                                                f"{exact.shape[0]} exact rows)", level=alpha,
            detail=(f"largest standardized difference {found['statistic']:.3g} at cos "
                    f"{result.entries[entries[worst]].cosine:.2f}: measured {found['measured'][worst]:.6g}, "
                    f"exact law {found['exact'][worst]:.6g} (estimated from {exact.shape[0]} exact draws)")))
    if expect.goodness_of_fit:
        p_values = ks_entries(measured, exact)
        for i, j in enumerate(entries):
            result.entries[j].goodness_of_fit_p = float(p_values[i])
        worst = int(np.argmin(p_values))
        level = alpha / len(entries)
        checks.append(Check(
            f"{where} follow the exact joint law (KS per entry)", bool(p_values.min() >= level),
            measured=float(p_values.min()), expected=f"every p >= {level:.2g}", level=alpha,
            detail=f"smallest p at cos {result.entries[entries[worst]].cosine:.2f}"))
    return checks


def _asymptotic_check(result: DispersionResult, expect, phase: str) -> Check:
    """The measured dispersion within the phase's tolerance of the n, L -> infinity limit."""
    architecture = result.architecture
    # |x|^2 n / n_0 enters the limit at the edge of chaos with biases
    input_scale = result.input_norm_sq * (architecture.hidden_widths[0] / architecture.input_dim)
    asymptotic = reference.asymptotic_dispersion(architecture.depth_to_width, architecture.sigma_w2,
                                                 architecture.trainable_bias, input_scale=input_scale)
    tolerance = expect.tolerance.for_phase(phase)
    exact_dispersion = result.diagonal.exact_dispersion
    result.asymptotic = AsymptoticReference(dispersion=asymptotic, tolerance=tolerance,
                                            exact_deviation=exact_dispersion / asymptotic - 1.0,
                                            input_scale=input_scale)
    estimate = result.diagonal.statistics.get("dispersion")
    value = estimate.value if estimate is not None else float("nan")
    return Check(
        "dispersion near the asymptotic limit", bool(abs(value - asymptotic) <= tolerance * asymptotic),
        measured=value, measured_interval=estimate.interval if estimate is not None else None,
        expected=f"{_fmt(asymptotic)} +- {tolerance:.0%} ({phase}); exact finite-width {_fmt(exact_dispersion)}",
        target=asymptotic, accepted=Interval(asymptotic * (1 - tolerance), asymptotic * (1 + tolerance)),
    )


def _infinite_width_checks(result: DispersionResult, finite_rows: np.ndarray, expect, alpha: float,
                           phase: str) -> list[Check]:
    """The mean of each off-diagonal Theta(x_0, x) against the infinite-width (Jacot) NTK."""
    if finite_rows.shape[0] < 2:
        return [Check("mean Theta(x0, x) (infinite width)", False,
                      detail=f"only {finite_rows.shape[0]} network(s) gave a finite NTK row; a mean needs at least 2")]
    architecture = result.architecture
    tolerance = expect.mean_tolerance.for_phase(phase)
    norm_sq = result.input_norm_sq
    checks = []
    for j, entry in enumerate(result.entries):
        expected_mean = reference.infinite_width_ntk(
            entry.cosine * norm_sq, norm_sq, norm_sq, architecture.widths, architecture.sigma_w2,
            architecture.sigma_b2, trainable_bias=architecture.trainable_bias,
            parametrization=architecture.parametrization)
        entry.infinite_width_mean = expected_mean
        if j == 0:
            continue
        interval = t_interval(finite_rows[:, j], 1 - alpha)
        band_low, band_high = expected_mean * (1 - tolerance), expected_mean * (1 + tolerance)
        low, high = min(band_low, band_high), max(band_low, band_high)
        checks.append(Check(
            f"mean Theta(x0, x) at cos {entry.cosine:.2f} (infinite width)",
            bool(interval.high >= low and interval.low <= high), measured=entry.value("mean"),
            measured_interval=interval,
            expected=f"{_fmt(expected_mean)} +- {tolerance:.0%} ({phase}); t-interval at {1 - alpha:.4%}",
            target=expected_mean, accepted=Interval(low, high), level=alpha,
        ))
    return checks
