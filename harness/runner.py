"""One runner for both front ends: :func:`run_case` turns a validated case into a :class:`CaseRecord`.

The pytest plugin (:mod:`harness.plugin`) and the command line (:mod:`harness.cli`) both
call :func:`run_case`, so the same case gives the same record (timings aside) whichever
way it runs. The runner:

- runs the case's kind under a time limit (``RunOptions.timeout_seconds``; SIGALRM, so the
  limit applies in the main thread of a Unix process: pytest, pytest-xdist workers and
  ``ntk-harness``; elsewhere the case runs unbounded and says so in its record);
- turns the errors a user can act on (a device that is not there, an implementation that
  cannot be loaded, a case over the memory budget, data that cannot be read, a time-out)
  into a record with outcome ``error`` and a one-line message, and lets anything else (a
  bug of the harness) propagate with its traceback;
- records the case's id, node id, kind, phase, markers, outcome, checks, typed result,
  implementation, device, dtype, seed and timing.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time

from harness.cases.schema import Case
from harness.kinds import KINDS
from harness.options import RunOptions
from harness.records import CaseRecord, Timing


class CaseTimeout(Exception):
    """A case ran past ``--ntk-timeout``."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "this case cannot run here", not "the harness has a bug"."""
    from harness.devices import DeviceError
    from harness.montecarlo import MemoryBudgetError
    from harness.ntk.registry import ImplementationError
    from harness.training.data import DataError

    return (DeviceError, ImplementationError, MemoryBudgetError, DataError, CaseTimeout)


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """Raise :class:`CaseTimeout` ("timed out after N s in <what>") when the block runs past
    ``seconds`` (0: no limit). Uses SIGALRM: only in the main thread of a Unix process."""
    usable = (seconds and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expired(signum, frame):
        raise CaseTimeout(f"timed out after {seconds:g} s in {what}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def nodeid_of(case: Case, root=None) -> str:
    """``<case file relative to root>::<case id>``, the pytest node id of the case."""
    from pathlib import Path

    source = Path(case.source)
    if root is not None:
        try:
            source = source.resolve().relative_to(Path(root).resolve())
        except ValueError:
            pass
    return f"{source.as_posix()}::{case.id}"


def run_case(case: Case, options: RunOptions, *, nodeid: str | None = None) -> CaseRecord:
    """Run one case; see the module docstring. ``nodeid`` defaults to ``source::id``."""
    kind = KINDS[case.kind]
    record = CaseRecord(case=case.id, kind=case.kind, nodeid=nodeid or nodeid_of(case), source=str(case.source),
                        phase=kind.phase(case), markers=sorted(set(case.markers) | set(kind.markers)))
    what = kind.implementation(case, options) or "the case"
    start = time.perf_counter()
    try:
        with time_limit(options.timeout_seconds, what):
            outcome = kind.run(case, options)
    except _user_errors() as exc:
        record.outcome = "error"
        record.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        record.implementation = options.implementation or case.implementation
        record.timing = Timing(total_seconds=time.perf_counter() - start)
        return record
    record.checks = outcome.checks
    record.result = outcome.result
    record.implementation = outcome.implementation
    record.device, record.dtype, record.seed = outcome.device, outcome.dtype, outcome.seed
    record.timing = outcome.timing
    record.expected_failure = outcome.expected_failure or case.expected_failure
    passed = outcome.passed
    if outcome.skipped is not None:
        record.outcome = "skipped"
        record.error = outcome.skipped
    elif record.expected_failure:
        record.outcome = "xpassed" if passed else "xfailed"
    else:
        record.outcome = "passed" if passed else "failed"
    return record
