"""The kinds of case and their registry :data:`KINDS` (``kind = "..."`` in a case file).

Importing this package is cheap and torch-free: each kind's spec (sections, ids, rules)
lives in ``harness/kinds/<kind>/__init__.py``; its computation in
``harness/kinds/<kind>/run.py`` is imported only when a case of that kind runs.
"""
from __future__ import annotations

from harness.kinds.agreement import KIND as AGREEMENT
from harness.kinds.base import Kind, KindOutcome
from harness.kinds.dispersion import KIND as DISPERSION
from harness.kinds.search import KIND as SEARCH
from harness.kinds.training import KIND as TRAINING

KINDS: dict[str, Kind] = {kind.name: kind for kind in (DISPERSION, AGREEMENT, SEARCH, TRAINING)}


def load_cases(path):
    """Every case of one case file, validated against the registered kinds, with ids
    (:func:`harness.cases.schema.load_case_file`); raises :class:`~harness.cases.schema.CaseError`."""
    from harness.cases.schema import load_case_file

    return load_case_file(path, KINDS)


__all__ = ["KINDS", "Kind", "KindOutcome", "load_cases"]
