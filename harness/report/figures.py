"""Report figures (PNG, matplotlib's Agg backend), drawn from figure data.

Each kind's result type contributes :class:`~harness.records.figures.Figure` objects
(:meth:`KindResult.figures`); :func:`render` draws any of them without knowing a kind's
fields. Panels go on a grid; one legend for the whole figure sits below the panels, outside
every axes (never over data); series with the same ``color_key`` share a colour in every
panel; labels use matplotlib's mathtext; a figure's omitted cases follow its caption. ``benchmarks.png`` (fastest round per
pytest-benchmark entry) is drawn here from the benchmark JSON.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.kinds import result_types
from harness.records.document import ResultsDocument
from harness.records.figures import Figure, MatrixPanel, Panel

#: (file name, reason shown when it is not drawn) of the figures a report can have.
KNOWN = {
    "dispersion_vs_depth.png": "no dispersion case of a ReLU network with equal hidden widths",
    "dispersion_offdiagonal_vs_depth.png": "no sweep over depth measured off-diagonal entries",
    "dispersion_vs_correlation.png": "no dispersion case measured off-diagonal entries "
                                     "(inputs.inner_products with 2 or more values)",
    "paper_dispersion.png": "no depth sweep over the paper's grid (at least 8 values of sigma_w^2 and 10 depths)",
    "training_relative_change.png": "no training case without [case.phases] ran (phase comparisons: "
                                    "training_claim3.png)",
    "training_claim3.png": "no phase comparison (claim 3) ran",
    "training_figure4.png": "no phase comparison recorded NTK matrices (training.matrix_checkpoints)",
    "training_losses.png": "no phase comparison recorded NTK matrices (training.matrix_checkpoints)",
    "ntk_matrices.png": "no training case without [case.phases] recorded probe NTK matrices (a phase "
                        "comparison's: training_figure4.png)",
    "benchmarks.png": "no benchmarks ran in this session or were given",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _plain_log_ticks(ax, axis: str = "y") -> None:
    """A log axis with plain numbers (1.5, 2, 30, not 1.5 x 10^0) and enough labels to read it:
    at 1, 2 and 5 times each power of ten when the axis spans fewer than three decades, at
    evenly spaced round numbers when it spans less than half a decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:.4g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    decades = math.log10(high / low) if low > 0 and high > low else 0.0
    if decades < 0.5:
        target.set_major_locator(MaxNLocator(nbins=4))
    elif decades < 3:
        target.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(plain)
    target.set_minor_formatter(NullFormatter())


def _grid(count: int, columns: int, size, width_ratios=None):
    """Rows x columns axes for ``count`` panels and one more slot when a legend needs it."""
    plt = _pyplot()
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    ratios = list(width_ratios) if width_ratios and len(width_ratios) == columns else [1.0] * columns
    fig, axes = plt.subplots(rows, columns, figsize=(size[0] * sum(ratios), size[1] * rows), squeeze=False,
                             gridspec_kw={"width_ratios": ratios})
    return fig, axes.ravel()


def _colors(figure: Figure) -> dict[str, str]:
    keys = []
    for panel in figure.panels:
        for series in getattr(panel, "series", []):
            if series.color_key is not None and series.color_key not in keys:
                keys.append(series.color_key)
    return {key: f"C{i % 10}" for i, key in enumerate(keys)}


def _draw_panel(ax, panel: Panel, colors: dict[str, str], scale=None) -> None:
    for index, series in enumerate(panel.series):
        color = colors.get(series.color_key, f"C{index % 10}")
        if series.color_value is not None and scale is not None:
            color = scale.to_rgba(series.color_value)
        x = np.asarray(series.x, dtype=float)
        y = np.asarray([np.nan if v is None else v for v in series.y], dtype=float)
        label = series.label or None
        if series.style == "points":
            if series.low is not None and series.high is not None:
                low = np.asarray(series.low, dtype=float)
                high = np.asarray(series.high, dtype=float)
                errors = np.vstack([np.clip(y - low, 0, None), np.clip(high - y, 0, None)])
                ax.errorbar(x, y, yerr=np.nan_to_num(errors), fmt="o", color=color, ms=4, capsize=3, label=label,
                            lw=1.0)
            else:
                ax.plot(x, y, "o", color=color, ms=4, label=label)
        elif series.style in ("line", "dashed", "dotted"):
            ax.plot(x, y, {"line": "-", "dashed": "--", "dotted": ":"}[series.style], color=color, lw=1.2,
                    label=label)
        elif series.style == "errorbars":
            low = np.asarray(series.low if series.low is not None else y, dtype=float)
            high = np.asarray(series.high if series.high is not None else y, dtype=float)
            errors = np.vstack([np.clip(y - low, 0, None), np.clip(high - y, 0, None)])
            ax.errorbar(x, y, yerr=np.nan_to_num(errors), fmt="-", color=color, lw=1.4, elinewidth=1.0, capsize=2,
                        alpha=0.9, label=label)
        elif series.style == "thin":
            ax.plot(x, y, "-", color=color, lw=0.6, alpha=0.35, label=label)
        elif series.style == "band":
            ax.fill_between(x, series.low, series.high, color=color, alpha=0.15, lw=0, label=label)
        elif series.style == "ranges":
            ax.vlines(x, series.low, series.high, color=color, alpha=0.35, lw=6, label=label)
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel(panel.xlabel, fontsize=8)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if panel.xticks is not None:
        ax.set_xticks(panel.xticks)
    if panel.xscale == "log":
        ax.set_xscale("log")
    if panel.yscale == "log":
        ax.set_yscale("log")
        _plain_log_ticks(ax)


def _draw_matrix(fig, ax, panel: MatrixPanel, scale: tuple[float, float] | None) -> None:
    matrix = np.asarray(panel.matrix, dtype=float)
    labels = np.asarray(panel.labels if panel.labels is not None else range(matrix.shape[0]))
    order = np.argsort(labels, kind="stable")
    matrix = matrix[np.ix_(order, order)]
    labels = labels[order]
    vmin, vmax = scale if scale is not None else (None, None)
    if panel.log_color:
        from matplotlib.colors import LogNorm

        positive = matrix[matrix > 0]
        low = vmin if vmin is not None and vmin > 0 else (float(positive.min()) if positive.size else 1e-300)
        high = vmax if vmax is not None else (float(positive.max()) if positive.size else 1.0)
        image = ax.imshow(np.where(matrix > 0, matrix, np.nan), cmap="hot", norm=LogNorm(vmin=low, vmax=high))
    else:
        image = ax.imshow(matrix, cmap="viridis", vmin=vmin, vmax=vmax)
    if panel.colorbar:
        bar = fig.colorbar(image, ax=ax, fraction=0.046)
        bar.set_label(panel.colorbar_label, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    boundaries = np.flatnonzero(np.diff(labels)) + 0.5
    line_color = "c" if panel.log_color else "w"   # white is the top of the 'hot' map
    for b in boundaries:
        ax.axhline(b, color=line_color, lw=0.4)
        ax.axvline(b, color=line_color, lw=0.4)
    starts = np.concatenate([[-0.5], boundaries, [len(labels) - 0.5]])
    centers = (starts[:-1] + starts[1:]) / 2
    classes = [labels[int(math.ceil(s + 0.5))] for s in starts[:-1]]
    ax.set_xticks(centers)
    ax.set_xticklabels([str(c) for c in classes], fontsize=6)
    ax.set_yticks(centers)
    ax.set_yticklabels([str(c) for c in classes], fontsize=6)
    ax.set_xlabel(panel.axis_label, fontsize=8)
    ax.set_ylabel(panel.axis_label, fontsize=8)
    ax.set_title(panel.title, fontsize=8)


def _color_scale(figure: Figure):
    """The ScalarMappable of the figure's colour scale over its series' ``color_value`` (or None)."""
    if figure.color_scale is None:
        return None
    from matplotlib import cm
    from matplotlib.colors import Normalize

    values = [s.color_value for p in figure.panels for s in getattr(p, "series", []) if s.color_value is not None]
    if not values:
        return None
    low, high = min(values), max(values)
    return cm.ScalarMappable(norm=Normalize(low, high if high > low else low + 1.0),
                             cmap=figure.color_scale[0])


def render(figure: Figure, path: Path) -> None:
    """Draw ``figure`` into the PNG file ``path``."""
    plt = _pyplot()
    fig = draw(figure)
    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def draw(figure: Figure):
    """The matplotlib figure of ``figure`` (the caller closes it): panels on a grid, matrices with
    their colour scales, and ONE legend for the whole figure, below the panels, outside every
    axes, so that no legend covers data (tests/report checks the extents)."""
    count = len(figure.panels)
    columns = max(1, min(figure.columns, count))
    fig, axes = _grid(count, columns, figure.panel_size, figure.width_ratios)
    colors = _colors(figure)
    scales: dict[str, tuple[float, float]] = {}
    for panel in figure.panels:
        if isinstance(panel, MatrixPanel) and panel.scale_key is not None:
            values = np.asarray(panel.matrix, dtype=float)
            if panel.log_color:
                values = values[values > 0] if (values > 0).any() else np.array([1.0])
            low, high = scales.get(panel.scale_key, (math.inf, -math.inf))
            scales[panel.scale_key] = (min(low, float(np.nanmin(values))), max(high, float(np.nanmax(values))))
    scale = _color_scale(figure)
    for ax, panel in zip(axes, figure.panels):
        if isinstance(panel, MatrixPanel):
            _draw_matrix(fig, ax, panel, scales.get(panel.scale_key))
        else:
            _draw_panel(ax, panel, colors, scale)
    for ax in axes[count:]:
        ax.set_visible(False)
    fig.tight_layout()
    if scale is not None:
        bar = fig.colorbar(scale, ax=list(axes[:count]), fraction=0.02, pad=0.01)
        bar.set_label(figure.color_scale[1], fontsize=8)
        bar.ax.tick_params(labelsize=7)
    seen: dict[str, object] = {}
    for ax in axes[:count]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        renderer = fig.canvas.get_renderer()
        to_figure = fig.transFigure.inverted()
        lowest = min(ax.get_tightbbox(renderer).transformed(to_figure).y0 for ax in axes[:count])
        columns_of_legend = max(1, min(3, len(seen)))
        fig.legend(list(seen.values()), list(seen.keys()), loc="upper center", bbox_to_anchor=(0.5, lowest - 0.005),
                   ncol=columns_of_legend, fontsize=7, frameon=False, bbox_transform=fig.transFigure)
    return fig


def _benchmark_label(bench: dict) -> str:
    group = bench.get("group") or "-"
    name = (bench.get("extra_info") or {}).get("implementation") or bench.get("name", "")
    name = name.replace(f"-{group}", "").replace(group, "")
    return f"{group} | {name}"[:60]


def benchmark_bars(benchmarks: list[dict], path: Path) -> str | None:
    entries = [b for b in benchmarks if isinstance(b.get("stats"), dict) and b["stats"].get("min") is not None]
    if not entries:
        return None
    entries.sort(key=lambda b: (b.get("group") or "", float(b["stats"]["min"])))
    entries = entries[:60]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(entries) + 1.2))
    try:
        _benchmark_axes(ax, entries)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return "Implementation benchmarks: fastest round per benchmark (log scale), one colour per group"


def _benchmark_axes(ax, entries) -> None:
    groups = sorted({b.get("group") or "-" for b in entries})
    colors = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    y = np.arange(len(entries))
    ax.barh(y, [float(b["stats"]["min"]) * 1e3 for b in entries],
            xerr=[float(b["stats"].get("stddev") or 0) * 1e3 for b in entries],
            color=[colors[b.get("group") or "-"] for b in entries])
    ax.set_yticks(y)
    ax.set_yticklabels([_benchmark_label(b) for b in entries], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("fastest round (ms); bar: standard deviation")


def draw_all(document: ResultsDocument, directory: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """Draw every figure the records allow into ``directory``; return (drawn, reasons for the rest)."""
    drawn: list[tuple[str, str]] = []
    failed: dict[str, str] = {}
    by_kind: dict[str, list] = {}
    for record in document.records:
        by_kind.setdefault(record.kind, []).append(record)
    for kind, result_type in result_types().items():
        try:
            figures = result_type.figures(by_kind.get(kind, []))
        except Exception as exc:   # a figure is never worth the report: say why it is missing
            failed[f"{kind} figures"] = f"{type(exc).__name__}: {exc}"
            continue
        for figure in figures:
            try:
                render(figure, directory / figure.name)
            except Exception as exc:
                failed[figure.name] = f"{type(exc).__name__}: {exc}"
                continue
            drawn.append((figure.name, " ".join(part for part in (figure.caption, figure.omissions()) if part)))
    try:
        caption = benchmark_bars(document.benchmarks, directory / "benchmarks.png")
    except Exception as exc:
        failed["benchmarks.png"], caption = f"{type(exc).__name__}: {exc}", None
    if caption:
        drawn.append(("benchmarks.png", caption))
    names = {name for name, _ in drawn}
    skipped = [f"`{name}`: could not be drawn: {reason}" for name, reason in failed.items()]
    skipped += [f"`{name}`: {reason}" for name, reason in KNOWN.items() if name not in names and name not in failed]
    return drawn, skipped
