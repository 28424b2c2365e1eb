"""The report's figures read like a paper's: no legend over data, nothing dropped silently.

Rendered from the committed example report's results.json (the default suite, merged), every
figure of every kind: (1) no legend's extent overlaps the data area (the axes' window extent)
of any panel; (2) every case the figure was drawn from is either shown or named among its
omissions with a reason, and report.md states the omissions after the caption; (3) log axes
carry at least three tick labels.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("NTK_HARNESS_FIGURE_RESULTS", ROOT / "reports" / "example" / "results.json.gz"))


def _figures():
    from harness.kinds import result_types
    from harness.records.document import load

    document = load(RESULTS)
    by_kind: dict[str, list] = {}
    for record in document.records:
        by_kind.setdefault(record.kind, []).append(record)
    out = []
    for kind, result_type in result_types().items():
        records = [r for r in by_kind.get(kind, []) if r.result is not None]
        for figure in result_type.figures(records):
            out.append((kind, figure, records))
    # the paper's layout needs the paper's grid; the example's CPU-size sweep (6 values of
    # sigma_w^2, 4 depths) draws it when the threshold is lowered
    import harness.kinds.dispersion.result as dispersion

    if not any(figure.name == "paper_dispersion.png" for _, figure, _ in out):
        saved = dispersion.PAPER_GRID
        dispersion.PAPER_GRID = (6, 4)
        try:
            records = [r for r in by_kind.get("dispersion", []) if r.result is not None
                       and r.result.diagonal.statistics.get("dispersion")]
            figure = dispersion._paper_figure(records)
        finally:
            dispersion.PAPER_GRID = saved
        if figure is not None:
            out.append(("dispersion", figure, records))
    return out


FIGURES = _figures() if RESULTS.exists() else []


@pytest.mark.skipif(not FIGURES, reason=f"no figures drawn from {RESULTS}")
@pytest.mark.parametrize("kind, figure, records", FIGURES, ids=[f[1].name for f in FIGURES])
def test_no_legend_covers_data_and_log_axes_are_readable(kind, figure, records):
    from matplotlib import pyplot as plt

    from harness.report.figures import draw

    fig = draw(figure)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        axes = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
        legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in axes:   # the data area, and the axes' labels and ticks too
                assert not box.overlaps(ax.get_window_extent(renderer)), (figure.name, ax.get_title())
                assert not box.overlaps(ax.get_tightbbox(renderer)), (figure.name, ax.get_title(), "labels")
        for ax in axes:
            if ax.get_yscale() == "log":
                low, high = sorted(ax.get_ylim())
                shown = [tick.label1.get_text() for tick in ax.yaxis.get_major_ticks()
                         if low <= tick.get_loc() <= high and tick.label1.get_text()]
                assert len(shown) >= 3, (figure.name, ax.get_title(), shown)
    finally:
        plt.close(fig)


@pytest.mark.skipif(not FIGURES, reason=f"no figures drawn from {RESULTS}")
@pytest.mark.parametrize("kind, figure, records", FIGURES, ids=[f[1].name for f in FIGURES])
def test_every_case_is_shown_or_named_with_a_reason(kind, figure, records):
    covered = set(figure.covers)
    assert covered == {r.case for r in records}, figure.name   # drawn from every record of its kind
    assert set(figure.omitted) <= covered and covered - set(figure.omitted), figure.name
    assert all(reason for reason in figure.omitted.values())
    text = figure.omissions()
    for case in list(figure.omitted)[:6]:
        assert f"`{case}`" in text
    if len(figure.omitted) > 6:
        assert "more" in text
