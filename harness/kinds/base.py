"""What every kind of case provides (torch-free), and what running one returns.

A *kind* (``dispersion``, ``agreement``, ``training``) is a :class:`Kind` with:

- ``name``: the value of ``kind = "..."`` in a case file;
- ``sections``: ``{section name: dataclass}``; each ``[case.<section>]`` table of a case of
  this kind is validated against that dataclass by :mod:`harness.cases.schema` (unknown
  keys, wrong types and impossible values fail with the file, the case and the key). A
  section whose dataclass has no required field may be omitted;
- ``markers``: pytest markers every case of this kind carries;
- ``case_id(case)``: the readable part of a case id, e.g. ``eoc-w16-L8-s2``;
- ``phase(case)``: ``ordered``, ``eoc``, ``chaotic`` or None;
- ``validate(case)``: rules across sections, raising :class:`~harness.cases.schema.FieldError`;
- ``run_module``: the module (torch allowed) whose ``run(case, options) -> KindOutcome``
  computes, compares with the reference and returns the checks and the typed result. It is
  imported only when a case of this kind runs, so collecting cases never imports torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from harness.options import RunOptions
from harness.records import Check, KindResult, Timing


@dataclass
class KindOutcome:
    """What a kind's run returns: checks, the typed result and how it ran.

    ``expected_failure``: set by a kind whose case asserts a claim that is known not to hold
    in this regime (the reason states the measured numbers); the runner then records the
    case as ``xfailed`` when a check fails and as ``xpassed`` (a failure) when all pass.
    """

    checks: list[Check] = field(default_factory=list)
    result: KindResult | None = None
    timing: Timing = field(default_factory=Timing)
    implementation: str | None = None
    device: str | None = None
    dtype: str | None = None
    seed: int | None = None
    expected_failure: str | None = None
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


class Kind:
    """Base of the kinds' specs (see the module docstring)."""

    name: str = ""
    sections: dict[str, type] = {}
    markers: tuple[str, ...] = ()
    run_module: str = ""

    def case_id(self, case) -> str:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def phase(self, case) -> str | None:
        return None

    def validate(self, case) -> None:
        return None

    def expected_failure(self, case) -> str | None:
        """Why the case is expected to fail (strict), or None: the case's ``expected_failure``;
        a kind whose checks carry their own expected failures joins their reasons."""
        return case.expected_failure

    #: The implementation a case of this kind runs when neither the case nor --ntk-impl names one.
    default_implementation: str | None = None

    def implementation(self, case, options: RunOptions) -> str | None:
        """The implementation the case will run (for messages such as a time-out)."""
        return options.implementation or case.implementation or self.default_implementation

    def run(self, case, options: RunOptions) -> KindOutcome:
        return importlib.import_module(self.run_module).run(case, options)
