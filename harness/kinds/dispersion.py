"""``kind = "dispersion"``: the NTK's dispersion at initialization against theory.

One case = one architecture. The runner draws ``sampling.samples`` networks, computes
the row Theta(x_0, X_j) of each with the selected NTK implementation
(:mod:`harness.montecarlo`), summarizes it (:mod:`harness.statistics`) and checks it
against the references the case asks for:

- ``exact`` (ReLU, sigma_b^2 = 0): the exact finite-width law of Theta(x_0, x_0)
  (:class:`reference.ExactLaw`). Each statistic in ``expect.statistics`` must fall in its
  calibrated acceptance interval and the goodness-of-fit p-value must exceed its share of
  the false-alarm rate (Bonferroni: alpha is split equally between the families present,
  exact and infinite-width, then between the checks of each family), so a correct
  implementation fails a case by chance with probability at most
  ``expect.false_alarm_rate``.
- ``asymptotic``: the measured dispersion against the n, L -> infinity limit at
  lambda = L / n, within ``expect.tolerance.<phase>`` (relative). Approximate at finite
  size by construction; the outcome also shows the exact finite-width value, so the
  deviation of the theory itself is visible.
- ``infinite-width``: the mean of each Theta(x_0, X_j) against the infinite-width NTK;
  passes when the mean's t-interval at its share of alpha meets the band
  reference * (1 +- ``expect.mean_tolerance.<phase>``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import reference
from harness.cases.sections import InputsSection, NetworkSection, SamplingSection
from harness.inputs import make_inputs
from harness.kinds.base import Check, Outcome, RunOptions, resolve_device, resolve_dtype
from harness.montecarlo import MemoryBudgetError, sample_ntk
from harness.ntk.registry import ImplementationError, get_implementation
from harness.statistics import summarize, t_interval

REFERENCES = ("exact", "asymptotic", "infinite-width")
STATISTICS = ("mean", "dispersion", "log_mean", "log_variance")


@dataclass
class ToleranceSection:
    """Relative tolerance for each phase; a comment in the case file says why."""

    ordered: float = field(metadata={"doc": "relative tolerance, ordered phase", "min": 0})
    eoc: float = field(metadata={"doc": "relative tolerance, edge of chaos", "min": 0})
    chaotic: float = field(metadata={"doc": "relative tolerance, chaotic phase", "min": 0})

    def for_phase(self, phase: str) -> float:
        return getattr(self, phase)


@dataclass
class ExpectSection:
    """``[case.expect]``: which references, which statistics, how strict."""

    reference: list[str] = field(
        default_factory=lambda: ["exact"], metadata={"doc": "references to check", "choices": REFERENCES, "min_length": 1}
    )
    statistics: list[str] = field(
        default_factory=lambda: list(STATISTICS), metadata={"doc": "statistics checked against the exact law", "choices": STATISTICS}
    )
    goodness_of_fit: bool = field(default=True, metadata={"doc": "KS test of the samples against the exact law"})
    false_alarm_rate: float = field(
        default=1e-3, metadata={"doc": "probability that a correct NTK fails the case", "min_exclusive": 0, "max_exclusive": 1}
    )
    tolerance: ToleranceSection | None = field(default=None, metadata={"doc": "for the asymptotic dispersion"})
    mean_tolerance: ToleranceSection | None = field(default=None, metadata={"doc": "for infinite-width means"})

    def validate(self) -> None:
        if "asymptotic" in self.reference and self.tolerance is None:
            raise ValueError("expect.tolerance: the asymptotic reference needs [case.expect.tolerance] with ordered, eoc, chaotic")
        if "infinite-width" in self.reference and self.mean_tolerance is None:
            raise ValueError(
                "expect.mean_tolerance: the infinite-width reference needs [case.expect.mean_tolerance] with ordered, eoc, chaotic"
            )
        for key in ("reference", "statistics"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"expect.{key}: expected each entry once, got {values}")
        if "exact" in self.reference and not (self.statistics or self.goodness_of_fit):
            raise ValueError("expect.statistics: the exact reference needs at least one statistic or goodness_of_fit = true")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class DispersionKind:
    name = "dispersion"
    markers = ("dispersion",)
    sections = {
        "network": NetworkSection,
        "inputs": InputsSection,
        "sampling": SamplingSection,
        "expect": ExpectSection,
    }

    # ------------------------------------------------------------- collection
    def validate(self, case) -> None:
        network: NetworkSection = case.sections["network"]
        expect: ExpectSection = case.sections["expect"]
        if network.output_dim != 1:
            raise ValueError(f"network.output_dim: dispersion cases study scalar outputs; expected 1, got {network.output_dim}")
        exact_ok = network.activation == "relu" and network.sigma_b2 == 0
        if ("exact" in expect.reference or "asymptotic" in expect.reference) and not exact_ok:
            applies = (
                "only the infinite-width reference applies"
                if network.activation == "relu"
                else "no reference applies (all three need ReLU)"
            )
            raise ValueError(
                "expect.reference: the exact and asymptotic references hold for ReLU networks with sigma_b2 = 0 "
                f"(got activation {network.activation!r}, sigma_b2 {network.sigma_b2}); {applies}"
            )
        if "infinite-width" in expect.reference and network.activation != "relu":
            raise ValueError(
                f"expect.reference: the infinite-width NTK is implemented for ReLU only; got activation {network.activation!r}"
            )
        if "asymptotic" in expect.reference and network.parametrization != "standard":
            raise ValueError("expect.reference: the asymptotic reference is for the standard parametrization")
        make_inputs(case.sections["inputs"], network.architecture().input_dim)  # raises on too few dimensions

    def phase(self, network: NetworkSection) -> str:
        return reference.phase_of(network.sigma_w2, network.sigma_b2, network.activation)

    def case_id(self, case) -> str:
        network: NetworkSection = case.sections["network"]
        return "-".join(network.id_parts(self.phase(network)))

    # ------------------------------------------------------------- running
    def run(self, case, options: RunOptions) -> Outcome:
        total_start = time.perf_counter()
        network: NetworkSection = case.sections["network"]
        sampling: SamplingSection = case.sections["sampling"]
        inputs_section: InputsSection = case.sections["inputs"]
        expect: ExpectSection = case.sections["expect"]
        architecture = network.architecture()
        phase = self.phase(network)
        depth_to_width = float(sum(1.0 / n for n in network.hidden_widths))
        device = resolve_device(options.device or sampling.device)
        dtype_name = options.dtype or sampling.dtype
        implementation_name = options.implementation or case.implementation or "jacobian"
        parameters = {
            "case": case.name,
            "phase": phase,
            "depth_to_width": depth_to_width,
            "input_dim": architecture.input_dim,
            "input_norm_sq": inputs_section.norm**2,
            "width": network.hidden_widths[0] if len(set(network.hidden_widths)) == 1 else list(network.hidden_widths),
            "depth": network.num_hidden_layers,
            "sigma_w2": network.sigma_w2,
            "sigma_b2": network.sigma_b2,
            "activation": network.activation,
            "trainable_bias": network.trainable_bias,
            "parametrization": network.parametrization,
            "samples": sampling.samples,
            "seed": sampling.seed,
            "implementation": implementation_name,
            "device": str(device),
            "dtype": dtype_name,
        }
        outcome = Outcome(parameters=parameters, checks=[])
        x, cosines = make_inputs(inputs_section, architecture.input_dim)
        try:
            implementation = get_implementation(implementation_name)
            samples = sample_ntk(
                architecture,
                x,
                samples=sampling.samples,
                seed=sampling.seed,
                implementation=implementation,
                dtype=resolve_dtype(dtype_name),
                draw_dtype=resolve_dtype(sampling.draw_dtype),
                device=device,
                memory_budget_bytes=options.memory_budget_bytes,
                progress=options.progress,
            )
        except (ImplementationError, MemoryBudgetError) as exc:
            outcome.checks.append(Check("NTK computed", False, detail=str(exc)))
            outcome.timing["total_seconds"] = time.perf_counter() - total_start
            return outcome
        outcome.timing["ntk_seconds"] = samples.seconds
        outcome.extra["chunk_size"] = samples.chunk_size
        outcome.extra["parameter_count"] = samples.parameter_count

        row = samples.row
        nonfinite = samples.nonfinite
        outcome.checks.append(
            Check(
                "all NTK samples finite",
                nonfinite == 0,
                measured=float(nonfinite),
                expected="0 non-finite samples",
                detail=(
                    f"{nonfinite} of {row.shape[0]} networks gave a NaN or infinite NTK entry "
                    f"(overflow in {dtype_name}?); statistics below use the finite ones only"
                    if nonfinite
                    else ""
                ),
            )
        )
        finite_rows = row[np.isfinite(row).all(axis=1)]
        diagonal = finite_rows[:, 0]
        confidence = 0.95
        summary = summarize(diagonal, confidence=confidence, seed=sampling.seed)
        measured = {name: est.value for name, est in summary.items()}
        measured["intervals"] = {name: [est.low, est.high] for name, est in summary.items()}
        measured["confidence"] = confidence
        measured["nonfinite"] = nonfinite
        columns = []
        for j in range(row.shape[1]):
            # column 0 is the diagonal itself: its summary is the one above
            col_summary = summary if j == 0 else summarize(finite_rows[:, j], confidence=confidence, seed=sampling.seed + j)
            column = {"cosine": float(cosines[j])}
            column.update({name: est.value for name, est in col_summary.items()})
            column["intervals"] = {name: [est.low, est.high] for name, est in col_summary.items()}
            columns.append(column)
        measured["off_diagonal"] = columns
        outcome.measured = measured

        reference_start = time.perf_counter()
        ref: dict = {"phase": phase, "depth_to_width": depth_to_width}
        # Bonferroni: the case's false-alarm rate is split equally between the families of
        # statistical checks present (exact law; infinite-width means), then within each.
        families = [name for name in ("exact", "infinite-width") if name in expect.reference]
        alpha_family = expect.false_alarm_rate / max(len(families), 1)
        alpha_exact = alpha_family / max(len(expect.statistics) + int(expect.goodness_of_fit), 1)
        alpha_mean = alpha_family / max(row.shape[1] - 1, 1)  # column 0 is x_0 itself: the diagonal
        ref["alpha_per_check"] = {"exact": alpha_exact, "infinite-width": alpha_mean}

        law = None
        if "exact" in expect.reference or "asymptotic" in expect.reference:
            law = reference.ExactLaw(
                architecture.widths,
                network.sigma_w2,
                trainable_bias=network.trainable_bias,
                input_norm_sq=inputs_section.norm**2,
                parametrization=network.parametrization,
            )
            ref["exact"] = {"mean": law.mean(), "second_moment": law.second_moment(), "dispersion": law.dispersion()}

        if "exact" in expect.reference and diagonal.size >= 2:
            accepted = reference.acceptance_intervals(
                law, diagonal.size, alpha=alpha_exact, statistics=tuple(expect.statistics), cache_dir=options.cache_dir
            )
            ref["acceptance"] = {name: list(interval) for name, interval in accepted.items()}
            for name in expect.statistics:
                low, high = accepted[name]
                value = measured.get(name, float("nan"))
                outcome.checks.append(
                    Check(
                        f"{name} in calibrated interval (exact law)",
                        bool(low <= value <= high),
                        measured=value,
                        measured_interval=tuple(measured["intervals"].get(name, (np.nan, np.nan))),
                        expected=f"[{_fmt(low)}, {_fmt(high)}] at level {alpha_exact:.2g}",
                        reference=ref["exact"].get(name),
                    )
                )
            if expect.goodness_of_fit:
                p_value = reference.goodness_of_fit(law, diagonal, seed=sampling.seed)
                ref["goodness_of_fit_p"] = p_value
                outcome.checks.append(
                    Check(
                        "samples follow the exact law (KS)",
                        bool(p_value >= alpha_exact),
                        measured=p_value,
                        expected=f"p >= {alpha_exact:.2g}",
                    )
                )

        if "asymptotic" in expect.reference:
            # |x|^2 n / n_0 enters the limit at the edge of chaos with biases
            input_scale = inputs_section.norm**2 * (network.hidden_widths[0] / architecture.input_dim)
            asymptotic = reference.asymptotic_dispersion(
                depth_to_width, network.sigma_w2, network.trainable_bias, input_scale=input_scale
            )
            tolerance = expect.tolerance.for_phase(phase)
            exact_dispersion = ref["exact"]["dispersion"]
            ref["asymptotic"] = {
                "dispersion": asymptotic,
                "tolerance": tolerance,
                "exact_deviation": exact_dispersion / asymptotic - 1.0,
            }
            value = measured.get("dispersion", float("nan"))
            outcome.checks.append(
                Check(
                    "dispersion near the asymptotic limit",
                    bool(abs(value - asymptotic) <= tolerance * asymptotic),
                    measured=value,
                    measured_interval=tuple(measured["intervals"].get("dispersion", (np.nan, np.nan))),
                    expected=f"{_fmt(asymptotic)} +- {tolerance:.0%} ({phase}); exact finite-width {_fmt(exact_dispersion)}",
                    reference=asymptotic,
                )
            )

        if "infinite-width" in expect.reference and finite_rows.shape[0] < 2:
            outcome.checks.append(
                Check(
                    "mean Theta(x0, x) (infinite width)",
                    False,
                    detail=f"only {finite_rows.shape[0]} network(s) gave a finite NTK row; a mean needs at least 2",
                )
            )
        elif "infinite-width" in expect.reference:
            tolerance = expect.mean_tolerance.for_phase(phase)
            norm_sq = inputs_section.norm**2
            values = []
            for j, column in enumerate(columns):
                expected_mean = reference.infinite_width_ntk(
                    float(cosines[j]) * norm_sq,
                    norm_sq,
                    norm_sq,
                    architecture.widths,
                    network.sigma_w2,
                    network.sigma_b2,
                    trainable_bias=network.trainable_bias,
                    parametrization=network.parametrization,
                )
                values.append(expected_mean)
                if j == 0:
                    continue
                low, high = t_interval(finite_rows[:, j], 1 - alpha_mean)
                band_low, band_high = expected_mean * (1 - tolerance), expected_mean * (1 + tolerance)
                outcome.checks.append(
                    Check(
                        f"mean Theta(x0, x) at cos {column['cosine']:.2f} (infinite width)",
                        bool(high >= min(band_low, band_high) and low <= max(band_low, band_high)),
                        measured=column["mean"],
                        measured_interval=(low, high),
                        expected=f"{_fmt(expected_mean)} +- {tolerance:.0%} ({phase}); t-interval at {1 - alpha_mean:.4%}",
                        reference=expected_mean,
                    )
                )
            ref["infinite_width"] = {
                "mean": values,
                "cosines": [float(c) for c in cosines],
                # measured mean / infinite-width mean - 1: the finite-width deviation plus noise
                "deviation": [column["mean"] / value - 1.0 for column, value in zip(columns, values)],
            }
        outcome.reference = ref
        outcome.timing["reference_seconds"] = time.perf_counter() - reference_start
        outcome.timing["total_seconds"] = time.perf_counter() - total_start
        return outcome


KIND = DispersionKind()
