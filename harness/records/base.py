"""The typed record of one case run, and the value types it is made of (torch-free).

Data flow: a kind's run returns a kind result (a dataclass of :mod:`harness.records`) and
a list of :class:`Check`; :func:`harness.runner.run_case` wraps them in a
:class:`CaseRecord`; the front ends (pytest plugin, ``ntk-harness``) add where and how long
it ran; ``results.json`` holds ``CaseRecord.to_record()`` of every case; the report reads
them back with :meth:`CaseRecord.from_record`.

One interval type (:class:`Interval`, like scipy.stats' ``ConfidenceInterval``), one
estimate type (:class:`Estimate`) and one timing type (:class:`Timing`) are used
everywhere. JSON cannot hold NaN or infinity: they are written as ``null`` (NaN) and the
strings ``"inf"`` / ``"-inf"``, and read back as floats (:func:`to_json`, :func:`number`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: Version of the record format written into results.json (``schema_version``).
SCHEMA_VERSION = 2

#: passed: every check passed; failed: a check failed; error: the case could not run (``error``
#: says why); xfailed: a case marked as an expected failure (``expected_failure`` says why)
#: failed as expected; xpassed: such a case passed, which fails the run (strict); skipped: the
#: implementation does not support the case's network (``error`` says why), not a pass.
OUTCOMES = ("passed", "failed", "error", "xfailed", "xpassed", "skipped")


class RecordError(ValueError):
    """A record that cannot be read; the message names the key and what was expected."""


def number(value: Any) -> float | None:
    """A JSON number (or the strings "inf", "-inf", "nan") as a float; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(f"expected a number, got boolean {value!r}")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise RecordError(f"expected a number, got string {value!r}") from None
    if isinstance(value, (int, float)):
        return float(value)
    raise RecordError(f"expected a number, got {type(value).__name__} {value!r}")


def to_json(value: Any) -> Any:
    """``value`` with every float JSON-safe (NaN -> None, +-inf -> "inf"/"-inf"), tuples as lists,
    numpy scalars as Python numbers, dataclasses with ``to_record`` through it."""
    if hasattr(value, "to_record") and callable(value.to_record):
        return to_json(value.to_record())
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):   # numpy.float64 too (a float subclass): written as a plain float
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return to_json(value.item())
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to a record")


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[low, high]`` (a confidence interval, an accepted region, a band)."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __iter__(self):
        yield self.low
        yield self.high

    def to_record(self) -> list:
        return [self.low, self.high]

    @classmethod
    def from_record(cls, value: Any) -> Interval | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise RecordError(f"expected an interval [low, high], got {value!r}")
        low, high = (number(v) for v in value)
        return cls(math.nan if low is None else low, math.nan if high is None else high)


def interval_or_none(value) -> Interval | None:
    """An :class:`Interval` from a pair (or ``None``)."""
    if value is None or isinstance(value, Interval):
        return value
    low, high = value
    return Interval(float(low), float(high))


@dataclass(frozen=True)
class Estimate:
    """A measured statistic with its confidence interval at ``confidence``."""

    value: float
    interval: Interval
    confidence: float = 0.95

    def to_record(self) -> dict:
        return {"value": self.value, "interval": self.interval, "confidence": self.confidence}

    @classmethod
    def from_record(cls, value: Any) -> Estimate:
        if not isinstance(value, dict) or "value" not in value:
            raise RecordError(f"expected an estimate {{value, interval, confidence}}, got {value!r}")
        measured = number(value["value"])
        return cls(math.nan if measured is None else measured,
                   Interval.from_record(value.get("interval")) or Interval(math.nan, math.nan),
                   number(value.get("confidence", 0.95)))

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.interval.low:.4g}, {self.interval.high:.4g}] ({self.confidence:.0%} CI)"


@dataclass
class Check:
    """One verdict: what was compared, what was measured, what theory predicted.

    measured: the measured value; measured_interval: its confidence interval (for reading);
    reference: what theory predicts; expected: the accepted region in words; accepted: the
    accepted region as numbers when it is an interval; level: the false-alarm rate this
    check was given (its share of the case's); detail: why it failed, or what explains it.
    """

    name: str
    passed: bool
    measured: float | None = None
    measured_interval: Interval | None = None
    expected: str = ""
    reference: float | None = None
    detail: str = ""
    accepted: Interval | None = None
    level: float | None = None

    def __post_init__(self):
        self.measured_interval = interval_or_none(self.measured_interval)
        self.accepted = interval_or_none(self.accepted)

    def to_record(self) -> dict:
        return {
            "name": self.name, "passed": bool(self.passed), "measured": self.measured,
            "measured_interval": self.measured_interval, "expected": self.expected, "reference": self.reference,
            "detail": self.detail, "accepted": self.accepted, "level": self.level,
        }

    @classmethod
    def from_record(cls, value: Any) -> Check:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or "passed" not in value:
            raise RecordError(f"expected a check {{name, passed, ...}}, got {value!r}")
        return cls(
            name=value["name"], passed=bool(value["passed"]), measured=number(value.get("measured")),
            measured_interval=Interval.from_record(value.get("measured_interval")),
            expected=value.get("expected") or "", reference=number(value.get("reference")),
            detail=value.get("detail") or "", accepted=Interval.from_record(value.get("accepted")),
            level=number(value.get("level")),
        )


@dataclass
class Timing:
    """Where a case's time went, in seconds; the same keys for every kind.

    total: the whole case; ntk: building networks and computing NTKs (the implementation
    under test, and the reference where the kind computes one); reference: theory
    (calibration, exact moments); training: parameter updates (training cases).
    """

    total_seconds: float = 0.0
    ntk_seconds: float = 0.0
    reference_seconds: float = 0.0
    training_seconds: float = 0.0

    def to_record(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, value: Any) -> Timing:
        value = value or {}
        return cls(**{f.name: number(value.get(f.name)) or 0.0 for f in dataclasses.fields(cls)})


class KindResult:
    """Base of each kind's typed result (a dataclass in :mod:`harness.records`).

    A subclass sets ``kind`` and implements :meth:`to_record` / :meth:`from_record`, and the
    report hooks :meth:`table` (headers and one row per record) and :meth:`figures`
    (:class:`harness.records.figures.Figure` data), and :meth:`statistics` (the measured values
    with intervals that a baseline comparison follows).
    """

    kind: ClassVar[str] = ""

    def to_record(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_record(cls, value: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    def statistics(self) -> dict[str, Estimate]:
        """Measured statistics with intervals, by a stable name (for baseline comparisons)."""
        return {}

    def describe(self) -> list[tuple[str, Any]]:
        """(name, value) pairs saying what was run, for the header of a verdict table."""
        return []

    @classmethod
    def table(cls, records: list[CaseRecord]) -> tuple[list[str], list[list[str]]]:
        """(headers, rows) of this kind's table in report.md."""
        return [], []

    @classmethod
    def figures(cls, records: list[CaseRecord]) -> list:
        """Figures this kind contributes to a report (:class:`harness.records.figures.Figure`)."""
        return []

    @classmethod
    def summaries(cls, records: list[CaseRecord]) -> list[tuple[str, str, list[str], list[list[str]]]]:
        """Extra tables of this kind in report.md, after its case tables: (title, text said
        before the table, headers, rows), e.g. a claim that holds or fails per regime."""
        return []


@dataclass
class CaseRecord:
    """Everything one case run produced.

    case: the case id, ``name[readable-parameters]``; nodeid: ``source::case`` (the pytest
    node id, relative to the rootdir; the key that identifies a case across shards and
    machines); kind, phase (None for kinds without one), markers; outcome: passed, failed,
    error (the case could not run: its message is in ``error``), xfailed / xpassed (a
    claim recorded as an expected failure); passed: every check passed; implementation,
    device, dtype, seed: how it ran; result: the kind's typed result; timing; and, added by
    the front end, wall_seconds and environment (host and versions of the process).
    """

    case: str
    kind: str
    nodeid: str = ""
    source: str = ""
    phase: str | None = None
    markers: list[str] = field(default_factory=list)
    outcome: str = "passed"
    checks: list[Check] = field(default_factory=list)
    result: KindResult | None = None
    implementation: str | None = None
    device: str | None = None
    dtype: str | None = None
    seed: int | None = None
    timing: Timing = field(default_factory=Timing)
    error: str | None = None
    expected_failure: str | None = None
    wall_seconds: float | None = None
    environment: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Nothing unexpected: every check passed, or a strict expected failure failed as expected."""
        return self.outcome in ("passed", "xfailed")

    @property
    def checks_passed(self) -> bool:
        """Every check passed (whatever the outcome says about expectations)."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def name(self) -> str:
        """The case name (the id without its bracketed parameters)."""
        return self.case.split("[", 1)[0]

    @property
    def key(self) -> str:
        return self.nodeid or self.case

    def to_record(self) -> dict:
        return to_json({
            "schema_version": SCHEMA_VERSION, "case": self.case, "nodeid": self.nodeid, "source": self.source,
            "kind": self.kind, "phase": self.phase, "markers": list(self.markers), "outcome": self.outcome,
            "passed": self.passed, "implementation": self.implementation, "device": self.device,
            "dtype": self.dtype, "seed": self.seed, "checks": self.checks,
            "result": self.result.to_record() if self.result is not None else None,
            "timing": self.timing, "error": self.error, "expected_failure": self.expected_failure,
            "wall_seconds": self.wall_seconds, "environment": self.environment,
        })

    @classmethod
    def from_record(cls, value: Any, result_types: dict | None = None) -> CaseRecord:
        """Read a record written by :meth:`to_record`; raises :class:`RecordError` naming the key."""
        if not isinstance(value, dict):
            raise RecordError(f"expected a record object, got {type(value).__name__}")
        for key in ("case", "kind", "outcome"):
            if not isinstance(value.get(key), str):
                raise RecordError(f"key {key!r}: expected a string, got {value.get(key)!r}")
        if value.get("schema_version") != SCHEMA_VERSION:
            raise RecordError(f"key 'schema_version': expected {SCHEMA_VERSION}, got {value.get('schema_version')!r}")
        if value["outcome"] not in OUTCOMES:
            raise RecordError(f"key 'outcome': expected one of {', '.join(OUTCOMES)}, got {value['outcome']!r}")
        if result_types is None:
            from harness.records import RESULT_TYPES as result_types
        result = None
        if value.get("result") is not None:
            result_type = result_types.get(value["kind"])
            if result_type is None:
                raise RecordError(f"key 'kind': no result type for kind {value['kind']!r}")
            try:
                result = result_type.from_record(value["result"])
            except (KeyError, TypeError) as exc:
                raise RecordError(f"key 'result' of case {value['case']!r}: {type(exc).__name__}: {exc}") from None
        return cls(
            case=value["case"], kind=value["kind"], nodeid=value.get("nodeid") or "", source=value.get("source") or "",
            phase=value.get("phase"), markers=list(value.get("markers") or []), outcome=value["outcome"],
            checks=[Check.from_record(c) for c in value.get("checks") or []], result=result,
            implementation=value.get("implementation"), device=value.get("device"), dtype=value.get("dtype"),
            seed=value.get("seed"), timing=Timing.from_record(value.get("timing")), error=value.get("error"),
            expected_failure=value.get("expected_failure"), wall_seconds=number(value.get("wall_seconds")),
            environment=dict(value.get("environment") or {}),
        )
