"""Dispersion of Theta(x, x) in the limit n, L -> infinity with L / n -> lambda (ReLU, sigma_b2 = 0).

Owns: :func:`asymptotic_dispersion`.

Derivation (from the exact law, :mod:`reference.exact`).  Take equal hidden widths n, n_0 = n
and |x|^2 = 1, and write c^2 = sigma_w2 / 2.  Per hidden layer (dead layers have
probability 2^-n and drop out)::

    E[a] = c^2,  E[b] = c^2 (1 - 2/n),  E[a^2] = c^4 (1 + 5/n),  E[b^2] = c^4 (1 + 1/n - 4/n^2),
    E[ab] = c^4 (1 - 1/n),  output factor a_{L+1} = (2 c^2 / n) xi^2,  E[xi^4] = 3.

Every weight path of the automaton carries exactly c^{2L} (positive homogeneity), and the
bias path that starts its backward part at layer l carries c^{2(L-l+1)}.  Hence:

* no trainable biases: the dispersion does not depend on sigma_w2 at all;
* chaotic (c > 1): bias paths are a fraction O(1/L) of the weight paths -> same limit as
  without biases;
* ordered (c < 1): weight paths are O(L c^{2L}), exponentially small; the bias paths from
  the top O(1) layers dominate and concentrate (per-layer fluctuations are O(1/n)) ->
  dispersion -> 1 for every lambda;
* EOC (c = 1): weight and bias paths are of the same order and both count.

Continuum limit at c = 1.  With t = layer / n in [0, lambda], a path is "pre" (P: weight,
factor a; Q: bias, factor 1) until its backward part starts, then "backward" (B, factor b)
until it switches, then "post" (O, factor a, with the output factor 2/n xi^2 booked at the
switch).  In the scaling where B and O states are measured in units of n, the summed path
weights obey a linear ODE: P -> B and Q -> B at rate 1 (n start layers per unit t),
B -> O at rate 2 (n switch layers times the 2/n output factor), and B decays at rate 2
(the (1 - 2/n)^{n t} of E[b]).  First moment: E[Theta] / n -> (input_scale + beta) lambda.

For E[Theta^2] the state is a pair of paths (16 pair states).  Each path moves with the
rates above, and the pair's weight additionally grows at rate gamma, the 1/n coefficient
of E[f_1 f_2] / (E[f_1] E[f_2]) for the two factors at a layer::

    gamma = 5  both forward (P or O) or both backward (B)
    gamma = 1  one forward, one backward
    gamma = 0  either path is Q (factor 1)

and pairs that end both in O get the factor E[xi^4] = 3.  Then
``E[Theta^2] / n^2 -> sum over end pairs in {B, O}^2`` of the weight, and the dispersion is
that divided by ``((input_scale + beta) lambda)^2``.  The linear ODE is solved exactly by
a matrix exponential (scipy.linalg.expm, 16x16), i.e. to floating-point accuracy.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.linalg import expm

from ._validate import nonnegative_float, positive_float
from .phase import phase_of

_P, _Q, _B, _O = range(4)
_PATH_RATES = {(_P, _B): 1.0, (_Q, _B): 1.0, (_B, _O): 2.0}
_DECAY = np.array([0.0, 0.0, -2.0, 0.0])
_KIND = {_P: "forward", _O: "forward", _B: "backward", _Q: "unit"}


def _gamma(s1: int, s2: int) -> float:
    k1, k2 = _KIND[s1], _KIND[s2]
    if "unit" in (k1, k2):
        return 0.0
    return 5.0 if k1 == k2 else 1.0


def _pair_generator() -> np.ndarray:
    """16x16 generator G (row = from, column = to) of the pair-of-paths ODE, v' = v G."""
    index = {pair: i for i, pair in enumerate(itertools.product(range(4), range(4)))}
    G = np.zeros((16, 16))
    for (s1, s2), i in index.items():
        G[i, i] = _DECAY[s1] + _DECAY[s2] + _gamma(s1, s2)
        for (a, b), rate in _PATH_RATES.items():
            if s1 == a:
                G[i, index[(b, s2)]] += rate
            if s2 == a:
                G[i, index[(s1, b)]] += rate
    return G


_GENERATOR = _pair_generator()


def continuum_dispersion(depth_to_width: float, beta: float, input_scale: float = 1.0) -> float:
    """Limit dispersion at c = 1 (EOC) with bias weight ``beta`` (0 or 1) and forward weight
    ``input_scale`` (= |x|^2 n / n_0); ``beta = 0`` gives the bias-free (any phase) limit."""
    lam = nonnegative_float("depth_to_width", depth_to_width)
    if lam == 0.0:
        return 1.0
    start = np.zeros((4, 4))
    pre = np.array([input_scale, beta, 0.0, 0.0])
    start[:, :] = np.outer(pre, pre)
    end = start.ravel() @ expm(_GENERATOR * lam)
    end = end.reshape(4, 4)
    weights = np.zeros((4, 4))
    weights[np.ix_([_B, _O], [_B, _O])] = 1.0
    weights[_O, _O] = 3.0
    second = float(np.sum(end * weights))
    first = (input_scale + beta) * lam
    return second / (first * first)


def asymptotic_dispersion(depth_to_width: float, sigma_w2: float, trainable_bias: bool = True, *,
                          input_scale: float = 1.0) -> float:
    """``lim E[Theta^2] / E[Theta]^2`` as n, L -> inf with L / n -> lambda = ``depth_to_width``.

    ReLU, sigma_b2 = 0, standard parametrization, n_0 = n and |x|^2 = 1 (``input_scale``
    = |x|^2 n / n_0 generalizes this; it matters only at the EOC with biases).
    Per phase (module docstring): ordered with biases -> 1; EOC with biases -> the
    continuum integral with bias weight 1; chaotic, or no biases -> the bias-free continuum
    integral, which does not depend on sigma_w2.
    """
    lam = nonnegative_float("depth_to_width", depth_to_width)
    sigma_w2 = positive_float("sigma_w2", sigma_w2)
    input_scale = positive_float("input_scale", input_scale)
    phase = phase_of(sigma_w2)
    if trainable_bias and phase == "ordered":
        return 1.0
    if trainable_bias and phase == "eoc":
        return continuum_dispersion(lam, 1.0, input_scale)
    return continuum_dispersion(lam, 0.0, input_scale)
