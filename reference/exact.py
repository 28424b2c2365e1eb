"""Exact finite-width law of the diagonal NTK ``Theta(x, x)`` of a zero-bias-initialized ReLU net.

Owns: :class:`ExactLaw` -- exact first and second moments by transfer matrices, and an
exact O(L)-per-draw vectorized sampler.

Setting (standard parametrization, see :mod:`reference.infinite_width`): widths
``(n_0, n_1, ..., n_L)``, scalar output, ``W^l_ij ~ N(0, s_l^2)`` with
``s_l^2 = sigma_w2 / n_{l-1}``, biases 0 at initialization but (optionally) trainable.

1. The law
----------
Write ``F_l = |x^l|^2`` (``F_0 = |x|^2``), ``B_l = |df/dh^l|^2`` (``B_{L+1} = 1``) and
``beta = 1`` for trainable biases, else 0.  The gradient wrt ``W^l`` is
``delta^l x^{l-1 T}`` and wrt ``b^l`` is ``delta^l``, so::

    Theta(x, x) = sum_{l=1}^{L+1} B_l (F_{l-1} + beta)

Derivation.  Condition on ``x^{l-1}`` and write ``u = x^{l-1}/|x^{l-1}|``.  Split
``W^l = g u^T + M`` with ``g = W^l u ~ N(0, s_l^2 I)`` and ``M = W^l (I - u u^T)``; the two
are independent Gaussians.  The forward pass sees only ``h^l = |x^{l-1}| g``, hence

* ``K_l`` = number of active neurons ``~ Binomial(n_l, 1/2)``;
* ``F_l = F_{l-1} s_l^2 A_l`` with ``A_l ~ chi^2_{K_l}`` (the squared active part of g).

Backward, ``W^{l+1 T} delta^{l+1} = u' (g' . delta^{l+1}) + M'^T delta^{l+1}`` with the
split of ``W^{l+1}`` along ``u' = x^l/|x^l|``.  Since ``h^{l+1} -> f`` is positively
1-homogeneous (zero biases), Euler's identity gives ``g' . delta^{l+1} = f / |x^l|``; ``u'``
lives on the active neurons so ``D^l u' = u'``.  ``M'^T delta^{l+1}`` is Gaussian with
covariance ``s_{l+1}^2 B_{l+1} (I - u' u'^T)``, independent of the forward pass; restricted
to the ``K_l`` active coordinates and orthogonal to ``u'`` it has squared norm
``s_{l+1}^2 B_{l+1} C_l`` with ``C_l ~ chi^2_{K_l - 1}`` (0 if ``K_l <= 1``), independent of
``A_l`` given ``K_l``.  The two parts are orthogonal, so::

    B_l = f^2 / F_l + s_{l+1}^2 C_l B_{l+1},    l = L, ..., 1
    f^2 = s_{L+1}^2 F_L xi^2,                   xi ~ N(0, 1) (one per network)

There is no backward factor for the input (no gradient wrt x).

Dead layers.  If ``K_l = 0`` then ``h^{l+1} = 0`` exactly (zero biases), every layer above
is dead (``relu'(0) = 0``), all ``delta^j = 0`` for ``j <= L`` and ``Theta = beta`` (only the
output bias survives).  So ``Theta = beta`` on the event {some ``K_l = 0``}, whose
probability is ``1 - prod_l (1 - 2^{-n_l})``, and on its complement the ``K_l`` are
independent ``Binomial(n_l, 1/2)`` conditioned on ``K_l >= 1``.

2. Paths and the 5-state automaton
----------------------------------
Unrolling the recursion with ``a_l = s_l^2 A_l`` (hidden layers), ``a_{L+1} = s_{L+1}^2 xi^2``
and ``b_l = s_{l+1}^2 C_l``::

    F_{l-1} = F_0 prod_{j<l} a_j,    f^2 / F_m = prod_{j=m+1}^{L+1} a_j
    B_l = sum_{m=l}^{L} (prod_{j=l}^{m-1} b_j) (f^2 / F_m) + prod_{j=l}^{L} b_j

so ``Theta`` is a sum of products that take, at each hidden layer j, one factor chosen by a
state of this automaton (states ordered P, Q, Bk, S, O):

=========  ==============  =======  ============================================
state      meaning         factor   may go next to
=========  ==============  =======  ============================================
P          pre, weight     a_j      P, Bk, S   (leaving P at layer l: w_l)
Q          pre, bias       1        Q, Bk, S
Bk         backward        b_j      Bk, S
S          switch (j = m)  1        O
O          post            a_j      O
=========  ==============  =======  ============================================

Start: P with weight ``F_0`` and Q with weight ``beta``.  End (after layer L): P and Q
contribute ``w_{L+1}`` resp. 1 (the output layer's own term, ``l = L+1``), Bk contributes 1
(the pure backward term), S and O multiply by ``a_{L+1}``.  ``w_l = 1`` in the standard
parametrization; in the NTK parametrization the weight term of layer l is multiplied by
``w_l = s_l^2`` and the bias term by ``sigma_b2 = 0``.

Exact moments.  Given survival the per-layer factors are independent across layers, so
``E[Theta]`` is a 5-vector pushed through one 5x5 transfer matrix per layer (factor
moments ``E[a_j]``, ``E[b_j]``), and ``E[Theta^2]`` is the same for pairs of paths: a 5x5
matrix ``V`` updated as ``V <- (W^T V W) * G_j`` with ``G_j[s, t] = E[factor_s factor_t]``
(``E[a^2], E[b^2], E[ab], E[a], E[b], 1``), and ``E[xi^4] = 3`` at the output.  Per-layer
moments given ``K >= 1`` (``chi^2_k``: mean ``k``, second moment ``k(k+2)``)::

    E[a] = s_l^2 E[K],            E[a^2] = s_l^4 E[K^2 + 2K]
    E[b] = s_{l+1}^2 E[K - 1],    E[b^2] = s_{l+1}^4 E[K^2 - 1],   E[ab] = s_l^2 s_{l+1}^2 E[K^2 - K]
    E[K | K >= 1] = (n/2) / (1 - 2^-n),   E[K^2 | K >= 1] = (n/4 + n^2/4) / (1 - 2^-n)

Finally ``E[Theta^p] = P(alive) E[Theta^p | alive] + (1 - P(alive)) beta^p``.  Every layer the
state vector/matrix is divided by its largest entry and the log of that scale accumulated,
so nothing overflows or underflows (L = 10^4, sigma_w2 in [0.1, 10] is tested); entries far
below the largest (relative 1e-300) may flush to zero, which is harmless because no state
can outgrow the dominant one by such a factor over the remaining layers at these sizes.

3. Sampler
----------
The same automaton run on realized factors, vectorized over draws: with ``R = w_l P + beta + Bk``
per layer, ``P <- P a``, ``O <- (S + O) a``, ``S <- R``, ``Bk <- R b``; at the end
``Theta = w_{L+1} P + beta + Bk + (S + O) a_{L+1}``, then ``Theta = beta`` where any layer died.
``K ~ Binomial(n, 1/2)`` is drawn exactly as the popcount of n random bits (fast for
n <= 255, numpy's binomial otherwise); ``chi^2_k = 2 Gamma(k/2)`` by ``standard_gamma`` with
a per-draw shape array.  Cost O(L) per draw; no network is built.
"""

from __future__ import annotations

import math

import numpy as np

from ._validate import (activation_name, nonnegative_float, parametrization_name, positive_float,
                        widths_tuple, integer_at_least)
from .errors import NotApplicable

P, Q, BK, S, O = range(5)
# _ALLOWED[s, t] = 1 if state t may follow state s (see the module docstring).
_ALLOWED = np.zeros((5, 5))
for _s, _targets in {P: (P, BK, S), Q: (Q, BK, S), BK: (BK, S), S: (O,), O: (O,)}.items():
    for _t in _targets:
        _ALLOWED[_s, _t] = 1.0
# factor type per state: 0 -> a (forward), 1 -> constant 1, 2 -> b (backward)
_FACTOR_TYPE = np.array([0, 1, 2, 1, 0])

_POPCOUNT_MAX_WIDTH = 255
_CHUNK = 1 << 16
# popcount of every byte value, for NumPy < 2.0 (no np.bitwise_count there)
_BYTE_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 word, uint8, shape of ``words``: ``np.bitwise_count`` where NumPy
    has it (2.0+), else the sum of a 256-entry table over the word's 8 bytes (same values)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    return _BYTE_POPCOUNT[words.view(np.uint8).reshape(words.shape + (8,))].sum(axis=-1, dtype=np.uint8)


def _binomial_half(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Exact Binomial(n, 1/2) draws, shape [size]: popcount of n uniform random bits
    (uint8 for n <= 255), numpy's binomial (int64) for wider layers."""
    if n > _POPCOUNT_MAX_WIDTH:
        return rng.binomial(n, 0.5, size)
    total = None
    remaining = n
    while remaining > 0:
        bits = min(remaining, 64)
        words = rng.bit_generator.random_raw(size)  # uniform uint64
        if bits < 64:
            np.bitwise_and(words, np.uint64((1 << bits) - 1), out=words)
        counts = _popcount(words)                   # uint8
        if total is None:
            total = counts
        else:
            total += counts
        remaining -= bits
    return total


class ExactLaw:
    """Exact law of ``Theta(x, x)`` for a zero-bias-initialized ReLU net (module docstring).

    Args:
        widths: ``(n_0, n_1, ..., n_L)``; n_0 the input dimension, L >= 1 hidden layers.
        sigma_w2: weight variance scale, > 0 (``W^l ~ N(0, sigma_w2 / n_{l-1})``).
        trainable_bias: biases are parameters (beta = 1) or not (beta = 0).
        input_norm_sq: ``|x|^2 > 0``.
        sigma_b2: must be 0 (the exact law needs zero biases at init), else NotApplicable.
        activation: must be "relu", else NotApplicable.
        parametrization: "standard" or "ntk".
    Attributes: widths, depth (L), sigma_w2, trainable_bias, input_norm_sq, parametrization.
    """

    def __init__(self, widths, sigma_w2, *, trainable_bias=True, input_norm_sq=1.0, sigma_b2=0.0,
                 activation="relu", parametrization="standard"):
        self.widths = widths_tuple(widths)
        self.depth = len(self.widths) - 1
        self.sigma_w2 = positive_float("sigma_w2", sigma_w2)
        self.input_norm_sq = positive_float("input_norm_sq", input_norm_sq)
        sigma_b2 = nonnegative_float("sigma_b2", sigma_b2)
        activation = activation_name(activation)
        self.parametrization = parametrization_name(parametrization)
        self.trainable_bias = bool(trainable_bias)
        if activation != "relu":
            raise NotApplicable(
                f"the exact finite-width law holds only for activation='relu' (got {activation!r}); "
                "for this activation only the infinite-width mean-field reference applies "
                "(reference.phase: q*, chi_1, phase)")
        if sigma_b2 > 0.0:
            raise NotApplicable(
                f"the exact finite-width law needs zero biases at initialization (got sigma_b2={sigma_b2}); "
                "only the infinite-width reference (reference.infinite_width_ntk) applies")
        n = np.asarray(self.widths, dtype=float)
        self._s2 = self.sigma_w2 / n[:-1]          # s_l^2, l = 1..L  (index l-1)
        self._s2_out = self.sigma_w2 / n[-1]       # s_{L+1}^2
        if self.parametrization == "standard":
            self._w = np.ones(self.depth + 1)      # w_l, l = 1..L+1
            self._beta = 1.0 if self.trainable_bias else 0.0
        else:
            self._w = np.append(self._s2, self._s2_out)
            self._beta = 0.0                       # bias term times sigma_b2 = 0
        self._cache = None

    # ------------------------------------------------------------------ description
    def key(self) -> str:
        """Stable string of every parameter of the law (for disk caches)."""
        return (f"ExactLaw/v1/widths={','.join(map(str, self.widths))}/sigma_w2={self.sigma_w2!r}"
                f"/trainable_bias={int(self.trainable_bias)}/input_norm_sq={self.input_norm_sq!r}"
                f"/parametrization={self.parametrization}")

    def __repr__(self) -> str:
        return (f"ExactLaw(widths={self.widths}, sigma_w2={self.sigma_w2}, trainable_bias={self.trainable_bias}, "
                f"input_norm_sq={self.input_norm_sq}, parametrization={self.parametrization!r})")

    @property
    def beta(self) -> float:
        """The value of Theta on a dead network (bias coefficient of the law)."""
        return self._beta

    # ------------------------------------------------------------------ moments
    def _layer_moments(self, l: int):
        """(E a, E b, E a^2, E b^2, E ab) of hidden layer l (1-based) given K_l >= 1."""
        n = self.widths[l]
        alive = -math.expm1(n * math.log(0.5))     # 1 - 2^-n
        ek = 0.5 * n / alive
        ek2 = (0.25 * n + 0.25 * n * n) / alive
        sa = self._s2[l - 1]
        sb = self.sigma_w2 / n                     # s_{l+1}^2
        return sa * ek, sb * (ek - 1.0), sa * sa * (ek2 + 2.0 * ek), sb * sb * (ek2 - 1.0), sa * sb * (ek2 - ek)

    def log_mean_second_moment(self) -> tuple[float, float]:
        """``(log E[Theta], log E[Theta^2])``, exact, computed in log-scaled arithmetic."""
        if self._cache is not None:
            return self._cache
        v = np.array([self.input_norm_sq, self._beta, 0.0, 0.0, 0.0])
        V = np.outer(v, v)
        log_v = log_V = 0.0
        ftype = _FACTOR_TYPE
        for l in range(1, self.depth + 1):
            ea, eb, ea2, eb2, eab = self._layer_moments(l)
            W = _ALLOWED.copy()
            W[P, BK] = W[P, S] = self._w[l - 1]
            first = np.array([ea, 1.0, eb])[ftype]
            second_table = np.array([[ea2, ea, eab], [ea, 1.0, eb], [eab, eb, eb2]])
            G = second_table[np.ix_(ftype, ftype)]
            v = (v @ W) * first
            V = (W.T @ V @ W) * G
            mv, mV = v.max(), V.max()
            v /= mv
            V /= mV
            log_v += math.log(mv)
            log_V += math.log(mV)
        a_out = self._s2_out                        # E[a_{L+1}] = s_{L+1}^2 E[xi^2]
        out = np.array([self._w[-1], 1.0, 1.0, a_out, a_out])
        out2 = np.outer(out, out)
        out2[np.ix_([S, O], [S, O])] *= 3.0         # E[xi^4] = 3
        log_m1_alive = log_v + math.log(float(v @ out))
        log_m2_alive = log_V + math.log(float(np.sum(V * out2)))
        log_p_alive = float(sum(math.log1p(-(0.5 ** n)) for n in self.widths[1:]))
        log_p_dead = math.log(-math.expm1(log_p_alive)) if log_p_alive < 0.0 else -math.inf
        if self._beta > 0.0:
            lb = math.log(self._beta)
            log_m1 = float(np.logaddexp(log_p_alive + log_m1_alive, log_p_dead + lb))
            log_m2 = float(np.logaddexp(log_p_alive + log_m2_alive, log_p_dead + 2.0 * lb))
        else:
            log_m1, log_m2 = log_p_alive + log_m1_alive, log_p_alive + log_m2_alive
        self._cache = (log_m1, log_m2)
        return self._cache

    def mean(self) -> float:
        """Exact ``E[Theta]`` (``inf`` only if it exceeds the float64 range)."""
        with np.errstate(over="ignore"):
            return float(np.exp(self.log_mean_second_moment()[0]))

    def second_moment(self) -> float:
        """Exact ``E[Theta^2]`` (``inf`` only if it exceeds the float64 range)."""
        with np.errstate(over="ignore"):
            return float(np.exp(self.log_mean_second_moment()[1]))

    def dispersion(self) -> float:
        """Exact ``E[Theta^2] / E[Theta]^2`` (computed from the logs, never overflows)."""
        m1, m2 = self.log_mean_second_moment()
        return float(math.exp(m2 - 2.0 * m1))

    # ------------------------------------------------------------------ sampler
    def sample(self, draws: int, rng: np.random.Generator) -> np.ndarray:
        """``draws`` independent exact draws of ``Theta(x, x)``; float64 array of shape [draws]."""
        draws = integer_at_least("draws", draws, 0)
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator (got {type(rng).__name__})")
        out = np.empty(draws)
        for start in range(0, draws, _CHUNK):
            stop = min(draws, start + _CHUNK)
            out[start:stop] = self._sample_chunk(stop - start, rng)
        return out

    def _sample_chunk(self, size: int, rng: np.random.Generator) -> np.ndarray:
        beta = self._beta
        p = np.full(size, self.input_norm_sq)
        bk = np.zeros(size)
        s = np.zeros(size)
        o = np.zeros(size)
        alive = np.ones(size, dtype=bool)
        shape = np.empty(2 * size)
        for l in range(1, self.depth + 1):
            n = self.widths[l]
            k = _binomial_half(rng, n, size)
            alive &= k > 0
            shape[:size] = k
            np.subtract(shape[:size], 1.0, out=shape[size:])
            np.maximum(shape[size:], 0.0, out=shape[size:])
            shape *= 0.5
            g = rng.standard_gamma(shape)                     # chi^2 / 2 for (A_l, C_l)
            a = g[:size]
            a *= 2.0 * self._s2[l - 1]
            b = g[size:]
            b *= 2.0 * self.sigma_w2 / n
            r = p * self._w[l - 1]
            r += bk
            if beta:
                r += beta
            p *= a
            o += s
            o *= a
            s = r
            bk = r * b
        xi2 = rng.standard_normal(size)
        xi2 *= xi2
        theta = p * self._w[-1]
        theta += bk
        if beta:
            theta += beta
        o += s
        o *= xi2
        o *= self._s2_out
        theta += o
        theta[~alive] = beta
        return theta
