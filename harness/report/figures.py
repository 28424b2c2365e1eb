"""Report figures (PNG, matplotlib Agg backend); each returns None when the records lack its data.

- ``dispersion_vs_depth.png`` (the paper's Fig. 2 at the sweep's size): measured dispersion
  E[Θ²]/E[Θ]² of Θ(x,x) against depth L, one panel per σ_w², error bars = the measured
  95% interval; solid line: the exact finite-width dispersion at every depth 1..max L at the
  sweep's width (:class:`reference.ExactLaw`); dashed: the n, L -> ∞ limit at λ = L/n
  (:func:`reference.asymptotic_dispersion`).
- ``dispersion_vs_correlation.png``: dispersion of Θ(x0, x) against cos(x0, x) per case
  (``measured.off_diagonal``), one panel per phase.
- ``training_relative_change.png``: relative NTK change |Θ_t-Θ_0|/|Θ_0| against step, one
  panel per phase, mean over seeds with min-max band; needs ``record["extra"]["experiments"]``.
- ``ntk_matrices.png``: probe NTK before and after training, inputs grouped by class; needs
  ``record["extra"]["probe_ntk"] = {"labels": [N], "initial": [N][N], "final": [N][N]}``.
- ``benchmarks.png``: fastest round per benchmark, grouped.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from harness.report.formatting import as_float

PHASES = ("ordered", "eoc", "chaotic")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _plain_log_ticks(ax) -> None:
    """Log y axis with plain numbers (1.5, 2, 30) instead of 1.5 x 10^0; minor labels only within a decade."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    if low > 0 and high / low < 10:
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def _grid(count: int, columns: int = 3, size=(4.2, 3.3)):
    plt = _pyplot()
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False)
    flat = axes.ravel()
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _dispersion_records(records):
    return [r for r in records if r.get("kind") == "dispersion" and isinstance(r.get("measured"), dict)
            and r["measured"].get("dispersion") is not None]


def dispersion_vs_depth(records: list[dict], path: Path) -> str | None:
    from matplotlib.lines import Line2D

    import reference

    points = defaultdict(list)   # (sigma_w2) -> records with uniform width
    for r in _dispersion_records(records):
        p = r.get("parameters", {})
        if not isinstance(r.get("width"), int) or p.get("activation", "relu") != "relu" or p.get("sigma_b2", 0):
            continue
        points[as_float(r.get("sigma_w2"))].append(r)
    if not points:
        return None
    sigmas = sorted(points)
    fig, axes = _grid(len(sigmas), columns=4, size=(3.6, 3.0))
    for ax, sigma in zip(axes, sigmas):
        series = defaultdict(list)
        for r in points[sigma]:
            p = r["parameters"]
            key = (r["width"], bool(p.get("trainable_bias", True)), p.get("input_dim", r["width"]),
                   p.get("parametrization", "standard"), as_float(p.get("input_norm_sq", 1.0)))
            series[key].append(r)
        for index, (key, group) in enumerate(sorted(series.items())):
            width, bias, input_dim, parametrization, norm_sq = key
            color = f"C{index % 10}"
            group.sort(key=lambda r: r["depth"])
            depth = np.array([r["depth"] for r in group])
            value = np.array([as_float(r["measured"]["dispersion"]) for r in group])
            bounds = np.array([[as_float(b) for b in r["measured"].get("intervals", {}).get("dispersion", [np.nan, np.nan])]
                               for r in group])
            errors = np.abs(np.vstack([value - bounds[:, 0], bounds[:, 1] - value]))
            label = f"n={width}" + ("" if bias else ", no bias")
            ax.errorbar(depth, value, yerr=np.nan_to_num(errors), fmt="o", color=color, ms=4, capsize=3, label=label)
            depths = np.arange(1, int(depth.max()) + 1)
            if parametrization == "standard":
                try:
                    exact = [reference.ExactLaw((input_dim,) + (width,) * int(L), sigma, trainable_bias=bias,
                                                input_norm_sq=norm_sq).dispersion() for L in depths]
                    ax.plot(depths, exact, "-", color=color, lw=1.2)
                except ValueError:
                    pass
                try:
                    fine = np.linspace(0, depths[-1], 200)
                    asymptotic = [reference.asymptotic_dispersion(L / width, sigma, bias) for L in fine]
                    ax.plot(fine, asymptotic, "--", color=color, lw=1.0)
                except ValueError:
                    pass
        phase = group[0].get("phase", "")
        ax.set_title(f"σ_w² = {sigma:g} ({phase})", fontsize=9)
        ax.set_xlabel("depth L")
        ax.set_ylabel("E[Θ²] / E[Θ]²")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="k", lw=1.2), Line2D([], [], color="k", lw=1.0, ls="--")]
        labels += ["exact, finite width", "asymptotic, λ = L/n"]
        ax.legend(handles, labels, fontsize=6, loc="best")
    _save(fig, path)
    return ("Dispersion of Θ(x, x) against depth per σ_w² (points: measured, bars: 95% interval; solid: exact "
            "finite-width law at the sweep's width; dashed: the n, L → ∞ limit at λ = L/n)")


def dispersion_vs_correlation(records: list[dict], path: Path) -> str | None:
    """Per σ_w² of the largest sweep (the case name with the most such records), one line per depth."""
    usable = [r for r in _dispersion_records(records) if len(r["measured"].get("off_diagonal") or []) >= 2
              and isinstance(r.get("width"), int)]
    if not usable:
        return None
    by_name = defaultdict(list)
    for r in usable:
        by_name[(r["case"].split("[")[0], r["width"], bool(r.get("parameters", {}).get("trainable_bias", True)))].append(r)
    (name, width, bias), chosen = max(by_name.items(), key=lambda kv: (len(kv[1]), kv[0][0]))
    by_sigma = defaultdict(list)
    for r in chosen:
        by_sigma[as_float(r.get("sigma_w2"))].append(r)
    sigmas = sorted(by_sigma)
    fig, axes = _grid(len(sigmas), columns=4, size=(3.6, 3.0))
    for ax, sigma in zip(axes, sigmas):
        group = sorted(by_sigma[sigma], key=lambda r: as_float(r.get("depth")))
        for index, r in enumerate(group):
            columns = sorted(r["measured"]["off_diagonal"][1:] or r["measured"]["off_diagonal"],
                             key=lambda c: as_float(c.get("cosine")))
            ax.plot([as_float(c.get("cosine")) for c in columns], [as_float(c.get("dispersion")) for c in columns],
                    "o-", ms=3, color=f"C{index % 10}", label=f"L={r.get('depth')}")
        ax.set_title(f"σ_w² = {sigma:g} ({group[0].get('phase', '')})", fontsize=9)
        ax.set_xlabel("cos(x0, x)")
        ax.set_ylabel("dispersion of Θ(x0, x)")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        ax.legend(fontsize=6, loc="best")
    _save(fig, path)
    others = len(usable) - len(chosen)
    return (f"Dispersion E[Θ(x0,x)²]/E[Θ(x0,x)]² against the input correlation cos(x0, x), case `{name}` "
            f"(n = {width}{'' if bias else ', no bias'}), one line per depth"
            + (f"; {others} other cases with off-diagonal entries are in results.json" if others else ""))


def _training_series(records):
    """Per phase: (record, experiment, series) of each case's own network (not its trend/scaling runs),
    without repeats (two cases training the same network with the same seeds show one line)."""
    by_phase = defaultdict(list)
    seen = set()
    for r in sorted(records, key=lambda r: r.get("case", "")):
        if r.get("kind") != "training":
            continue
        for experiment in ((r.get("extra") or {}).get("experiments") or []):
            values = (experiment.get("series") or {}).get("relative_change")
            if not values or not experiment.get("checkpoints"):
                continue
            if (experiment.get("depth"), experiment.get("width")) != (r.get("depth"), r.get("width")):
                continue
            key = json.dumps([experiment["checkpoints"], values])
            if key in seen:
                continue
            seen.add(key)
            by_phase[r.get("phase", "-")].append((r, experiment, values))
    return by_phase


def training_relative_change(records: list[dict], path: Path) -> str | None:
    by_phase = _training_series(records)
    if not by_phase:
        return None
    phases = [p for p in PHASES if p in by_phase] + [p for p in by_phase if p not in PHASES]
    fig, axes = _grid(len(phases), columns=3)
    for ax, phase in zip(axes, phases):
        for index, (r, experiment, values) in enumerate(by_phase[phase]):
            steps = np.array(experiment["checkpoints"], dtype=float)
            table = np.array([[as_float(v) for v in row] for row in values])   # [checkpoint, seed]
            color = f"C{index % 10}"
            label = r["case"].split("[")[0] + f" (L={experiment.get('depth')}, n={experiment.get('width')})"
            ax.plot(steps, table.mean(axis=1), "o-", ms=3, color=color, label=label)
            ax.fill_between(steps, table.min(axis=1), table.max(axis=1), color=color, alpha=0.12)
        ax.set_title(f"{phase} (σ_w² = {by_phase[phase][0][0].get('sigma_w2')})", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("|Θ_t − Θ_0|_F / |Θ_0|_F")
        ax.legend(fontsize=6, loc="upper left")
    _save(fig, path)
    return ("Relative change of the probe NTK during training, per phase: each case's own network "
            "(mean over seeds; band: min to max over seeds)")


def ntk_matrices(records: list[dict], path: Path) -> str | None:
    """One row per phase: the probe NTK of network 0 before and after training, of one case name
    (the one present in the most phases), inputs sorted by class."""
    candidates = defaultdict(dict)   # case name -> phase -> (record, probe)
    for r in sorted(records, key=lambda r: r.get("case", "")):
        probe = (r.get("extra") or {}).get("probe_ntk")
        if r.get("kind") == "training" and probe and probe.get("initial") and probe.get("final"):
            candidates[r["case"].split("[")[0]].setdefault(r.get("phase", "-"), (r, probe))
    if not candidates:
        return None
    name = max(candidates, key=lambda n: (len(candidates[n]), -sorted(candidates).index(n)))
    rows = [candidates[name][p] for p in PHASES if p in candidates[name]] + [
        v for p, v in candidates[name].items() if p not in PHASES]
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 2, figsize=(6.6, 3.0 * len(rows)), squeeze=False)
    for (r, probe), row in zip(rows, axes):
        labels = np.asarray(probe.get("labels") or range(len(probe["initial"])))
        order = np.argsort(labels, kind="stable")
        boundaries = np.flatnonzero(np.diff(labels[order])) + 0.5
        for ax, key in zip(row, ("initial", "final")):
            matrix = np.array(probe[key], dtype=float)[np.ix_(order, order)]
            image = ax.imshow(matrix, cmap="viridis")
            fig.colorbar(image, ax=ax, fraction=0.046)
            for b in boundaries:
                ax.axhline(b, color="w", lw=0.3)
                ax.axvline(b, color="w", lw=0.3)
            when = "at initialization" if key == "initial" else f"after {r.get('parameters', {}).get('steps', '')} steps"
            ax.set_title(f"{r.get('phase')} σ_w² = {r.get('sigma_w2')}, L = {r.get('depth')}, n = {r.get('width')}\n"
                         f"{when}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    _save(fig, path)
    return (f"Probe NTK (output trace) of network 0 of case `{name}` at initialization and after training, "
            "inputs grouped by class (white lines: class boundaries)")


def _benchmark_label(bench: dict) -> str:
    """``group | implementation`` (or the test name without the group's parameters), at most 60 characters."""
    group = bench.get("group") or "-"
    name = (bench.get("extra_info") or {}).get("implementation") or bench.get("name", "")
    name = name.replace(f"-{group}", "").replace(group, "")
    return f"{group} | {name}"[:60]


def benchmark_bars(benchmarks: list[dict], path: Path) -> str | None:
    entries = [b for b in benchmarks if isinstance(b.get("stats"), dict) and b["stats"].get("min") is not None]
    if not entries:
        return None
    entries.sort(key=lambda b: (b.get("group") or "", as_float(b["stats"]["min"])))
    entries = entries[:60]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(entries) + 1.2))
    groups = sorted({b.get("group") or "-" for b in entries})
    colors = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    y = np.arange(len(entries))
    ax.barh(y, [as_float(b["stats"]["min"]) * 1e3 for b in entries],
            xerr=[as_float(b["stats"].get("stddev", 0)) * 1e3 for b in entries],
            color=[colors[b.get("group") or "-"] for b in entries])
    ax.set_yticks(y)
    ax.set_yticklabels([_benchmark_label(b) for b in entries], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("fastest round (ms), bar: stddev")
    _save(fig, path)
    return "Implementation benchmarks: fastest round per benchmark (log scale)"


FIGURES = (
    ("dispersion_vs_depth.png", "records", dispersion_vs_depth, "no dispersion cases of ReLU nets with uniform width"),
    ("dispersion_vs_correlation.png", "records", dispersion_vs_correlation,
     "no dispersion case measured off-diagonal entries (inputs.inner_products with 2 or more values)"),
    ("training_relative_change.png", "records", training_relative_change,
     "no training record carries per-checkpoint series (record[\"extra\"][\"experiments\"])"),
    ("ntk_matrices.png", "records", ntk_matrices,
     "no training record carries probe NTK matrices (record[\"extra\"][\"probe_ntk\"])"),
    ("benchmarks.png", "benchmarks", benchmark_bars, "no benchmarks ran in this session or were given"),
)


def draw_all(document: dict, directory: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Draw every figure the data allow into ``directory``; return (drawn, reasons for the rest)."""
    drawn, skipped = [], []
    for name, source, draw, reason in FIGURES:
        data = document.get(source) or []
        caption = draw(data, directory / name)
        if caption:
            drawn.append((name, caption))
        else:
            skipped.append(f"`{name}`: {reason}")
    return drawn, skipped
