"""The pytest plugin: ``pytest cases`` collects case files and runs each expanded case.

Registered under the ``pytest11`` entry point, so it is active wherever ntk-harness is
installed. A case file is a ``.toml`` file (not pyproject.toml) with ``[[case]]`` tables
(:func:`harness.cases.is_case_file`); every expanded case becomes one item with an id
such as ``phases[eoc-w16-L4-s2]``, carrying the case's markers and its kind's.

Options: ``--device``, ``--dtype``, ``--ntk-impl``, ``--ntk-cache-dir``,
``--ntk-memory-budget``. A case file that fails validation is reported as a collection
error naming the file, the case and the key; the other files' cases still run (the
plugin turns on ``--continue-on-collection-errors`` unless ``--ntk-stop-on-case-errors``).
Cases marked ``paper`` run only when the ``-m`` expression names ``paper``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.cases.schema import CaseError, is_case_file, load_case_file
from harness.kinds.base import RunOptions
from harness.verdict import format_outcome, outcome_record

MARKERS = {
    "quick": "a small set of cases (under 2 minutes on 2 CPU cores) that catches a broken NTK",
    "paper": "the paper's own sizes; run only when asked with -m paper",
    "dispersion": "NTK dispersion at initialization against theory",
    "agreement": "an NTK implementation against the reference implementation",
    "training": "NTK constancy during training",
}


def pytest_addoption(parser):
    group = parser.getgroup("ntk-harness", "ntk-harness case files")
    group.addoption("--device", default=None, help="device for every case: auto (default: CUDA if present, else CPU), cpu, cuda, cuda:N")
    group.addoption("--dtype", default=None, choices=("float64", "float32"), help="compute dtype for every case (default: each case's own)")
    group.addoption("--ntk-impl", default=None, metavar="SPEC", help="NTK implementation for every case: a built-in name or package.module:function")
    group.addoption("--ntk-cache-dir", default=None, metavar="DIR", help="cache of calibrated acceptance intervals (default: <rootdir>/.ntk-harness-cache)")
    group.addoption("--ntk-memory-budget", default=512, type=int, metavar="MIB", help="memory budget per case chunk in MiB (default 512)")
    group.addoption("--ntk-stop-on-case-errors", action="store_true", help="stop the session on an invalid case file (default: report it and run the rest)")


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if not config.getoption("ntk_stop_on_case_errors", False):
        config.option.continue_on_collection_errors = True


def run_options(config) -> RunOptions:
    cache = config.getoption("ntk_cache_dir") or os.path.join(str(config.rootpath), ".ntk-harness-cache")
    return RunOptions(
        device=config.getoption("device"),
        dtype=config.getoption("dtype"),
        implementation=config.getoption("ntk_impl"),
        cache_dir=Path(cache),
        memory_budget_bytes=config.getoption("ntk_memory_budget") * 2**20,
    )


def pytest_collect_file(file_path: Path, parent):
    if is_case_file(file_path):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    def collect(self):
        from harness.kinds import KINDS

        cases = load_case_file(self.path, KINDS)
        seen: dict[str, int] = {}
        for case in cases:
            case_id = f"{case.name}[{KINDS[case.kind].case_id(case)}]"
            seen[case_id] = seen.get(case_id, 0) + 1
            if seen[case_id] > 1:
                case_id = f"{case_id[:-1]}-{seen[case_id]}]"
            item = CaseItem.from_parent(self, name=case_id, case=case)
            for marker in list(KINDS[case.kind].markers) + case.markers:
                item.add_marker(marker)
            yield item

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseError):
            return f"invalid case file: {excinfo.value}"
        return super().repr_failure(excinfo)


class CaseFailed(Exception):
    """A case ran and a check failed; the message is the verdict table."""


class CaseItem(pytest.Item):
    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self):
        from harness.kinds import KINDS

        from harness.report.progress import for_item

        kind = KINDS[self.case.kind]
        options = run_options(self.config)
        options.progress = for_item(self, "Monte Carlo")  # None unless a terminal shows it
        outcome = kind.run(self.case, options)
        record = outcome_record(self.name, self.case.kind, outcome)
        record["source"] = str(self.path)
        self.user_properties.append(("ntk_harness_record", record))
        if not outcome.passed:
            raise CaseFailed(format_outcome(self.name, outcome))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.case.kind} case {self.name}"


def pytest_collection_modifyitems(session, config, items):
    expression = config.getoption("markexpr") or ""
    if "paper" in expression:
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("paper") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
