"""The typed result of a search case and its table in a report."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.records.base import KindResult
from harness.records.serialize import Record
from harness.records.format import fmt, verdict


@dataclass
class ImplementationSearch(Record):
    """One implementation's search: examples tried, time, and the smallest failing example
    found (a ready-to-paste agreement case) or None."""

    implementation_spec: str
    examples: int
    seconds: float = 0.0
    counterexample: str | None = None
    failure: str | None = None


@dataclass
class SearchResult(KindResult):
    """What a search case tried: the seed, the budget, one entry per implementation."""

    kind = "search"

    seed: int
    budget: int
    implementations: list[ImplementationSearch] = field(default_factory=list)

    def describe(self) -> list[tuple[str, object]]:
        return [("seed", self.seed), ("examples per implementation", self.budget)]

    @classmethod
    def table(cls, records) -> tuple[list[str], list[list[str]]]:
        headers = ["case", "implementation", "examples tried", "time (s)", "smallest failing example", "verdict"]
        rows = []
        for record in records:
            for entry in record.result.implementations:
                found = entry.failure.splitlines()[0][:80] if entry.failure else "none found"
                rows.append([record.case, entry.implementation_spec, str(entry.examples), fmt(entry.seconds, 3), found,
                             verdict(record)])
        return headers, rows
