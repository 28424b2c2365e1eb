"""The pytest plugin: ``pytest cases`` collects case files and runs each expanded case.

Registered under the ``pytest11`` entry point, so pytest loads it wherever ntk-harness is
installed; it is a guest in every project of the environment, so it stays in its lane:

- every option is in the group "ntk-harness" and carries the ``--ntk-`` prefix (the run
  options of :mod:`harness.options`, shared with ``ntk-harness``, and the report options);
- it changes no session-wide setting; a case file that fails validation becomes ONE failing
  item named after the file, with the message, and the rest of the session runs;
- a ``.toml`` file is collected only if it holds ``[[case]]`` tables with a ``kind``
  (:func:`harness.cases.schema.is_case_file`);
- cases marked ``paper`` are deselected unless the ``-m`` expression names ``paper``; other
  items are never touched;
- at start-up it imports nothing heavier than the standard library: the case schema and
  kinds are imported when a case file is collected, torch when a case runs.

Each expanded case becomes one :class:`CaseItem` with an id such as ``quick[eoc-w16-L8-s2]``,
carrying the case's markers and its kind's; it runs through :func:`harness.runner.run_case`
(the same runner as ``ntk-harness run``) and prints the verdict table when it fails.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import options as run_options_module
from harness import stash
from harness.report import ENVIRONMENT, RECORD  # names only: the package imports nothing

def markers() -> dict[str, str]:
    """Every marker a case may carry -> its help (the kinds' registry is plain data: nothing is imported)."""
    from harness.kinds import markers as known

    return known()


def pytest_addoption(parser):
    group = parser.getgroup("ntk-harness", "ntk-harness case files")
    run_options_module.add_to_pytest(group)
    group.addoption("--ntk-report-dir", dest="ntk_report_dir", default=None, metavar="DIR",
                    help="write a report (results.json, report.md, figures) into a new run directory under DIR")
    group.addoption("--ntk-report-baseline", dest="ntk_report_baseline", default=None, metavar="PATH",
                    help="compare with an earlier results.json (verdicts, statistics, benchmarks)")
    group.addoption("--ntk-report-benchmarks", dest="ntk_report_benchmarks", default=None, metavar="PATH",
                    help="include this pytest-benchmark JSON file (--benchmark-json) in the report")
    group.addoption("--ntk-shard", dest="ntk_shard", default=None, metavar="K/N",
                    help="run only shard K of N of the selected cases (1 <= K <= N): every N-th case by node id")


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--ntk-shard: expected K/N with integers 1 <= K <= N (e.g. 2/4); got {text!r}") from None
    if not 1 <= k <= n:
        raise pytest.UsageError(f"--ntk-shard: expected K/N with 1 <= K <= N; got {text!r}")
    return k, n


def _checked_options(config) -> run_options_module.RunOptions:
    try:
        return run_options_module.run_options(config.getoption)
    except run_options_module.OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config):
    for name, text in markers().items():
        config.addinivalue_line("markers", f"{name}: {text}")
    options = _checked_options(config)
    for warning in run_options_module.deprecated_spellings(config.invocation_params.args):
        config.issue_config_time_warning(pytest.PytestDeprecationWarning(f"ntk-harness: {warning}"), stacklevel=2)
    from harness import checks_at_start

    try:
        checks_at_start.check_options(options, explicit_cache=config.getoption("ntk_cache_dir") is not None)
    except checks_at_start.StartError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[stash.OPTIONS] = options
    if not hasattr(config, "workerinput"):
        stash.register_helper(config, DiagnosisSummary(), "ntk-harness-diagnoses")
    shard = config.getoption("ntk_shard")
    if shard:
        config.stash[stash.SHARD] = _parse_shard(shard)
    if config.getoption("ntk_report_dir") or config.getoption("ntk_report_baseline") or config.getoption(
            "ntk_report_benchmarks"):
        from harness.report import session

        session.configure(config)


def pytest_unconfigure(config):
    stash.unregister_helpers(config)


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix != ".toml":
        return None
    from harness.cases.schema import is_case_file

    if is_case_file(file_path):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    """A case file: one item per expanded case, or one failing item when the file is invalid."""

    def collect(self):
        from harness.cases.schema import CaseError, load_case_file
        from harness.kinds import KINDS

        try:
            registered = {line.split(":")[0].split("(")[0].strip() for line in self.config.getini("markers")}
            cases = load_case_file(self.path, KINDS, known_markers=registered | set(markers()))
        except CaseError as exc:
            yield InvalidCaseFile.from_parent(self, name=self.path.name, message=str(exc))
            return
        for case in cases:
            item = CaseItem.from_parent(self, name=case.id, case=case)
            for marker in list(KINDS[case.kind].markers) + case.markers:
                item.add_marker(marker)
            reason = KINDS[case.kind].expected_failure(case)
            if reason:
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason, raises=CaseFailed))
            yield item


class InvalidCaseFile(pytest.Item):
    """Stands for a case file that failed validation: it fails with the message."""

    def __init__(self, *, message: str, **kwargs):
        super().__init__(**kwargs)
        self.message = message

    def runtest(self):
        raise InvalidCase(self.message)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, InvalidCase):
            return f"invalid case file: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"invalid case file {self.path.name}"


class InvalidCase(Exception):
    """A case file failed validation; the message names the file, the case and the key."""


class CaseFailed(Exception):
    """A case ran and a check failed; the message is the verdict table."""


class CaseFailedUnexpectedly(Exception):
    """A case with expected failures ran and a check NOT expected to fail failed: a plain failure
    (not ``CaseFailed``, so that the strict xfail marker does not count it as expected)."""


class CaseErrored(Exception):
    """A case could not run (a device, an implementation, data, memory or time); one line."""


class CaseItem(pytest.Item):
    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self):
        from harness.report.progress import for_item
        from harness.runner import run_case
        from harness.verdict import format_record

        options = self.config.stash[stash.OPTIONS]
        options.progress = for_item(self, "Monte Carlo")  # None unless a terminal shows it
        record = run_case(self.case, options, nodeid=self.nodeid)
        self.user_properties.append((RECORD, record.to_record()))
        if self.config.stash.get(stash.REPORTING, False):
            from harness.report.environment import environment

            # again after the case: torch is loaded now (its threads, CUDA, GPU go in the record)
            self.user_properties.append((ENVIRONMENT, environment()))
        if record.outcome == "error":
            raise CaseErrored(f"case {record.case}: {record.error}")
        if record.outcome == "skipped":
            pytest.skip(record.error)
        if record.outcome == "xfailed":
            raise CaseFailed(format_record(record))
        if record.outcome == "failed":
            raise (CaseFailedUnexpectedly if record.expected_failure else CaseFailed)(format_record(record))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (CaseFailed, CaseFailedUnexpectedly, CaseErrored)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.case.kind} case {self.name}"


class DiagnosisSummary:
    """At the end of the session, each diagnosis the failed cases share, once, with the cases
    (e.g. "It equals the reference without every bias" for 11 agreement cases)."""

    #: "It equals the reference without every bias." (agreement's diagnosis of a missing group)
    EQUALS = r"It equals the .*?(?=[:;|]|\.\s|\.$|$)"
    #: "NTK implementation 'x': network 0: K[cross] returned NaN at entries ..." (agreement) and
    #: "NTK implementation 'x' returned NaN at entries [network 3, entry 0]" (Monte Carlo): one
    #: diagnosis per implementation and kind of value, whatever the network, call or entry
    NONFINITE = r"NTK implementation ('[^']+').*? returned (NaN|infinity) at entries"

    def __init__(self):
        self.cases: dict[str, list[str]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        import re

        if report.when != "call" or not report.failed:
            return
        record = dict(report.user_properties or []).get(RECORD)
        if not record:
            return
        found = set()
        for check in record.get("checks") or []:
            if not check.get("passed"):
                detail = check.get("detail") or ""
                found |= {f"{text}." for text in re.findall(self.EQUALS, detail)}
                found |= {f"NTK implementation {name} returned {what}."
                          for name, what in re.findall(self.NONFINITE, detail)}
        for diagnosis in found:
            self.cases.setdefault(diagnosis, []).append(record.get("case", report.nodeid))

    def pytest_terminal_summary(self, terminalreporter):
        repeated = {d: cases for d, cases in self.cases.items() if len(cases) > 1}
        if not repeated:
            return
        terminalreporter.write_sep("=", "ntk-harness: diagnoses shared by several failed cases")
        for diagnosis, cases in sorted(repeated.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(cases[:8]) + (f", ... ({len(cases) - 8} more)" if len(cases) > 8 else "")
            terminalreporter.write_line(f"{diagnosis} {len(cases)} cases: {shown}")


def pytest_runtest_setup(item):
    if isinstance(item, (CaseItem, InvalidCaseFile)) and item.config.stash.get(stash.REPORTING, False):
        from harness.report.environment import environment

        item.user_properties.append((ENVIRONMENT, environment()))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    expression = config.getoption("markexpr") or ""
    drop = []
    if "paper" not in expression:
        drop = [item for item in items if isinstance(item, CaseItem) and item.get_closest_marker("paper")]
    shard = config.stash.get(stash.SHARD, None)
    if shard:
        k, n = shard
        cases = sorted((item for item in items if isinstance(item, CaseItem) and item not in drop),
                       key=lambda item: item.nodeid)
        drop += [item for rank, item in enumerate(cases) if rank % n != k - 1]
    if drop:
        dropped = set(map(id, drop))
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if id(item) not in dropped]
    if any(isinstance(item, CaseItem) for item in items):
        from harness import checks_at_start

        try:
            checks_at_start.check_cache_dir(config.stash[stash.OPTIONS].cache_dir)
        except checks_at_start.StartError as exc:
            raise pytest.UsageError(str(exc)) from None
