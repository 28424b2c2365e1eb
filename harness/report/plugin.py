"""pytest hooks that collect case records and write reports (``--report-dir``).

Options:

- ``--report-dir DIR``: at the end of the session write ``DIR/results.json`` (every case's
  record), ``DIR/report.md`` (tables by kind and phase) and figures. Checked at the start:
  an unwritable directory is a usage error before any case runs.
- ``--report-baseline OLD/results.json``: add a comparison with an earlier run (validated at
  the start; a file of another format is a usage error that says what was expected).
- ``--report-benchmarks BENCH.json``: include a pytest-benchmark JSON file (benchmarks that
  ran in this session are included without it).
- ``--shard K/N``: run only the K-th of N interleaved slices of the selected cases (sorted by
  node id), so N machines running K = 1..N cover every case exactly once.

Under pytest-xdist the workers only tag their items (host and versions of the worker); the
controller receives each case's record with its test report (``pytest_runtest_logreport``
runs on the controller with the worker's ``user_properties``) and writes one report.
On Ctrl-C pytest still finishes the session: the cases that finished are written, marked
``"complete": false``; the write itself is atomic (:mod:`harness.report.writer`).
"""
from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest

RECORD = "ntk_harness_record"
ENVIRONMENT = "ntk_harness_environment"
CASE = "ntk_harness_case"
LIFTED = ("implementation", "device", "dtype", "seed", "seeds", "samples")


def pytest_addoption(parser):
    group = parser.getgroup("ntk-harness-report", "ntk-harness reports")
    group.addoption("--report-dir", default=None, metavar="DIR",
                    help="write results.json, report.md and figures into DIR at the end of the session")
    group.addoption("--report-baseline", default=None, metavar="PATH",
                    help="compare with an earlier results.json (verdicts, statistics, benchmarks)")
    group.addoption("--report-benchmarks", default=None, metavar="PATH",
                    help="include this pytest-benchmark JSON file (--benchmark-json) in the report")
    group.addoption("--shard", default=None, metavar="K/N",
                    help="run only shard K of N (1 <= K <= N): every N-th case by sorted node id")


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--shard: expected K/N with integers 1 <= K <= N (e.g. 2/4); got {text!r}") from None
    if not 1 <= k <= n:
        raise pytest.UsageError(f"--shard: expected K/N with 1 <= K <= N; got {text!r}")
    return k, n


class ReportCollector:
    """Controller-side state: records of finished cases, and the session description."""

    def __init__(self, config, directory: Path, baseline: dict | None, benchmarks: list[dict]):
        self.config = config
        self.directory = directory
        self.baseline = baseline
        self.benchmarks = benchmarks
        self.records: dict[str, dict] = {}
        self.started = time.time()
        self.started_wall = time.perf_counter()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        properties = dict(report.user_properties or [])
        if ENVIRONMENT not in properties:
            return   # not a case item
        record = properties.get(RECORD)
        if report.when == "call" and record is not None:
            record = dict(record)
            record["nodeid"] = report.nodeid
            record["outcome"] = "passed" if record.get("passed") else "failed"
            parameters = record.get("parameters") or {}
            for key in LIFTED:
                if key in parameters:
                    record[key] = parameters[key]
            record["wall_seconds"] = report.duration
            record["environment"] = properties[ENVIRONMENT]
            self.records[report.nodeid] = record
        elif report.failed and report.nodeid not in self.records:
            # the case raised before it produced a record (or in setup): an error record
            case = properties.get(CASE) or {}
            crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
            self.records[report.nodeid] = {
                "case": case.get("case") or report.nodeid.rsplit("::", 1)[-1], "nodeid": report.nodeid,
                "kind": case.get("kind"), "passed": False, "outcome": "error", "phase": None, "when": report.when,
                "error_message": getattr(crash, "message", None),
                "error": str(report.longrepr)[-4000:], "wall_seconds": report.duration,
                "environment": properties[ENVIRONMENT],
            }

    def document(self, exitstatus) -> dict:
        from harness.report.environment import environment
        from harness.report.records import FORMAT, VERSION

        interrupted = int(exitstatus) == int(pytest.ExitCode.INTERRUPTED)
        workers = getattr(self.config.option, "numprocesses", None)
        if not workers and getattr(self.config.option, "tx", None):
            workers = len(self.config.option.tx)   # xdist --tx specs (remote or popen workers)
        session = {
            "command": ["pytest"] + [str(a) for a in self.config.invocation_params.args],
            "cwd": str(self.config.invocation_params.dir),
            "started": datetime.datetime.fromtimestamp(self.started, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "wall_seconds": time.perf_counter() - self.started_wall,
            "exitstatus": int(exitstatus),
            "shard": self.config.getoption("shard"),
            "workers": workers if isinstance(workers, int) and workers > 0 else None,
            "environment": environment(),
        }
        return {
            "format": FORMAT, "version": VERSION, "complete": not interrupted,
            "sessions": [session],
            "records": [self.records[k] for k in sorted(self.records)],
            "benchmarks": self.benchmarks,
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        from harness.report import benchmarks as benchmarks_module
        from harness.report.writer import write_report

        if not self.benchmarks:
            self.benchmarks = benchmarks_module.from_session(self.config)
        document = self.document(exitstatus)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        try:
            written = write_report(self.directory, document, baseline=self.baseline,
                                   baseline_path=self.config.getoption("report_baseline"))
        except OSError as exc:   # e.g. the disk filled up during the run; the old report stays intact
            message = f"ntk-harness report: could not write {self.directory}: {exc}"
            if reporter is None:
                raise
            reporter.write_sep("!", message, red=True)
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return
        if reporter is not None:
            reporter.write_sep("-", f"ntk-harness report: {len(document['records'])} cases -> "
                                    f"{self.directory / 'report.md'} ({len(written)} files)")


def pytest_configure(config):
    shard = config.getoption("shard", None)
    if shard:
        config._ntk_harness_shard = _parse_shard(shard)
    directory = config.getoption("report_dir", None)
    baseline_path = config.getoption("report_baseline", None)
    benchmarks_path = config.getoption("report_benchmarks", None)
    if not directory:
        if baseline_path or benchmarks_path:
            raise pytest.UsageError("--report-baseline and --report-benchmarks need --report-dir DIR")
        return
    if hasattr(config, "workerinput"):
        config._ntk_harness_tag_items = True    # xdist worker: tag items; the controller writes
        return
    from harness.report import benchmarks as benchmarks_module
    from harness.report import records
    from harness.report.writer import ReportDirError, check_writable

    path = Path(directory).expanduser()
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    try:
        check_writable(path)
    except ReportDirError as exc:
        raise pytest.UsageError(f"--report-dir: {exc}") from None
    baseline = None
    if baseline_path:
        try:
            baseline = records.load(baseline_path)
        except records.ResultsFormatError as exc:
            raise pytest.UsageError(f"--report-baseline: {exc}") from None
    benchmarks = []
    if benchmarks_path:
        try:
            benchmarks = benchmarks_module.load(benchmarks_path)
        except benchmarks_module.BenchmarkFormatError as exc:
            raise pytest.UsageError(f"--report-benchmarks: {exc}") from None
    config._ntk_harness_tag_items = True
    config.pluginmanager.register(ReportCollector(config, path, baseline, benchmarks), "ntk-harness-report-collector")


def pytest_runtest_setup(item):
    if getattr(item.config, "_ntk_harness_tag_items", False) and hasattr(item, "case"):
        from harness.report.environment import environment

        item.user_properties.append((ENVIRONMENT, environment()))
        item.user_properties.append((CASE, {"case": item.name, "kind": getattr(item.case, "kind", None)}))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    shard = getattr(config, "_ntk_harness_shard", None)
    if not shard:
        return
    k, n = shard
    ordered = sorted(range(len(items)), key=lambda i: items[i].nodeid)
    keep_index = {i for rank, i in enumerate(ordered) if rank % n == k - 1}
    keep = [item for i, item in enumerate(items) if i in keep_index]
    drop = [item for i, item in enumerate(items) if i not in keep_index]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
