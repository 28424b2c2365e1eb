"""The typed result of a training case, its table in a report, its figures and its claim table.

A training case trains S networks (one per seed) of one architecture, measures the probe
NTK at every checkpoint and compares it with the NTK at initialization. The result keeps
every per-checkpoint, per-network series of every architecture trained (the case's own,
those of a depth trend or a width scaling, and one per phase for a phase comparison), the
final values as means over networks with t-intervals, the fits, the phase comparison
(claim 3: smallest relative change in the ordered phase) and network 0's probe NTK before
and after training.

Report hooks: :meth:`TrainingResult.table` (one row per case), :meth:`TrainingResult.figures`
(relative change against step, one panel per architecture, and per regime for phase
comparisons; probe NTK matrices), :meth:`TrainingResult.summaries` (claim 3 per regime:
holds / fails with the numbers).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from harness.architecture import Architecture
from harness.records.base import Estimate, Interval, KindResult
from harness.records.serialize import Record
from harness.records.figures import Figure, MatrixPanel, Panel, Series
from harness.records.format import by_case, fmt, fmt_interval, fmt_with_interval, natural_key, verdict

PHASE_ORDER = {"ordered": 0, "eoc": 1, "chaotic": 2}


@dataclass
class ExperimentSeries(Record):
    """One architecture trained over networks: ``series[quantity][checkpoint][network]``,
    ``eigenvalues[checkpoint][network]`` (top-k of the output-trace probe NTK), seconds; the
    losses at every step ``train_loss_per_step[step][network]``, ``test_loss_per_step`` (states
    0..steps); network 0's output-trace probe NTK at chosen checkpoints ``ntk_matrices[step]``
    ([N][N], rows in the order of ``probe_labels``)."""

    depth: int
    width: int
    checkpoints: list[int]
    series: dict[str, list[list[float]]]
    eigenvalues: list[list[list[float]]] = field(default_factory=list)
    training_seconds: float = 0.0
    ntk_seconds: float = 0.0
    sigma_w2: float | None = None
    train_loss_per_step: list[list[float]] = field(default_factory=list)
    test_loss_per_step: list[list[float]] = field(default_factory=list)
    ntk_matrices: dict[int, list[list[float]]] = field(default_factory=dict)
    probe_labels: list[int] = field(default_factory=list)

    def final(self, quantity: str) -> list[float]:
        return self.series[quantity][-1]


@dataclass
class ProbeNTK(Record):
    """Network 0's output-trace NTK on the probe set ([N][N], inputs grouped by class) at step
    0 and after the last step, with the probe labels."""

    labels: list[int]
    initial: list[list[float]]
    final: list[list[float]]
    depth: int
    width: int


@dataclass
class Fit(Record):
    """A straight-line fit with the t-interval of its slope: a depth trend of log(quantity) on
    depth, or a width exponent of log(quantity) on log(width)."""

    quantity: str
    slope: float
    interval: Interval
    intercept: float
    points: int = 0
    description: str = ""


@dataclass
class PhaseValue(ExperimentSeries):
    """One phase of a phase comparison: its experiment (every series, the losses per step, the
    matrices) and its phase."""

    phase: str = ""


@dataclass
class RatioTestResult(Record):
    """One (ordered, other) pair of a claim: ``ratio`` of geometric means ordered / other at the
    last checkpoint, its one-sided ``1 - level`` bounds ``lower``/``upper``, ``p_value`` and
    ``degrees_of_freedom`` (Welch, on logs), ``verdict``: smaller, larger or not resolved."""

    ordered_sigma_w2: float
    other_sigma_w2: float
    other_phase: str
    ratio: float
    lower: float
    upper: float
    p_value: float
    degrees_of_freedom: float
    verdict: str


@dataclass
class MeasureClaim(Record):
    """Claim 3 on one measure: is ``quantity`` at the last checkpoint smallest in the ordered phase?

    ``values[i]``: the geometric mean over networks of phase i (``PhaseComparison.values[i]``)
    with the exponentiated t-interval of the mean log; ``per_network[i]`` the values behind it;
    ``tests``: one per (ordered, other) pair; ``holds``: every test says smaller;
    ``expected_failure``: the case's stated reason when the claim is measured not to hold on
    this measure (a strict expected failure of this check).
    """

    quantity: str
    values: list[Estimate]
    per_network: list[list[float]]
    tests: list[RatioTestResult]
    holds: bool
    expected_failure: str | None = None


@dataclass
class PhaseComparison(Record):
    """Claim 3 in one regime: the same architecture and training at every sigma_w^2 of
    ``values`` (one :class:`PhaseValue` each), decided on every measure of ``claims``."""

    level: float
    regime: str
    values: list[PhaseValue]
    claims: list[MeasureClaim]

    def claim(self, quantity: str) -> MeasureClaim | None:
        return next((c for c in self.claims if c.quantity == quantity), None)


@dataclass
class TrainingResult(KindResult):
    """What a training case measured; ``final[q]``: mean over networks at the last checkpoint
    with its t-interval; ``per_network[q]``: the values behind it. ``experiments``: every
    architecture trained but the phases of a phase comparison (those are ``phases.values``)."""

    kind = "training"

    architecture: Architecture
    optimizer: str
    learning_rate: float
    steps: int
    batch_size: int
    loss: str
    dataset: str
    normalization: str
    probe_size: int
    networks: int
    checkpoints: list[int]
    final: dict[str, Estimate] = field(default_factory=dict)
    per_network: dict[str, list[float]] = field(default_factory=dict)
    experiments: list[ExperimentSeries] = field(default_factory=list)
    probe_ntk: ProbeNTK | None = None
    depth_trend: Fit | None = None
    width_scaling: Fit | None = None
    regime: str = ""
    phases: PhaseComparison | None = None
    #: which implementation computed which NTK: the output trace always by the structured path;
    #: the full per-output blocks (full_blocks = true) by the case's implementation
    computed_by: str = ""

    def statistics(self) -> dict[str, Estimate]:
        out = dict(self.final)
        if self.phases is not None:
            for claim in self.phases.claims:
                for v, estimate in zip(self.phases.values, claim.values):
                    out[f"{claim.quantity}[sigma_w2={v.sigma_w2:g}]"] = estimate
        return out

    def phase_experiments(self) -> list[PhaseValue]:
        """The experiment of each phase of a phase comparison."""
        return list(self.phases.values) if self.phases is not None else []

    def value(self, quantity: str) -> float | None:
        estimate = self.final.get(quantity)
        return estimate.value if estimate is not None else None

    def describe(self) -> list[tuple[str, object]]:
        a = self.architecture
        return [("sigma_w2", a.sigma_w2), ("depth", a.depth), ("width", a.hidden_widths[0]),
                ("output_dim", a.output_dim), ("parametrization", a.parametrization), ("optimizer", self.optimizer),
                ("learning_rate", self.learning_rate), ("steps", self.steps), ("batch_size", self.batch_size),
                ("loss", self.loss), ("dataset", self.dataset), ("normalization", self.normalization),
                ("probe_size", self.probe_size), ("networks", self.networks), ("checkpoints", self.checkpoints),
                ("NTK computed by", self.computed_by)]

    # ------------------------------------------------------------------ report
    @classmethod
    def table(cls, records) -> tuple[list[str], list[list[str]]]:
        headers = ["case", "n", "L", "σ_w²", "optimizer", "steps", "networks", "relative change [95% CI]",
                   "alignment", "block ratio growth", "train loss", "test accuracy", "verdict"]
        rows = []
        for record in records:
            r: TrainingResult = record.result
            if r is None:
                rows.append([record.case] + [""] * (len(headers) - 2) + [verdict(record)])
                continue
            a = r.architecture
            change = r.final.get("relative_change")
            if r.phases is not None:
                rows.append(_phase_row(record, r))
                continue
            rows.append([
                record.case, str(a.hidden_widths[0]), str(a.depth), fmt(a.sigma_w2),
                f"{r.optimizer} {r.learning_rate:g}", str(r.steps), str(r.networks),
                fmt_with_interval(change.value, change.interval) if change else "",
                fmt(r.value("alignment")), fmt(r.value("block_ratio_growth")), fmt(r.value("train_loss")),
                fmt(r.value("test_accuracy"), 3), verdict(record),
            ])
        return headers, rows

    @classmethod
    def figures(cls, records) -> list[Figure]:
        usable = [r for r in records if r.result is not None]
        drawn = (_relative_change_figure(usable), _ntk_matrices_figure(usable), _phase_comparison_figure(usable),
                 *_figure4(usable))
        return [figure for figure in drawn if figure is not None]

    @classmethod
    def summaries(cls, records) -> list[tuple[str, str, list[str], list[list[str]]]]:
        """Claim 3 per regime on every measure: a verdict table (measures side by side, one row
        per phase-comparison case) and the numbers behind it (one row per case and measure)."""
        compared = sorted((r for r in records if r.result is not None and r.result.phases is not None),
                          key=by_case)
        if not compared:
            return []
        measures = []
        for record in compared:
            for claim in record.result.phases.claims:
                if claim.quantity not in measures:
                    measures.append(claim.quantity)
        side_headers = ["case", "regime", "setting"] + [MEASURE_LABELS.get(m, m) for m in measures] + ["outcome"]
        side_rows, rows = [], []
        for record in compared:
            r: TrainingResult = record.result
            c = r.phases
            a = r.architecture
            setting = (f"{a.parametrization} param., {r.optimizer} {r.learning_rate:g}, {r.steps} steps, batch "
                       f"{_batch(r)}, {r.normalization}, n={a.hidden_widths[0]}, L={a.depth}, {r.networks} networks")
            side_rows.append([record.case, c.regime, setting]
                             + [_claim_verdict(c.claim(m)) if c.claim(m) else "" for m in measures]
                             + [verdict(record)])
            for claim in c.claims:
                cells: dict[str, str] = {}
                for v, estimate in zip(c.values, claim.values):
                    text = f"{fmt(estimate.value, 3)} {fmt_interval(estimate.interval, 3)} (σ_w²={fmt(v.sigma_w2)})"
                    cells[v.phase] = f"{cells[v.phase]}; {text}" if v.phase in cells else text
                ratios = "; ".join(f"/{t.other_phase}: {fmt(t.ratio, 3)} [{fmt(t.lower, 3)}, {fmt(t.upper, 3)}] "
                                   f"{t.verdict}" for t in claim.tests)
                rows.append([record.case, MEASURE_LABELS.get(claim.quantity, claim.quantity),
                             cells.get("ordered", ""), cells.get("eoc", ""), cells.get("chaotic", ""), ratios,
                             _claim_verdict(claim)])
        side_text = ("Claim 3 of the paper: the NTK may stay constant during training only in the ordered phase. Each "
                     "row trains the same architecture with the same training at every σ_w² and decides the claim on "
                     "every measure separately: the Frobenius relative change |Θ_T − Θ_0|_F / |Θ_0|_F, and the "
                     "paper's own Fig. 4 measure, the change |r(T) − r(0)| of each scale-free ratio r = Θ_c/Θ_d "
                     "(class-diagonal blocks over the diagonal) and Θ_n/Θ_d (off-class entries over the diagonal) and "
                     "its largest excursion max_t |r(t) − r(0)|. On each measure the claim holds when, for every "
                     "other phase, a one-sided Welch test on logs of the per-network values puts the ratio ordered / "
                     "other below 1 at the case's level; 'reversed': the ordered phase's value is significantly "
                     "LARGER. '(expected)': the case declares this measure's failure a strict expected failure, "
                     "with the numbers. The two kinds of measure can disagree: an NTK that grows uniformly has a "
                     "large relative change and unchanged ratios.")
        text = ("The numbers behind the verdicts: per phase, the geometric mean over networks of the measure at the "
                "last checkpoint with the exponentiated 95% t-interval of the mean log; per pair, the ratio ordered / "
                "other with its one-sided bounds at the case's level.")
        headers = ["case", "measure", "ordered", "edge of chaos", "chaotic", "ordered / other (one-sided bounds)",
                   "claim 3"]
        return [("Claim 3 per regime (training), on both measures", side_text, side_headers, side_rows),
                ("Claim 3: the numbers per measure", text, headers, rows)]


#: How the report names each measure of claim 3.
MEASURE_LABELS = {
    "relative_change": "Frobenius |ΔΘ|/|Θ_0|",
    "relative_change_full": "Frobenius |ΔΘ|/|Θ_0| (full blocks)",
    "misalignment": "1 − alignment",
    "block_ratio_growth": "block ratio growth",
    "class_block_change": "Fig. 4: |Δ(Θ_c/Θ_d)|",
    "off_class_change": "Fig. 4: |Δ(Θ_n/Θ_d)|",
    "class_block_excursion": "Fig. 4: max_t |Δ(Θ_c/Θ_d)|",
    "off_class_excursion": "Fig. 4: max_t |Δ(Θ_n/Θ_d)|",
}


def _claim_verdict(claim: MeasureClaim) -> str:
    if claim.holds:
        text = "holds"
    elif any(t.verdict == "larger" for t in claim.tests):
        text = "fails (reversed)"
    else:
        text = "fails (not resolved)"
    return text + (" (expected)" if claim.expected_failure else "")


def _batch(r: TrainingResult) -> str:
    return "full" if r.batch_size >= 100_000 else str(r.batch_size)


def _phase_row(record, r: TrainingResult) -> list[str]:
    """A phase comparison's row of the case table: every column lists the phases' values."""
    a = r.architecture
    experiments = r.phase_experiments()

    def per_phase(quantity: str, digits: int = 4) -> str:
        out = []
        for e in experiments:
            if quantity in e.series and e.series[quantity]:
                row = e.final(quantity)
                out.append(fmt(sum(row) / len(row), digits))
        return " / ".join(out)

    sigmas = " / ".join(fmt(v.sigma_w2) for v in r.phases.values)
    claim = r.phases.claim("relative_change")
    change = (" / ".join(f"{fmt(e.value, 3)} {fmt_interval(e.interval, 3)}" for e in claim.values) if claim
              else per_phase("relative_change", 3))
    return [record.case, str(a.hidden_widths[0]), str(a.depth), sigmas, f"{r.optimizer} {r.learning_rate:g}",
            str(r.steps), str(r.networks), change, per_phase("alignment"), per_phase("block_ratio_growth"),
            per_phase("train_loss"), per_phase("test_accuracy", 3), verdict(record)]


def _phase_comparison_figure(records) -> Figure | None:
    """Relative change against step, one panel per phase comparison (regime), one colour per phase."""
    compared = sorted((r for r in records if r.result.phases is not None), key=by_case)
    panels = []
    quantity = "relative_change"
    for record in compared:
        r: TrainingResult = record.result
        a = r.architecture
        title = (f"{r.phases.regime or record.case}\n$n = {a.hidden_widths[0]}$, $L = {a.depth}$, {r.optimizer} "
                 f"{r.learning_rate:g}, {a.parametrization}, {r.normalization}")
        panel = Panel(title=title, xlabel="training step $t$", ylabel=quantity.replace("_", " ") + " (log scale)",
                      yscale="log")
        for experiment in r.phase_experiments():
            if quantity not in experiment.series:
                continue
            # step 0 is 0 by definition and has no place on a log axis
            kept = [(t, row) for t, row in zip(experiment.checkpoints, experiment.series[quantity])
                    if row and min(row) > 0]
            if not kept:
                continue
            steps_ = [float(t) for t, _ in kept]
            means = [math.exp(sum(math.log(v) for v in row) / len(row)) for _, row in kept]
            low, high = [min(row) for _, row in kept], [max(row) for _, row in kept]
            label = f"$\\sigma_w^2 = {experiment.sigma_w2:g}$ ({experiment.phase})"
            panel.series.append(Series(x=steps_, y=means, style="points", label=label, color_key=experiment.phase))
            panel.series.append(Series(x=steps_, y=means, style="line", color_key=experiment.phase))
            panel.series.append(Series(x=steps_, y=means, style="band", color_key=experiment.phase, low=low,
                                       high=high))
        if panel.series:
            panels.append(panel)
    if not panels:
        return None
    return Figure(
        name="training_claim3.png", panels=panels, columns=3, panel_size=(4.6, 3.5),
        covers=[r.case for r in records],
        omitted={r.case: "not a phase comparison (drawn in training_relative_change.png)" for r in records
                 if r.result.phases is None},
        caption=("Claim 3 per regime: relative change of the probe NTK (output trace) against the training step, one "
                 "panel per phase-comparison case (the same architecture and training at every σ_w²), one colour per "
                 "phase; dots and line: geometric mean over networks; band: minimum to maximum over networks. The "
                 "claim says the ordered phase's curve is the lowest."))


def _figure4(records) -> tuple[Figure | None, Figure | None]:
    """The paper's Fig. 4 of the phase comparison that recorded NTK matrices (the first by case
    id): one row per sigma_w^2 with Theta_c/Theta_d and Theta_n/Theta_d against the step and the
    heatmaps; and its loss panels (train and test loss at every step, log scale)."""
    compared = sorted((r for r in records if r.result.phases is not None
                       and any(v.ntk_matrices for v in r.result.phases.values)), key=by_case)
    if not compared:
        return None, None
    record = compared[0]
    omitted = {rec.case: "not a phase comparison" for rec in records if rec.result.phases is None}
    omitted.update({rec.case: (f"the figure shows one phase comparison, `{record.case}`" if rec in compared else
                               "no NTK matrices recorded (training.matrix_checkpoints)")
                    for rec in records if rec.result.phases is not None and rec is not record})
    r: TrainingResult = record.result
    values = r.phase_experiments()
    steps = sorted({t for v in values for t in v.ntk_matrices})
    panels: list = []
    for v in values:
        ratio = Panel(title=f"$\\sigma_w^2 = {v.sigma_w2:g}$ ({v.phase})", xlabel="training step $t$",
                      ylabel="ratio to the mean diagonal")
        x = [float(t) for t in v.checkpoints]
        for name, label, key in (("class_block_over_diagonal", r"$\Theta_c / \Theta_d$", "class block"),
                                 ("off_class_over_diagonal", r"$\Theta_n / \Theta_d$", "off class")):
            rows, errors = v.series.get(name), v.series.get(f"{name}_error")
            if not rows:
                continue
            y = [row[0] for row in rows]
            e = [row[0] for row in errors] if errors else [0.0] * len(y)
            ratio.series.append(Series(x=x, y=y, style="errorbars", label=f"{label} (network 0; bars: paper's)",
                                       low=[a - b for a, b in zip(y, e)], high=[a + b for a, b in zip(y, e)],
                                       color_key=key))
            for network in range(1, len(rows[0])):
                ratio.series.append(Series(x=x, y=[row[network] for row in rows], style="thin", color_key=key,
                                           label="other networks" if network == 1 and key == "off class" else ""))
        panels.append(ratio)
        for i, t in enumerate(steps):
            matrix = v.ntk_matrices.get(t)
            panels.append(MatrixPanel(title=f"$t = {t}$", matrix=matrix or [[math.nan]], labels=v.probe_labels or None,
                                      colorbar_label=r"$\sum_i \Theta_{ii}(x, x')$", scale_key=f"row {v.sigma_w2:g}",
                                      log_color=True, colorbar=i == len(steps) - 1))
    a = r.architecture
    where = (f"case `{record.case}`: n = {a.hidden_widths[0]}, L = {a.depth}, {r.optimizer} {r.learning_rate:g}, "
             f"{r.steps} steps, batch {_batch(r)}, {r.dataset} ({r.normalization}), {r.probe_size} probes, "
             f"{r.networks} networks")
    figure = Figure(
        name="training_figure4.png", panels=panels, columns=1 + len(steps), panel_size=(2.6, 2.6),
        width_ratios=[1.6] + [1.0] * len(steps), covers=[rec.case for rec in records], omitted=omitted,
        caption=(f"The paper's Fig. 4 ({where}): per σ_w² (rows), left: Θ_c/Θ_d (mean of the class-diagonal blocks "
                 "over the mean of the diagonal) and Θ_n/Θ_d (mean of the off-class entries over the mean of the "
                 "diagonal) of network 0's output-trace probe NTK at every checkpoint, with the paper's error bars "
                 "(mean within-block standard deviation, resp. the off-class standard deviation, over the mean "
                 "diagonal), faint: the other networks; right: network 0's matrix at "
                 + ", ".join(f"t = {t}" for t in steps) + " (logarithmic colour, one scale per row, inputs grouped "
                 "by class, class boundaries in cyan)."))
    losses = []
    for name, title in (("train_loss_per_step", "training loss"), ("test_loss_per_step", "test loss")):
        panel = Panel(title=title, xlabel="training step $t$", ylabel=f"{r.loss} {title.split()[0]} loss (log scale)",
                      yscale="log")
        for v in values:
            rows = getattr(v, name)
            if not rows:
                continue
            x = list(range(len(rows)))
            panel.series.append(Series(x=x, y=[row[0] for row in rows], style="line", color_key=v.phase,
                                       label=f"$\\sigma_w^2 = {v.sigma_w2:g}$ ({v.phase}), network 0"))
            for network in range(1, len(rows[0])):
                panel.series.append(Series(x=x, y=[row[network] for row in rows], style="thin", color_key=v.phase))
        if panel.series:
            losses.append(panel)
    loss_figure = Figure(
        name="training_losses.png", panels=losses, columns=2, panel_size=(4.6, 3.4),
        covers=[rec.case for rec in records], omitted=dict(omitted),
        caption=(f"The loss panels of the paper's Fig. 4 ({where}): training and test loss at every step (log scale), "
                 "one colour per σ_w²; solid: network 0, faint: the other networks. The training loss of a state is "
                 "the loss its update minimized (the full training set's in full-batch training)."),
    ) if losses else None
    return figure, loss_figure


def _own_experiment(result: TrainingResult) -> ExperimentSeries | None:
    """The experiment of the case's own network (not those of a depth trend or width scaling)."""
    a = result.architecture
    for experiment in result.experiments:
        if (experiment.depth, experiment.width) == (a.depth, a.hidden_widths[0]):
            return experiment
    return None


def _relative_change_figure(records) -> Figure | None:
    """One panel per architecture and training regime; one line per phase (sigma_w^2)."""
    panels_of = defaultdict(list)
    for record in records:
        r: TrainingResult = record.result
        if r.phases is not None:   # drawn per regime in training_claim3.png
            continue
        experiment = _own_experiment(r)
        if experiment is None or "relative_change" not in experiment.series:
            continue
        a = r.architecture
        key = (record.name, a.depth, a.hidden_widths[0], a.parametrization, r.optimizer, r.learning_rate, r.steps,
               r.dataset)
        panels_of[key].append((record, experiment))
    if not panels_of:
        return None
    drawn = {record.case for group in panels_of.values() for record, _ in group}
    omitted = {record.case: ("a phase comparison (drawn per regime in training_claim3.png)"
                             if record.result.phases is not None else "its own architecture was not trained")
               for record in records if record.case not in drawn}
    panels = []
    for key in sorted(panels_of, key=lambda k: natural_key(" ".join(str(v) for v in k))):
        name, depth, width, parametrization, optimizer, rate, steps, dataset = key
        title = f"{name}: $L = {depth}$, $n = {width}$, {optimizer} {rate:g}" + (
            f", {parametrization}" if parametrization != "standard" else "")
        panel = Panel(title=title, xlabel="training step $t$",
                      ylabel=r"$\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F$")
        for record, experiment in sorted(panels_of[key], key=lambda p: (PHASE_ORDER.get(p[0].phase, 9),
                                                                         p[0].result.architecture.sigma_w2)):
            steps_ = [float(t) for t in experiment.checkpoints]
            table = experiment.series["relative_change"]
            means = [sum(row) / len(row) for row in table]
            label = f"$\\sigma_w^2 = {record.result.architecture.sigma_w2:g}$ ({record.phase})"
            panel.series.append(Series(x=steps_, y=means, style="points", label=label, color_key=record.phase))
            panel.series.append(Series(x=steps_, y=means, style="line", color_key=record.phase,
                                       low=[min(row) for row in table], high=[max(row) for row in table]))
            panel.series.append(Series(x=steps_, y=means, style="band", color_key=record.phase,
                                       low=[min(row) for row in table], high=[max(row) for row in table]))
        panels.append(panel)
    return Figure(
        name="training_relative_change.png", panels=panels, columns=3, panel_size=(4.4, 3.3),
        covers=[record.case for record in records], omitted=omitted,
        caption=("Relative change of the probe NTK (output trace) during training, one panel per architecture and "
                 "training regime, one colour per phase; dots: the mean over networks at every checkpoint; band: "
                 "minimum to maximum over networks."))


def _ntk_matrices_figure(records) -> Figure | None:
    """Network 0's probe NTK before and after training, one row per phase, of the case name present
    in the most phases."""
    candidates = defaultdict(dict)
    for record in sorted(records, key=by_case):
        probe = record.result.probe_ntk
        if record.result.phases is None and probe is not None and probe.initial and probe.final:
            candidates[record.name].setdefault(record.phase, record)
    if not candidates:
        return None
    name = max(sorted(candidates), key=lambda n: len(candidates[n]))
    rows = [candidates[name][p] for p in sorted(candidates[name], key=lambda p: PHASE_ORDER.get(p, 9))]
    shown = {record.case for record in rows}
    omitted = {record.case: (f"one case per phase of `{name}` is shown" if record.name == name else
                             f"another case than `{name}` (the one in the most phases)")
               for record in records if record.case not in shown}
    panels = []
    for record in rows:
        r: TrainingResult = record.result
        probe = r.probe_ntk
        head = f"{record.phase}, $\\sigma_w^2 = {r.architecture.sigma_w2:g}$, $L = {probe.depth}$, $n = {probe.width}$"
        for which, matrix in (("at initialization", probe.initial), (f"after {r.steps} steps", probe.final)):
            panels.append(MatrixPanel(title=f"{head}\n{which}", matrix=matrix, labels=probe.labels,
                                      colorbar_label=r"$\sum_i \Theta_{ii}(x, x')$", scale_key=record.case))
    return Figure(
        name="ntk_matrices.png", panels=panels, columns=2, panel_size=(3.6, 3.2),
        covers=[record.case for record in records], omitted=omitted,
        caption=(f"Probe NTK (output trace) of network 0 of case `{name}` at initialization (left) and after training "
                 "(right), inputs grouped by class (axis ticks: class labels; white lines: class boundaries); the two "
                 "matrices of a row share one colour scale."))
