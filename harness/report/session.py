"""Reports of a pytest session (``--ntk-report-dir DIR``): nothing a run finished is ever lost.

Design: every session writes its OWN run directory, ``DIR/runs/<UTC time>-<host>-<pid>/``
(results.json, report.md, figures), and never touches another run's files:

- when the session ends normally, its run directory is complete (``"complete": true``) and
  ``DIR/latest`` (a symbolic link, replaced atomically) points to it; ``DIR/index.md`` lists
  every run with its case counts;
- when it is interrupted (Ctrl-C, or SIGTERM, which the plugin turns into an interrupt while
  reporting), the cases that finished are written with ``"complete": false``; ``latest``
  keeps pointing to the last complete run;
- two sessions writing into the same DIR at once write two run directories; the one that
  finishes last moves ``latest``;
- a subset run (``-k``, ``-m``, one file) is a run like any other: the earlier, larger
  report stays where it was. Merge runs with ``ntk-harness report DIR/runs/*/results.json``.

Under pytest-xdist the workers only tag their items; the controller receives each case's
record with its test report (``pytest_runtest_logreport`` runs on the controller with the
worker's ``user_properties``) and writes one report.
"""
from __future__ import annotations

import datetime
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from harness import stash

from harness.report import ENVIRONMENT, RECORD

RUNS = "runs"
_UNSET = object()
LATEST = "latest"
INDEX = "index.md"


def configure(config) -> None:
    """Validate the report options at start (usage errors) and register the collector."""
    from harness.checks_at_start import StartError, check_writable_dir
    from harness.records import document as document_module
    from harness.report import benchmarks as benchmarks_module

    directory = config.getoption("ntk_report_dir")
    baseline_path = config.getoption("ntk_report_baseline")
    benchmarks_path = config.getoption("ntk_report_benchmarks")
    if not directory:
        raise pytest.UsageError("--ntk-report-baseline and --ntk-report-benchmarks need --ntk-report-dir DIR")
    if hasattr(config, "workerinput"):
        config.stash[stash.REPORTING] = True    # xdist worker: tag items; the controller writes
        return
    path = Path(directory).expanduser()
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    try:
        check_writable_dir(path, "--ntk-report-dir")
    except StartError as exc:
        raise pytest.UsageError(str(exc)) from None
    baseline = None
    if baseline_path:
        try:
            baseline = document_module.load(baseline_path)
        except document_module.ResultsFormatError as exc:
            raise pytest.UsageError(f"--ntk-report-baseline: {exc}") from None
    benchmarks = []
    if benchmarks_path:
        try:
            benchmarks = benchmarks_module.load(benchmarks_path)
        except benchmarks_module.BenchmarkFormatError as exc:
            raise pytest.UsageError(f"--ntk-report-benchmarks: {exc}") from None
    config.stash[stash.REPORTING] = True
    stash.register_helper(config, ReportCollector(config, path, baseline, benchmarks, baseline_path),
                          "ntk-harness-report-collector")


def run_directory_name(started: float) -> str:
    stamp = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40]
    return f"{stamp}-{host}-{os.getpid()}"


def claim_run_directory(runs: Path, started: float) -> Path:
    """A new, empty run directory under ``runs`` (never one another session made: a name
    taken already gets a random suffix)."""
    import secrets

    runs.mkdir(parents=True, exist_ok=True)
    name = run_directory_name(started)
    for attempt in range(100):
        candidate = runs / (name if attempt == 0 else f"{name}-{secrets.token_hex(3)}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise OSError(f"could not create a new run directory under {runs}")


class ReportCollector:
    """Controller-side state: records of finished cases, and the session description."""

    def __init__(self, config, directory: Path, baseline, benchmarks: list[dict], baseline_path: str | None):
        self.config = config
        self.directory = directory
        self.baseline = baseline
        self.baseline_path = baseline_path
        self.benchmarks = benchmarks
        self.records: dict = {}
        self.started = time.time()
        self.started_wall = time.perf_counter()
        self.run_dir = claim_run_directory(directory / RUNS, self.started)
        self.previous_sigterm = _UNSET

    # -------------------------------------------------------------- SIGTERM -> interrupt
    def pytest_sessionstart(self, session):
        def terminate(signum, frame):
            raise KeyboardInterrupt(f"terminated by signal {signum}")

        try:
            if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
                return   # whoever started us wants SIGTERM ignored: leave it so
            self.previous_sigterm = signal.signal(signal.SIGTERM, terminate)
        except ValueError:   # not the main thread
            self.previous_sigterm = _UNSET

    def _restore_sigterm(self):
        if self.previous_sigterm is not _UNSET:
            # None: the previous handler was not installed from Python; the default is the best guess
            signal.signal(signal.SIGTERM, self.previous_sigterm if self.previous_sigterm is not None
                          else signal.SIG_DFL)
            self.previous_sigterm = _UNSET

    # -------------------------------------------------------------- records
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        from harness.records import CaseRecord, RecordError

        properties = dict(report.user_properties or [])
        if ENVIRONMENT not in properties:
            return   # not a case item
        raw = properties.get(RECORD)
        if report.when == "call" and raw is not None:
            try:
                record = CaseRecord.from_record(raw)
            except RecordError:
                return
            record.nodeid = report.nodeid
            record.wall_seconds = report.duration
            record.environment = properties[ENVIRONMENT]
            self.records[report.nodeid] = record
        elif report.failed and report.nodeid not in self.records:
            # the item raised before it produced a record (an invalid case file, a setup error)
            crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
            message = getattr(crash, "message", None) or str(report.longrepr).strip().splitlines()[-1:]
            name = report.nodeid.rsplit("::", 1)[-1]
            self.records[report.nodeid] = CaseRecord(
                case=name, kind="invalid" if name.endswith(".toml") else "unknown", nodeid=report.nodeid,
                source=report.nodeid.split("::", 1)[0], outcome="error",
                error=message if isinstance(message, str) else " ".join(message),
                wall_seconds=report.duration, environment=properties[ENVIRONMENT])

    def document(self, exitstatus):
        from harness.records.document import ResultsDocument
        from harness.report.environment import environment

        session_state = self.config.stash.get(stash.SESSION, None)
        stopped = bool(session_state is not None and (session_state.shouldstop or session_state.shouldfail))
        # interrupted, or stopped early by -x / --maxfail: the records are the cases that finished
        interrupted = int(exitstatus) == int(pytest.ExitCode.INTERRUPTED) or stopped
        workers = getattr(self.config.option, "numprocesses", None)
        if not workers and getattr(self.config.option, "tx", None):
            workers = len(self.config.option.tx)   # xdist --tx specs (remote or popen workers)
        session = {
            "command": ["pytest"] + [str(a) for a in self.config.invocation_params.args],
            "cwd": str(self.config.invocation_params.dir),
            "started": datetime.datetime.fromtimestamp(self.started, datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S"),
            "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "wall_seconds": time.perf_counter() - self.started_wall,
            "exitstatus": int(exitstatus),
            "shard": self.config.getoption("ntk_shard"),
            "workers": workers if isinstance(workers, int) and workers > 0 else None,
            "run_directory": str(self.run_dir),
            "environment": environment(),
        }
        return ResultsDocument(records=list(self.records.values()), sessions=[session],
                               benchmarks=self.benchmarks, complete=not interrupted)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        from harness.report import benchmarks as benchmarks_module
        from harness.report.writer import ReportInterrupted, update_latest, write_index, write_report

        self._restore_sigterm()
        self.config.stash[stash.SESSION] = session
        if int(exitstatus) == int(pytest.ExitCode.USAGE_ERROR):
            return
        if not self.benchmarks:
            self.benchmarks = benchmarks_module.from_session(self.config)
        document = self.document(exitstatus)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        try:
            written = write_report(self.run_dir, document, baseline=self.baseline, baseline_path=self.baseline_path)
            if document.complete:
                update_latest(self.directory, self.run_dir)
            write_index(self.directory)
        except ReportInterrupted as exc:   # Ctrl-C while figures were drawn: the records stay
            write_index(self.directory)
            if reporter is not None:
                reporter.write_line(f"ntk-harness report: {exc}")
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            return
        except OSError as exc:   # e.g. the disk filled up; earlier runs are untouched
            message = f"ntk-harness report: could not write {self.run_dir}: {exc}"
            if reporter is None:
                raise
            reporter.write_sep("!", message, red=True)
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return
        if reporter is not None:
            state = "" if document.complete else " (interrupted: complete = false; latest unchanged)"
            reporter.write_sep("-", f"ntk-harness report: {len(document.records)} cases -> "
                                    f"{self.run_dir / 'report.md'} ({len(written)} files){state}")


__all__ = ["ReportCollector", "configure"]
