"""Argument checks shared by the reference modules (one message style everywhere).

Every check raises ``ValueError("<name> must be <range> (got <value>)")``.
"""

from __future__ import annotations

import math
import numbers

ACTIVATIONS = ("relu", "tanh", "erf", "linear")


def positive_float(name: str, value) -> float:
    """Return ``value`` as a float, requiring a finite number > 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0 (got {value!r})") from None
    if not math.isfinite(out) or out <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0 (got {value!r})")
    return out


def nonnegative_float(name: str, value) -> float:
    """Return ``value`` as a float, requiring a finite number >= 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})") from None
    if not math.isfinite(out) or out < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
    return out


def integer_at_least(name: str, value, minimum: int) -> int:
    """Return ``value`` as an int, requiring an integer >= ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")
    return value


def probability_open(name: str, value) -> float:
    """Return ``value`` as a float in the open interval (0, 1)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be in the open interval (0, 1) (got {value!r})") from None
    if not (0.0 < out < 1.0):
        raise ValueError(f"{name} must be in the open interval (0, 1) (got {value!r})")
    return out


def activation_name(value) -> str:
    """Return the activation name, requiring one of :data:`ACTIVATIONS`."""
    if value not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)} (got {value!r})")
    return value


def widths_tuple(value) -> tuple[int, ...]:
    """Return ``(n_0, n_1, ..., n_L)`` as ints: every width >= 1 and depth L >= 1."""
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"widths must be a sequence (n_0, n_1, ..., n_L) of positive integers (got {value!r})") from None
    if len(items) < 2:
        raise ValueError(
            f"widths must hold the input dimension and at least one hidden width, i.e. depth >= 1 (got {value!r})")
    out = []
    for i, w in enumerate(items):
        name = "widths[0] (input dimension)" if i == 0 else f"widths[{i}] (hidden width)"
        out.append(integer_at_least(name, w, 1))
    return tuple(out)


def parametrization_name(value) -> str:
    if value not in ("standard", "ntk"):
        raise ValueError(f"parametrization must be 'standard' or 'ntk' (got {value!r})")
    return value
