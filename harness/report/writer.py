"""Write a report directory: results.json, report.md, figures, each file atomically.

With ``gzip_results`` the records are ``results.json.gz`` instead (paper-size reports that are
committed: the 784-point sweep is 21 MB as JSON), written without a time stamp so that the
same records give the same bytes; the other form of an earlier report is removed.

``results.json`` is written first and moved into place at once (the records are what must
never be lost); then each figure and ``report.md`` are written into a fresh hidden directory
next to the target (the same file system; a figure that fails to draw is skipped with its
reason in report.md, never the report) and moved into place with :func:`os.replace`: no file
in the target is ever half-written. A Ctrl-C while the figures are drawn keeps the records:
``results.json`` is rewritten with ``complete: false``, ``report.md`` says the report was
interrupted, and :class:`ReportInterrupted` tells the caller (one line, no traceback). Figures of an earlier report in the same directory that this one does not draw
are removed (only the harness's own figure names), so report.md never links a stale
picture.

:func:`update_latest` and :func:`write_index` maintain the ``latest`` link and ``index.md``
of a report directory holding many runs (:mod:`harness.report.session`).
"""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

from harness.files import atomic_symlink, atomic_write_bytes, atomic_write_text
from harness.records.document import ResultsDocument
from harness.report import baseline as baseline_module
from harness.report import figures as figures_module
from harness.report import markdown

RESULTS = "results.json"
REPORT = "report.md"
COMPARISON = "comparison.json"


class ReportInterrupted(Exception):
    """Ctrl-C while a report was written; the records are in ``path`` with ``complete: false``."""

    def __init__(self, path: Path, records: int):
        self.path = path
        self.records = records
        super().__init__(f"interrupted while writing the report: {records} records kept in {path} "
                         "(complete = false)")


def write_report(directory: Path, document: ResultsDocument, *, baseline: ResultsDocument | None = None,
                 baseline_path: str | None = None, title: str = "ntk-harness report",
                 gzip_results: bool = False) -> list[str]:
    """Render ``document`` into ``directory``; return the file names written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    results = RESULTS + ".gz" if gzip_results else RESULTS
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        _write_results(directory, results, document)
        try:
            return _render_into(directory, staging, document, baseline, baseline_path, title, results)
        except KeyboardInterrupt:
            _keep_interrupted(directory, document, results)
            raise ReportInterrupted(directory / results, len(document.records)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_results(directory: Path, name: str, document: ResultsDocument) -> None:
    if name.endswith(".gz"):
        atomic_write_bytes(directory / name, gzip.compress(document.dumps().encode("utf-8"), mtime=0))
    else:
        atomic_write_text(directory / name, document.dumps())
    other = RESULTS if name.endswith(".gz") else RESULTS + ".gz"
    with contextlib.suppress(FileNotFoundError):
        (directory / other).unlink()


def _render_into(directory: Path, staging: Path, document: ResultsDocument, baseline, baseline_path,
                 title: str, results: str) -> list[str]:
    """Figures, the comparison and report.md into ``staging``, then moved into ``directory``."""
    drawn, skipped = figures_module.draw_all(document, staging)
    comparison_lines = []
    extra_files = []
    if baseline is not None:
        comparison = baseline_module.compare(document, baseline)
        comparison["baseline"] = baseline_path
        comparison_lines = baseline_module.markdown(comparison, baseline_path or "baseline")
        (staging / COMPARISON).write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")
        extra_files.append(COMPARISON)
    (staging / REPORT).write_text(markdown.render(document, drawn, skipped, comparison_lines, title=title,
                                                  results=results), encoding="utf-8")
    order = [name for name, _ in drawn] + extra_files + [REPORT]
    for name in order:
        os.replace(staging / name, directory / name)
    order.insert(0, results)
    drawn_names = {name for name, _ in drawn}
    for name in figures_module.KNOWN:
        if name not in drawn_names and (directory / name).exists():
            (directory / name).unlink()
    if baseline is None and (directory / COMPARISON).exists():
        (directory / COMPARISON).unlink()
    return order


def _keep_interrupted(directory: Path, document: ResultsDocument, results: str = RESULTS) -> None:
    """The records with ``complete: false`` and a report.md that says so; no stale figure stays linked."""
    document.complete = False
    _write_results(directory, results, document)
    for name in figures_module.KNOWN:
        if (directory / name).exists():
            (directory / name).unlink()
    atomic_write_text(directory / REPORT, f"# ntk-harness report (interrupted)\n\nInterrupted while the figures "
                                          f"were drawn: the {len(document.records)} records are in `{results}` "
                                          "(complete = false); `ntk-harness report` redraws the report from it.\n")


def update_latest(directory: Path, run_dir: Path, name: str = "latest") -> None:
    """Point ``directory/latest`` at ``run_dir`` (a relative symbolic link, replaced atomically)."""
    atomic_symlink(Path(directory) / name, os.path.relpath(run_dir, directory))


@contextlib.contextmanager
def _locked(directory: Path):
    """An exclusive lock on ``directory/.index.lock`` (POSIX advisory lock; none elsewhere)."""
    try:
        import fcntl
    except ImportError:   # pragma: no cover - not POSIX
        yield
        return
    with open(Path(directory) / ".index.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_index(directory: Path) -> None:
    """``directory/index.md``: every run directory under ``runs/`` with its case counts (under a
    lock, so that two sessions finishing at once both end up listed)."""
    from harness.records.document import ResultsFormatError, load

    with _locked(directory):
        runs = sorted(p for p in (Path(directory) / "runs").glob("*/results.json") if not p.parent.name.startswith("."))
        latest = Path(directory) / "latest"
        latest_target = latest.resolve() if latest.is_symlink() else None
        rows = []
        for results in runs:
            try:
                document = load(results)
            except ResultsFormatError:
                rows.append(f"| `{results.parent.name}` | unreadable | | | | |")
                continue
            counts = {}
            for record in document.records:
                counts[record.outcome] = counts.get(record.outcome, 0) + 1
            command = " ".join(document.sessions[0].get("command", [])) if document.sessions else ""
            mark = " (latest)" if latest_target == results.parent.resolve() else ""
            rows.append(f"| [`{results.parent.name}`](runs/{results.parent.name}/report.md){mark} | "
                        f"{'yes' if document.complete else '**no**'} | {len(document.records)} | "
                        f"{counts.get('passed', 0) + counts.get('xfailed', 0)} | "
                        f"{counts.get('failed', 0) + counts.get('error', 0) + counts.get('xpassed', 0)} | "
                        f"`{command}` |")
        text = ["# ntk-harness runs", "",
                "Every session writes its own run directory; `latest` points to the last complete one.", "",
                "| run | complete | cases | passed | failed | command |", "|---|---|---|---|---|---|", *rows, ""]
        atomic_write_text(Path(directory) / "index.md", "\n".join(text))
