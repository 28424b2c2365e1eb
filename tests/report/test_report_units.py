"""Units of harness.report and harness.records on hand-made typed records: round trips, the
JSON Schema, merge, the paired baseline comparison, the atomic writer, figures, progress."""
from __future__ import annotations

import copy
import dataclasses
import io
import json
import math

import pytest

from harness.architecture import Architecture
from harness.kinds.agreement.result import AgreementResult, ImplementationAgreement
from harness.kinds.dispersion.result import DispersionResult, EntryResult
from harness.kinds.training.result import ExperimentSeries, ProbeNTK, TrainingResult
from harness.records import CaseRecord, Check, Estimate, Interval, Timing
from harness.records import document as records
from harness.report import baseline, benchmarks, figures, progress, writer


def _entry(cosine: float, value: float, interval, mean=2.0) -> EntryResult:
    return EntryResult(cosine=cosine, statistics={
        "dispersion": Estimate(value, Interval(*interval)), "mean": Estimate(mean, Interval(mean - 0.1, mean + 0.1)),
        "log_mean": Estimate(0.5, Interval(0.4, 0.6))}, exact_dispersion=value, exact_mean=mean)


def _dispersion(case: str, sigma_w2: float, depth: int, value: float, interval, passed=True, seed=1,
                scale=1.0) -> CaseRecord:
    entries = [_entry(c, value * f, (interval[0] * f, interval[1] * f), m * scale)
               for c, f, m in ((1.0, 1.0, 2.0), (0.5, 0.9, 1.5), (0.0, 0.8, 1.0))]
    entries[0].acceptance = {"dispersion": Interval(1.0, 3.0)}
    result = DispersionResult(architecture=Architecture((10,) + (10,) * depth, sigma_w2), input_norm_sq=1.0,
                              networks=100, entries=entries, alpha_per_check={"exact": 2e-4})
    phase = {1.0: "ordered", 2.0: "eoc"}.get(sigma_w2, "chaotic")
    return CaseRecord(case=case, kind="dispersion", nodeid=f"cases/d.toml::{case}", source="cases/d.toml",
                      phase=phase, outcome="passed" if passed else "failed", seed=seed, implementation_spec="jacobian",
                      device="cpu", dtype="float64", result=result, timing=Timing(total_seconds=0.5),
                      checks=[Check("dispersion in calibrated interval (exact law)", passed, measured=value,
                                    measured_interval=interval, expected="[1, 3]", accepted=(1.0, 3.0))],
                      wall_seconds=0.5)


def _training(phase: str, sigma_w2: float) -> CaseRecord:
    series = {"relative_change": [[0.0, 0.0], [0.2, 0.3], [0.4, 0.5]]}
    labels = [0, 1, 0, 1]
    matrix = [[1.0 if labels[i] == labels[j] else 0.2 for j in range(4)] for i in range(4)]
    result = TrainingResult(
        architecture=Architecture((64, 16, 16, 16, 16), sigma_w2, output_dim=10), optimizer="sgd",
        learning_rate=0.5, steps=20, batch_size=64, loss="mse", dataset="digits", normalization="unit_norm",
        probe_size=4, networks=2, checkpoints=[0, 10, 20],
        final={"relative_change": Estimate(0.45, Interval(0.1, 0.8))},
        experiments=[ExperimentSeries(depth=4, width=16, checkpoints=[0, 10, 20], series=series)],
        probe_ntk=ProbeNTK(labels=labels, initial=matrix, final=matrix, depth=4, width=16))
    return CaseRecord(case=f"t[{phase}]", kind="training", nodeid=f"t.toml::t[{phase}]", phase=phase,
                      outcome="passed", result=result, checks=[Check("trained", True)])


def _document(*recs, bench=()) -> records.ResultsDocument:
    return records.ResultsDocument(records=list(recs), benchmarks=list(bench))


def _bench(name: str, minimum: float) -> dict:
    return {"name": name, "fullname": f"tests/b.py::{name}", "group": "g",
            "stats": {"min": minimum, "mean": minimum * 1.1, "stddev": minimum / 10, "rounds": 5}}


def test_records_round_trip_through_json_with_non_finite_numbers():
    record = _dispersion("x[1]", 2.0, 2, 1.5, (1.4, 1.6))
    record.checks.append(Check("KS", False, measured=math.nan, measured_interval=(-math.inf, math.inf)))
    text = json.dumps(record.to_record(), allow_nan=False)   # strict JSON: no NaN literals
    again = CaseRecord.from_record(json.loads(text))
    assert again.to_record() == record.to_record()
    assert again.checks[-1].measured is None and again.checks[-1].measured_interval.low == -math.inf  # NaN: null
    agreement = CaseRecord(case="a[1]", kind="agreement", outcome="passed", checks=[Check("loads", True)],
                           result=AgreementResult(networks=2, inputs=3, other_inputs=2, rtol=1e-10,
                                                  architecture=Architecture((3, 4), 2.0),
                                                  implementations=[ImplementationAgreement("jacobian", 0.0)]))
    assert CaseRecord.from_record(agreement.to_record()).to_record() == agreement.to_record()


def test_the_published_json_schema_is_generated_from_the_record_types():
    """results.schema.json is what harness.records.schema generates from the dataclasses: a record
    type that changes without the file (or the reverse) fails here."""
    from harness.records import schema

    assert records.SCHEMA_PATH.read_text(encoding="utf-8") == schema.text(), (
        "results.schema.json is stale: run python -m harness.records.schema --write")
    defs = schema.generate()["$defs"]
    assert set(defs["check"]["properties"]) == {f.name for f in dataclasses.fields(Check)}
    assert defs["training_result"]["properties"]["phases"] == {
        "anyOf": [{"$ref": "#/$defs/phase_comparison"}, {"type": "null"}]}


def test_every_record_kind_validates_against_the_published_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(records.SCHEMA_PATH.read_text())
    document = _document(_dispersion("x[1]", 2.0, 2, 1.5, (1.4, 1.6)), _training("eoc", 2.0),
                         CaseRecord(case="bad.toml", kind="invalid", outcome="error", error="invalid case file"),
                         bench=[_bench("fast", 1e-3)])
    jsonschema.validate(document.to_json(), schema)
    broken = document.to_json()
    broken["records"][0]["outcome"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_merge_unites_by_node_id_and_detects_conflicts():
    a, b = _dispersion("x[1]", 2.0, 2, 1.5, (1.4, 1.6)), _dispersion("x[2]", 2.0, 4, 2.5, (2.3, 2.7))
    same_again = copy.deepcopy(a)
    same_again.wall_seconds = 9.0                  # timings and hosts may differ
    same_again.timing = Timing(total_seconds=9.0)
    same_again.environment = {"hostname": "other"}
    merged = records.merge([_document(b, a), _document(same_again)], ["s1", "s2"])
    assert [r.case for r in merged.records] == ["x[1]", "x[2]"]
    changed = copy.deepcopy(a)
    changed.result.entries[0].statistics["dispersion"] = Estimate(1.51, Interval(1.4, 1.6))
    with pytest.raises(records.MergeConflict, match=r"x\[1\]: s1 and s2 differ at result.entries\[0\]"):
        records.merge([_document(a), _document(changed)], ["s1", "s2"])
    interrupted = _document(b)
    interrupted.complete = False
    assert records.merge([_document(a), interrupted]).complete is False


def test_from_json_says_what_was_expected():
    with pytest.raises(records.ResultsFormatError, match='expected a results.json written by ntk-harness.*"format"'):
        records.ResultsDocument.from_json({"records": []}, "old.json")
    with pytest.raises(records.ResultsFormatError, match="expected schema_version 2; got 1"):
        records.ResultsDocument.from_json({"format": records.FORMAT, "version": 1, "records": []}, "old.json")
    with pytest.raises(records.ResultsFormatError, match=r"records\[0\]: key 'case': expected a string"):
        records.ResultsDocument.from_json({"format": records.FORMAT, "schema_version": 2,
                                           "records": [{"passed": True}]}, "old.json")


def test_a_gzip_compressed_results_file_reads_back_the_same_records(tmp_path):
    """Paper-size runs ship results.json.gz (a 784-case sweep is 21 MB as JSON, 3.3 MB gzipped)."""
    import gzip

    document = _document(_dispersion("x[1]", 2.0, 4, 1.5, (1.4, 1.6)), _dispersion("x[2]", 1.0, 4, 1.1, (1.0, 1.2)))
    plain, packed = tmp_path / "results.json", tmp_path / "results.json.gz"
    plain.write_text(document.dumps())
    packed.write_bytes(gzip.compress(document.dumps().encode()))
    assert records.load(packed).to_json() == records.load(plain).to_json()
    assert [r.case for r in records.load(packed).records] == ["x[1]", "x[2]"]
    truncated = tmp_path / "cut.json.gz"
    truncated.write_bytes(packed.read_bytes()[:40])
    with pytest.raises(records.ResultsFormatError, match="cut.json.gz: cannot read"):
        records.load(truncated)


def test_report_gzip_writes_results_json_gz_only_deterministic_and_named_in_report_md(tmp_path):
    """--gzip (reports to commit): results.json.gz replaces results.json, the same records give the
    same bytes (no time stamp in the gzip header), report.md names the file, and it reads back."""
    document = _document(_dispersion("x[1]", 2.0, 4, 1.5, (1.4, 1.6)))
    out = tmp_path / "r"
    writer.write_report(out, document)
    assert (out / "results.json").exists()
    written = writer.write_report(out, document, gzip_results=True)
    assert written[0] == "results.json.gz" and not (out / "results.json").exists()
    first = (out / "results.json.gz").read_bytes()
    writer.write_report(out, document, gzip_results=True)
    assert (out / "results.json.gz").read_bytes() == first
    assert "records are in `results.json.gz`" in (out / "report.md").read_text()
    assert records.load(out / "results.json.gz").to_json() == document.to_json()
    writer.write_report(out, document)   # and back: no stale .gz beside the new results.json
    assert (out / "results.json").exists() and not (out / "results.json.gz").exists()


def test_baseline_reports_verdicts_changed_statistics_and_slower_benchmarks():
    old = _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6), seed=1), _dispersion("b", 2.0, 4, 2.5, (2.3, 2.7)),
                    _dispersion("gone", 1.0, 2, 1.1, (1.0, 1.2)), bench=[_bench("fast", 1e-3), _bench("same", 1e-3)])
    new = _document(_dispersion("a", 2.0, 2, 1.55, (1.45, 1.65), seed=2),   # other seed: inside both intervals
                    _dispersion("b", 2.0, 4, 3.0, (2.8, 3.2), passed=False),
                    _dispersion("new", 3.0, 2, 2.0, (1.9, 2.1)),
                    bench=[_bench("fast", 1.5e-3), _bench("same", 1.05e-3)])
    comparison = baseline.compare(new, old)
    assert comparison["verdict_changes"] == [{"case": "cases/d.toml::b", "old": "pass", "new": "FAIL"}]
    moved = {(m["case"], m["statistic"]) for m in comparison["moved_statistics"]}
    assert ("cases/d.toml::b", "diagonal.dispersion") in moved
    assert not {m for m in moved if m[0] == "cases/d.toml::a"}      # unpaired, within the intervals
    assert comparison["new_cases"] == ["cases/d.toml::new"] and comparison["missing_cases"] == ["cases/d.toml::gone"]
    assert [s["benchmark"] for s in comparison["slower_benchmarks"]] == ["tests/b.py::fast"]
    assert comparison["slower_benchmarks"][0]["ratio"] == pytest.approx(1.5)
    text = "\n".join(baseline.markdown(comparison, "old.json"))
    assert "| cases/d.toml::b | pass       | FAIL  |" in text
    assert "2.5 [2.3, 2.7]" in text and "3 [2.8, 3.2]" in text and "1.5x" in text


def test_with_equal_seeds_a_one_percent_scale_change_is_reported_paired():
    """Same seed, same networks: a kernel scaled by 1.01 moves every mean by exactly 1%, far
    inside the 95% intervals; the paired comparison lists it with its relative change."""
    old = _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6), seed=5))
    new = _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6), seed=5, scale=1.01))
    moved = baseline.compare(new, old)["moved_statistics"]
    assert {m["statistic"] for m in moved} == {"diagonal.mean", "cos=0.5.mean", "cos=0.mean"}
    assert all(m["paired"] and m["relative_change"] == pytest.approx(0.01 / 1.01) for m in moved)
    assert baseline.compare(old, old)["moved_statistics"] == []


@pytest.mark.parametrize("where", ["harness.report.markdown.render", "harness.report.figures.render"])
def test_an_interrupt_while_writing_keeps_the_records_and_no_half_written_file(tmp_path, monkeypatch, where):
    """Ctrl-C after the records are written (in the figures or in report.md): results.json holds the
    new records with complete = false, report.md says so, no figure of the earlier report stays
    linked, no staging directory is left, and the caller gets ReportInterrupted (one line)."""
    directory = tmp_path / "report"
    writer.write_report(directory, _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6))))
    assert {"results.json", "report.md", "dispersion_vs_depth.png"} <= {p.name for p in directory.iterdir()}

    def broken(*args, **kwargs):
        raise KeyboardInterrupt   # Ctrl-C in the middle of writing

    monkeypatch.setattr(where, broken)
    changed = _document(_dispersion("a", 2.0, 2, 9.5, (9.4, 9.6)), _dispersion("b", 2.0, 4, 2.5, (2.3, 2.7)))
    with pytest.raises(writer.ReportInterrupted, match="2 records kept .*complete = false"):
        writer.write_report(directory, changed)
    kept = records.load(directory / "results.json")
    assert kept.complete is False and [r.case for r in kept.records] == ["a", "b"]
    assert "interrupted" in (directory / "report.md").read_text()
    assert sorted(p.name for p in directory.iterdir()) == ["report.md", "results.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]   # no staging directory left


def test_writer_removes_stale_figures(tmp_path):
    directory = tmp_path / "report"
    writer.write_report(directory, _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6))))
    assert (directory / "dispersion_vs_depth.png").exists()
    writer.write_report(directory, _document())
    assert not (directory / "dispersion_vs_depth.png").exists()
    assert "0 cases: 0 passed, 0 failed" in (directory / "report.md").read_text()


def test_latest_and_index_follow_the_run_directories(tmp_path):
    first, second = tmp_path / "runs" / "r1", tmp_path / "runs" / "r2"
    writer.write_report(first, _document(_dispersion("a", 2.0, 2, 1.5, (1.4, 1.6))))
    writer.update_latest(tmp_path, first)
    writer.write_report(second, _document())
    writer.write_index(tmp_path)
    assert (tmp_path / "latest").resolve() == first.resolve()
    index = (tmp_path / "index.md").read_text()
    assert "`r1`](runs/r1/report.md) (latest)" in index and "`r2`" in index


def test_figures_draw_from_data_and_skip_cleanly_without(tmp_path):
    document = _document(_training("ordered", 1.0), _training("eoc", 2.0), bench=[_bench("fast", 1e-3)])
    drawn, skipped = figures.draw_all(document, tmp_path)
    assert [name for name, _ in drawn] == ["training_relative_change.png", "ntk_matrices.png", "benchmarks.png"]
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name, _ in drawn)
    assert [s.split("`")[1] for s in skipped] == ["dispersion_vs_depth.png", "dispersion_offdiagonal_vs_depth.png",
                                                  "dispersion_vs_correlation.png", "paper_dispersion.png",
                                                  "training_claim3.png", "training_figure4.png",
                                                  "training_losses.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    drawn, skipped = figures.draw_all(_document(), empty)
    assert drawn == [] and len(skipped) == len(figures.KNOWN) and list(empty.iterdir()) == []


def test_benchmark_json_is_read_and_a_wrong_file_is_refused(tmp_path):
    good = tmp_path / "bench.json"
    entry = dict(_bench("fast", 1e-3))
    entry["stats"] = dict(entry["stats"], data=[1e-3] * 5)
    good.write_text(json.dumps({"machine_info": {}, "benchmarks": [entry]}))
    loaded = benchmarks.load(good)
    assert loaded[0]["name"] == "fast" and "data" not in loaded[0]["stats"]
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(_document().to_json()))
    with pytest.raises(benchmarks.BenchmarkFormatError, match="expected a pytest-benchmark JSON file"):
        benchmarks.load(bad)


def test_the_benchmark_table_shows_each_benchmarks_own_peak_memory():
    """Model benchmarks measure the tensors of one call (peak_memory_bytes), the Monte Carlo
    benchmark the process (peak_rss_mib): each row shows its own, with its unit."""
    from harness.report.markdown import benchmarks_section

    tensors = dict(_bench("model", 1e-3), extra_info={"peak_memory_bytes": 17510})
    process = dict(_bench("runner", 2e-3), extra_info={"peak_rss_mib": 812.4})
    text = "\n".join(benchmarks_section([tensors, process, _bench("plain", 3e-3)]))
    rows = {line.split("|")[2].strip(): line.split("|")[-2].strip() for line in text.splitlines()
            if line.startswith("| g ")}
    assert rows == {"model": "17.1 KiB (tensors)", "runner": "812 MiB (RSS)", "plain": ""}


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


def test_records_hold_plain_python_numbers_for_xdist():
    """execnet (pytest-xdist) refuses numpy scalars: a record's JSON form holds Python numbers only."""
    import numpy as np

    record = _dispersion("x[1]", 2.0, 2, float(np.float64(1.5)), (np.float64(1.4), np.float64(1.6)))
    record.checks.append(Check("p", True, measured=np.float64(0.5), level=np.float32(1e-3)))
    record.seed = np.int64(3)

    def plain(value):
        if isinstance(value, dict):
            return all(plain(v) for v in value.values())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or type(value) in (bool, int, float, str)

    assert plain(record.to_record())


def _schema_validator():
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema, json.loads(records.SCHEMA_PATH.read_text())


def test_every_shipped_results_file_validates_against_the_json_schema():
    """reports/ holds results.json files written by the harness: each must validate against the
    published schema and read back as typed records."""
    from pathlib import Path

    jsonschema, schema = _schema_validator()
    reports = Path(__file__).resolve().parents[2] / "reports"
    shipped = sorted(reports.rglob("results.json")) + sorted(reports.rglob("results.json.gz"))
    assert shipped, "no results.json under reports/"
    for path in shipped:
        document = json.loads(records.read_text(path))
        jsonschema.validate(document, schema)
        assert records.load(path).records, path
