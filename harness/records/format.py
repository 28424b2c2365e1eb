"""Numbers, intervals and verdicts as text, for report tables and verdict tables."""
from __future__ import annotations

import math
from typing import Any


def natural_key(text: str) -> tuple:
    """A sort key that orders the numbers inside ``text`` by value: ``L2`` before ``L10``,
    ``s2`` before ``s2.5``, ``s2.5`` before ``s3`` (case ids in report tables)."""
    import re

    parts = re.split(r"(\d+(?:\.\d+)?)", text)
    return tuple((0, float(part), "") if i % 2 else (1, 0.0, part) for i, part in enumerate(parts) if part)


def by_case(record) -> tuple:
    """Records in natural order of their case ids (:func:`natural_key`)."""
    return natural_key(record.case)


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


#: Each outcome in words: (a report table's cell, a verdict's headline).
OUTCOME_WORDS = {
    "passed": ("pass", "passed"),
    "failed": ("FAIL", "FAILED"),
    "error": ("ERROR", "ERROR"),
    "xfailed": ("xfail", "expected failure (xfail)"),
    "xpassed": ("XPASS", "XPASS: an expected failure passed"),
    "skipped": ("skip", "skipped"),
}


def verdict(record, *, headline: bool = False) -> str:
    """pass, FAIL, ERROR, xfail (a failure that was expected), XPASS (an expected failure that
    passed) or skip; ``headline``: the longer words of a verdict table's first line."""
    words = OUTCOME_WORDS.get(record.outcome)
    return record.outcome if words is None else words[1 if headline else 0]


def check_mark(passed: bool) -> str:
    """A check's row label: PASS or FAIL."""
    return "PASS" if passed else "FAIL"
