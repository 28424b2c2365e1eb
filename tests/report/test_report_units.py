"""Units of harness.report on hand-made records: merge, baseline, atomic writer, figures, progress."""
from __future__ import annotations

import copy
import io
import json

import pytest

from harness.report import baseline, benchmarks, figures, progress, records, writer


def _dispersion(case: str, sigma_w2: float, depth: int, value: float, interval, passed=True) -> dict:
    return {
        "case": case, "nodeid": f"cases/d.toml::{case}", "kind": "dispersion", "passed": passed,
        "outcome": "passed" if passed else "failed", "phase": {1.0: "ordered", 2.0: "eoc"}.get(sigma_w2, "chaotic"),
        "width": 10, "depth": depth, "sigma_w2": sigma_w2,
        "parameters": {"samples": 100, "seed": 1, "trainable_bias": True, "input_dim": 10, "depth_to_width": depth / 10},
        "measured": {"dispersion": value, "mean": 2.0, "intervals": {"dispersion": list(interval), "mean": [1.9, 2.1]},
                     "off_diagonal": [{"cosine": 1.0, "dispersion": value}, {"cosine": 0.5, "dispersion": value * 0.9},
                                      {"cosine": 0.0, "dispersion": value * 0.8}]},
        "reference": {"exact": {"dispersion": value, "mean": 2.0}, "depth_to_width": depth / 10},
        "checks": [{"name": "dispersion in calibrated interval (exact law)", "passed": passed, "measured": value,
                    "measured_interval": list(interval), "expected": "[1, 3]"}],
        "wall_seconds": 0.5,
    }


def _document(*recs, bench=()) -> dict:
    document = records.empty_results()
    document["records"] = list(recs)
    document["benchmarks"] = list(bench)
    return document


def _bench(name: str, minimum: float) -> dict:
    return {"name": name, "fullname": f"tests/b.py::{name}", "group": "g",
            "stats": {"min": minimum, "mean": minimum * 1.1, "stddev": minimum / 10, "rounds": 5}}


def test_merge_unites_by_node_id_and_detects_conflicts():
    a, b = _dispersion("x[1]", 2.0, 2, 1.5, (1.4, 1.6)), _dispersion("x[2]", 2.0, 4, 2.5, (2.3, 2.7))
    same_again = copy.deepcopy(a)
    same_again["wall_seconds"] = 9.0                  # timings and hosts may differ
    same_again["environment"] = {"hostname": "other"}
    merged = records.merge([_document(b, a), _document(same_again)], ["s1", "s2"])
    assert [r["case"] for r in merged["records"]] == ["x[1]", "x[2]"]
    changed = copy.deepcopy(a)
    changed["measured"]["dispersion"] = 1.51
    with pytest.raises(records.MergeConflict, match=r"x\[1\]: s1 and s2 differ at measured.dispersion \(1.5 vs 1.51\)"):
        records.merge([_document(a), _document(changed)], ["s1", "s2"])
    interrupted = _document(b)
    interrupted["complete"] = False
    assert records.merge([_document(a), interrupted])["complete"] is False


def test_validate_says_what_was_expected():
    with pytest.raises(records.ResultsFormatError, match='expected a results.json written by ntk-harness.*"format": "ntk-harness-results"'):
        records.validate({"records": []}, "old.json")
    with pytest.raises(records.ResultsFormatError, match="expected version 1; got 7"):
        records.validate({"format": records.FORMAT, "version": 7, "records": []}, "old.json")
    with pytest.raises(records.ResultsFormatError, match=r"records\[0\]: expected an object with at least \"case\""):
        records.validate({"format": records.FORMAT, "version": 1, "records": [{"passed": True}]}, "old.json")


def test_baseline_reports_verdicts_moved_statistics_and_slower_benchmarks():
    old = _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6)), _dispersion("b", 2.0, 4, 2.5, (2.3, 2.7)),
                    _dispersion("gone", 1.0, 2, 1.1, (1.0, 1.2)), bench=[_bench("fast", 1e-3), _bench("same", 1e-3)])
    new = _document(_dispersion("a", 2.0, 2, 1.55, (1.45, 1.65)),                # inside both intervals
                    _dispersion("b", 2.0, 4, 3.0, (2.8, 3.2), passed=False),      # moved and failed
                    _dispersion("new", 3.0, 2, 2.0, (1.9, 2.1)),
                    bench=[_bench("fast", 1.5e-3), _bench("same", 1.05e-3)])
    comparison = baseline.compare(new, old)
    assert comparison["verdict_changes"] == [{"case": "cases/d.toml::b", "old": "pass", "new": "FAIL"}]
    assert [(m["case"], m["statistic"]) for m in comparison["moved_statistics"]] == [("cases/d.toml::b", "dispersion")]
    assert comparison["new_cases"] == ["cases/d.toml::new"] and comparison["missing_cases"] == ["cases/d.toml::gone"]
    assert [s["benchmark"] for s in comparison["slower_benchmarks"]] == ["tests/b.py::fast"]
    assert comparison["slower_benchmarks"][0]["ratio"] == pytest.approx(1.5)
    text = "\n".join(baseline.markdown(comparison, "old.json"))
    assert "| cases/d.toml::b | pass       | FAIL  |" in text
    assert "2.5 [2.3, 2.7]" in text and "3 [2.8, 3.2]" in text and "1.5x" in text


def test_writer_is_atomic_when_rendering_fails(tmp_path, monkeypatch):
    directory = tmp_path / "report"
    document = _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6)))
    writer.write_report(directory, document)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    assert {"results.json", "report.md", "dispersion_vs_depth.png"} <= set(before)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt   # Ctrl-C in the middle of writing

    monkeypatch.setattr("harness.report.markdown.render", broken)
    changed = _document(_dispersion("a", 2.0, 2, 9.5, (9.4, 9.6)), _dispersion("b", 2.0, 4, 2.5, (2.3, 2.7)))
    with pytest.raises(KeyboardInterrupt):
        writer.write_report(directory, changed)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]   # no staging directory left


def test_writer_removes_stale_figures_and_check_writable_names_the_path(tmp_path):
    directory = tmp_path / "report"
    writer.write_report(directory, _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6))))
    assert (directory / "dispersion_vs_depth.png").exists()
    writer.write_report(directory, _document())
    assert not (directory / "dispersion_vs_depth.png").exists()
    assert "0 cases: 0 passed, 0 failed" in (directory / "report.md").read_text()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(writer.ReportDirError, match=f"report directory {blocker / 'x'} is not writable"):
        writer.check_writable(blocker / "x")


def _training(phase: str, sigma_w2: float) -> dict:
    series = {"relative_change": [[0.0, 0.0], [0.2, 0.3], [0.4, 0.5]]}
    labels = [0, 1, 0, 1]
    matrix = [[1.0 if labels[i] == labels[j] else 0.2 for j in range(4)] for i in range(4)]
    return {"case": f"t[{phase}]", "nodeid": f"t.toml::t[{phase}]", "kind": "training", "passed": True,
            "phase": phase, "width": 16, "depth": 4, "sigma_w2": sigma_w2, "parameters": {"steps": 20, "seeds": 2},
            "measured": {"relative_change": 0.45, "relative_change_interval": [0.1, 0.8], "alignment": 0.9},
            "checks": [], "extra": {"experiments": [{"depth": 4, "width": 16, "checkpoints": [0, 10, 20],
                                                     "series": series}],
                                    "probe_ntk": {"labels": labels, "initial": matrix, "final": matrix}}}


def test_figures_draw_from_data_and_skip_cleanly_without(tmp_path):
    document = _document(_training("ordered", 1.0), _training("eoc", 2.0), bench=[_bench("fast", 1e-3)])
    drawn, skipped = figures.draw_all(document, tmp_path)
    assert [name for name, _ in drawn] == ["training_relative_change.png", "ntk_matrices.png", "benchmarks.png"]
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name, _ in drawn)
    assert [s.split("`")[1] for s in skipped] == ["dispersion_vs_depth.png", "dispersion_vs_correlation.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    drawn, skipped = figures.draw_all(_document(), empty)
    assert drawn == [] and len(skipped) == len(figures.FIGURES) and list(empty.iterdir()) == []


def test_benchmark_json_is_read_and_a_wrong_file_is_refused(tmp_path):
    good = tmp_path / "bench.json"
    entry = dict(_bench("fast", 1e-3))
    entry["stats"] = dict(entry["stats"], data=[1e-3] * 5)
    good.write_text(json.dumps({"machine_info": {}, "benchmarks": [entry]}))
    loaded = benchmarks.load(good)
    assert loaded[0]["name"] == "fast" and "data" not in loaded[0]["stats"]
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(records.empty_results()))
    with pytest.raises(benchmarks.BenchmarkFormatError, match="expected a pytest-benchmark JSON file"):
        benchmarks.load(bad)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_on_a_terminal_only(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("NTK_HARNESS_PROGRESS", raising=False)
    assert progress.terminal_progress("MC", stream=io.StringIO()) is None
    terminal = _Terminal()
    bar = progress.terminal_progress("MC", stream=terminal, width=50)
    bar(0, 4)
    assert "MC [" in terminal.getvalue() and "0/4" in terminal.getvalue()
    drawn = len(terminal.getvalue())
    bar(4, 4)   # done: the bar is erased, the line is as before
    assert terminal.getvalue().endswith("\b" * drawn + " " * drawn + "\b" * drawn)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert progress.terminal_progress("MC", stream=_Terminal()) is None
