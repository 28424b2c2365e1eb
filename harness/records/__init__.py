"""Typed records of case runs (torch-free): the types every kind's result is made of, and results.json.

- :mod:`harness.records.base`: :class:`CaseRecord`, :class:`Check`, :class:`Interval`,
  :class:`Estimate`, :class:`Timing`, :class:`KindResult`, :data:`SCHEMA_VERSION`;
- :mod:`harness.records.serialize`: the one generic path between record dataclasses and JSON;
- :mod:`harness.records.schema`: ``results.schema.json``, generated from the types;
- :mod:`harness.records.document`: the results.json document (load, validate, merge);
- :mod:`harness.records.figures`: figure data (rendered by :mod:`harness.report.figures`).

Each kind's own result type, with its report table and figures, lives in its folder
(``harness/kinds/<kind>/result.py``); :func:`harness.kinds.result_types` maps a kind's name to it.
"""
from harness.records.base import (SCHEMA_VERSION, CaseRecord, Check, Estimate, Interval, KindResult, RecordError,
                                  Timing)

__all__ = ["SCHEMA_VERSION", "CaseRecord", "Check", "Estimate", "Interval", "KindResult", "RecordError", "Timing"]
