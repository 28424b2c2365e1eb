"""The results file (``results.json``): its format, loading, validation and merging.

A results file is one JSON object::

    {
      "format": "ntk-harness-results", "version": 1,
      "complete": true,            # false when the run was interrupted (finished cases only)
      "sessions": [{command, started, finished, wall_seconds, exitstatus, shard, workers,
                    environment: {hostname, python, platform, torch, numpy, ..., ntk-harness}}],
      "records": [ one record per case, sorted by "nodeid" ],
      "benchmarks": [ pytest-benchmark entries (name, group, stats, extra_info), possibly empty ]
    }

A record is :func:`harness.verdict.outcome_record` (case, kind, passed, phase, width,
depth, sigma_w2, parameters, measured, reference, checks, timing, source) plus what the
report plugin adds: ``nodeid`` (the pytest node id, relative to the rootdir: the key that
identifies a case across shards and machines), ``outcome`` (passed | failed | error),
``implementation``, ``device``, ``dtype``, ``seed``, ``samples`` (lifted from
``parameters``), ``wall_seconds`` (pytest's duration of the call), ``environment`` (the
host and package versions of the process that ran it: under xdist, the worker's).

Merging (shards of one sweep, run on several machines): records are united by
``nodeid``; the same case in two files must agree on everything that the seeds determine
(``passed``, ``measured``, ``reference``, ``checks``), else :class:`MergeConflict` names
the cases and the first differing key. Timings, hosts and paths may differ.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

FORMAT = "ntk-harness-results"
VERSION = 1
EXPECTED = (
    f'a results.json written by ntk-harness: a JSON object with "format": "{FORMAT}", '
    f'"version": {VERSION} and a "records" list (write one with pytest --report-dir DIR)'
)
#: Keys of a record that the case's seeds determine: equal for the same case on any run.
DETERMINED = ("kind", "passed", "measured", "reference", "checks")


class ResultsFormatError(ValueError):
    """A file is not a results.json of this format; the message says what was expected."""


class MergeConflict(ValueError):
    """The same case appears in two inputs with different seeded results."""


def record_key(record: dict) -> str:
    return record.get("nodeid") or record["case"]


def empty_results() -> dict:
    return {"format": FORMAT, "version": VERSION, "complete": True, "sessions": [], "records": [], "benchmarks": []}


def validate(document: Any, source: str = "results") -> dict:
    """Check the shape of a results document; return it or raise :class:`ResultsFormatError`."""
    if not isinstance(document, dict):
        raise ResultsFormatError(f"{source}: expected {EXPECTED}; got a JSON {type(document).__name__}")
    if document.get("format") != FORMAT:
        if "benchmarks" in document and "machine_info" in document:
            got = "a pytest-benchmark JSON file (pass it with --report-benchmarks / --benchmarks instead)"
        else:
            got = f'"format": {json.dumps(document.get("format"))}'
        raise ResultsFormatError(f"{source}: expected {EXPECTED}; got {got}")
    if document.get("version") != VERSION:
        raise ResultsFormatError(f"{source}: expected version {VERSION}; got {json.dumps(document.get('version'))}")
    records = document.get("records")
    if not isinstance(records, list):
        raise ResultsFormatError(f'{source}: expected "records" to be a list; got {type(records).__name__}')
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("case"), str) or "passed" not in record:
            raise ResultsFormatError(
                f'{source}: records[{index}]: expected an object with at least "case" (a string) and "passed"')
    for key in ("sessions", "benchmarks"):
        if not isinstance(document.get(key, []), list):
            raise ResultsFormatError(f'{source}: expected "{key}" to be a list')
    document.setdefault("sessions", [])
    document.setdefault("benchmarks", [])
    document.setdefault("complete", True)
    return document


def load(path: str | Path) -> dict:
    """Read and validate a results.json; errors name the path and what was expected."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFormatError(f"{path}: expected {EXPECTED}; got invalid JSON ({exc})") from None
    return validate(document, str(path))


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
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
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    return None if a == b else f"{path} ({a!r} vs {b!r})"


def conflict(a: dict, b: dict) -> str | None:
    """The first seeded key on which two records of the same case differ, or None."""
    for key in DETERMINED:
        found = _first_difference(a.get(key), b.get(key), key)
        if found:
            return found
    return None


def merge(documents: Iterable[dict], sources: Iterable[str] | None = None) -> dict:
    """Union of results documents (shards) by node id; sessions and benchmarks concatenated.

    A case present in several inputs must have identical seeded results (:data:`DETERMINED`);
    the first copy is kept. The merged document is complete iff every input is.
    """
    documents = list(documents)
    sources = list(sources) if sources is not None else [f"input {i + 1}" for i in range(len(documents))]
    merged = empty_results()
    by_key: dict[str, tuple[dict, str]] = {}
    conflicts = []
    benchmark_names = set()
    for document, source in zip(documents, sources):
        merged["complete"] = merged["complete"] and bool(document.get("complete", True))
        merged["sessions"].extend(document.get("sessions", []))
        for source_path in document.get("benchmark_sources", []):
            merged.setdefault("benchmark_sources", []).append(source_path)
        for record in document["records"]:
            key = record_key(record)
            if key in by_key:
                difference = conflict(by_key[key][0], record)
                if difference:
                    conflicts.append(f"{key}: {by_key[key][1]} and {source} differ at {difference}")
                continue
            by_key[key] = (record, source)
        for bench in document.get("benchmarks", []):
            name = bench.get("fullname") or bench.get("name")
            if name not in benchmark_names:
                benchmark_names.add(name)
                merged["benchmarks"].append(bench)
    if conflicts:
        raise MergeConflict(
            "the same case has different results in two inputs (different seeds, code or platform?):\n  "
            + "\n  ".join(conflicts))
    merged["records"] = sorted((r for r, _ in by_key.values()), key=record_key)
    return merged
