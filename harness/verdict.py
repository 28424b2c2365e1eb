"""How an outcome reads: one table for people, one JSON record for scripts.

:func:`format_outcome` renders the case's parameters (phase, lambda, samples, ...) and
one row per check: what was measured with its interval, what theory predicted, and
whether it passed. The pytest plugin prints it on failure; the CLI prints it always.
"""
from __future__ import annotations

import json
import math
from typing import Any

from tabulate import tabulate

from harness.kinds.base import Outcome


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


def format_outcome(case_id: str, outcome: Outcome) -> str:
    """A readable verdict: parameters, then the checks (measured, interval, expected)."""
    params = [(key, _num(value)) for key, value in outcome.parameters.items()]
    rows = [
        (
            "PASS" if check.passed else "FAIL",
            check.name,
            _num(check.measured),
            _interval(check.measured_interval),
            _num(check.reference),
            check.expected,
        )
        for check in outcome.checks
    ]
    text = [f"case {case_id}: {'passed' if outcome.passed else 'FAILED'}"]
    text.append(tabulate(params, tablefmt="plain"))
    text.append("")
    text.append(tabulate(rows, headers=["", "check", "measured", "interval", "theory", "accepted"], tablefmt="simple"))
    details = [f"- {check.name}: {check.detail}" for check in outcome.checks if check.detail]
    if details:
        text.append("")
        text.extend(details)
    if outcome.timing:
        text.append("")
        text.append("timing: " + ", ".join(f"{k} {v:.3f}s" for k, v in outcome.timing.items()))
    return "\n".join(text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item") and callable(value.item):
        return _jsonable(value.item())
    return value


def outcome_record(case_id: str, kind: str, outcome: Outcome) -> dict:
    """A JSON-ready record of one case run."""
    return _jsonable(
        {
            "case": case_id,
            "kind": kind,
            "passed": outcome.passed,
            **{k: outcome.parameters[k] for k in ("phase", "width", "depth", "sigma_w2") if k in outcome.parameters},
            "parameters": outcome.parameters,
            "measured": outcome.measured,
            "reference": outcome.reference,
            "checks": [
                {
                    "name": c.name,
                    "passed": c.passed,
                    "measured": c.measured,
                    "measured_interval": c.measured_interval,
                    "expected": c.expected,
                    "reference": c.reference,
                    "detail": c.detail,
                }
                for c in outcome.checks
            ],
            "timing": outcome.timing,
            # series and matrices a kind keeps for figures (e.g. training checkpoints)
            "extra": outcome.extra,
        }
    )


def dumps(record: dict) -> str:
    return json.dumps(record, indent=2, sort_keys=False)
