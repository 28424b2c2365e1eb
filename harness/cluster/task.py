"""What a Dask worker runs: one case, through the function a local ``ntk-harness run`` calls.

:func:`run_case_task` receives the case, the run options (without their ``progress``
callback, which does not travel), the client's working directory and the client's
:func:`fingerprint`, and returns a :class:`TaskResult`: the record exactly as a local run
builds it (``harness.cli._run_and_print``: ``run_case``, an internal error turned into an
error record, ``wall_seconds`` and the worker's ``environment``), what the case wrote to
stderr (warnings, an internal error's traceback), and the worker's address.

A worker that runs other code than the client (another harness source, torch, numpy,
scipy or Python) would measure other numbers: its record is an error naming the difference.
Each task first logs its start on the scheduler (:mod:`harness.cluster.reruns` counts them).
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.records import CaseRecord


@dataclass
class TaskResult:
    record: CaseRecord
    stderr: str = ""
    worker: str = ""


_FINGERPRINT: dict = {}


def fingerprint() -> dict:
    """What a record's numbers depend on besides the case and options: the harness and
    reference source (the digest ``--ntk-resume`` keys on), Python and the numeric packages."""
    if not _FINGERPRINT:
        import platform
        from importlib import metadata

        from harness.runner import _source_digest

        _FINGERPRINT.update({"harness source": _source_digest()[:16], "python": platform.python_version()})
        _FINGERPRINT.update({name: metadata.version(name) for name in ("torch", "numpy", "scipy")})
    return dict(_FINGERPRINT)


def differences(expected: dict, found: dict) -> list[str]:
    """``key client-value vs worker-value`` for every key on which two fingerprints differ."""
    return [f"{key} {expected.get(key)} vs {found.get(key)}" for key in sorted(set(expected) | set(found))
            if expected.get(key) != found.get(key)]


def _announce_start() -> str:
    """Log this task's start on the scheduler (:data:`harness.cluster.reruns.STARTED`),
    synchronously, so that a worker that dies a moment later leaves it on record; the
    worker's address, or "" outside a Dask worker."""
    try:
        from distributed import get_client, get_worker

        worker = get_worker()
    except (ImportError, ValueError):   # not inside a Dask worker (a direct call)
        return ""
    from harness.cluster.reruns import STARTED

    get_client().log_event(STARTED, {"key": str(worker.get_current_task()), "worker": worker.address})
    return worker.address


def run_case_task(case, options, root: str, cwd: str, expected: dict) -> TaskResult:
    """Run ``case`` on this worker; see the module docstring. ``cwd`` (the client's working
    directory) goes on the import path, as ``ntk-harness`` puts its own there."""
    from harness.cli import _run_and_print
    from harness.runner import nodeid_of

    worker = _announce_start()
    if os.path.isdir(cwd) and cwd not in sys.path:
        sys.path.insert(0, cwd)
    mismatch = differences(expected, fingerprint())
    if mismatch:
        nodeid = nodeid_of(case, root)
        return TaskResult(CaseRecord(
            case=case.id, kind=case.kind, nodeid=nodeid, source=nodeid.rsplit("::", 1)[0], outcome="error",
            error=f"worker {worker or '?'} runs other code than the client ({'; '.join(mismatch)}): install the "
                  "same ntk-harness checkout and versions on every worker"), worker=worker)
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        record = _run_and_print(case, options, True, Path(root))
    return TaskResult(record, captured.getvalue(), worker)
