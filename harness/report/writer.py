"""Write a report directory atomically: results.json, report.md, figures.

Everything is first written into a fresh hidden directory next to the target
(``.<name>.tmp-XXXX`` in the same parent, hence the same file system), then each file is
moved into place with :func:`os.replace` (atomic per file), figures first, ``report.md``,
and ``results.json`` last. An exception or Ctrl-C while writing leaves the target as it
was (the temporary directory is removed); no file in the target is ever half-written.
Figures of an earlier report in the same directory that this one does not draw are
removed, so report.md never links a stale picture.

:func:`update_latest` and :func:`write_index` maintain the ``latest`` link and ``index.md``
of a report directory holding many runs (:mod:`harness.report.session`).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from harness.records.document import ResultsDocument
from harness.report import baseline as baseline_module
from harness.report import figures as figures_module
from harness.report import markdown

RESULTS = "results.json"
REPORT = "report.md"
COMPARISON = "comparison.json"


def write_report(directory: Path, document: ResultsDocument, *, baseline: ResultsDocument | None = None,
                 baseline_path: str | None = None, title: str = "ntk-harness report") -> list[str]:
    """Render ``document`` into ``directory``; return the file names written."""
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
        (staging / RESULTS).write_text(document.dumps(), encoding="utf-8")
        order = [name for name, _ in drawn] + extra_files + [REPORT, RESULTS]
        for name in order:
            os.replace(staging / name, directory / name)
        drawn_names = {name for name, _ in drawn}
        for stale in directory.glob("*.png"):
            if stale.name not in drawn_names:
                stale.unlink()
        if baseline is None and (directory / COMPARISON).exists():
            (directory / COMPARISON).unlink()
        return order
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def update_latest(directory: Path, run_dir: Path, name: str = "latest") -> None:
    """Point ``directory/latest`` at ``run_dir`` (a relative symbolic link, replaced atomically)."""
    link = Path(directory) / name
    target = os.path.relpath(run_dir, directory)
    temporary = Path(directory) / f".{name}.{os.getpid()}.tmp"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(target, temporary)
    os.replace(temporary, link)


def write_index(directory: Path) -> None:
    """``directory/index.md``: every run directory under ``runs/`` with its case counts."""
    from harness.records.document import ResultsFormatError, load

    runs = sorted((Path(directory) / "runs").glob("*/results.json"))
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
                    f"{counts.get('failed', 0) + counts.get('error', 0) + counts.get('xpassed', 0)} | `{command}` |")
    text = ["# ntk-harness runs", "",
            "Every session writes its own run directory; `latest` points to the last complete one.", "",
            "| run | complete | cases | passed | failed | command |", "|---|---|---|---|---|---|", *rows, ""]
    temporary = Path(directory) / f".index.{os.getpid()}.tmp"
    temporary.write_text("\n".join(text), encoding="utf-8")
    os.replace(temporary, Path(directory) / "index.md")
