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


from harness.records.serialize import Record, RecordError, number, read, read_dataclass, write  # noqa: E402

#: Plain JSON values of a record (NaN -> None, +-inf -> "inf"/"-inf", dataclasses by their fields).
to_json = write


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
        """``[low, high]`` (``None``: no interval, read as ``None``)."""
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise RecordError(f"expected an interval [low, high], got {value!r}")
        low, high = (number(v) for v in value)
        return cls(math.nan if low is None else low, math.nan if high is None else high)

    @staticmethod
    def record_schema(defs: dict) -> dict:
        from harness.records.serialize import NUMBER

        defs.setdefault("number", NUMBER)
        return {"description": "a closed interval [low, high]", "type": "array",
                "items": {"$ref": "#/$defs/number"}, "minItems": 2, "maxItems": 2}


def interval_or_none(value) -> Interval | None:
    """An :class:`Interval` from a pair (or ``None``)."""
    if value is None or isinstance(value, Interval):
        return value
    low, high = value
    return Interval(float(low), float(high))


@dataclass(frozen=True)
class Estimate(Record):
    """A measured statistic with its confidence interval at ``confidence``."""

    value: float
    interval: Interval
    confidence: float = 0.95

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.interval.low:.4g}, {self.interval.high:.4g}] ({self.confidence:.0%} CI)"


@dataclass
class Check(Record):
    """One verdict: what was compared, what was measured, what theory predicted.

    measured: the measured value; measured_interval: its confidence interval (for reading);
    target: the value the measurement is held to (what theory predicts, or the tolerance it
    must stay within); expected: the accepted region in words; accepted: the
    accepted region as numbers when it is an interval; level: the false-alarm rate this
    check was given (its share of the case's); detail: why it failed, or what explains it;
    expected_failure: the case's reason when this check asserts a claim measured not to hold
    (a strict expected failure of this check alone).
    """

    name: str
    passed: bool
    measured: float | None = None
    measured_interval: Interval | None = None
    expected: str = ""
    target: float | None = None
    detail: str = ""
    accepted: Interval | None = None
    level: float | None = None
    expected_failure: str | None = None

    def __post_init__(self):
        self.measured_interval = interval_or_none(self.measured_interval)
        self.accepted = interval_or_none(self.accepted)


@dataclass
class Timing(Record):
    """Where a case's time went, in seconds; the same keys for every kind.

    total: the whole case; ntk: building networks and computing NTKs (the implementation
    under test, and the reference where the kind computes one); reference: theory
    (calibration, exact moments); training: parameter updates (training cases).
    """

    total_seconds: float = 0.0
    ntk_seconds: float = 0.0
    reference_seconds: float = 0.0
    training_seconds: float = 0.0

    @classmethod
    def from_record(cls, value: Any) -> Timing:
        return read_dataclass(cls, value or {}, "timing")


class KindResult(Record):
    """Base of each kind's typed result (a dataclass in :mod:`harness.records`).

    A subclass is a dataclass that sets ``kind``; it is written and read by its fields
    (:mod:`harness.records.serialize`: no hand-written pair), and provides the report hooks
    :meth:`table` (headers and one row per record) and :meth:`figures`
    (:class:`harness.records.figures.Figure` data), and :meth:`statistics` (the measured values
    with intervals that a baseline comparison follows).
    """

    kind: ClassVar[str] = ""

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
    claim recorded as an expected failure); passed: every check passed; implementation_spec
    (the spec of the implementation, or the specs of the implementations, that ran),
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
    implementation_spec: str | None = None
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
        record = {"schema_version": SCHEMA_VERSION, **write(self)}
        record["passed"] = self.passed
        return record

    @classmethod
    def from_record(cls, value: Any, result_types: dict | None = None) -> CaseRecord:
        """Read a record written by :meth:`to_record`; raises :class:`RecordError` naming the key.
        The result is read as the result type of the record's kind (``result_types``, default
        :data:`harness.records.RESULT_TYPES`)."""
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
            from harness.kinds import result_types as registered

            result_types = registered()
        result = None
        if value.get("result") is not None:
            result_type = result_types.get(value["kind"])
            if result_type is None:
                raise RecordError(f"key 'kind': no result type for kind {value['kind']!r}")
            result = read_dataclass(result_type, value["result"], f"result of case {value['case']!r}")
        fields = {k: v for k, v in value.items() if k not in ("schema_version", "passed", "result")}
        record = read_dataclass(cls, fields, "record")
        record.result = result
        return record
