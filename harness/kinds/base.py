"""What every kind of case provides, and what running one returns.

A *kind* (``dispersion``, ``agreement``, ``training``, ...) is an object with:

- ``name``: the value of ``kind = "..."`` in a case file;
- ``sections``: ``{section name: dataclass}``; each ``[case.<section>]`` table of a case
  of this kind is validated against that dataclass by :mod:`harness.cases.schema`
  (unknown keys, wrong types and impossible values fail collection with the file, the
  case and the key). A section whose dataclass has no required field may be omitted.
- ``markers``: pytest markers every case of this kind carries (e.g. ``("training",)``);
- ``case_id(case) -> str``: a readable id of one expanded case, e.g. ``eoc-w16-L8-s2.0``;
- ``run(case, options) -> Outcome``: compute, compare with the reference, return checks.

Kinds register themselves in :data:`harness.kinds.KINDS` (see ``harness/kinds/__init__.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch


@dataclass
class RunOptions:
    """Session-wide settings that override a case's own (``None`` = keep the case's)."""

    device: str | None = None
    dtype: str | None = None
    implementation: str | None = None
    cache_dir: Path | None = None
    progress: Callable[[int, int], None] | None = None  # progress(done, total) of a long Monte Carlo
    memory_budget_bytes: int = 512 * 2**20


@dataclass
class Check:
    """One verdict: what was compared, what was measured, what theory predicted."""

    name: str
    passed: bool
    measured: float | None = None
    measured_interval: tuple[float, float] | None = None
    expected: str = ""
    reference: float | None = None
    detail: str = ""


@dataclass
class Outcome:
    """Everything a case run produced; ``passed`` iff every check passed."""

    parameters: dict[str, Any]
    checks: list[Check]
    measured: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


class Kind(Protocol):
    name: str
    sections: dict[str, type]
    markers: tuple[str, ...]

    def case_id(self, case) -> str: ...

    def run(self, case, options: RunOptions) -> Outcome: ...


def resolve_device(requested: str | None) -> torch.device:
    """``auto``/None -> CUDA when available, else CPU; anything else as torch reads it."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} was requested but CUDA is not available")
    return device


DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {name!r}") from None
