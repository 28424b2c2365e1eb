"""How a case record reads for people: one table of what ran, then one row per check.

:func:`format_record` renders the case's parameters (phase, lambda, networks, ...) and one
row per check: what was measured with its interval, what theory predicted, the accepted
region and whether it passed. The pytest plugin prints it on failure; ``ntk-harness``
prints it always.
"""
from __future__ import annotations

from typing import Any

from tabulate import tabulate

from harness.records import CaseRecord
from harness.records.format import check_mark, fmt, fmt_interval, verdict


#: Significant digits of a verdict table (report tables use 4).
DIGITS = 6


def format_record(record: CaseRecord) -> str:
    """A readable verdict: parameters, then the checks (measured, interval, target, accepted)."""
    params: list[tuple[str, Any]] = [("case", record.name), ("kind", record.kind)]
    if record.phase:
        params.append(("phase", record.phase))
    if record.result is not None:
        params += record.result.describe()
    params += [("seed", record.seed), ("implementation", record.implementation_spec), ("device", record.device),
               ("dtype", record.dtype)]
    text = [f"case {record.case}: {verdict(record, headline=True)}"]
    text.append(tabulate([(k, fmt(v, DIGITS)) for k, v in params if v is not None], tablefmt="plain"))
    if record.error:
        text += ["", f"error: {record.error}"]
    if record.expected_failure:
        text += ["", f"expected to fail: {record.expected_failure}"]
    if record.checks:
        rows = [(check_mark(c.passed), c.name, fmt(c.measured, DIGITS), fmt_interval(c.measured_interval, DIGITS),
                 fmt(c.target, DIGITS), c.expected) for c in record.checks]
        text += ["", tabulate(rows, headers=["", "check", "measured", "interval", "target", "accepted"],
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
