"""End to end: pytest --ntk-report-dir (serial, xdist, shards), bad input at start, and the
scenarios in which results used to be lost, with signals sent to real subprocesses."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.records import document as records
from tests.report.conftest import CASES, latest_run, only_run, run_pytest


def _records(path: Path) -> dict:
    return {r.nodeid: r for r in records.load(path).records}


def _report_cli(*argv: str) -> int:
    from harness import cli_report

    parser = argparse.ArgumentParser(prog="ntk-harness")
    cli_report.add_parser(parser.add_subparsers(dest="command"))
    return cli_report.main(parser.parse_args(["report", *argv]))


def test_serial_report_has_records_tables_figures_and_benchmarks(serial_run):
    result, directory = serial_run
    assert result.returncode == 0, result.stdout + result.stderr
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads((directory / "results.json").read_text()),
                        json.loads(records.SCHEMA_PATH.read_text()))     # the published schema
    document = records.load(directory / "results.json")
    assert document.complete is True
    cases = document.records
    assert sorted(r.phase for r in cases) == ["chaotic", "eoc", "ordered"]
    for record in cases:
        assert record.kind == "dispersion" and record.result.architecture.hidden_widths == (8, 8, 8)
        assert record.seed == 7 and record.result.networks == 50 and record.implementation_spec == "structured"
        assert record.result.differential.max_relative_error <= 1e-10      # checked against jacobian
        assert record.device == "cpu" and record.dtype in ("float64", "float32")
        assert record.environment["torch"] and record.environment["ntk-harness"]
        assert record.wall_seconds > 0
        dispersion = record.result.diagonal.statistics["dispersion"]
        assert dispersion.interval.low <= dispersion.value <= dispersion.interval.high
        assert [round(e.cosine, 9) for e in record.result.entries] == [1.0, 0.5, 0.0]  # c = 1 is x0 itself
        assert record.result.diagonal.exact_dispersion > 1
    session = document.sessions[0]
    assert "--ntk-report-dir" in session["command"] and session["exitstatus"] == 0
    assert [b["name"] for b in document.benchmarks] == ["test_sum"]
    assert document.benchmarks[0]["stats"]["rounds"] >= 3
    report = (directory / "report.md").read_text()
    for heading in ("## The run", "## dispersion cases", "### ordered phase", "### edge of chaos", "### chaotic phase",
                    "## Implementation benchmarks", "![", "dispersion_vs_depth.png"):
        assert heading in report
    assert "record[" not in report and "extra" not in report   # speaks to readers, not to the code
    # each case row shows the measured dispersion with its interval and the exact value
    for record in cases:
        row = next(line for line in report.splitlines() if line.startswith(f"| {record.case} "))
        assert f"{record.result.diagonal.value('dispersion'):.4g} [" in row
        assert f"{record.result.diagonal.exact_dispersion:.4g}" in row
    for name in ("dispersion_vs_depth.png", "dispersion_vs_correlation.png", "benchmarks.png"):
        assert (directory / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ntk-harness report: 3 cases" in result.stdout
    leftovers = [p.name for p in directory.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert (directory.parent.parent / "index.md").read_text().count("| [`") == 1


def test_xdist_gives_the_serial_numbers_and_one_report(serial_run, case_dir, interval_cache):
    _, serial_dir = serial_run
    result = run_pytest(case_dir, "-n", "2", "small.toml", "--ntk-report-dir", "parallel", cache=interval_cache)
    assert result.returncode == 0, result.stdout + result.stderr
    serial = _records(serial_dir / "results.json")
    parallel = _records(latest_run(case_dir / "parallel") / "results.json")
    assert serial.keys() == parallel.keys() and len(serial) == 3
    for key in serial:
        assert records.conflict(serial[key], parallel[key]) is None, key     # equal but for timings
    workers = {r.environment.get("xdist_worker") for r in parallel.values()}
    assert workers <= {"gw0", "gw1"} and workers
    assert records.load(latest_run(case_dir / "parallel") / "results.json").sessions[0]["workers"] == 2


def test_shards_merge_to_the_unsharded_results(serial_run, case_dir, interval_cache):
    _, serial_dir = serial_run
    shards = []
    for k in (1, 2):
        result = run_pytest(case_dir, "small.toml", "--ntk-shard", f"{k}/2", "--ntk-report-dir", f"shard{k}",
                            cache=interval_cache)
        assert result.returncode == 0, result.stdout + result.stderr
        shards.append(latest_run(case_dir / f"shard{k}") / "results.json")
    first, second = (_records(p) for p in shards)
    assert len(first) == 2 and len(second) == 1 and not set(first) & set(second)
    assert _report_cli(*map(str, shards), "--out", str(case_dir / "merged"),
                       "--baseline", str(serial_dir / "results.json")) == 0
    merged, serial = _records(case_dir / "merged" / "results.json"), _records(serial_dir / "results.json")
    assert merged.keys() == serial.keys()
    for key in serial:
        assert records.conflict(merged[key], serial[key]) is None, key
    document = records.load(case_dir / "merged" / "results.json")
    assert [s["shard"] for s in document.sessions] == ["1/2", "2/2"]
    report = (case_dir / "merged" / "report.md").read_text()
    assert "3 cases: 3 passed" in report
    assert "No case changed its verdict." in report and "No statistic changed" in report
    comparison = json.loads((case_dir / "merged" / "comparison.json").read_text())
    assert comparison["compared_cases"] == 3 and comparison["moved_statistics"] == [] and not comparison["new_cases"]


def test_run_json_is_a_results_document_that_the_report_command_reads(case_dir, tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "small.toml", "--json"], cwd=case_dir,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (tmp_path / "run.json").write_text(result.stdout)
    assert _report_cli(str(tmp_path / "run.json"), "--out", str(tmp_path / "out")) == 0
    assert "3 cases: 3 passed" in (tmp_path / "out" / "report.md").read_text()


class _Result:
    def __init__(self, ret, out: str, err: str):
        self.ret, self.out, self.err = int(ret), out, err


def _in_process(workdir: Path, monkeypatch, capsys, *args: str) -> _Result:
    """Usage errors and raising cases need no fresh interpreter: pytest.main in this process."""
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
    result = _in_process(tmp_path, monkeypatch, capsys, "small.toml", "--ntk-report-dir", str(blocker / "report"))
    assert result.ret == 4   # pytest's usage error, before collection
    assert f"--ntk-report-dir: {blocker / 'report'} is not a writable directory" in result.err
    assert "passed" not in result.out and "failed" not in result.out


def test_baseline_of_the_wrong_format_fails_at_start_with_what_was_expected(tmp_path, monkeypatch, capsys):
    wrong = tmp_path / "bench.json"
    wrong.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    result = _in_process(tmp_path, monkeypatch, capsys, "small.toml", "--ntk-report-dir", str(tmp_path / "r"),
                         "--ntk-report-baseline", str(wrong))
    assert result.ret == 4
    error = result.err
    assert "--ntk-report-baseline" in error and str(wrong) in error
    assert "expected a results.json written by ntk-harness" in error and "pytest-benchmark JSON file" in error
    bad_shard = _in_process(tmp_path, monkeypatch, capsys, "small.toml", "--ntk-shard", "3/2")
    assert bad_shard.ret == 4 and "1 <= K <= N" in bad_shard.err


def test_report_cli_errors_exit_2_with_a_message(tmp_path, capsys):
    wrong = tmp_path / "list.json"
    wrong.write_text("[1, 2]")
    assert _report_cli(str(wrong), "--out", str(tmp_path / "out")) == 2
    error = capsys.readouterr().err
    assert error.startswith("ntk-harness report: error: ") and str(wrong) in error and "got a JSON list" in error
    assert _report_cli(str(tmp_path / "missing.json"), "--out", str(tmp_path / "out")) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_case_that_cannot_run_is_recorded_as_an_error(tmp_path, monkeypatch, capsys):
    """A time limit far below what a case needs: every case ends as an error naming the limit
    and the implementation; the report keeps them."""
    result = _in_process(tmp_path, monkeypatch, capsys, "small.toml", "--ntk-timeout", "0.001",
                         "--ntk-report-dir", str(tmp_path / "r"))
    assert result.ret == 1
    document = records.load(latest_run(tmp_path / "r") / "results.json")
    assert [r.outcome for r in document.records] == ["error"] * 3
    assert all("timed out after 0.001 s in structured" in r.error for r in document.records)
    report = (latest_run(tmp_path / "r") / "report.md").read_text()
    assert "3 cases: 0 passed, 0 failed, 3 errors" in report and "could not run: timed out after 0.001 s" in report


# ------------------------------------------------------------------ results are never lost
SLOW_CASES = CASES + textwrap.dedent("""
    [[case]]
    name = "slow"
    kind = "dispersion"
    implementation = "slow_ntk:slow"

    [case.network]
    width = 8
    depth = 3
    sigma_w2 = 2.0

    [case.sampling]
    networks = 20
    seed = 7
""")

SLOW_NTK = textwrap.dedent("""
    import pathlib
    import time
    from harness.ntk.jacobian import jacobian_ntk


    def slow(f, params, x1, x2):
        pathlib.Path("inside_slow").touch()   # the test signals only once the case is here
        time.sleep(600)
        return jacobian_ntk(f, params, x1, x2)
""")


def _wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"the run never entered the slow implementation (exit {process.poll()})"


def _start(workdir: Path, cache: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env["PYTHONUNBUFFERED"] = "1"
    env["NTK_HARNESS_PROGRESS"] = "0"
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--ntk-cache-dir",
                             str(cache), *args], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """In the child: SIGINT back to its default disposition. A suite started as a background job
    of a non-interactive shell (``pytest tests &``, as CI scripts may do) inherits SIGINT
    ignored; Python then installs no KeyboardInterrupt handler and Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_passes(process: subprocess.Popen, count: int, timeout: float = 240) -> str:
    seen, text, deadline = 0, [], time.time() + timeout
    while seen < count and time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        text.append(line)
        seen += " PASSED" in line
    assert seen >= count, "".join(text)
    return "".join(text)


@pytest.fixture
def slow_dir(tmp_path, interval_cache):
    (tmp_path / "small.toml").write_text(SLOW_CASES)
    (tmp_path / "slow_ntk.py").write_text(SLOW_NTK)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    complete = run_pytest(tmp_path, "small.toml", "-k", "not slow", "--ntk-report-dir", "D", cache=interval_cache)
    assert complete.returncode == 0, complete.stdout + complete.stderr
    return tmp_path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_keeps_the_earlier_complete_report(slow_dir, interval_cache, signum):
    earlier = latest_run(slow_dir / "D")
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    process = _start(slow_dir, interval_cache, "small.toml", "--ntk-report-dir", "D")
    _wait_for_passes(process, 3)          # the three small cases
    _wait_for_file(slow_dir / "inside_slow", process)   # now inside the slow one
    process.send_signal(signum)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 2, output   # pytest's "interrupted"
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before, "the earlier report changed"
    assert latest_run(slow_dir / "D") == earlier
    (partial,) = [p for p in (slow_dir / "D" / "runs").iterdir() if p != earlier]
    document = records.load(partial / "results.json")
    assert document.complete is False and len(document.records) == 3
    assert all(r.outcome == "passed" for r in document.records)
    assert "interrupted" in (partial / "report.md").read_text()
    assert "**no**" in (slow_dir / "D" / "index.md").read_text()


INTERRUPT_IN_FIGURES = """
import harness.report.figures as figures


def interrupted(figure, path):
    raise KeyboardInterrupt   # Ctrl-C while matplotlib draws the first figure


figures.render = interrupted
"""


def test_ctrl_c_while_figures_are_drawn_keeps_the_records_in_one_line(slow_dir, interval_cache):
    """The interrupt arrives inside the figure step (a plugin makes drawing raise it, no timing):
    the finished records stay with complete = false, the index lists the run, one line is printed."""
    (slow_dir / "interrupt_figures.py").write_text(INTERRUPT_IN_FIGURES)
    earlier = latest_run(slow_dir / "D")
    result = run_pytest(slow_dir, "small.toml", "-k", "not slow", "-p", "interrupt_figures", "--ntk-report-dir", "D",
                        cache=interval_cache, extra_path=slow_dir)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output                       # pytest's "interrupted"
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    (line,) = [text for text in output.splitlines() if "interrupted while writing the report" in text]
    assert "3 records kept" in line and "complete = false" in line
    (partial,) = [p for p in (slow_dir / "D" / "runs").iterdir() if p != earlier]
    document = records.load(partial / "results.json")
    assert document.complete is False and len(document.records) == 3
    assert "interrupted" in (partial / "report.md").read_text()
    assert partial.name in (slow_dir / "D" / "index.md").read_text()
    assert latest_run(slow_dir / "D") == earlier                 # latest stays on the complete run


def test_two_runs_into_one_directory_keep_both_reports(slow_dir, interval_cache):
    first = _start(slow_dir, interval_cache, "small.toml", "-k", "not slow", "--ntk-report-dir", "D")
    second = _start(slow_dir, interval_cache, "small.toml", "-k", "ordered", "--ntk-report-dir", "D")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    runs = sorted((slow_dir / "D" / "runs").iterdir())
    assert len(runs) == 3          # the fixture's run and the two concurrent ones
    counts = sorted(len(records.load(r / "results.json").records) for r in runs)
    assert counts == [1, 3, 3]
    assert all(records.load(r / "results.json").complete for r in runs)
    assert latest_run(slow_dir / "D") in runs


def test_a_subset_run_does_not_replace_the_complete_report(slow_dir, interval_cache):
    earlier = latest_run(slow_dir / "D")
    before = (earlier / "results.json").read_bytes()
    subset = run_pytest(slow_dir, "small.toml", "-k", "eoc and not slow", "--ntk-report-dir", "D", cache=interval_cache)
    assert subset.returncode == 0, subset.stdout + subset.stderr
    assert (earlier / "results.json").read_bytes() == before
    assert len(records.load(earlier / "results.json").records) == 3
    newest = latest_run(slow_dir / "D")
    assert newest != earlier and len(records.load(newest / "results.json").records) == 1


def test_a_hanging_implementation_times_out_under_xdist_and_the_run_goes_on(slow_dir, interval_cache):
    result = run_pytest(slow_dir, "small.toml", "-n", "2", "--ntk-timeout", "30", "--ntk-report-dir", "T",
                        cache=interval_cache)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "timed out after 30 s in slow_ntk:slow" in result.stdout
    assert "3 passed" in result.stdout and "1 failed" in result.stdout
    document = records.load(latest_run(slow_dir / "T") / "results.json")
    outcomes = sorted(r.outcome for r in document.records)
    assert outcomes == ["error", "passed", "passed", "passed"] and document.complete
