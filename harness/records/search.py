"""The typed result of a search case and its table in a report."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.records.base import KindResult, number
from harness.records.format import fmt, verdict


@dataclass
class ImplementationSearch:
    """One implementation's search: examples tried, time, and the smallest failing example
    found (a ready-to-paste agreement case) or None."""

    implementation: str
    examples: int
    seconds: float = 0.0
    counterexample: str | None = None
    failure: str | None = None

    def to_record(self) -> dict:
        return {"implementation": self.implementation, "examples": self.examples, "seconds": self.seconds,
                "counterexample": self.counterexample, "failure": self.failure}

    @classmethod
    def from_record(cls, value: dict) -> ImplementationSearch:
        return cls(implementation=value["implementation"], examples=int(value["examples"]),
                   seconds=number(value.get("seconds")) or 0.0, counterexample=value.get("counterexample"),
                   failure=value.get("failure"))


@dataclass
class SearchResult(KindResult):
    """What a search case tried: the seed, the budget, one entry per implementation."""

    kind = "search"

    seed: int
    budget: int
    implementations: list[ImplementationSearch] = field(default_factory=list)

    def describe(self) -> list[tuple[str, object]]:
        return [("seed", self.seed), ("examples per implementation", self.budget)]

    def to_record(self) -> dict:
        return {"seed": self.seed, "budget": self.budget, "implementations": self.implementations}

    @classmethod
    def from_record(cls, value: dict) -> SearchResult:
        return cls(seed=int(value["seed"]), budget=int(value["budget"]),
                   implementations=[ImplementationSearch.from_record(i) for i in value.get("implementations") or []])

    @classmethod
    def table(cls, records) -> tuple[list[str], list[list[str]]]:
        headers = ["case", "implementation", "examples tried", "time (s)", "smallest failing example", "verdict"]
        rows = []
        for record in records:
            for entry in record.result.implementations:
                found = entry.failure.splitlines()[0][:80] if entry.failure else "none found"
                rows.append([record.case, entry.implementation, str(entry.examples), fmt(entry.seconds, 3), found,
                             verdict(record)])
        return headers, rows
