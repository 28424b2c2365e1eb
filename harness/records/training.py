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
from harness.records.base import Estimate, Interval, KindResult, number
from harness.records.figures import Figure, MatrixPanel, Panel, Series
from harness.records.format import fmt, fmt_interval, fmt_with_interval, verdict

PHASE_ORDER = {"ordered": 0, "eoc": 1, "chaotic": 2}


@dataclass
class ExperimentSeries:
    """One architecture trained over networks: ``series[quantity][checkpoint][network]``,
    ``eigenvalues[checkpoint][network]`` (top-k of the output-trace probe NTK), seconds."""

    depth: int
    width: int
    checkpoints: list[int]
    series: dict[str, list[list[float]]]
    eigenvalues: list[list[list[float]]] = field(default_factory=list)
    training_seconds: float = 0.0
    ntk_seconds: float = 0.0
    sigma_w2: float | None = None

    def final(self, quantity: str) -> list[float]:
        return self.series[quantity][-1]

    def to_record(self) -> dict:
        return {"depth": self.depth, "width": self.width, "checkpoints": self.checkpoints, "series": self.series,
                "eigenvalues": self.eigenvalues, "training_seconds": self.training_seconds,
                "ntk_seconds": self.ntk_seconds, "sigma_w2": self.sigma_w2}

    @classmethod
    def from_record(cls, value: dict) -> ExperimentSeries:
        return cls(depth=int(value["depth"]), width=int(value["width"]), checkpoints=list(value["checkpoints"]),
                   series={q: [[number(v) for v in row] for row in rows] for q, rows in value["series"].items()},
                   eigenvalues=value.get("eigenvalues") or [],
                   training_seconds=number(value.get("training_seconds")) or 0.0,
                   ntk_seconds=number(value.get("ntk_seconds")) or 0.0, sigma_w2=number(value.get("sigma_w2")))


@dataclass
class ProbeNTK:
    """Network 0's output-trace NTK on the probe set ([N][N], inputs grouped by class) at step
    0 and after the last step, with the probe labels."""

    labels: list[int]
    initial: list[list[float]]
    final: list[list[float]]
    depth: int
    width: int

    def to_record(self) -> dict:
        return {"labels": self.labels, "initial": self.initial, "final": self.final, "depth": self.depth,
                "width": self.width}

    @classmethod
    def from_record(cls, value: dict) -> ProbeNTK:
        return cls(labels=[int(v) for v in value["labels"]], initial=value["initial"], final=value["final"],
                   depth=int(value["depth"]), width=int(value["width"]))


@dataclass
class Fit:
    """A straight-line fit with the t-interval of its slope: a depth trend of log(quantity) on
    depth, or a width exponent of log(quantity) on log(width)."""

    quantity: str
    slope: float
    interval: Interval
    intercept: float
    points: int
    description: str = ""

    def to_record(self) -> dict:
        return {"quantity": self.quantity, "slope": self.slope, "interval": self.interval,
                "intercept": self.intercept, "points": self.points, "description": self.description}

    @classmethod
    def from_record(cls, value: dict) -> Fit:
        return cls(quantity=value["quantity"], slope=number(value["slope"]),
                   interval=Interval.from_record(value["interval"]), intercept=number(value["intercept"]),
                   points=int(value.get("points", 0)), description=value.get("description", ""))


@dataclass
class PhaseValue:
    """One phase of a phase comparison: the compared quantity at the last checkpoint, its
    geometric mean over networks with the exponentiated t-interval of the mean log, and the values."""

    phase: str
    sigma_w2: float
    value: Estimate
    per_network: list[float]

    def to_record(self) -> dict:
        return {"phase": self.phase, "sigma_w2": self.sigma_w2, "value": self.value, "per_network": self.per_network}

    @classmethod
    def from_record(cls, value: dict) -> PhaseValue:
        return cls(phase=value["phase"], sigma_w2=number(value["sigma_w2"]), value=Estimate.from_record(value["value"]),
                   per_network=[number(v) for v in value.get("per_network") or []])


@dataclass
class PhaseComparison:
    """Claim 3 in one regime: is ``quantity`` smallest in the ordered phase?

    ``tests``: one per (ordered, other) pair: ``ratio`` of geometric means ordered / other, its
    one-sided ``1 - level`` bounds ``lower``/``upper``, ``p_value``, ``degrees_of_freedom`` (Welch,
    on logs) and ``verdict`` (smaller, larger, not resolved); ``holds``: every test says smaller.
    """

    quantity: str
    level: float
    regime: str
    values: list[PhaseValue]
    tests: list[dict]
    holds: bool

    def to_record(self) -> dict:
        return {"quantity": self.quantity, "level": self.level, "regime": self.regime, "values": self.values,
                "tests": self.tests, "holds": self.holds}

    @classmethod
    def from_record(cls, value: dict) -> PhaseComparison:
        return cls(quantity=value["quantity"], level=number(value["level"]), regime=value.get("regime", ""),
                   values=[PhaseValue.from_record(v) for v in value.get("values") or []],
                   tests=[{k: (number(v) if k not in ("other_phase", "verdict") else v) for k, v in t.items()}
                          for t in value.get("tests") or []],
                   holds=bool(value["holds"]))


@dataclass
class TrainingResult(KindResult):
    """What a training case measured; ``final[q]``: mean over networks at the last checkpoint
    with its t-interval; ``per_network[q]``: the values behind it."""

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

    def statistics(self) -> dict[str, Estimate]:
        out = dict(self.final)
        if self.phases is not None:
            for v in self.phases.values:
                out[f"{self.phases.quantity}[sigma_w2={v.sigma_w2:g}]"] = v.value
        return out

    def phase_experiments(self) -> list[ExperimentSeries]:
        """The experiment of each phase of a phase comparison, in the order of ``phases.values``."""
        if self.phases is None:
            return []
        by_sigma = {e.sigma_w2: e for e in self.experiments}
        return [by_sigma[v.sigma_w2] for v in self.phases.values if v.sigma_w2 in by_sigma]

    def value(self, quantity: str) -> float | None:
        estimate = self.final.get(quantity)
        return estimate.value if estimate is not None else None

    def describe(self) -> list[tuple[str, object]]:
        a = self.architecture
        return [("sigma_w2", a.sigma_w2), ("depth", a.depth), ("width", a.hidden_widths[0]),
                ("output_dim", a.output_dim), ("parametrization", a.parametrization), ("optimizer", self.optimizer),
                ("learning_rate", self.learning_rate), ("steps", self.steps), ("batch_size", self.batch_size),
                ("loss", self.loss), ("dataset", self.dataset), ("normalization", self.normalization),
                ("probe_size", self.probe_size), ("networks", self.networks), ("checkpoints", self.checkpoints)]

    def to_record(self) -> dict:
        return {
            "architecture": self.architecture.to_record(), "optimizer": self.optimizer,
            "learning_rate": self.learning_rate, "steps": self.steps, "batch_size": self.batch_size, "loss": self.loss,
            "dataset": self.dataset, "normalization": self.normalization, "probe_size": self.probe_size,
            "networks": self.networks, "checkpoints": self.checkpoints, "final": self.final,
            "per_network": self.per_network, "experiments": self.experiments, "probe_ntk": self.probe_ntk,
            "depth_trend": self.depth_trend, "width_scaling": self.width_scaling, "regime": self.regime,
            "phases": self.phases,
        }

    @classmethod
    def from_record(cls, value: dict) -> TrainingResult:
        return cls(
            architecture=Architecture.from_record(value["architecture"]), optimizer=value["optimizer"],
            learning_rate=number(value["learning_rate"]), steps=int(value["steps"]),
            batch_size=int(value["batch_size"]), loss=value["loss"], dataset=value["dataset"],
            normalization=value.get("normalization", "unit_norm"), probe_size=int(value["probe_size"]),
            networks=int(value["networks"]), checkpoints=list(value["checkpoints"]),
            final={k: Estimate.from_record(v) for k, v in (value.get("final") or {}).items()},
            per_network={k: [number(x) for x in v] for k, v in (value.get("per_network") or {}).items()},
            experiments=[ExperimentSeries.from_record(e) for e in value.get("experiments") or []],
            probe_ntk=ProbeNTK.from_record(value["probe_ntk"]) if value.get("probe_ntk") else None,
            depth_trend=Fit.from_record(value["depth_trend"]) if value.get("depth_trend") else None,
            width_scaling=Fit.from_record(value["width_scaling"]) if value.get("width_scaling") else None,
            regime=value.get("regime", ""),
            phases=PhaseComparison.from_record(value["phases"]) if value.get("phases") else None,
        )

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
        drawn = (_relative_change_figure(usable), _ntk_matrices_figure(usable), _phase_comparison_figure(usable))
        return [figure for figure in drawn if figure is not None]

    @classmethod
    def summaries(cls, records) -> list[tuple[str, str, list[str], list[list[str]]]]:
        """Claim 3 per regime: one row per phase-comparison case."""
        compared = sorted((r for r in records if r.result is not None and r.result.phases is not None),
                          key=lambda r: r.case)
        if not compared:
            return []
        headers = ["case", "regime", "setting", "quantity", "ordered", "edge of chaos", "chaotic",
                   "ordered / other (one-sided bounds)", "claim 3", "outcome"]
        rows = []
        for record in compared:
            r: TrainingResult = record.result
            c = r.phases
            a = r.architecture
            setting = (f"{a.parametrization} param., {r.optimizer} {r.learning_rate:g}, {r.steps} steps, batch "
                       f"{_batch(r)}, {r.normalization}, n={a.hidden_widths[0]}, L={a.depth}, {r.networks} networks")
            cells = {}
            for v in c.values:
                text = f"{fmt(v.value.value, 3)} {fmt_interval(v.value.interval, 3)} (σ_w²={fmt(v.sigma_w2)})"
                cells[v.phase] = f"{cells[v.phase]}; {text}" if v.phase in cells else text
            ratios = "; ".join(f"/{t['other_phase']}: {fmt(t['ratio'], 3)} [{fmt(t['lower'], 3)}, "
                               f"{fmt(t['upper'], 3)}] {t['verdict']}" for t in c.tests)
            if c.holds:
                claim = "holds"
            elif any(t["verdict"] == "larger" for t in c.tests):
                claim = "fails (reversed)"
            else:
                claim = "fails (not resolved)"
            rows.append([record.case, c.regime, setting, c.quantity, cells.get("ordered", ""), cells.get("eoc", ""),
                         cells.get("chaotic", ""), ratios, claim, verdict(record)])
        text = ("Claim 3 of the paper: the NTK may stay constant during training only in the ordered phase. Each row "
                "trains the same architecture with the same training at every σ_w²; a phase's value is the geometric "
                "mean over networks of the quantity at the last checkpoint with the exponentiated 95% t-interval of "
                "the mean log. The claim holds when, for every other phase, a one-sided Welch test on logs puts the "
                "ratio ordered / other below 1 at the stated level (bounds shown are the one-sided ones); "
                "'reversed': the ordered phase's value is significantly LARGER. Outcome xfail: the case declares the "
                "claim an expected failure in this regime (strict).")
        return [("Claim 3 per regime (training)", text, headers, rows)]


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
    change = " / ".join(f"{fmt(v.value.value, 3)} {fmt_interval(v.value.interval, 3)}" for v in r.phases.values)
    return [record.case, str(a.hidden_widths[0]), str(a.depth), sigmas, f"{r.optimizer} {r.learning_rate:g}",
            str(r.steps), str(r.networks), change, per_phase("alignment"), per_phase("block_ratio_growth"),
            per_phase("train_loss"), per_phase("test_accuracy", 3), verdict(record)]


def _phase_comparison_figure(records) -> Figure | None:
    """Relative change against step, one panel per phase comparison (regime), one colour per phase."""
    compared = sorted((r for r in records if r.result.phases is not None), key=lambda r: r.case)
    panels = []
    for record in compared:
        r: TrainingResult = record.result
        a = r.architecture
        quantity = r.phases.quantity
        title = (f"{r.phases.regime or record.case}\n$n = {a.hidden_widths[0]}$, $L = {a.depth}$, {r.optimizer} "
                 f"{r.learning_rate:g}, {a.parametrization}, {r.normalization}")
        panel = Panel(title=title, xlabel="training step $t$", ylabel=quantity.replace("_", " ") + " (log scale)",
                      yscale="log")
        for value, experiment in zip(r.phases.values, r.phase_experiments()):
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
            label = f"$\\sigma_w^2 = {value.sigma_w2:g}$ ({value.phase})"
            panel.series.append(Series(x=steps_, y=means, style="points", label=label, color_key=value.phase))
            panel.series.append(Series(x=steps_, y=means, style="line", color_key=value.phase))
            panel.series.append(Series(x=steps_, y=means, style="band", color_key=value.phase, low=low, high=high))
        if panel.series:
            panels.append(panel)
    if not panels:
        return None
    return Figure(
        name="training_claim3.png", panels=panels, columns=3, panel_size=(4.6, 3.5),
        caption=("Claim 3 per regime: relative change of the probe NTK (output trace) against the training step, one "
                 "panel per phase-comparison case (the same architecture and training at every σ_w²), one colour per "
                 "phase; dots and line: geometric mean over networks; band: minimum to maximum over networks. The "
                 "claim says the ordered phase's curve is the lowest."))


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
    panels = []
    for key in sorted(panels_of, key=lambda k: tuple(str(v) for v in k)):
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
        caption=("Relative change of the probe NTK (output trace) during training, one panel per architecture and "
                 "training regime, one colour per phase; dots: the mean over networks at every checkpoint; band: "
                 "minimum to maximum over networks."))


def _ntk_matrices_figure(records) -> Figure | None:
    """Network 0's probe NTK before and after training, one row per phase, of the case name present
    in the most phases."""
    candidates = defaultdict(dict)
    for record in sorted(records, key=lambda r: r.case):
        probe = record.result.probe_ntk
        if record.result.phases is None and probe is not None and probe.initial and probe.final:
            candidates[record.name].setdefault(record.phase, record)
    if not candidates:
        return None
    name = max(sorted(candidates), key=lambda n: len(candidates[n]))
    rows = [candidates[name][p] for p in sorted(candidates[name], key=lambda p: PHASE_ORDER.get(p, 9))]
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
        caption=(f"Probe NTK (output trace) of network 0 of case `{name}` at initialization (left) and after training "
                 "(right), inputs grouped by class (axis ticks: class labels; white lines: class boundaries); the two "
                 "matrices of a row share one colour scale."))
