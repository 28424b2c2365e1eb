"""Numbers and intervals as text, shared by the tables and the baseline comparison."""
from __future__ import annotations

import math
from typing import Any


def number(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, int):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def interval(bounds: Any, digits: int = 4) -> str:
    if not bounds or len(bounds) != 2 or bounds[0] is None or bounds[1] is None:
        return ""
    return f"[{number(as_float(bounds[0]), digits)}, {number(as_float(bounds[1]), digits)}]"


def as_float(value: Any) -> float:
    """JSON numbers, and the strings "inf"/"-inf" that verdict._jsonable writes, as floats."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def with_interval(value: Any, bounds: Any, digits: int = 4) -> str:
    text = number(value, digits)
    spread = interval(bounds, digits)
    return f"{text} {spread}" if spread else text


def verdict(record: dict) -> str:
    if record.get("outcome") == "error":
        return "ERROR"
    return "pass" if record.get("passed") else "FAIL"
