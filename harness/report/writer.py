"""Write a report directory atomically: results.json, report.md, figures.

Everything is first written into a fresh hidden directory next to the target
(``.<name>.tmp-XXXX`` in the same parent, hence the same file system), then each file is
moved into place with :func:`os.replace` (atomic per file), figures first, ``report.md``,
and ``results.json`` last. An exception or Ctrl-C while writing leaves the target as it
was (the temporary directory is removed); no file in the target is ever half-written.
Figures of an earlier report that this one does not draw are removed, so report.md never
links a stale picture.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from harness.report import baseline as baseline_module
from harness.report import figures as figures_module
from harness.report import markdown

RESULTS = "results.json"
REPORT = "report.md"
COMPARISON = "comparison.json"


class ReportDirError(ValueError):
    """The report directory cannot be created or written."""


def check_writable(directory: Path) -> None:
    """Create ``directory`` and write+remove a probe file in it; raise :class:`ReportDirError` if not possible."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ntk-harness-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
        # the temporary report directory lives next to the target
        staging = tempfile.mkdtemp(prefix=f".{directory.name}.probe-", dir=directory.parent)
        os.rmdir(staging)
    except OSError as exc:
        where = exc.filename or directory
        raise ReportDirError(f"report directory {directory} is not writable: {exc.strerror or exc} ({where})") from None


def write_report(directory: Path, document: dict, *, baseline: dict | None = None,
                 baseline_path: str | None = None, title: str = "ntk-harness report") -> list[str]:
    """Render ``document`` (a results document) into ``directory``; return the file names written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        drawn, skipped = figures_module.draw_all(document, staging)
        comparison_lines = []
        extra_files = []
        if baseline is not None:
            comparison = baseline_module.compare(document, baseline)
            comparison["baseline"] = baseline_path
            comparison_lines = baseline_module.markdown(comparison, baseline_path or "baseline")
            (staging / COMPARISON).write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")
            extra_files.append(COMPARISON)
        (staging / REPORT).write_text(markdown.render(document, drawn, skipped, comparison_lines, title=title),
                                      encoding="utf-8")
        (staging / RESULTS).write_text(json.dumps(document, indent=1, allow_nan=True) + "\n", encoding="utf-8")
        order = [name for name, _ in drawn] + extra_files + [REPORT, RESULTS]
        for name in order:
            os.replace(staging / name, directory / name)
        drawn_names = {name for name, _ in drawn}
        for name, *_ in figures_module.FIGURES:
            if name not in drawn_names and (directory / name).exists():
                (directory / name).unlink()
        if baseline is None and (directory / COMPARISON).exists():
            (directory / COMPARISON).unlink()
        return order
    finally:
        shutil.rmtree(staging, ignore_errors=True)
