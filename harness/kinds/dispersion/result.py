"""The typed result of a dispersion case, its table in a report and its figures.

A dispersion case measures the row Theta(x_0, x_j) of S random networks. Entry 0 is the
diagonal Theta(x_0, x_0); entry j > 0 has ``cosine`` = cos(x_0, x_j). For each entry the
result keeps every statistic with its 95% interval (:mod:`harness.statistics`) and what
theory says of it (exact moments, the calibrated acceptance interval of each statistic at
this S, a goodness-of-fit p-value, the infinite-width mean), plus the case-level
references (the asymptotic dispersion), the differential check against the reference
implementation and the minimum detectable scale error.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from harness.architecture import Architecture
from harness.constants import PHASES
from harness.records.base import Estimate, Interval, KindResult
from harness.records.serialize import Record
from harness.records.figures import Figure, Panel, Series
from harness.records.format import fmt, fmt_interval, fmt_with_interval, verdict


@dataclass
class EntryResult(Record):
    """Statistics of one NTK entry Theta(x_0, x_j) over the networks, and its theory.

    statistics: ``mean``, ``dispersion``, ``log_mean``, ``log_variance``, ``q05``..``q95``
    (:func:`harness.statistics.summarize`). sampling_band: the central 95% of the estimator of
    ``mean`` and ``dispersion`` at this number of networks under the exact law (for figures:
    where the estimate of a correct NTK falls). exact_mean / exact_second_moment /
    exact_dispersion: the exact finite-width moments (Monte Carlo estimates with
    ``exact_errors`` as standard errors where no closed form exists). acceptance: the
    calibrated acceptance interval of each checked statistic at this S. infinite_width_mean:
    the Jacot NTK at this pair of inputs.
    """

    cosine: float
    statistics: dict[str, Estimate] = field(default_factory=dict)
    exact_mean: float | None = None
    exact_second_moment: float | None = None
    exact_dispersion: float | None = None
    exact_errors: dict[str, float] = field(default_factory=dict)
    acceptance: dict[str, Interval] = field(default_factory=dict)
    goodness_of_fit_p: float | None = None
    infinite_width_mean: float | None = None
    sampling_band: dict[str, Interval] = field(default_factory=dict)

    def value(self, statistic: str) -> float | None:
        estimate = self.statistics.get(statistic)
        return estimate.value if estimate is not None else None

    def exact_text(self, statistic: str, digits: int = 4) -> str:
        """The exact value of ``statistic`` (``mean`` or ``dispersion``) as text: a closed form
        as is, a Monte Carlo estimate of the exact law with its standard error (``15.33 ± 0.03``)."""
        value = {"mean": self.exact_mean, "dispersion": self.exact_dispersion}[statistic]
        error = self.exact_errors.get(statistic)
        if value is None:
            return ""
        return fmt(value, digits) if error is None else f"{fmt(value, digits)} ± {fmt(error, 2)}"


@dataclass
class AsymptoticReference(Record):
    """The n, L -> infinity dispersion at lambda, the case's tolerance for its phase, the exact
    finite-width dispersion's deviation from it, and the input scale |x|^2 n / n_0 it used."""

    dispersion: float
    tolerance: float
    exact_deviation: float
    input_scale: float


@dataclass
class DifferentialResult(Record):
    """The case's own networks recomputed with the reference implementation, entry by entry.

    reference_implementation: the implementation it was recomputed with; rechecked: how many
    of the case's networks were recomputed (a seeded subset); max_relative_error: max over them
    of max|K - K_ref| / max|K_ref|; worst: where; rtol: the agreement tolerance for the dtype;
    seconds: its cost.
    """

    reference_implementation: str
    rechecked: int
    max_relative_error: float
    rtol: float
    worst: str = ""
    seconds: float = 0.0
    #: how rtol was decided (harness.ntk.precision); in float32 the reference's own float32 error
    tolerance_rule: str = ""
    reference_float32_error: float | None = None


@dataclass
class DispersionResult(KindResult):
    """What a dispersion case measured and what theory said (see the module docstring).

    entries[0] is the diagonal Theta(x_0, x_0). alpha_per_check: the false-alarm rate given
    to each check of a family (``exact``, ``infinite-width``). minimum_detectable_scale: the
    factors c < 1 and c > 1 at which a scale error Theta -> c Theta is caught with
    probability 0.9 by this case's exact-law checks (None when not computed).
    """

    kind = "dispersion"

    architecture: Architecture
    input_norm_sq: float
    networks: int
    entries: list[EntryResult]
    nonfinite: int = 0
    parameter_count: int = 0
    chunk_size: int = 0
    alpha_per_check: dict[str, float] = field(default_factory=dict)
    asymptotic: AsymptoticReference | None = None
    differential: DifferentialResult | None = None
    minimum_detectable_scale: Interval | None = None
    #: how the detectable scale was computed: from the exact law's replicates (the diagonal of
    #: ReLU, sigma_b2 = 0) or the joint mean test's normal approximation (every other case)
    detectable_scale_method: str = ""

    @property
    def diagonal(self) -> EntryResult:
        return self.entries[0]

    def statistics(self) -> dict[str, Estimate]:
        out = {}
        for j, entry in enumerate(self.entries):
            where = "diagonal" if j == 0 else f"cos={entry.cosine:.3g}"
            for name, estimate in entry.statistics.items():
                out[f"{where}.{name}"] = estimate
        return out

    def describe(self) -> list[tuple[str, object]]:
        a = self.architecture
        hidden = a.hidden_widths
        return [("depth_to_width", a.depth_to_width), ("input_dim", a.input_dim), ("input_norm_sq", self.input_norm_sq),
                ("width", hidden[0] if len(set(hidden)) == 1 else list(hidden)), ("depth", a.depth),
                ("sigma_w2", a.sigma_w2), ("sigma_b2", a.sigma_b2), ("activation", a.activation),
                ("trainable_bias", a.trainable_bias), ("parametrization", a.parametrization),
                ("networks", self.networks)] + (
            [("detectable scale error (power 0.9)",
              f"Theta -> c Theta with c <= {self.minimum_detectable_scale.low:.4g} or "
              f"c >= {self.minimum_detectable_scale.high:.4g}")] if self.minimum_detectable_scale else []) + (
            [("differential check", f"{self.differential.rechecked} networks against "
                                    f"{self.differential.reference_implementation}, "
                                    f"max relative error {self.differential.max_relative_error:.3g}")]
            if self.differential else [])

    # ------------------------------------------------------------------ report
    @classmethod
    def table(cls, records) -> tuple[list[str], list[list[str]]]:
        headers = ["case", "n", "L", "λ", "σ_w²", "bias", "S", "dispersion [95% CI]", "exact", "accepted (exact law)",
                   "asymptotic", "mean Θ(x,x) [95% CI]", "exact mean", "KS p", "detectable scale c", "verdict"]
        rows = []
        for record in records:
            r: DispersionResult = record.result
            if r is None:
                rows.append([record.case] + [""] * (len(headers) - 2) + [verdict(record)])
                continue
            a, d = r.architecture, r.diagonal
            hidden = a.hidden_widths
            width = str(hidden[0]) if len(set(hidden)) == 1 else f"{min(hidden)}-{max(hidden)}"
            dispersion, mean = d.statistics.get("dispersion"), d.statistics.get("mean")
            scale = r.minimum_detectable_scale
            rows.append([
                record.case, width, str(a.depth), fmt(a.depth_to_width, 3), fmt(a.sigma_w2),
                "yes" if a.trainable_bias else "no", str(r.networks),
                fmt_with_interval(dispersion.value, dispersion.interval) if dispersion else "",
                d.exact_text("dispersion"), fmt_interval(d.acceptance.get("dispersion")),
                fmt(r.asymptotic.dispersion) if r.asymptotic else "",
                fmt_with_interval(mean.value, mean.interval) if mean else "", d.exact_text("mean"),
                fmt(d.goodness_of_fit_p, 3),
                f"{scale.low:.3g} / {scale.high:.3g}" if scale is not None else "", verdict(record),
            ])
        return headers, rows

    @classmethod
    def figures(cls, records) -> list[Figure]:
        usable = [r for r in records if r.result is not None and r.result.diagonal.statistics.get("dispersion")]
        drawn = (_dispersion_vs_depth(usable), _off_diagonal_vs_depth(usable), _dispersion_vs_correlation(usable),
                 _paper_figure(usable))
        return [figure for figure in drawn if figure is not None]


# ---------------------------------------------------------------------- figures
def _uniform_width(a: Architecture) -> int | None:
    hidden = a.hidden_widths
    return hidden[0] if len(set(hidden)) == 1 else None


def _series_key(r: DispersionResult) -> tuple:
    a = r.architecture
    return (_uniform_width(a), a.trainable_bias, a.input_dim, a.parametrization, r.input_norm_sq)


def _series_label(key: tuple) -> str:
    width, bias, input_dim, parametrization, norm_sq = key
    label = f"n = {width}" + ("" if bias else ", no bias")
    if input_dim != width:
        label += f", n₀ = {input_dim}"
    if parametrization != "standard":
        label += f", {parametrization}"
    if norm_sq != 1.0:
        label += f", |x|² = {norm_sq:g}"
    return label


def _dispersion_vs_depth(records) -> Figure | None:
    import reference

    by_sigma = defaultdict(list)
    omitted = {}
    for record in records:
        r: DispersionResult = record.result
        a = r.architecture
        if _uniform_width(a) is None:
            omitted[record.case] = "unequal hidden widths"
        elif a.activation != "relu" or a.sigma_b2 != 0:
            omitted[record.case] = "no closed-form exact law of the diagonal (not ReLU with sigma_b2 = 0)"
        else:
            by_sigma[a.sigma_w2].append(record)
    if not by_sigma:
        return None
    panels = []
    below = above = 0
    for sigma in sorted(by_sigma):
        series_of = defaultdict(list)
        for record in by_sigma[sigma]:
            series_of[_series_key(record.result)].append(record)
        panel = Panel(title=f"$\\sigma_w^2 = {sigma:g}$ ({record.phase})", xlabel="depth $L$",
                      ylabel=r"$E[\Theta^2]/E[\Theta]^2$ of $\Theta(x,x)$", yscale="log")
        for key, group in sorted(series_of.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
            width, bias, input_dim, parametrization, norm_sq = key
            label = _series_label(key)
            group.sort(key=lambda rec: rec.result.architecture.depth)
            depths = [rec.result.architecture.depth for rec in group]
            values = [rec.result.diagonal.value("dispersion") for rec in group]
            for rec, value in zip(group, values):
                exact = rec.result.diagonal.exact_dispersion
                if value is not None and exact is not None:
                    below += value < exact
                    above += value > exact
            accepted = [rec.result.diagonal.acceptance.get("dispersion") or rec.result.diagonal.sampling_band.get(
                "dispersion") for rec in group]
            with_band = [i for i, acc in enumerate(accepted) if acc is not None]
            if with_band:
                panel.series.append(Series(
                    x=[depths[i] for i in with_band], y=[values[i] for i in with_band], style="ranges",
                    low=[accepted[i].low for i in with_band], high=[min(accepted[i].high, 1e300) for i in with_band],
                    label=f"{label}: where a correct NTK's estimate falls", color_key=label))
            panel.series.append(Series(x=depths, y=values, label=f"{label}: measured", style="points", color_key=label))
            _exact_curves(panel, label, key, sigma, max(depths), reference)
        panels.append(panel)
    shown = [rec.case for group in by_sigma.values() for rec in group]
    where = (f"{below} of the {below + above} measured points lie below the exact value and {above} above"
             if below + above else "")
    return Figure(
        name="dispersion_vs_depth.png", panels=panels, columns=4, panel_size=(3.8, 3.1),
        covers=shown + list(omitted), omitted=omitted,
        caption=("Dispersion E[Θ²]/E[Θ]² of the diagonal NTK Θ(x, x) against depth, one panel per σ_w², one colour "
                 "per network width. Dots: the measured ratio estimate mean(Θ²)/mean(Θ)². Vertical bars: where that "
                 "estimator falls for a correct NTK at the case's number of networks, from the exact finite-width "
                 "law: the calibrated acceptance interval the verdict uses where the case checks the dispersion, "
                 "else the central 95% of the estimator's exact sampling law. The estimator is heavy-tailed and "
                 f"biased low at depth{': ' + where if where else ''}. Solid line: the exact finite-width dispersion "
                 "at every depth (closed form). Dashed line: the n, L → ∞ limit at λ = L/n."))


def _exact_curves(panel: Panel, label: str, key: tuple, sigma: float, max_depth: int, reference) -> None:
    """The exact finite-width dispersion (closed form) and the asymptotic one at every depth up to ``max_depth``."""
    width, bias, input_dim, parametrization, norm_sq = key
    exact_depths, exact_values, asymptotic_values = [], [], []
    for depth in range(1, max_depth + 1):
        try:
            law = reference.ExactLaw((input_dim,) + (width,) * depth, sigma, trainable_bias=bias,
                                     input_norm_sq=norm_sq, parametrization=parametrization)
            exact_values.append(law.dispersion())
            exact_depths.append(depth)
        except ValueError:
            continue
        if parametrization == "standard":
            asymptotic_values.append(reference.asymptotic_dispersion(
                depth / width, sigma, bias, input_scale=norm_sq * width / input_dim))
    if exact_values:
        panel.series.append(Series(x=exact_depths, y=exact_values, style="line", color_key=label,
                                   label=f"{label}: exact, finite width"))
    if len(asymptotic_values) == len(exact_depths) and asymptotic_values:
        panel.series.append(Series(x=exact_depths, y=asymptotic_values, style="dashed", color_key=label,
                                   label=f"{label}: $n, L \\to \\infty$ at $\\lambda = L/n$"))


def _chosen_cosines(records, count: int = 3) -> list[float]:
    """Up to ``count`` off-diagonal cosines present in every record: the largest, the middle, the smallest."""
    common = None
    for rec in records:
        cosines = {round(e.cosine, 9) for e in rec.result.entries[1:]}
        common = cosines if common is None else common & cosines
    ordered = sorted(common or (), reverse=True)
    if len(ordered) <= count:
        return ordered
    picks = sorted({round(i * (len(ordered) - 1) / (count - 1)) for i in range(count)})
    return [ordered[i] for i in picks]


def _exact_band(entries_by_x, label: str) -> list[Series]:
    """The exact law's value against x: a line where it is a closed form, a band of +-2 standard
    errors around a dashed line where it is a Monte Carlo estimate of the exact sampler."""
    xs = [x for x, e in entries_by_x if e.exact_dispersion is not None]
    values = [e.exact_dispersion for _, e in entries_by_x if e.exact_dispersion is not None]
    errors = [e.exact_errors.get("dispersion") for _, e in entries_by_x if e.exact_dispersion is not None]
    if len(xs) < 2:
        return []
    if all(error is None for error in errors):
        return [Series(x=xs, y=values, style="line", color_key=label, label=f"{label}: exact law")]
    low = [max(v - 2 * (err or 0.0), 1e-12) for v, err in zip(values, errors)]
    high = [v + 2 * (err or 0.0) for v, err in zip(values, errors)]
    return [Series(x=xs, y=values, style="dashed", color_key=label, label=f"{label}: exact law (Monte Carlo)"),
            Series(x=xs, y=values, low=low, high=high, style="band", color_key=label)]


def _off_diagonal_vs_depth(records) -> Figure | None:
    """The paper's off-diagonal panels: the dispersion of Theta(x0, x) at a few cosines against
    depth, per sigma_w^2, for the largest sweep with off-diagonal entries."""
    usable = [rec for rec in records if len(rec.result.entries) >= 2 and _uniform_width(rec.result.architecture)]
    by_name = defaultdict(list)
    for rec in usable:
        by_name[(rec.name, _uniform_width(rec.result.architecture))].append(rec)
    if not by_name:
        return None
    (name, width), chosen = max(by_name.items(), key=lambda kv: (len({r.result.architecture.depth for r in kv[1]}),
                                                                  len(kv[1]), kv[0]))
    if len({rec.result.architecture.depth for rec in chosen}) < 2:
        return None
    cosines = _chosen_cosines(chosen)
    omitted = {rec.case: "no off-diagonal entries" for rec in records if len(rec.result.entries) < 2}
    omitted.update({rec.case: f"another case than the largest depth sweep `{name}` (n = {width})"
                    for rec in usable if rec not in chosen})
    panels = []
    for sigma, group in _by_sigma_w2_then_depth(chosen):
        panel = Panel(title=f"$\\sigma_w^2 = {sigma:g}$ ({group[0].phase})", xlabel="depth $L$",
                      ylabel=r"dispersion of $\Theta(x_0, x)$", yscale="log")
        for cosine in cosines:
            label = f"cos = {cosine:g}"
            depths, values, lows, highs, exact_by_depth = [], [], [], [], []
            for rec in group:
                entry = next((e for e in rec.result.entries if abs(e.cosine - cosine) < 1e-9), None)
                if entry is None or "dispersion" not in entry.statistics:
                    continue
                estimate = entry.statistics["dispersion"]
                depths.append(rec.result.architecture.depth)
                values.append(estimate.value)
                lows.append(estimate.interval.low)
                highs.append(estimate.interval.high)
                exact_by_depth.append((rec.result.architecture.depth, entry))
            if depths:
                panel.series.append(Series(x=depths, y=values, low=lows, high=highs, style="points",
                                           label=f"{label}: measured", color_key=label))
            panel.series += _exact_band(exact_by_depth, label)
        panels.append(panel)
    return Figure(
        name="dispersion_offdiagonal_vs_depth.png", panels=panels, columns=4, panel_size=(3.8, 3.1),
        covers=[rec.case for rec in records], omitted=omitted,
        caption=(f"Dispersion of the off-diagonal entries Θ(x0, x) against depth at cos(x0, x) = "
                 f"{', '.join(f'{c:g}' for c in cosines)} for case `{name}` (n = {width}), one panel per σ_w². Dots: "
                 "measured, with 95% percentile-bootstrap intervals (for reading). Dashed lines and bands: the exact "
                 "finite-width joint law of the row (Gaussian conditioning), estimated from the case's exact sample, "
                 "with ±2 standard errors."))


def _by_sigma_w2_then_depth(records) -> list[tuple[float, list]]:
    """[(sigma_w2, its records sorted by depth)] in increasing sigma_w2: one figure panel each."""
    by_sigma = defaultdict(list)
    for rec in records:
        by_sigma[rec.result.architecture.sigma_w2].append(rec)
    return [(sigma, sorted(by_sigma[sigma], key=lambda rec: rec.result.architecture.depth))
            for sigma in sorted(by_sigma)]


#: Depths per panel of the correlation figure (more overlap into an unreadable column of bars).
CORRELATION_DEPTHS = 4


def _dispersion_vs_correlation(records) -> Figure | None:
    usable = [rec for rec in records if len(rec.result.entries) >= 2 and _uniform_width(rec.result.architecture)]
    if not usable:
        return None
    by_name = defaultdict(list)
    for rec in usable:
        by_name[rec.name].append(rec)
    name, chosen = max(by_name.items(), key=lambda kv: (len(kv[1]), kv[0]))
    omitted = {rec.case: "no off-diagonal entries" for rec in records if len(rec.result.entries) < 2}
    omitted.update({rec.case: f"another case than `{name}`" for rec in usable if rec.name != name})
    panels = []
    for sigma, group in _by_sigma_w2_then_depth(chosen):
        if len(group) > CORRELATION_DEPTHS:   # spread over the range, so that bars stay readable
            picks = sorted({round(i * (len(group) - 1) / (CORRELATION_DEPTHS - 1)) for i in range(CORRELATION_DEPTHS)})
            kept = [group[i] for i in picks]
            omitted.update({rec.case: f"at most {CORRELATION_DEPTHS} depths per panel; every depth is in "
                                      "dispersion_offdiagonal_vs_depth.png" for rec in group if rec not in kept})
            group = kept
        panel = Panel(title=f"$\\sigma_w^2 = {sigma:g}$ ({group[0].phase})", xlabel=r"$\cos(x_0, x)$",
                      ylabel=r"dispersion of $\Theta(x_0, x)$", yscale="log")
        for rec in group:
            r: DispersionResult = rec.result
            a = r.architecture
            label = f"n = {_uniform_width(a)}, L = {a.depth}" + ("" if a.trainable_bias else ", no bias")
            entries = sorted(r.entries, key=lambda e: e.cosine)
            cosines = [e.cosine for e in entries]
            values = [e.value("dispersion") for e in entries]
            lows = [e.statistics["dispersion"].interval.low if "dispersion" in e.statistics else math.nan
                    for e in entries]
            highs = [e.statistics["dispersion"].interval.high if "dispersion" in e.statistics else math.nan
                     for e in entries]
            panel.series.append(Series(x=cosines, y=values, low=lows, high=highs, style="points", label=label,
                                       color_key=label))
            panel.series += _exact_band([(e.cosine, e) for e in entries], label)
        panels.append(panel)
    return Figure(
        name="dispersion_vs_correlation.png", panels=panels, columns=4, panel_size=(3.8, 3.1),
        covers=[rec.case for rec in records], omitted=omitted,
        caption=(f"Dispersion E[Θ(x0,x)²]/E[Θ(x0,x)]² against the input correlation cos(x0, x) for case `{name}`, "
                 "cos = 1 being the diagonal Θ(x0, x0). Dots: measured, with 95% percentile-bootstrap intervals "
                 "(for reading; heavy tails make them too narrow at large depth). Lines: the exact finite-width law "
                 "of each entry where it is a closed form (the diagonal of ReLU with σ_b² = 0); dashed lines with "
                 "bands: Monte Carlo estimates of the exact sampler with ±2 standard errors; the infinite-width NTK "
                 "is deterministic (dispersion 1)."))


#: The paper's own layout needs its grid: at least this many values of sigma_w^2 and of depths.
PAPER_GRID = (8, 10)


def _paper_figure(records) -> Figure | None:
    """The paper's layout for its grid (a depth sweep over many sigma_w^2, one colour per sigma_w^2
    on a colour scale): the diagonal's dispersion against depth with every sigma_w^2 in one panel
    (measured dots, the exact finite-width curve as a line), and the dispersion against
    <x0, x> at four depths (measured dots joined, the exact joint law's Monte Carlo dashed)."""
    import reference

    by_name = defaultdict(list)
    for rec in records:
        a = rec.result.architecture
        if _uniform_width(a) is not None and a.activation == "relu" and a.sigma_b2 == 0 and len(rec.result.entries) > 1:
            by_name[(rec.name, _uniform_width(a))].append(rec)
    grids = {key: recs for key, recs in by_name.items()
             if len({r.result.architecture.sigma_w2 for r in recs}) >= PAPER_GRID[0]
             and len({r.result.architecture.depth for r in recs}) >= PAPER_GRID[1]}
    if not grids:
        return None
    (name, width), chosen = max(grids.items(), key=lambda kv: (len(kv[1]), kv[0]))
    omitted = {rec.case: f"not the paper's grid (at least {PAPER_GRID[0]} values of sigma_w^2 and "
                         f"{PAPER_GRID[1]} depths of one case): see dispersion_vs_depth.png"
               for rec in records if rec not in chosen}
    depths = sorted({rec.result.architecture.depth for rec in chosen})
    picks = [depths[round(i * (len(depths) - 1) / 3)] for i in range(4)]
    diagonal = Panel(title=f"$\\Theta(x, x)$, `{name}` ($n = {width}$)", xlabel="depth $L$",
                     ylabel=r"$E[\Theta^2]/E[\Theta]^2$", yscale="log")
    at_depth = {d: Panel(title=f"$L = {d}$", xlabel=r"$\langle x_0, x \rangle$",
                         ylabel=r"dispersion of $\Theta(x_0, x)$", yscale="log") for d in picks}
    for sigma, group in _by_sigma_w2_then_depth(chosen):
        a = group[0].result.architecture
        first = sigma == min(r.result.architecture.sigma_w2 for r in chosen)
        diagonal.series.append(Series(x=[r.result.architecture.depth for r in group],
                                      y=[r.result.diagonal.value("dispersion") for r in group], style="points",
                                      color_value=sigma, label="measured" if first else ""))
        exact = [(d, reference.ExactLaw((a.input_dim,) + (width,) * d, sigma, trainable_bias=a.trainable_bias,
                                        input_norm_sq=group[0].result.input_norm_sq).dispersion())
                 for d in range(1, max(depths) + 1)]
        diagonal.series.append(Series(x=[d for d, _ in exact], y=[v for _, v in exact], style="line",
                                      color_value=sigma, label="exact, finite width" if first else ""))
        for rec in group:
            if rec.result.architecture.depth not in at_depth:
                continue
            entries = sorted(rec.result.entries, key=lambda e: e.cosine)
            panel = at_depth[rec.result.architecture.depth]
            panel.series.append(Series(x=[e.cosine for e in entries], y=[e.value("dispersion") for e in entries],
                                       style="points", color_value=sigma))
            theory = [(e.cosine, e.exact_dispersion) for e in entries if e.exact_dispersion is not None]
            if len(theory) >= 2:
                panel.series.append(Series(x=[c for c, _ in theory], y=[v for _, v in theory], style="dashed",
                                           color_value=sigma,
                                           label="exact law (Monte Carlo off the diagonal)" if first else ""))
    sigmas = sorted({rec.result.architecture.sigma_w2 for rec in chosen})
    return Figure(
        name="paper_dispersion.png", panels=[diagonal] + [at_depth[d] for d in picks], columns=5,
        panel_size=(3.4, 3.0), width_ratios=[1.6, 1, 1, 1, 1], covers=[rec.case for rec in records],
        omitted=omitted, color_scale=("viridis", "$\\sigma_w^2$"),
        caption=(f"The paper's layout for case `{name}` (n = {width}, {len(sigmas)} values of σ_w² from "
                 f"{sigmas[0]:g} to {sigmas[-1]:g}, depths {depths[0]}..{depths[-1]}; colour: σ_w²). Left: the "
                 "dispersion E[Θ²]/E[Θ]² of the diagonal Θ(x, x) against depth, measured (dots) and the exact "
                 "finite-width law (lines, closed form). Right: the dispersion of Θ(x0, x) against ⟨x0, x⟩ at "
                 f"depths {', '.join(map(str, picks))}, measured (dots) and the exact joint law (dashed; Monte "
                 "Carlo estimates off the diagonal, their errors in dispersion_offdiagonal_vs_depth.png)."))


__all__ = ["AsymptoticReference", "DifferentialResult", "DispersionResult", "EntryResult", "PHASES"]
