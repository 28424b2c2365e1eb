"""docs/paper.md shows exactly what docs/measurements/scripts/paper_numbers.py prints from the
committed paper-size reports (reports/paper/*/results.json.gz): a number on the page that the
records do not give, or a report regenerated without the page, fails here."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("paper_numbers", ROOT / "docs/measurements/scripts/paper_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_paper_md_shows_the_numbers_of_the_committed_reports():
    script = _script()
    page = (ROOT / "docs/paper.md").read_text(encoding="utf-8")
    printed = script.sections(ROOT / "reports/paper")
    assert set(printed) == {"dispersion", "training"}
    for name, text in printed.items():
        assert text.strip(), name
        assert script.marked(name, text) in page, (
            f"docs/paper.md's '{name}' section differs from paper_numbers.py's output; run "
            "python docs/measurements/scripts/paper_numbers.py --write docs/paper.md")


def test_replace_sections_rewrites_only_the_marked_text_and_refuses_a_missing_marker():
    script = _script()
    page = "a\n<!-- paper_numbers: training -->\nold\n<!-- paper_numbers: end -->\nb\n"
    assert script.replace_sections(page, {"training": "new"}) == (
        "a\n<!-- paper_numbers: training -->\nnew\n<!-- paper_numbers: end -->\nb\n")
    try:
        script.replace_sections(page, {"dispersion": "x"})
    except SystemExit as exc:
        assert "paper_numbers: dispersion" in str(exc)
    else:
        raise AssertionError("a missing section was not refused")
