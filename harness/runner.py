"""One runner for both front ends: :func:`run_case` turns a validated case into a :class:`CaseRecord`.

The pytest plugin (:mod:`harness.plugin`) and the command line (:mod:`harness.cli`) both
call :func:`run_case`, so the same case gives the same record (timings aside) whichever
way it runs. The runner:

- runs the case's kind under a time limit (``--ntk-timeout``, else the case's own ``timeout``,
  else 3600 s: :func:`harness.options.case_timeout`; SIGALRM, so the
  limit applies in the main thread of a Unix process: pytest, pytest-xdist workers and
  ``ntk-harness``; an outer SIGALRM timer that expires first, such as pytest-timeout's, stays
  in charge and gets its remaining time back; in another thread the case runs unbounded);
- turns the errors a user can act on (a device that is not there, an implementation that
  cannot be loaded, a case over the memory budget, data that cannot be read, a time-out)
  into a record with outcome ``error`` and a one-line message, and lets anything else (a
  bug of the harness) propagate with its traceback;
- records the case's id, node id, kind, phase, markers, outcome, checks, typed result,
  implementation, device, dtype, seed and timing;
- with ``--ntk-resume``, reuses the stored record of a case an earlier run finished (same
  case, options, versions and harness source), so an interrupted sweep continues.
"""
from __future__ import annotations

import contextlib
import signal
from pathlib import Path
import threading
import time

from harness.cases.schema import Case
from harness.kinds import KINDS
from harness.options import RunOptions
from harness.records import CaseRecord, Timing


class CaseTimeout(BaseException):
    """A case ran past ``--ntk-timeout``.

    A BaseException (like KeyboardInterrupt), so that code that catches every Exception (a
    user's implementation, the Monte Carlo's report of an implementation's errors) does not
    swallow it."""


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

    outer_remaining, outer_interval = signal.getitimer(signal.ITIMER_REAL)   # e.g. pytest-timeout's
    if outer_remaining and outer_remaining < seconds:
        yield   # an outer limit comes first: leave it in charge
        return
    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_remaining:   # give the outer timer back what it has left
            left = outer_remaining - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), outer_interval)


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


def _source_digest() -> str:
    """A digest of the harness's and the reference's own source files (the code a record depends on)."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for package in ("harness", "reference"):
        root = Path(__file__).resolve().parent.parent / package
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


_DIGEST: list[str] = []


def _user_code_digest(case: Case, options: RunOptions) -> str:
    """A digest of the user's code a record depends on: the source file of a non-built-in
    implementation and of a ``[case.model]`` factory (an edited ``my_ntk.py`` is another key)."""
    import hashlib
    import inspect

    from harness.ntk.registry import BUILTINS, ImplementationError, get_implementation

    digest = hashlib.sha256()
    spec = options.implementation_spec or case.implementation_spec
    functions = []
    if spec is not None and spec not in BUILTINS:
        try:
            functions.append(get_implementation(spec).function)
        except ImplementationError:
            digest.update(b"unloadable")
    model = getattr(case.sections, "model", None)
    if model is not None:
        from harness.models import ModelError, load_factory

        try:
            functions.append(load_factory(model.factory, Path(case.source).parent))
        except ModelError:
            digest.update(b"unloadable")
    for function in functions:
        try:
            digest.update(Path(inspect.getsourcefile(function)).read_bytes())
        except (TypeError, OSError):
            digest.update(repr(function).encode())
    return digest.hexdigest()


def resume_key(case: Case, options: RunOptions) -> str:
    """What a case's record depends on: the kind, the validated sections, the implementation,
    the device and dtype options, the versions of torch, numpy and scipy, the harness source
    and the user's own implementation or model code."""
    import dataclasses
    import hashlib
    import json
    from importlib import metadata

    if not _DIGEST:
        _DIGEST.append(_source_digest())
    sections = dataclasses.asdict(case.sections)
    payload = {"kind": case.kind, "id": case.id, "sections": sections, "implementation": case.implementation_spec,
               "expected_failure": case.expected_failure,
               "options": {"device": options.device, "dtype": options.dtype, "implementation": options.implementation_spec,
                           "memory_budget_bytes": options.memory_budget_bytes, "tf32": options.tf32,
                           "calibration": options.calibration},
               "versions": {name: metadata.version(name) for name in ("torch", "numpy", "scipy")},
               "source": _DIGEST[0], "user_code": _user_code_digest(case, options)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:40]


def _resumed(case: Case, options: RunOptions):
    """(path of the case's stored record, the record if an earlier run stored one)."""
    import json

    from harness.records import RecordError

    if not options.resume or options.cache_dir is None:
        return None, None
    path = Path(options.cache_dir) / "records" / f"{resume_key(case, options)}.json"
    try:
        return path, CaseRecord.from_record(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecordError):
        return path, None


def _store(path, record: CaseRecord) -> None:
    import json

    from harness.files import atomic_write_text

    atomic_write_text(path, json.dumps(record.to_record()))


def run_case(case: Case, options: RunOptions, *, nodeid: str | None = None) -> CaseRecord:
    """Run one case; see the module docstring. ``nodeid`` defaults to ``source::id``.

    With ``options.resume``, a record an earlier run stored for the same case, options,
    versions and harness source is returned instead of recomputing it, and every finished
    record (not an error) is stored (``<cache dir>/records/<key>.json``, written atomically).
    """
    stored_at, stored = _resumed(case, options)
    if stored is not None:
        stored.nodeid = nodeid or nodeid_of(case)
        stored.source = stored.nodeid.rsplit("::", 1)[0]
        return stored
    record = _run(case, options, nodeid)
    if stored_at is not None and record.outcome != "error":
        _store(stored_at, record)
    return record


def _run(case: Case, options: RunOptions, nodeid: str | None) -> CaseRecord:
    kind = KINDS[case.kind]
    nodeid = nodeid or nodeid_of(case)
    record = CaseRecord(case=case.id, kind=case.kind, nodeid=nodeid, source=nodeid.rsplit("::", 1)[0],
                        phase=kind.phase(case), markers=sorted(set(case.markers) | set(kind.markers)))
    resolution = kind.resolve(case, options)
    # what the case runs, recorded before it runs: an error below keeps it
    record.implementation_spec = resolution.implementation_spec
    record.device, record.dtype, record.seed = resolution.device, resolution.dtype, resolution.seed
    record.expected_failure = kind.expected_failure(case)
    # imported before the clock starts: an alarm inside a module's first import would leave it
    # half-imported for every later case of the process
    import importlib

    importlib.import_module(kind.run_module)
    start = time.perf_counter()
    try:
        with time_limit(resolution.timeout_seconds, resolution.implementation_spec):
            resolution.load()
            record.device = str(resolution.torch_device)
            outcome = kind.run(case, options, resolution)
    except _user_errors() as exc:
        record.outcome = "error"
        record.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        record.timing = Timing(total_seconds=time.perf_counter() - start)
        return record
    record.checks = outcome.checks
    record.result = outcome.result
    record.timing = outcome.timing
    record.expected_failure = outcome.expected_failure or record.expected_failure
    record.outcome = decide_outcome(outcome.checks, case_expected_failure=outcome.expected_failure
                                    or case.expected_failure, skipped=outcome.skipped is not None)
    if outcome.skipped is not None:
        record.error = outcome.skipped
    return record


def decide_outcome(checks, *, case_expected_failure: str | None = None, skipped: bool = False) -> str:
    """The outcome of a case from its checks.

    - skipped: the implementation does not support the case;
    - the case as a whole is an expected failure: ``xfailed`` if a check failed, else ``xpassed``;
    - checks that carry their own ``expected_failure``: ``failed`` if any OTHER check failed,
      else ``xfailed`` if every one of them failed and ``xpassed`` if one of them passed (strict:
      a claim that starts to hold is news);
    - else ``passed`` iff there are checks and all passed.
    """
    if skipped:
        return "skipped"
    passed = bool(checks) and all(c.passed for c in checks)
    if case_expected_failure:
        return "xpassed" if passed else "xfailed"
    expected = [c for c in checks if c.expected_failure]
    if any(not c.passed and not c.expected_failure for c in checks) or not checks:
        return "failed"
    if expected:
        return "xfailed" if all(not c.passed for c in expected) else "xpassed"
    return "passed"
