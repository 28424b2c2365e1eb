"""How a case record reads for people: one table of what ran, then one row per check.

:func:`format_record` renders the case's parameters (phase, lambda, networks, ...) and one
row per check: what was measured with its interval, what theory predicted, the accepted
region and whether it passed. The pytest plugin prints it on failure; ``ntk-harness``
prints it always.
"""
from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

from harness.records import CaseRecord


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return str(value)


def _interval(interval) -> str:
    if interval is None:
        return ""
    low, high = interval
    return f"[{_num(float(low))}, {_num(float(high))}]"


def _status(record: CaseRecord) -> str:
    return {"passed": "passed", "failed": "FAILED", "error": "ERROR", "xfailed": "expected failure (xfail)",
            "xpassed": "XPASS: an expected failure passed",
            "skipped": "skipped"}.get(record.outcome, record.outcome)


def format_record(record: CaseRecord) -> str:
    """A readable verdict: parameters, then the checks (measured, interval, theory, accepted)."""
    params: list[tuple[str, Any]] = [("case", record.name), ("kind", record.kind)]
    if record.phase:
        params.append(("phase", record.phase))
    if record.result is not None:
        params += record.result.describe()
    params += [("seed", record.seed), ("implementation", record.implementation), ("device", record.device),
               ("dtype", record.dtype)]
    text = [f"case {record.case}: {_status(record)}"]
    text.append(tabulate([(k, _num(v)) for k, v in params if v is not None], tablefmt="plain"))
    if record.error:
        text += ["", f"error: {record.error}"]
    if record.expected_failure:
        text += ["", f"expected to fail: {record.expected_failure}"]
    if record.checks:
        rows = [("PASS" if c.passed else "FAIL", c.name, _num(c.measured), _interval(c.measured_interval),
                 _num(c.reference), c.expected) for c in record.checks]
        text += ["", tabulate(rows, headers=["", "check", "measured", "interval", "theory", "accepted"],
                              tablefmt="simple")]
    details = [f"- {c.name}: {c.detail}" for c in record.checks if c.detail and not c.passed]
    details += [f"- {c.name}: {c.detail}" for c in record.checks if c.detail and c.passed and len(c.detail) < 200]
    if details:
        text += [""] + details
    timing = record.timing.to_record()
    shown = {k: v for k, v in timing.items() if v}
    if shown:
        text += ["", "timing: " + ", ".join(f"{k} {v:.3f}s" for k, v in shown.items())]
    return "\n".join(text)
