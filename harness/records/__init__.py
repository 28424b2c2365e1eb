"""Typed records of case runs (torch-free): what every kind returns and results.json holds.

- :mod:`harness.records.base`: :class:`CaseRecord`, :class:`Check`, :class:`Interval`,
  :class:`Estimate`, :class:`Timing`, :data:`SCHEMA_VERSION`;
- one module per kind with its result type (``to_record`` / ``from_record``, its report
  table, its figures): :mod:`~harness.records.dispersion`, :mod:`~harness.records.agreement`,
  :mod:`~harness.records.training`;
- :mod:`harness.records.document`: the results.json document (load, validate, merge);
- :mod:`harness.records.figures`: figure data (rendered by :mod:`harness.report.figures`).

:data:`RESULT_TYPES` maps a kind's name to its result type; the report loops over it.
"""
from harness.records.agreement import AgreementResult, ImplementationAgreement, ModelDescription
from harness.records.base import (SCHEMA_VERSION, CaseRecord, Check, Estimate, Interval, KindResult, RecordError,
                                  Timing)
from harness.records.dispersion import DispersionResult, EntryResult
from harness.records.search import SearchResult
from harness.records.training import TrainingResult

RESULT_TYPES: dict[str, type[KindResult]] = {
    DispersionResult.kind: DispersionResult,
    AgreementResult.kind: AgreementResult,
    SearchResult.kind: SearchResult,
    TrainingResult.kind: TrainingResult,
}

__all__ = ["RESULT_TYPES", "SCHEMA_VERSION", "AgreementResult", "CaseRecord", "Check", "DispersionResult",
           "EntryResult", "Estimate", "ImplementationAgreement", "Interval", "KindResult", "ModelDescription",
           "RecordError", "SearchResult", "Timing", "TrainingResult"]
