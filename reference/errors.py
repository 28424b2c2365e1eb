"""Errors raised by the reference theory.

``ValueError`` is raised for arguments outside their allowed range; its message names
the argument and the range.  :class:`NotApplicable` (a ``ValueError`` subclass, so a
caller that only catches ``ValueError`` still sees it) is raised when a configuration is
valid but lies outside the assumptions of the exact finite-width law; its message says
which reference does apply instead (the asymptotic / infinite-width one).
"""

from __future__ import annotations


class NotApplicable(ValueError):
    """The exact finite-width law does not hold for this configuration.

    Raised for ``sigma_b2 > 0`` at initialization or a non-ReLU activation.  The message
    names the violated assumption and the reference that still applies.
    """
