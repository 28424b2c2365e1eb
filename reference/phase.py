"""Initialization phases of a deep fully connected network (mean-field theory).

Owns: the variance fixed point ``q*``, the slope ``chi_1`` of the correlation map at
``c = 1``, the phase classification, the edge-of-chaos (EOC) location and the
depth-to-width ratio ``lambda = L / n`` (``sum_l 1/n_l`` for unequal widths).

Mean-field recursions (Poole et al. 2016; Schoenholz et al. 2017).  With per-neuron
pre-activation variance ``q`` and ``z ~ N(0, 1)``::

    q_{l+1} = sigma_w2 * E[phi(sqrt(q_l) z)^2] + sigma_b2          (variance map)
    chi_1   = sigma_w2 * E[phi'(sqrt(q*) z)^2]                       (at the fixed point q*)

``chi_1 < 1``: ordered (nearby inputs converge), ``chi_1 > 1``: chaotic, ``chi_1 = 1``: EOC.

Expectations over ``z`` use Gauss-Hermite quadrature (probabilists' nodes) for the smooth
activations ``tanh`` and ``erf``; ``relu`` and ``linear`` use their closed forms
(``E[relu(sqrt(q) z)^2] = q/2``, ``E[relu'^2] = 1/2``) because the ReLU kink makes
quadrature converge only slowly and the closed form is exact.

Which fixed point: ``q*`` is the limit of the variance map iterated from a large ``q``
(equivalently the largest fixed point), i.e. the stable one reached by a deep network.
Special cases, documented because they are degenerate:

* ``relu`` with ``sigma_b2 = 0``: the map ``q -> sigma_w2 q / 2`` is scale-free; its
  only fixed point is ``q* = 0`` and ``chi_1 = sigma_w2 / 2`` does not depend on ``q``.
  This function returns ``0.0``.  Phases: ordered ``sigma_w2 < 2``, EOC ``= 2``,
  chaotic ``> 2``.
* ``relu``/``linear`` with ``sigma_b2 > 0`` and slope ``sigma_w2 E[phi'^2] >= 1``: the
  variance grows without bound, there is no finite fixed point, ``q* = inf``; ``chi_1``
  is still well defined (it does not depend on ``q``).
* ``tanh``/``erf`` with ``sigma_b2 = 0`` and ``chi_1(q=0) = sigma_w2 phi'(0)^2 <= 1``:
  ``q* = 0``.  For tanh the EOC is then ``sigma_w2 = 1``; for erf it is ``pi / 4``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import brentq
from scipy.special import erf as _erf

from ._validate import activation_name, integer_at_least, nonnegative_float, positive_float

PHASES = ("ordered", "eoc", "chaotic")

_NODES, _WEIGHTS = hermegauss(201)
_WEIGHTS = _WEIGHTS / math.sqrt(2.0 * math.pi)  # E[g(z)] = sum w_i g(x_i), z ~ N(0,1)


def _gauss_expect(function, q: float) -> float:
    """E[function(sqrt(q) z)] for z ~ N(0, 1) by 201-point Gauss-Hermite quadrature."""
    return float(np.dot(_WEIGHTS, function(math.sqrt(q) * _NODES)))


def _phi_sq(activation: str):
    if activation == "tanh":
        return lambda u: np.tanh(u) ** 2
    if activation == "erf":
        return lambda u: _erf(u) ** 2
    raise AssertionError(activation)


def _dphi_sq(activation: str):
    if activation == "tanh":
        return lambda u: (1.0 / np.cosh(u)) ** 4
    if activation == "erf":
        return lambda u: (2.0 / math.sqrt(math.pi)) ** 2 * np.exp(-2.0 * u * u)
    raise AssertionError(activation)


def _slope_sq(activation: str, q: float) -> float:
    """E[phi'(sqrt(q) z)^2]."""
    if activation == "relu":
        return 0.5
    if activation == "linear":
        return 1.0
    if q == 0.0:
        return 1.0 if activation == "tanh" else 4.0 / math.pi
    return _gauss_expect(_dphi_sq(activation), q)


def _check(sigma_w2, sigma_b2, activation):
    return (positive_float("sigma_w2", sigma_w2), nonnegative_float("sigma_b2", sigma_b2),
            activation_name(activation))


def variance_fixed_point(sigma_w2: float, sigma_b2: float = 0.0, activation: str = "relu") -> float:
    """The stable fixed point ``q*`` of ``q -> sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2``.

    Returns a float >= 0, or ``inf`` when the variance diverges (relu/linear with
    ``sigma_b2 > 0`` and slope >= 1).  See the module docstring for the degenerate cases.
    """
    sigma_w2, sigma_b2, activation = _check(sigma_w2, sigma_b2, activation)
    if activation in ("relu", "linear"):
        gain = sigma_w2 * (0.5 if activation == "relu" else 1.0)  # q -> gain q + sigma_b2
        if sigma_b2 == 0.0:
            return 0.0
        return sigma_b2 / (1.0 - gain) if gain < 1.0 else math.inf
    phi_sq = _phi_sq(activation)

    def excess(q: float) -> float:
        return sigma_w2 * _gauss_expect(phi_sq, q) + sigma_b2 - q

    # tanh^2, erf^2 <= 1, so q* <= sigma_w2 + sigma_b2; excess(hi) < 0.
    hi = sigma_w2 + sigma_b2 + 1.0
    if sigma_b2 == 0.0:
        # q = 0 is always a fixed point; a positive one exists iff the map's slope at 0 exceeds 1.
        if sigma_w2 * _slope_sq(activation, 0.0) <= 1.0:
            return 0.0
        lo = hi
        while excess(lo) <= 0.0:  # walk down to a point where the map is above the diagonal
            lo *= 0.5
            if lo < 1e-300:
                return 0.0
        return brentq(excess, lo, hi, xtol=1e-15, rtol=1e-14)
    return brentq(excess, 0.0, hi, xtol=1e-15, rtol=1e-14)


def chi_1(sigma_w2: float, sigma_b2: float = 0.0, activation: str = "relu") -> float:
    """``chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2]``: slope of the correlation map at c = 1."""
    sigma_w2, sigma_b2, activation = _check(sigma_w2, sigma_b2, activation)
    q = variance_fixed_point(sigma_w2, sigma_b2, activation)
    return sigma_w2 * _slope_sq(activation, q)


def phase_of(sigma_w2: float, sigma_b2: float = 0.0, activation: str = "relu",
             eoc_tolerance: float = 1e-9) -> str:
    """Phase name: ``"eoc"`` if ``|chi_1 - 1| <= eoc_tolerance``, else ``"ordered"``
    (``chi_1 < 1``) or ``"chaotic"`` (``chi_1 > 1``).  ReLU, sigma_b2 = 0: the phase is
    decided by sigma_w2 versus 2 (so ``sigma_w2 = 2.0`` is exactly ``"eoc"``)."""
    eoc_tolerance = nonnegative_float("eoc_tolerance", eoc_tolerance)
    slope = chi_1(sigma_w2, sigma_b2, activation)
    if abs(slope - 1.0) <= eoc_tolerance:
        return "eoc"
    return "ordered" if slope < 1.0 else "chaotic"


def edge_of_chaos_sigma_w2(sigma_b2: float = 0.0, activation: str = "relu") -> float:
    """The ``sigma_w2`` with ``chi_1(sigma_w2, sigma_b2) = 1``, by Brent's method to 1e-10.

    ``chi_1`` increases with ``sigma_w2`` for every supported activation, so the root is
    unique.  Closed forms the tests check: relu -> 2, linear -> 1, tanh (sigma_b2 = 0) -> 1,
    erf (sigma_b2 = 0) -> pi/4.
    """
    sigma_b2 = nonnegative_float("sigma_b2", sigma_b2)
    activation = activation_name(activation)
    if activation == "relu":
        return 2.0
    if activation == "linear":
        return 1.0

    def f(s: float) -> float:
        return chi_1(s, sigma_b2, activation) - 1.0

    lo, hi = 1e-3, 4.0
    while f(hi) < 0.0:
        hi *= 2.0
        if hi > 1e6:
            raise ValueError(f"no edge of chaos found for activation={activation}, sigma_b2={sigma_b2}")
    return brentq(f, lo, hi, xtol=1e-12, rtol=1e-13)


def depth_to_width(hidden_widths) -> float:
    """``lambda = sum_l 1 / n_l`` over the hidden widths ``(n_1, ..., n_L)``: ``L / n`` when
    every hidden layer has width n (the paper's depth-to-width ratio), and its natural
    generalization otherwise (the 1/n corrections of the layers add up)."""
    try:
        widths = tuple(hidden_widths)
    except TypeError:
        raise ValueError(f"hidden_widths must be a sequence of positive integers (got {hidden_widths!r})") from None
    if not widths:
        raise ValueError("hidden_widths must hold at least one width (got an empty sequence)")
    widths = tuple(integer_at_least("hidden_widths", n, 1) for n in widths)
    if len(set(widths)) == 1:
        return len(widths) / widths[0]   # L / n exactly (a sum of L rounded 1/n's is not)
    return float(sum(1.0 / n for n in widths))
