"""The results file (``results.json``): its format, loading, validation and merging.

A results file is one JSON object (its JSON Schema: ``harness/records/results.schema.json``)::

    {
      "format": "ntk-harness-results", "schema_version": 2,
      "complete": true,            # false when the run was interrupted (finished cases only)
      "sessions": [{command, started, finished, wall_seconds, exitstatus, shard, workers,
                    environment: {hostname, python, platform, torch, numpy, ..., ntk-harness}}],
      "records": [ CaseRecord.to_record() of every case, sorted by "nodeid" ],
      "benchmarks": [ pytest-benchmark entries (name, group, stats, extra_info), possibly empty ]
    }

``ntk-harness run --json`` prints the same document, so ``ntk-harness report`` reads it.

Merging (shards of one sweep, run on several machines): records are united by ``nodeid``;
the same case in two files must agree on everything its seeds determine (the outcome, the
checks and the result, timings excepted; floats up to a relative 1e-9 of rounding), else
:class:`MergeConflict` names the cases and the first differing key.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.records.base import SCHEMA_VERSION, CaseRecord, RecordError, to_json

FORMAT = "ntk-harness-results"
EXPECTED = (
    f'a results.json written by ntk-harness: a JSON object with "format": "{FORMAT}", '
    f'"schema_version": {SCHEMA_VERSION} and a "records" list (write one with pytest --ntk-report-dir DIR '
    "or ntk-harness run --json)"
)
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
#: Relative difference of two floats that floating-point rounding explains between runs of the
#: same code and seeds on other machines or thread counts (summation order).
ROUNDING = 1e-9


class ResultsFormatError(ValueError):
    """A file is not a results.json of this format; the message says what was expected."""


class MergeConflict(ValueError):
    """The same case appears in two inputs with different seeded results."""


@dataclass
class ResultsDocument:
    """A results.json in memory: typed records plus the sessions and benchmarks around them."""

    records: list[CaseRecord] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    benchmarks: list[dict] = field(default_factory=list)
    complete: bool = True
    benchmark_sources: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        document = {
            "format": FORMAT, "schema_version": SCHEMA_VERSION, "complete": self.complete,
            "sessions": to_json(self.sessions),
            "records": [r.to_record() for r in sorted(self.records, key=lambda r: r.key)],
            "benchmarks": to_json(self.benchmarks),
        }
        if self.benchmark_sources:
            document["benchmark_sources"] = list(self.benchmark_sources)
        return document

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1) + "\n"

    @classmethod
    def from_json(cls, document: Any, source: str = "results") -> ResultsDocument:
        """Validate a parsed results document; raise :class:`ResultsFormatError` naming the source."""
        if not isinstance(document, dict):
            raise ResultsFormatError(f"{source}: expected {EXPECTED}; got a JSON {type(document).__name__}")
        if document.get("format") != FORMAT:
            if "benchmarks" in document and "machine_info" in document:
                got = "a pytest-benchmark JSON file (pass it with --ntk-report-benchmarks / --benchmarks instead)"
            else:
                got = f'"format": {json.dumps(document.get("format"))}'
            raise ResultsFormatError(f"{source}: expected {EXPECTED}; got {got}")
        if document.get("schema_version") != SCHEMA_VERSION:
            version = document.get("schema_version", document.get("version"))
            raise ResultsFormatError(
                f"{source}: expected schema_version {SCHEMA_VERSION}; got {json.dumps(version)} "
                "(written by another version of ntk-harness: rerun the cases to rewrite it)")
        raw_records = document.get("records")
        if not isinstance(raw_records, list):
            raise ResultsFormatError(f'{source}: expected "records" to be a list; got {type(raw_records).__name__}')
        for key in ("sessions", "benchmarks"):
            if not isinstance(document.get(key, []), list):
                raise ResultsFormatError(f'{source}: expected "{key}" to be a list')
        records = []
        for index, raw in enumerate(raw_records):
            try:
                records.append(CaseRecord.from_record(raw))
            except RecordError as exc:
                raise ResultsFormatError(f"{source}: records[{index}]: {exc}") from None
        return cls(records=records, sessions=list(document.get("sessions", [])),
                   benchmarks=list(document.get("benchmarks", [])), complete=bool(document.get("complete", True)),
                   benchmark_sources=list(document.get("benchmark_sources", [])))


def read_text(path: str | Path) -> str:
    """The text of a results file: ``results.json``, or gzip-compressed ``results.json.gz`` (as
    the paper-size reports ship); an unreadable file is a :class:`ResultsFormatError` naming it."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            import gzip

            with gzip.open(path, "rt", encoding="utf-8") as stream:
                return stream.read()
        return path.read_text(encoding="utf-8")
    except (OSError, EOFError) as exc:
        raise ResultsFormatError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def load(path: str | Path) -> ResultsDocument:
    """Read and validate a results.json or results.json.gz (:func:`read_text`); errors name the
    path and what was expected."""
    path = Path(path)
    text = read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFormatError(f"{path}: expected {EXPECTED}; got invalid JSON ({exc})") from None
    return ResultsDocument.from_json(document, str(path))


def _is_timing(key: str) -> bool:
    return key == "seconds" or key.endswith("_seconds")


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if _is_timing(key):
                continue
            if key not in a or key not in b:
                return f"{path}.{key}" if path else key
            found = _first_difference(a[key], b[key], f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return None
        # the same seeds on another machine or thread count: equal up to summation order
        if a == b or abs(a - b) <= ROUNDING * max(abs(a), abs(b)):
            return None
    return None if a == b else f"{path} ({a!r} vs {b!r})"


#: Keys of a record that the case's seeds determine (timings inside them excepted).
DETERMINED = ("kind", "outcome", "checks", "result")


def conflict(a: CaseRecord, b: CaseRecord) -> str | None:
    """The first seeded key on which two records of the same case differ, or None."""
    ja, jb = a.to_record(), b.to_record()
    for key in DETERMINED:
        found = _first_difference(ja.get(key), jb.get(key), key)
        if found:
            return found
    return None


def merge(documents: Iterable[ResultsDocument], sources: Iterable[str] | None = None) -> ResultsDocument:
    """Union of results documents (shards) by node id; sessions and benchmarks concatenated.

    A case present in several inputs must have identical seeded results (:data:`DETERMINED`);
    the first copy is kept. The merged document is complete iff every input is.
    """
    documents = list(documents)
    sources = list(sources) if sources is not None else [f"input {i + 1}" for i in range(len(documents))]
    merged = ResultsDocument()
    by_key: dict[str, tuple[CaseRecord, str]] = {}
    conflicts = []
    names = set()
    for document, source in zip(documents, sources):
        merged.complete = merged.complete and document.complete
        merged.sessions.extend(document.sessions)
        merged.benchmark_sources.extend(document.benchmark_sources)
        for record in document.records:
            if record.key in by_key:
                difference = conflict(by_key[record.key][0], record)
                if difference:
                    conflicts.append(f"{record.key}: {by_key[record.key][1]} and {source} differ at {difference}")
                continue
            by_key[record.key] = (record, source)
        for bench in document.benchmarks:
            name = bench.get("fullname") or bench.get("name")
            if name not in names:
                names.add(name)
                merged.benchmarks.append(bench)
    if conflicts:
        raise MergeConflict(
            "the same case has different results in two inputs (different seeds, code or platform?):\n  "
            + "\n  ".join(conflicts))
    merged.records = sorted((r for r, _ in by_key.values()), key=lambda r: r.key)
    return merged
