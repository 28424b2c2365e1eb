"""Figure data a kind contributes to a report (torch-free, matplotlib-free).

A kind's result type returns :class:`Figure` objects from its records; the report renders
them (:mod:`harness.report.figures`) without knowing any kind's fields. A figure is a grid
of panels; a :class:`Panel` holds :class:`Series` (points with error bars, lines, bands), a
:class:`MatrixPanel` holds one matrix drawn as an image with class labels on its axes.

Colours follow ``Series.color_key``: the same key gets the same colour in every panel of a
figure (e.g. one colour per width across all panels).
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: How a series is drawn: ``points`` (markers, optional error bars from low/high, no line),
#: ``line`` (solid, no markers), ``dashed``, ``dotted``, ``band`` (filled between low and high),
#: ``ranges`` (vertical bars from low to high at each x, no marker: an accepted region),
#: ``errorbars`` (a solid line with error bars from low to high, no markers: the paper's Fig. 4),
#: ``thin`` (a faint thin line: one of several networks behind a mean).
STYLES = ("points", "line", "dashed", "dotted", "band", "ranges", "errorbars", "thin")


@dataclass
class Series:
    """One series of a panel. ``low``/``high``: error bars (points), a band or ranges."""

    x: list[float]
    y: list[float]
    label: str = ""
    style: str = "points"
    low: list[float] | None = None
    high: list[float] | None = None
    color_key: str | None = None
    #: a value on the figure's colour scale (``Figure.color_scale``) instead of a colour key
    color_value: float | None = None

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}; got {self.style!r}")
        if len(self.x) != len(self.y):
            raise ValueError(f"series {self.label!r}: {len(self.x)} x values for {len(self.y)} y values")


@dataclass
class Panel:
    """Axes with series; ``xscale``/``yscale``: ``linear`` or ``log``. Labels may use matplotlib mathtext."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    xscale: str = "linear"
    yscale: str = "linear"
    xticks: list[float] | None = None


@dataclass
class MatrixPanel:
    """A matrix drawn as an image; ``labels`` (one class label per row) label the axes by class
    blocks; panels of one figure with the same ``scale_key`` share one colour scale."""

    title: str
    matrix: list[list[float]]
    labels: list[int] | None = None
    colorbar_label: str = ""
    scale_key: str | None = None
    axis_label: str = "class"
    #: logarithmic colour scale (positive entries; the paper's heatmaps)
    log_color: bool = False
    #: draw this panel's colour bar (panels sharing a scale_key may leave it to the last of them)
    colorbar: bool = True


@dataclass
class Figure:
    """A PNG file of a report: ``name`` (file name), ``caption`` (said in report.md), panels.

    ``covers``: the cases (ids) the figure was drawn from; ``omitted``: those of them it does not
    show, each with the reason (report.md states them after the caption), so nothing is dropped
    without a line saying what and why."""

    name: str
    caption: str
    panels: list[Panel | MatrixPanel]
    columns: int = 3
    panel_size: tuple[float, float] = (4.0, 3.2)
    #: relative widths of the columns (None: equal)
    width_ratios: list[float] | None = None
    covers: list[str] = field(default_factory=list)
    omitted: dict[str, str] = field(default_factory=dict)
    #: (colormap name, label): series with a ``color_value`` take their colour from it, and the
    #: figure gets one colour bar with that label
    color_scale: tuple[str, str] | None = None

    def omissions(self) -> str:
        """The sentence report.md adds after the caption: the cases not drawn, grouped by reason."""
        if not self.omitted:
            return ""
        by_reason: dict[str, list[str]] = {}
        for case, reason in self.omitted.items():
            by_reason.setdefault(reason, []).append(case)
        parts = []
        for reason, cases in by_reason.items():
            shown = ", ".join(f"`{c}`" for c in cases[:6]) + (f" and {len(cases) - 6} more" if len(cases) > 6 else "")
            parts.append(f"{len(cases)} case{'s' if len(cases) > 1 else ''} ({reason}): {shown}")
        return "Not drawn: " + "; ".join(parts) + "."
