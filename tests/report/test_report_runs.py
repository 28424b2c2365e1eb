"""End to end: pytest --report-dir (serial, xdist, shards), bad input at start, interruption."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harness.report import records
from tests.report.conftest import run_pytest


def _records(path: Path) -> dict[str, dict]:
    return {r["nodeid"]: r for r in records.load(path)["records"]}


def _report_cli(*argv: str) -> int:
    from harness import cli_report

    parser = argparse.ArgumentParser(prog="ntk-harness")
    cli_report.add_parser(parser.add_subparsers(dest="command"))
    return cli_report.main(parser.parse_args(["report", *argv]))


def test_serial_report_has_records_tables_figures_and_benchmarks(serial_run):
    result, directory = serial_run
    assert result.returncode == 0, result.stdout + result.stderr
    document = records.load(directory / "results.json")
    assert document["complete"] is True
    cases = document["records"]
    assert sorted(r["phase"] for r in cases) == ["chaotic", "eoc", "ordered"]
    for record in cases:
        assert record["kind"] == "dispersion" and record["width"] == 8 and record["depth"] == 3
        assert record["seed"] == 7 and record["samples"] == 50 and record["implementation"] == "jacobian"
        assert record["device"] == "cpu" and record["dtype"] in ("float64", "float32")
        assert record["environment"]["torch"] and record["environment"]["ntk-harness"]
        assert record["wall_seconds"] > 0
        measured = record["measured"]
        low, high = measured["intervals"]["dispersion"]
        assert low <= measured["dispersion"] <= high
        assert [round(c["cosine"], 9) for c in measured["off_diagonal"]] == [1.0, 0.5, 0.0]  # c = 1 is x0 itself
        assert record["reference"]["exact"]["dispersion"] > 1
    session = document["sessions"][0]
    assert "--report-dir" in session["command"] and session["exitstatus"] == 0
    assert [b["name"] for b in document["benchmarks"]] == ["test_sum"]
    assert document["benchmarks"][0]["stats"]["rounds"] >= 3
    report = (directory / "report.md").read_text()
    for heading in ("## The run", "## dispersion cases", "### ordered phase", "### edge of chaos", "### chaotic phase",
                    "## Implementation benchmarks", "![", "dispersion_vs_depth.png"):
        assert heading in report
    # each case row shows the measured dispersion with its interval and the exact value
    for record in cases:
        row = next(line for line in report.splitlines() if line.startswith(f"| {record['case']} "))
        assert f"{record['measured']['dispersion']:.4g} [" in row
        assert f"{record['reference']['exact']['dispersion']:.4g}" in row
    for name in ("dispersion_vs_depth.png", "dispersion_vs_correlation.png", "benchmarks.png"):
        assert (directory / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ntk-harness report: 3 cases" in result.stdout
    leftovers = [p.name for p in directory.parent.iterdir() if p.name.startswith(".serial.")]
    assert leftovers == []


def test_xdist_gives_the_serial_numbers_and_one_report(serial_run, case_dir, interval_cache):
    _, serial_dir = serial_run
    result = run_pytest(case_dir, "-n", "2", "small.toml", "--report-dir", "parallel", cache=interval_cache)
    assert result.returncode == 0, result.stdout + result.stderr
    serial, parallel = _records(serial_dir / "results.json"), _records(case_dir / "parallel" / "results.json")
    assert serial.keys() == parallel.keys() and len(serial) == 3
    for key in serial:
        for field in records.DETERMINED:
            assert serial[key][field] == parallel[key][field], (key, field)
    workers = {r["environment"].get("xdist_worker") for r in parallel.values()}
    assert workers <= {"gw0", "gw1"} and workers
    assert records.load(case_dir / "parallel" / "results.json")["sessions"][0]["workers"] == 2


def test_shards_merge_to_the_unsharded_results(serial_run, case_dir, interval_cache):
    _, serial_dir = serial_run
    shards = []
    for k in (1, 2):
        result = run_pytest(case_dir, "small.toml", "--shard", f"{k}/2", "--report-dir", f"shard{k}",
                            cache=interval_cache)
        assert result.returncode == 0, result.stdout + result.stderr
        shards.append(case_dir / f"shard{k}" / "results.json")
    first, second = (_records(p) for p in shards)
    assert len(first) == 2 and len(second) == 1 and not set(first) & set(second)
    assert _report_cli(*map(str, shards), "--out", str(case_dir / "merged"),
                       "--baseline", str(serial_dir / "results.json")) == 0
    merged, serial = _records(case_dir / "merged" / "results.json"), _records(serial_dir / "results.json")
    assert merged.keys() == serial.keys()
    for key in serial:
        assert all(merged[key][f] == serial[key][f] for f in records.DETERMINED)
    document = records.load(case_dir / "merged" / "results.json")
    assert [s["shard"] for s in document["sessions"]] == ["1/2", "2/2"]
    report = (case_dir / "merged" / "report.md").read_text()
    assert "3 cases: 3 passed" in report
    assert "No case changed its verdict." in report and "No statistic moved beyond its 95% interval." in report
    comparison = json.loads((case_dir / "merged" / "comparison.json").read_text())
    assert comparison["compared_cases"] == 3 and comparison["moved_statistics"] == [] and not comparison["new_cases"]


class _Result:
    def __init__(self, ret, out: str, err: str):
        self.ret, self.out, self.err = int(ret), out, err


def _in_process(workdir: Path, monkeypatch, capsys, *args: str) -> _Result:
    """Usage errors and raising cases need no fresh interpreter: pytest.main in this process."""
    from tests.report.conftest import CASES

    (workdir / "small.toml").write_text(CASES)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    monkeypatch.chdir(workdir)
    capsys.readouterr()
    ret = pytest.main(["-p", "no:cacheprovider", "-q", *args])
    captured = capsys.readouterr()
    return _Result(ret, captured.out, captured.err)


def test_unwritable_report_dir_fails_before_any_case(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = _in_process(tmp_path, monkeypatch, capsys, "small.toml", "--report-dir", str(blocker / "report"))
    assert result.ret == 4   # pytest's usage error, before collection
    assert f"report directory {blocker / 'report'} is not writable" in result.err
    assert "passed" not in result.out and "failed" not in result.out


def test_baseline_of_the_wrong_format_fails_at_start_with_what_was_expected(tmp_path, monkeypatch, capsys):
    wrong = tmp_path / "bench.json"
    wrong.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    result = _in_process(tmp_path, monkeypatch, capsys, "small.toml", "--report-dir", str(tmp_path / "r"), "--report-baseline", str(wrong))
    assert result.ret == 4
    error = result.err
    assert "--report-baseline" in error and str(wrong) in error
    assert "expected a results.json written by ntk-harness" in error and "pytest-benchmark JSON file" in error
    bad_shard = _in_process(tmp_path, monkeypatch, capsys, "small.toml", "--shard", "3/2")
    assert bad_shard.ret == 4 and "1 <= K <= N" in bad_shard.err


def test_interrupted_run_writes_the_finished_cases_completely(case_dir, interval_cache, tmp_path):
    plugin = tmp_path / "plugins"
    plugin.mkdir()
    (plugin / "interrupt_second_case.py").write_text(
        "calls = []\n"
        "def pytest_runtest_call(item):\n"
        "    calls.append(item.nodeid)\n"
        "    if len(calls) == 2:\n"
        "        raise KeyboardInterrupt\n")
    result = run_pytest(case_dir, "small.toml", "-p", "interrupt_second_case", "--report-dir", "interrupted",
                        cache=interval_cache, extra_path=plugin)
    assert result.returncode == 2, result.stdout + result.stderr   # pytest's "interrupted"
    document = records.load(case_dir / "interrupted" / "results.json")
    assert document["complete"] is False
    assert len(document["records"]) == 1 and document["records"][0]["outcome"] == "passed"
    assert "interrupted" in (case_dir / "interrupted" / "report.md").read_text()
    assert not [p for p in case_dir.iterdir() if p.name.startswith(".interrupted.")]


def test_report_cli_errors_exit_2_with_a_message(tmp_path, capsys):
    wrong = tmp_path / "list.json"
    wrong.write_text("[1, 2]")
    assert _report_cli(str(wrong), "--out", str(tmp_path / "out")) == 2
    error = capsys.readouterr().err
    assert error.startswith("ntk-harness report: error: ") and str(wrong) in error and "got a JSON list" in error
    assert _report_cli(str(tmp_path / "missing.json"), "--out", str(tmp_path / "out")) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_case_that_raises_is_recorded_as_an_error(tmp_path, monkeypatch, capsys):
    # --device cuda on a machine without CUDA: every case raises before producing a record
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    result = _in_process(tmp_path, monkeypatch, capsys, "small.toml", "--device", "cuda", "--report-dir", str(tmp_path / "r"))
    assert result.ret == 1
    document = records.load(tmp_path / "r" / "results.json")
    assert [r["outcome"] for r in document["records"]] == ["error"] * 3
    assert all("CUDA is not available" in r["error"] for r in document["records"])
    report = (tmp_path / "r" / "report.md").read_text()
    assert "3 cases: 0 passed, 0 failed, 3 errors" in report and "error in call: ValueError: device 'cuda'" in report
