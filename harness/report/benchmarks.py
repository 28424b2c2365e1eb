"""Benchmark results for the report: pytest-benchmark JSON files, or the running session.

pytest-benchmark owns timing and its JSON format (``--benchmark-json PATH``); the report
only reads it. Each entry keeps ``group``, ``name``, ``fullname``, ``params``,
``extra_info`` and ``stats`` (min, max, mean, stddev, median, rounds, ...; seconds).
"""
from __future__ import annotations

import json
from pathlib import Path

EXPECTED = ('a pytest-benchmark JSON file (pytest --benchmark-json PATH): an object with a "benchmarks" '
            'list whose entries have "name" and "stats" with "min" and "mean"')
KEEP = ("group", "name", "fullname", "params", "param", "extra_info", "stats")


class BenchmarkFormatError(ValueError):
    """Not a pytest-benchmark JSON file; the message says what was expected."""


def _clean(entry: dict) -> dict:
    kept = {key: entry.get(key) for key in KEEP if key in entry}
    stats = dict(kept.get("stats") or {})
    stats.pop("data", None)
    kept["stats"] = stats
    return kept


def validate(document, source: str) -> list[dict]:
    if isinstance(document, dict) and document.get("format") == "ntk-harness-results":
        raise BenchmarkFormatError(f"{source}: expected {EXPECTED}; got an ntk-harness results.json "
                                   "(give it as a results file or as the baseline)")
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        raise BenchmarkFormatError(f"{source}: expected {EXPECTED}")
    entries = []
    for index, entry in enumerate(document["benchmarks"]):
        stats = entry.get("stats") if isinstance(entry, dict) else None
        if not isinstance(stats, dict) or "min" not in stats or "mean" not in stats or "name" not in entry:
            raise BenchmarkFormatError(f"{source}: benchmarks[{index}]: expected {EXPECTED}")
        entries.append(_clean(entry))
    return entries


def load(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BenchmarkFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"{path}: expected {EXPECTED}; got invalid JSON ({exc})") from None
    return validate(document, str(path))


def from_session(config) -> list[dict]:
    """Benchmarks that ran in this pytest session (empty when pytest-benchmark is inactive).

    Reads ``config._benchmarksession.benchmarks`` (pytest-benchmark's private session
    object, so every step is defensive: a change there drops the section, not the report).
    """
    session = getattr(config, "_benchmarksession", None)
    entries = []
    for bench in getattr(session, "benchmarks", None) or []:
        try:
            if not getattr(bench, "has_error", False) and bench.stats is not None:
                entries.append(_clean(bench.as_dict(include_data=False)))
        except Exception:  # noqa: BLE001 - a private API; skip what it no longer offers
            continue
    return entries
