"""Numbers, intervals and verdicts as text, for report tables and verdict tables."""
from __future__ import annotations

import math
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; ``None`` -> ""; booleans -> yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}"
    return str(value)


def fmt_interval(bounds: Any, digits: int = 4) -> str:
    """``[low, high]`` or "" when there is no interval."""
    if bounds is None:
        return ""
    low, high = bounds
    if low is None or high is None:
        return ""
    return f"[{fmt(float(low), digits)}, {fmt(float(high), digits)}]"


def fmt_with_interval(value: Any, bounds: Any, digits: int = 4) -> str:
    text = fmt(value, digits)
    spread = fmt_interval(bounds, digits)
    return f"{text} {spread}" if spread else text


def verdict(record) -> str:
    """pass, FAIL, ERROR, xfail (a failure that was expected) or XPASS (an expected failure that passed)."""
    return {"passed": "pass", "failed": "FAIL", "error": "ERROR", "xfailed": "xfail", "xpassed": "XPASS",
            "skipped": "skip"}.get(
        record.outcome, record.outcome)
