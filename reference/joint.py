"""Exact finite-width joint law of the NTK Gram matrix on k inputs, by Gaussian conditioning.

Owns: :class:`JointLaw` (the law of the whole ``k x k`` (``x O x O``) NTK matrix of the
harness's fully connected networks, any activation, widths, biases and parametrization),
:class:`EntryLaw` (one entry ``Theta(x_a, x_b)``; same duck-typed protocol as
:class:`reference.ExactLaw`: ``sample``, ``key``, ``depth``), and :func:`moment_summary` /
:class:`MomentSummary` (Monte Carlo mean and dispersion with standard errors).

1. Network and kernel
---------------------
Widths ``(n_0, n_1, ..., n_L)``, ``n_{L+1} = O`` outputs, inputs ``x_1..x_k`` in ``R^{n_0}``::

    h^1 = W^1 x + b^1,   x^l = phi(h^l),   h^{l+1} = W^{l+1} x^l + b^{l+1},   f = h^{L+1}
    W^l_ij ~ N(0, s / n_{l-1}),   b^l_i ~ N(0, sigma_b2),   s = sigma_w2

(standard parametrization; in the NTK parametrization ``W^l = sqrt(s / n_{l-1}) w^l`` and
``b^l = sqrt(sigma_b2) beta^l`` with ``w, beta`` standard normal -- the same law for the
network, only the parameters differ).  ``phi`` is relu (``relu'(0) = 0``, as torch's
autograd), tanh, erf or linear.  Column notation: ``H_l = [x^l(x_1) .. x^l(x_k)]``
(``n_l x k``, ``H_0 = X``), ``K_l = H_l^T H_l`` (``k x k``), ``D_l = phi'(h^l)`` (``n_l x k``).
For output ``i`` write ``G_l^(i) = [df_i/dh^l(x_1) .. df_i/dh^l(x_k)]`` (``n_l x k``); stacking
the O outputs side by side gives ``G_l`` with ``kO`` columns ``(i, a)``, and
``G_{L+1} = [I_O ... ]``: column ``(i, a)`` is the unit vector ``e_i``.  Backprop is
``G_l = D_l * (W^{l+1 T} G_{l+1})`` (``*`` elementwise, ``D_l`` repeated over the O blocks).

The gradient of ``f_i(x_a)`` wrt ``W^l`` is ``G_l[:, (i,a)] x^{l-1}(x_a)^T`` and wrt ``b^l``
is ``G_l[:, (i,a)]``, so with ``Theta[a, b, i, j] = sum_p df_i(x_a)/dp df_j(x_b)/dp``::

    Theta[a, b, i, j] = sum_{l=1}^{L+1} (G_l^T G_l)[(i,a), (j,b)] (w_l K_{l-1}[a, b] + c_b)

with ``w_l = 1``, ``c_b = 1`` (trainable biases) or 0 (frozen; then ``sigma_b2 = 0``) in the
standard parametrization, and ``w_l = s / n_{l-1}``, ``c_b = sigma_b2`` (or 0 if frozen) in
the NTK parametrization (the chain rule through ``sqrt(s / n_{l-1}) w^l``).  Only the k x k
Gram ``X^T X`` of the inputs enters: ``K_0`` above, and the law of the first layer below.

2. Forward: the law of ``W^l H_{l-1}``
--------------------------------------
Given the layers below, ``W^l`` is independent of ``H_{l-1}``.  Take ``Q`` (``n_{l-1} x m``)
with orthonormal (or zero) columns whose span contains ``col(H_{l-1})``, chosen as a
function of ``H_{l-1}`` alone, and ``R = Q^T H_{l-1}`` (``m x k``), so ``H_{l-1} = Q R``.
Then ``C_l = W^l Q`` has i.i.d. ``N(0, s / n_{l-1})`` entries (an isometry of i.i.d. Gaussian
rows), and ``A_l = W^l H_{l-1} = C_l R`` -- the rows of ``A_l`` are i.i.d.
``N(0, (s / n_{l-1}) K_{l-1})``.  So one layer costs an ``n_l x m`` Gaussian draw and an
``(n_l x m)(m x k)`` product; no ``n_l x n_{l-1}`` matrix is drawn.  ``h^l = A_l + b^l 1^T``.
For layer 1 any factor ``R`` of the input Gram (``R^T R = X^T X``) does, since only the law
of ``A_1`` matters and nothing is propagated back to the input.

3. Backward: ``W^{l+1 T} G_{l+1}`` given the forward pass
----------------------------------------------------------
The forward pass saw ``W = W^{l+1}`` only through ``C = W Q`` (``Q`` from ``H_l`` as above).
Split ``W = W Q Q^T + W (I - Q Q^T)``.  Because the entries of ``W`` are i.i.d. Gaussian, the
two parts are independent, and ``W (I - Q Q^T)`` has the law of ``W' (I - Q Q^T)`` for an
independent copy ``W'``.  Everything else -- the forward pass, the other layers' weights,
``G_{l+1}`` (it depends on ``W^{l+1}`` only through ``h^{l+1}``, i.e. through ``C``) -- is a
function of ``C`` and of variables independent of ``W``.  Hence, in law and jointly with
everything else::

    W^{l+1 T} G_{l+1} = Q C^T G_{l+1} + (I - Q Q^T) E = E + Q (C^T G_{l+1} - Q^T E)
    E = W'^T G_{l+1}:  n_l x kO, i.i.d. rows ~ N(0, (s / n_l) G_{l+1}^T G_{l+1})

and ``E`` is fresh for every layer.  ``E`` is drawn as ``sqrt(s / n_l) Z T`` with ``Z``
standard normal and ``T^T T = G_{l+1}^T G_{l+1}`` (``T`` from a QR of ``G_{l+1}`` or a
closed-form 2 x 2 Cholesky factor; only ``T^T T`` matters).  Then ``G_l = D_l * (...)``.
Per draw this is ``O(L n k^2)`` work (``k`` -> ``kO`` in the backward) for ``2 n k`` normal
numbers per layer, instead of the ``n^2`` weights of a real network.

Relation to the pseudo-inverse form (theory.md section 6).  With ``P`` the orthogonal
projector on ``col(H_l)``: ``P W^T G = H_l K_l^+ A_{l+1}^T G`` exactly at any rank (Moore-Penrose
inverse; ``A_{l+1}^T = H_l^T W^T`` and ``H K^+ H^T = P``), so ``W^T G = H_l K_l^+ A_{l+1}^T G +
(I - P) E`` in law.  With ``H_l = Q R``: ``H K^+ A^T = Q R (R^T R)^+ R^T C^T``, and
``R (R^T R)^+ R^T`` is the projector on ``col(R)``; if ``Q`` spans exactly ``col(H_l)`` (``R`` has
full row rank) it is the identity and the two formulas are the same.  If ``Q`` has an extra
unit column ``u`` (rank-deficient ``H_l``, ``R`` has a zero row there), ``u`` is a function of
``H_l`` alone and the forward never used ``W u``, so ``W u`` is ``N(0, (s / n_l) I)`` and
independent of everything else; the term ``u ((W u)^T G - u^T E)`` then has the law of
``u u^T E'`` (``E'`` an independent copy of ``E``), and ``u u^T E' + (I - Q Q^T) E`` has the law of
the ``P``-form's ``(I - P) E`` restricted to ``span(u) + col(Q)^perp``.  So the sampler needs no
pseudo-inverse and no rank decision: rank deficiency is exact by construction.

4. Rank deficiency and dead units
---------------------------------
* A dead unit (``relu``, ``h^l_i <= 0`` for some inputs) is a zero in ``D_l`` and in ``H_l``'s row;
  a layer dead for input a is a zero column of ``H_l``; a dead network (all zero) has
  ``H_l = 0``, ``R = 0``, and then every ``A`` above is the bias alone, as in a real network.
* Zero inputs (``|x_a| = 0``), duplicate (``x_a = x_b``) or proportional inputs and k > n_l
  all make ``H_l`` rank-deficient.  The general path takes ``Q, R`` from LAPACK's Householder
  QR (``numpy.linalg.qr``): ``Q`` has orthonormal columns spanning a superspace of
  ``col(H_l)`` at every rank, ``H_l = Q R`` to rounding.  The pair path (k <= 2) uses
  Gram-Schmidt on the two vectors: ``e1 = x1 / |x1|``, ``u = x2 - (x2 . e1) e1`` and a second
  pass ``u' = u - (u . e1) e1`` ("twice is enough").  A zero vector gives a zero column of ``Q``
  (allowed: ``Q Q^T`` is still the orthogonal projector on a superspace of ``col(H_l)``).  The
  Kahan-Parlett test sets ``e2 = 0`` when the second pass removes more than half of ``u``:
  that happens only when the true component of ``x2`` orthogonal to ``e1`` is below the
  rounding error of the first pass (~1e-16 |x2|), i.e. ``x2`` is in ``span(e1)`` to rounding,
  and it is needed -- when both vectors live on a single neuron, ``u`` is rounding noise
  *along* ``e1`` and normalizing it would give ``e2 = +-e1`` (a visibly wrong law at width 4).
  Otherwise exact duplicates give a second direction made of rounding noise, orthogonal to
  ``e1`` to rounding, with ``R_11 ~ 1e-16 |x|``.  The law is exact to rounding, with no
  tolerance anywhere.

5. Two implementations
----------------------
* ``k <= 2`` inputs and ``O = 1`` (the pair path; every :class:`EntryLaw`): vectors stored
  ``[k, draws, n]`` (one contiguous block per input) and multiplied as ``[draws, k, n]``
  views; Gram-Schmidt as two batched 2 x 2 row operations, closed-form 2 x 2 Cholesky,
  batched ``matmul`` for every ``(k x k)(k x n)`` product and every dot product; ``Q``,
  ``C`` and ``D`` of every layer are kept for the backward sweep, ``G_l`` is written next to
  ``C_l`` so that one product gives ``G_l^T G_l`` and ``C_l^T G_l``.  Normal draws per pair:
  ``2 n`` per layer forward (``C``; ``+ n`` with random biases) and ``2 n`` backward (``Z``),
  about ``4 n L``; at width 100, depth 50 these 20,000 float64 normals (~7.6 ns each with
  SFC64) are ~150 us of the ~230 us CPU per draw (docs/measurements/joint_law.md).
* anything else (the general path): ``[draws, n, k]`` arrays, batched Householder QR for
  ``Q`` and for ``T``, ``kO`` backward columns.
Both are vectorized over draws in chunks whose storage (the forward quantities of all layers,
held for the backward sweep) stays below ``_CHUNK_BYTES`` per worker; the pair path reuses
one workspace per worker across the chunks of a call (fresh pages cost ~0.1 ms per draw in
page faults at width 100, depth 50).

Randomness: :meth:`JointLaw.sample` draws one 63-bit seed per chunk from the caller's
``rng`` and runs each chunk on its own ``SFC64`` stream (numpy's fastest bit generator for
normals here, ~25% faster than PCG64), so the result depends only on ``rng``'s state, the
size and the law -- not on ``workers`` (chunks may run on threads: numpy releases the GIL in
its random fills, ufuncs and matmul).

6. Monte Carlo moments
----------------------
:func:`moment_summary` estimates ``E[Theta]``, ``E[Theta^2]`` and the dispersion
``E[Theta^2] / E[Theta]^2`` of one entry from S draws, with standard errors: the sample
standard deviation over ``sqrt(S)`` for the two moments, and the delta method for the ratio
(influence values ``t_i^2 - 2 D t_i`` with ``t_i = Theta_i / mean``, ``D`` the estimate; their
standard deviation over ``sqrt(S)``).  Both errors need finite fourth moments of Theta and are
themselves estimated; the law of Theta is heavy-tailed at depth (theory.md section 2: the
dispersion estimator is skewed and biased low), so use many draws (>= 10^5 at depth/width
>= 0.5) and read the dispersion's error as an order of magnitude, not a confidence interval.
Where the exact moments are known (relu, sigma_b2 = 0, diagonal: :class:`reference.ExactLaw`)
use those instead.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import special as _special

from ._validate import (activation_name, integer_at_least, nonnegative_float, parametrization_name,
                        positive_float, widths_tuple)

_CHUNK_BYTES = 128 << 20    # forward storage of one chunk per worker (all layers, all draws)
_MIN_CHUNK, _MAX_CHUNK = 16, 4096
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------
def _gram_matrix(value, input_dim: int) -> np.ndarray:
    """The inputs' Gram matrix as a symmetric PSD float array [k, k], k >= 1."""
    try:
        gram = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"gram must be a k x k matrix of numbers (got {value!r})") from None
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or gram.shape[0] < 1:
        raise ValueError(f"gram must be a square k x k matrix with k >= 1 (got shape {gram.shape})")
    if not np.all(np.isfinite(gram)):
        raise ValueError("gram must be finite (got a NaN or infinite entry)")
    scale = float(np.abs(gram).max())
    if np.abs(gram - gram.T).max() > 1e-12 * scale:
        raise ValueError("gram must be symmetric (got gram[a, b] != gram[b, a])")
    gram = 0.5 * (gram + gram.T)
    if np.any(np.diag(gram) < 0):
        raise ValueError(f"gram must have a non-negative diagonal (squared norms; got {np.diag(gram)})")
    eig = np.linalg.eigvalsh(gram)
    if eig[0] < -1e-10 * scale:
        raise ValueError(f"gram must be positive semi-definite (smallest eigenvalue {eig[0]:.3g})")
    if gram.shape[0] > input_dim and eig[-input_dim - 1] > 1e-10 * scale:
        raise ValueError(
            f"gram must have rank <= widths[0] = {input_dim} (the Gram of inputs in R^n_0; "
            f"eigenvalue {eig[-input_dim - 1]:.3g} beyond the first {input_dim})")
    return gram


def _network(widths, sigma_w2, sigma_b2, activation, trainable_bias, parametrization, output_dim):
    widths = widths_tuple(widths)
    sigma_w2 = positive_float("sigma_w2", sigma_w2)
    sigma_b2 = nonnegative_float("sigma_b2", sigma_b2)
    activation = activation_name(activation)
    if not isinstance(trainable_bias, (bool, np.bool_)):
        raise ValueError(f"trainable_bias must be True or False (got {trainable_bias!r})")
    trainable_bias = bool(trainable_bias)
    parametrization = parametrization_name(parametrization)
    output_dim = integer_at_least("output_dim", output_dim, 1)
    if not trainable_bias and sigma_b2 != 0.0:
        raise ValueError("sigma_b2 must be 0 when trainable_bias is False (frozen biases are zero; "
                         f"got sigma_b2={sigma_b2!r})")
    return widths, sigma_w2, sigma_b2, activation, trainable_bias, parametrization, output_dim


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (got {type(rng).__name__})")
    return rng


# ---------------------------------------------------------------------------------------------
# activations: phi(h) and phi'(h) into buffers
# ---------------------------------------------------------------------------------------------
def _apply_activation(name: str, h: np.ndarray, d: np.ndarray | None = None):
    """``(x, d)`` with ``x = phi(h)`` (written over ``h``) and ``d = phi'(h)`` (bool for relu,
    float otherwise; written into ``d`` when given; None for linear, where ``phi' = 1``)."""
    if name == "relu":
        d = np.greater(h, 0.0, out=d)
        np.maximum(h, 0.0, out=h)
        return h, d
    if name == "tanh":
        np.tanh(h, out=h)
        d = np.multiply(h, h, out=d)
        np.subtract(1.0, d, out=d)
        return h, d
    if name == "erf":
        d = np.multiply(h, h, out=d)
        np.negative(d, out=d)
        np.exp(d, out=d)
        d *= _TWO_OVER_SQRT_PI
        _special.erf(h, out=h)
        return h, d
    return h, None  # linear


# ---------------------------------------------------------------------------------------------
# closed-form helpers for k <= 2, arrays [B, k, n] (one row per input)
# ---------------------------------------------------------------------------------------------
def _batched(a: np.ndarray) -> np.ndarray:
    """The [B, k, n] view of an array stored [k, B, n] (for batched matmul)."""
    return a.transpose(1, 0, 2)


def _orthonormalize_rows(x: np.ndarray, qt: np.ndarray, scratch: np.ndarray):
    """Gram-Schmidt on the k <= 2 input rows of ``x`` (stored [k, B, n]), as batched 2 x 2 row
    operations.

    Writes ``qt`` [k, B, n]: orthonormal or zero rows ``e1, e2`` per draw (``scratch``, same
    shape, is overwritten).  Returns ``(R, K)``:
    ``R`` [B, k, k] upper triangular with ``x_rows = R^T Qt_rows``, and the Gram ``K = R^T R``
    [B, k, k] of the rows (equal to ``x x^T`` to rounding).  Two passes for ``e2`` and the
    Kahan-Parlett test; see the module docstring, section 4.
    """
    k, B, _ = x.shape
    xb = _batched(x)
    R = np.zeros((B, k, k))
    if k == 1:
        p = np.matmul(xb, xb.transpose(0, 2, 1))[:, 0, 0]
        r00 = np.sqrt(p)
        R[:, 0, 0] = r00
        np.multiply(x, np.divide(1.0, r00, out=np.zeros_like(r00), where=r00 > 0.0)[None, :, None], out=qt)
        return R, p[:, None, None].copy()
    pr = np.matmul(xb[:, :1], xb.transpose(0, 2, 1))[:, 0]       # [|x1|^2, <x1, x2>]
    r00 = np.sqrt(pr[:, 0])
    inv0 = np.divide(1.0, r00, out=np.zeros_like(r00), where=r00 > 0.0)
    r01 = pr[:, 1] * inv0                                          # x2 . e1
    step = np.zeros((B, 2, 2))                                     # rows -> (e1, u = x2 - r01 e1)
    step[:, 0, 0] = inv0
    step[:, 1, 0] = -r01 * inv0
    step[:, 1, 1] = 1.0
    ub = _batched(scratch)
    np.matmul(step, xb, out=ub)
    tf = np.matmul(ub[:, 1:], ub.transpose(0, 2, 1))[:, 0]        # [t = u . e1, |u|^2]
    t, first = tf[:, 0], tf[:, 1]
    # second pass u' = u - t e1 is orthogonal to e1 to rounding, |u'|^2 = |u|^2 - t^2 (|e1| = 1) --
    # accurate whenever it is kept: Kahan-Parlett "twice is enough" keeps u' only if the
    # second pass removed less than half of |u|; otherwise x2 lies in span(e1) to rounding
    # (e.g. parallel rows supported on one neuron, where u is pure rounding noise along e1)
    # and the second direction is 0.
    second = first - t * t
    keep = second >= 0.25 * first
    r11 = np.where(keep, np.sqrt(np.maximum(second, 0.0)), 0.0)
    inv1 = np.divide(1.0, r11, out=np.zeros_like(r11), where=r11 > 0.0)
    step[:, 0, 0] = 1.0
    step[:, 1, 0] = -t * inv1
    step[:, 1, 1] = inv1
    np.matmul(step, ub, out=_batched(qt))
    r01 += t
    R[:, 0, 0] = r00
    R[:, 0, 1] = r01
    R[:, 1, 1] = r11
    K = np.empty((B, 2, 2))
    K[:, 0, 0] = pr[:, 0]
    K[:, 0, 1] = K[:, 1, 0] = r00 * r01
    K[:, 1, 1] = r01 * r01 + r11 * r11
    return R, K


class _Workspace:
    """Flat float buffers of one worker, reused by every chunk of a :meth:`JointLaw.sample`
    call (fresh pages cost ~0.1 ms per draw at width 100, depth 50 in page faults alone).
    ``get(name, shape, dtype)`` returns a C-contiguous view of the first ``prod(shape)``
    elements of a buffer that grows as needed."""

    def __init__(self):
        self._buffers: dict = {}

    def get(self, name, shape, dtype=np.float64) -> np.ndarray:
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(size, dtype=dtype)
            self._buffers[name] = buf
        return buf[:size].reshape(shape)


def _cholesky_upper_small(S: np.ndarray) -> np.ndarray:
    """Upper-triangular ``T`` [B, k, k] with ``T^T T = S`` for PSD ``S`` [B, k, k], k <= 2
    (a zero pivot gives a zero row; tiny negative Schur complements from rounding clip to 0)."""
    B, k, _ = S.shape
    T = np.zeros((B, k, k))
    t00 = np.sqrt(np.maximum(S[:, 0, 0], 0.0))
    T[:, 0, 0] = t00
    if k == 2:
        t01 = np.divide(S[:, 0, 1], t00, out=np.zeros_like(t00), where=t00 > 0.0)
        T[:, 0, 1] = t01
        T[:, 1, 1] = np.sqrt(np.maximum(S[:, 1, 1] - t01 * t01, 0.0))
    return T


def _gram_factor(gram: np.ndarray) -> np.ndarray:
    """A [k, k] factor ``R`` with ``R^T R = gram``: closed-form Cholesky for k <= 2, else
    ``diag(sqrt(lambda_+)) V^T`` from the eigendecomposition."""
    k = gram.shape[0]
    if k <= 2:
        return _cholesky_upper_small(gram[None])[0]
    lam, vec = np.linalg.eigh(gram)
    return np.sqrt(np.maximum(lam, 0.0))[:, None] * vec.T


# ---------------------------------------------------------------------------------------------
# the law
# ---------------------------------------------------------------------------------------------
class JointLaw:
    """Exact law of the NTK matrix ``Theta[a, b(, i, j)]`` of a random fully connected network
    on k inputs with the given Gram matrix (derivation: module docstring).

    Args:
        widths: ``(n_0, n_1, ..., n_L)``; n_0 the input dimension, L >= 1 hidden layers.
        sigma_w2: weight variance scale ``s > 0`` (``W^l ~ N(0, s / n_{l-1})``).
        gram: the inputs' Gram matrix ``X^T X``, [k, k], symmetric positive semi-definite,
            rank <= n_0 (only the Gram matters).  ``gram[a, a] = |x_a|^2``.
        sigma_b2: bias variance ``>= 0`` (must be 0 with frozen biases).
        activation: "relu", "tanh", "erf" or "linear".
        trainable_bias: biases are parameters of the NTK (True) or frozen at 0 (False).
        parametrization: "standard" or "ntk" (module docstring, section 1).
        output_dim: O >= 1 outputs.
    Attributes: widths, depth (L), sigma_w2, sigma_b2, activation, trainable_bias,
        parametrization, output_dim, gram (float array [k, k]), input_count (k).
    """

    def __init__(self, widths, sigma_w2, gram, *, sigma_b2=0.0, activation="relu", trainable_bias=True,
                 parametrization="standard", output_dim=1):
        (self.widths, self.sigma_w2, self.sigma_b2, self.activation, self.trainable_bias,
         self.parametrization, self.output_dim) = _network(widths, sigma_w2, sigma_b2, activation,
                                                           trainable_bias, parametrization, output_dim)
        self.depth = len(self.widths) - 1
        self.gram = _gram_matrix(gram, self.widths[0])
        self.gram.setflags(write=False)
        self.input_count = self.gram.shape[0]
        self._factor = _gram_factor(self.gram)
        sizes = self.widths + (self.output_dim,)
        if self.parametrization == "standard":
            self._weight_coef = [1.0] * (self.depth + 1)
            self._bias_coef = 1.0 if self.trainable_bias else 0.0
        else:
            self._weight_coef = [self.sigma_w2 / sizes[l - 1] for l in range(1, self.depth + 2)]
            self._bias_coef = self.sigma_b2 if self.trainable_bias else 0.0

    @classmethod
    def from_inputs(cls, widths, sigma_w2, inputs, **network):
        """The law for explicit inputs ``inputs`` [k, n_0] (rows are the inputs)."""
        x = np.asarray(inputs, dtype=float)
        widths = widths_tuple(widths)
        if x.ndim != 2 or x.shape[1] != widths[0]:
            raise ValueError(f"inputs must have shape [k, widths[0]] = [k, {widths[0]}] (got {x.shape})")
        return cls(widths, sigma_w2, x @ x.T, **network)

    # ------------------------------------------------------------------ description
    @property
    def uses_pair_path(self) -> bool:
        """Whether :meth:`sample` runs the closed-form path (k <= 2 inputs, one output)."""
        return self.input_count <= 2 and self.output_dim == 1

    def key(self) -> str:
        """Stable string of every parameter of the law (for disk caches)."""
        gram = ",".join(repr(float(v)) for v in self.gram.reshape(-1))
        return (f"JointLaw/v1/widths={','.join(map(str, self.widths))}/sigma_w2={self.sigma_w2!r}"
                f"/sigma_b2={self.sigma_b2!r}/activation={self.activation}"
                f"/trainable_bias={int(self.trainable_bias)}/parametrization={self.parametrization}"
                f"/output_dim={self.output_dim}/gram={gram}")

    def __repr__(self) -> str:
        return (f"JointLaw(widths={self.widths}, sigma_w2={self.sigma_w2}, gram={self.gram.tolist()}, "
                f"sigma_b2={self.sigma_b2}, activation={self.activation!r}, trainable_bias={self.trainable_bias}, "
                f"parametrization={self.parametrization!r}, output_dim={self.output_dim})")

    def entry(self, a: int, b: int) -> "EntryLaw":
        """The law of the single entry ``Theta(x_a, x_b)`` (requires ``output_dim == 1``)."""
        k = self.input_count
        for name, v in (("a", a), ("b", b)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < k:
                raise ValueError(f"{name} must be an input index in 0..{k - 1} (got {v!r})")
        if self.output_dim != 1:
            raise ValueError(f"output_dim must be 1 for a single-entry law (got {self.output_dim})")
        g = self.gram
        return EntryLaw(self.widths, self.sigma_w2, inner_product=g[a, b], norm_sq_x=g[a, a], norm_sq_y=g[b, b],
                        sigma_b2=self.sigma_b2, activation=self.activation, trainable_bias=self.trainable_bias,
                        parametrization=self.parametrization)

    # ------------------------------------------------------------------ sampling
    def chunk_size(self) -> int:
        """Draws per vectorized chunk: the storage of all layers stays below ``_CHUNK_BYTES``."""
        k, O = self.input_count, self.output_dim
        neurons = sum(self.widths[1:]) + O
        if self.uses_pair_path:   # per neuron: stack (2k doubles), Q^T (k doubles), D (k bools or doubles)
            per_draw = neurons * k * (3 * 8 + (1 if self.activation == "relu" else 8))
        else:                     # C, Q, D, activations, and the kO-column backward temporaries
            per_draw = neurons * (k * 8 * 4 + k * O * 8 * 3)
        return int(min(_MAX_CHUNK, max(_MIN_CHUNK, _CHUNK_BYTES // per_draw)))

    def sample(self, draws: int, rng: np.random.Generator, *, workers: int = 1) -> np.ndarray:
        """``draws`` independent exact draws of the NTK matrix.

        Returns float64 ``[draws, k, k]`` for ``output_dim == 1`` and ``[draws, k, k, O, O]``
        otherwise (``Theta[s, a, b, i, j] = sum_p df_i(x_a)/dp df_j(x_b)/dp``).  ``workers``
        threads run the chunks; the draws do not depend on ``workers`` (module docstring).
        """
        draws = integer_at_least("draws", draws, 0)
        rng = _check_rng(rng)
        workers = integer_at_least("workers", workers, 1)
        k, O = self.input_count, self.output_dim
        shape = (draws, k, k) if O == 1 else (draws, k, k, O, O)
        out = np.empty(shape)
        if draws == 0:
            return out
        chunk = self.chunk_size()
        starts = list(range(0, draws, chunk))
        seeds = rng.integers(0, 2**63 - 1, size=len(starts), dtype=np.int64)
        local = threading.local()

        def run(index: int) -> None:
            start = starts[index]
            stop = min(draws, start + chunk)
            child = np.random.Generator(np.random.SFC64(int(seeds[index])))
            if self.uses_pair_path:
                if not hasattr(local, "workspace"):
                    local.workspace = _Workspace()
                out[start:stop] = self._pair_chunk(stop - start, child, local.workspace)
            else:
                out[start:stop] = self._general_chunk(stop - start, child)

        if workers == 1 or len(starts) == 1:
            for i in range(len(starts)):
                run(i)
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
                list(pool.map(run, range(len(starts))))
        return out

    # ------------------------------------------------------------------ pair path (k <= 2, O = 1)
    def _pair_chunk(self, B: int, rng: np.random.Generator, ws: "_Workspace | None" = None) -> np.ndarray:
        """[B, k, k] draws, k <= 2, one output (module docstring, section 5).

        Vectors are stored [k, B, n] (one contiguous block per input) and multiplied as
        [B, k, n] views.  Layer l keeps ``Qt[l]`` (``Q_l^T``), ``D[l]`` and ``stack[l]``
        [2k, B, n_l]: rows k..2k hold the standard normals ``c`` of ``C_l^T``
        (``C_l = sqrt(s / n_{l-1}) c^T``), rows 0..k receive ``G_l^T`` in the backward sweep,
        so one product gives both ``G_l^T G_l`` and ``C_l^T G_l``.
        """
        k, L, s = self.input_count, self.depth, self.sigma_w2
        sizes = self.widths
        bias_sd = math.sqrt(self.sigma_b2)
        wc, bc = self._weight_coef, self._bias_coef
        ws = _Workspace() if ws is None else ws
        d_type = bool if self.activation == "relu" else np.float64
        K = [np.broadcast_to(self.gram, (B, k, k))]
        Qt, D, stack = [None], [None], [None]
        R = np.broadcast_to(self._factor, (B, k, k))
        for l in range(1, L + 1):
            n = sizes[l]
            buf = ws.get(("stack", l), (2 * k, B, n))
            rng.standard_normal(out=buf[k:])
            h = ws.get(("h", n), (k, B, n))
            np.matmul(R.transpose(0, 2, 1) * math.sqrt(s / sizes[l - 1]), _batched(buf[k:]), out=_batched(h))
            if bias_sd > 0.0:
                bias = ws.get(("bias", n), (1, B, n))
                rng.standard_normal(out=bias)
                bias *= bias_sd
                h += bias
            d_buf = None if self.activation == "linear" else ws.get(("d", l), (k, B, n), d_type)
            x, d = _apply_activation(self.activation, h, d_buf)
            qt = ws.get(("qt", l), (k, B, n))
            R, gram = _orthonormalize_rows(x, qt, ws.get(("gs", n), (k, B, n)))
            Qt.append(qt)
            D.append(d)
            stack.append(buf)
            K.append(gram)
        # readout: G_{L+1} = [1 .. 1] (all-ones G^T G); W^{L+1 T} G_{L+1} = [v .. v] with
        # v = sig (y + Q_L (c - Q_L^T y)): C_{L+1} = sig c^T, E = sig y 1^T
        n = sizes[L]
        sig = math.sqrt(s / n)
        theta = wc[L] * K[L] + bc
        m = sig * rng.standard_normal((B, k, 1))
        y = ws.get(("e", n), (1, B, n))
        rng.standard_normal(out=y)
        y *= sig
        m -= np.matmul(_batched(Qt[L]), _batched(y).transpose(0, 2, 1))
        v = ws.get(("v", n), (1, B, n))
        np.matmul(m.transpose(0, 2, 1), _batched(Qt[L]), out=_batched(v))
        v += y
        self._write_gradient(stack[L], v, D[L])
        for l in range(L, 0, -1):
            view = _batched(stack[l])                               # [B, 2k, n_l]
            both = np.matmul(view, view[:, :k].transpose(0, 2, 1))  # [G^T G ; c^T G], [B, 2k, k]
            S = both[:, :k]
            theta += S * (wc[l - 1] * K[l - 1] + bc)
            if l == 1:
                break
            # G_{l-1} = D_{l-1} * (E + Q_{l-1} (C_l^T G_l - Q_{l-1}^T E)),  E^T = sig T^T Y^T
            n = sizes[l - 1]
            sig = math.sqrt(s / n)
            T = _cholesky_upper_small(S)
            T *= sig
            e, v = ws.get(("e", n), (k, B, n)), ws.get(("v", n), (k, B, n))
            rng.standard_normal(out=v)
            np.matmul(T.transpose(0, 2, 1), _batched(v), out=_batched(e))
            m = sig * both[:, k:]
            m -= np.matmul(_batched(Qt[l - 1]), _batched(e).transpose(0, 2, 1))
            np.matmul(m.transpose(0, 2, 1), _batched(Qt[l - 1]), out=_batched(v))
            v += e
            self._write_gradient(stack[l - 1], v, D[l - 1])
        return theta

    @staticmethod
    def _write_gradient(buf: np.ndarray, v: np.ndarray, d) -> None:
        """``buf[:k] = v * d`` ([k, B, n] layout; ``v`` [1 or k, B, n]; ``d`` None means 1)."""
        k = buf.shape[0] // 2
        if d is None:
            buf[:k] = v
        else:
            np.multiply(v, d, out=buf[:k])

    # ------------------------------------------------------------------ general path
    def _general_chunk(self, B: int, rng: np.random.Generator) -> np.ndarray:
        """[B, k, k(, O, O)] draws for any k and O; arrays laid out [B, n, columns]."""
        k, O, L, s = self.input_count, self.output_dim, self.depth, self.sigma_w2
        sizes = self.widths + (O,)
        bias_sd = math.sqrt(self.sigma_b2)
        wc, bc = self._weight_coef, self._bias_coef
        K = [np.broadcast_to(self.gram, (B, k, k))]
        Q, C, D = [None], [None], [None]
        R = np.broadcast_to(self._factor, (B,) + self._factor.shape)
        for l in range(1, L + 1):
            n = sizes[l]
            c = math.sqrt(s / sizes[l - 1]) * rng.standard_normal((B, n, R.shape[1]))
            h = np.matmul(c, R)                                 # A_l = C_l R
            if bias_sd > 0.0:
                h += bias_sd * rng.standard_normal((B, n, 1))
            x, d = _apply_activation(self.activation, h)
            K.append(np.matmul(x.transpose(0, 2, 1), x))
            q, R = np.linalg.qr(x)                              # Householder: exact at every rank
            Q.append(q)
            C.append(c)
            D.append(d)
        # readout layer L+1: C_{L+1} [B, O, m]; G_{L+1}[:, (i, a)] = e_i
        C.append(math.sqrt(s / sizes[L]) * rng.standard_normal((B, O, R.shape[1])))
        g = np.broadcast_to(np.repeat(np.eye(O), k, axis=1), (B, O, O * k))
        theta = np.zeros((B, O * k, O * k))
        for l in range(L + 1, 0, -1):
            S = np.matmul(g.transpose(0, 2, 1), g)              # G_l^T G_l, [B, Ok, Ok]
            theta += S * np.tile(wc[l - 1] * K[l - 1] + bc, (1, O, O))
            if l == 1:
                break
            n = sizes[l - 1]
            sig = math.sqrt(s / n)
            T = np.linalg.qr(g, mode="r")                       # T^T T = G^T G
            e = sig * np.matmul(rng.standard_normal((B, n, T.shape[1])), T)     # E = W'^T G_l
            m = np.matmul(C[l].transpose(0, 2, 1), g) - np.matmul(Q[l - 1].transpose(0, 2, 1), e)
            v = e + np.matmul(Q[l - 1], m)                      # W^{l T} G_l
            if D[l - 1] is not None:
                v = (v.reshape(B, n, O, k) * D[l - 1][:, :, None, :]).reshape(B, n, O * k)
            g = v
        theta = theta.reshape(B, O, k, O, k).transpose(0, 2, 4, 1, 3)   # [B, a, b, i, j]
        return theta[:, :, :, 0, 0] if O == 1 else theta


# ---------------------------------------------------------------------------------------------
# one entry
# ---------------------------------------------------------------------------------------------
class EntryLaw:
    """Exact law of one NTK entry ``Theta(x, y)`` (one output), from ``|x|^2``, ``|y|^2`` and
    ``<x, y>``: the pair path of :class:`JointLaw` (k = 2; k = 1 when ``x = y``).

    Same protocol as :class:`reference.ExactLaw`: ``sample(draws, rng) -> [draws]``,
    ``key() -> str``, ``depth``.  ``x = y`` (``norm_sq_x == norm_sq_y == inner_product``, i.e.
    ``|x - y|^2 = 0``, or an entry ``(a, a)`` of a :class:`JointLaw`) is the diagonal
    ``Theta(x, x)``, sampled with one input.

    Args (keyword-only after ``sigma_w2``): inner_product ``<x, y>``; norm_sq_x, norm_sq_y
    (``>= 0``, default 1; ``<x, y>^2 <= |x|^2 |y|^2``); sigma_b2, activation, trainable_bias,
    parametrization as in :class:`JointLaw`.
    """

    def __init__(self, widths, sigma_w2, *, inner_product, norm_sq_x=1.0, norm_sq_y=1.0, sigma_b2=0.0,
                 activation="relu", trainable_bias=True, parametrization="standard"):
        norm_sq_x = nonnegative_float("norm_sq_x", norm_sq_x)
        norm_sq_y = nonnegative_float("norm_sq_y", norm_sq_y)
        try:
            inner_product = float(inner_product)
        except (TypeError, ValueError):
            raise ValueError(f"inner_product must be a finite number (got {inner_product!r})") from None
        if not math.isfinite(inner_product):
            raise ValueError(f"inner_product must be a finite number (got {inner_product!r})")
        bound = math.sqrt(norm_sq_x * norm_sq_y)
        if abs(inner_product) > bound * (1.0 + 1e-12):
            raise ValueError(f"inner_product must satisfy |<x, y>| <= |x| |y| = {bound!r} (got {inner_product!r})")
        self.norm_sq_x, self.norm_sq_y, self.inner_product = norm_sq_x, norm_sq_y, inner_product
        # |x - y|^2 = |x|^2 + |y|^2 - 2 <x, y> = 0 exactly: the same input, one column suffices
        self.is_diagonal = norm_sq_x == norm_sq_y == inner_product
        gram = [[norm_sq_x]] if self.is_diagonal else [[norm_sq_x, inner_product], [inner_product, norm_sq_y]]
        self._joint = JointLaw(widths, sigma_w2, gram, sigma_b2=sigma_b2, activation=activation,
                               trainable_bias=trainable_bias, parametrization=parametrization)
        j = self._joint
        self.widths, self.depth, self.sigma_w2, self.sigma_b2 = j.widths, j.depth, j.sigma_w2, j.sigma_b2
        self.activation, self.trainable_bias, self.parametrization = j.activation, j.trainable_bias, j.parametrization

    def key(self) -> str:
        """Stable string of every parameter of the law (for disk caches)."""
        j = self._joint
        return (f"EntryLaw/v1/widths={','.join(map(str, j.widths))}/sigma_w2={j.sigma_w2!r}/sigma_b2={j.sigma_b2!r}"
                f"/activation={j.activation}/trainable_bias={int(j.trainable_bias)}"
                f"/parametrization={j.parametrization}/norm_sq_x={self.norm_sq_x!r}/norm_sq_y={self.norm_sq_y!r}"
                f"/inner_product={self.inner_product!r}/diagonal={int(self.is_diagonal)}")

    def __repr__(self) -> str:
        return (f"EntryLaw(widths={self.widths}, sigma_w2={self.sigma_w2}, inner_product={self.inner_product}, "
                f"norm_sq_x={self.norm_sq_x}, norm_sq_y={self.norm_sq_y}, sigma_b2={self.sigma_b2}, "
                f"activation={self.activation!r}, trainable_bias={self.trainable_bias}, "
                f"parametrization={self.parametrization!r})")

    def sample(self, draws: int, rng: np.random.Generator, *, workers: int = 1) -> np.ndarray:
        """``draws`` independent exact draws of ``Theta(x, y)``; float64 array [draws]."""
        theta = self._joint.sample(draws, rng, workers=workers)
        return theta[:, 0, 0] if self.is_diagonal else theta[:, 0, 1]

    def moments(self, draws: int, rng: np.random.Generator, *, workers: int = 1) -> "MomentSummary":
        """:func:`moment_summary` of this entry from ``draws`` draws."""
        return moment_summary(self, draws, rng, workers=workers)


# ---------------------------------------------------------------------------------------------
# Monte Carlo moments
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MomentSummary:
    """Monte Carlo moments of one NTK entry (module docstring, section 6).

    Attributes:
        draws: number of draws S.
        mean, mean_error: sample mean of Theta and its standard error ``sd / sqrt(S)``.
        second_moment, second_moment_error: sample mean of Theta^2 and its standard error.
        dispersion, dispersion_error: ``mean(Theta^2) / mean(Theta)^2`` and its delta-method
            standard error.  Errors need finite fourth moments and are themselves noisy for
            heavy-tailed laws; the dispersion estimator is biased low at small S.
    """

    draws: int
    mean: float
    mean_error: float
    second_moment: float
    second_moment_error: float
    dispersion: float
    dispersion_error: float


def summarize_moments(theta) -> MomentSummary:
    """:class:`MomentSummary` of given draws ``theta`` (1-D, at least 2 finite values)."""
    x = np.asarray(theta, dtype=float).reshape(-1)
    if x.size < 2:
        raise ValueError(f"theta must hold at least 2 draws (got {x.size})")
    if not np.all(np.isfinite(x)):
        raise ValueError("theta must be finite")
    S = x.size
    root = math.sqrt(S)
    mean = float(x.mean())
    sq = x * x
    second = float(sq.mean())
    mean_err = float(x.std(ddof=1) / root)
    second_err = float(sq.std(ddof=1) / root)
    if mean == 0.0:
        return MomentSummary(S, mean, mean_err, second, second_err, math.nan, math.nan)
    t = x / mean                                     # scale first: no overflow in t^2 at depth
    dispersion = float(np.mean(t * t))
    influence = t * t - 2.0 * dispersion * t
    return MomentSummary(S, mean, mean_err, second, second_err, dispersion, float(influence.std(ddof=1) / root))


def moment_summary(law, draws: int, rng: np.random.Generator, *, workers: int = 1) -> MomentSummary:
    """Mean and dispersion, with Monte Carlo errors, of ``draws`` draws of ``law``.

    ``law``: anything with ``sample(draws, rng) -> [draws]`` (:class:`EntryLaw`,
    :class:`reference.ExactLaw`).  All draws are held in memory (8 bytes each).  Heavy tails:
    use >= 10^5 draws; see the module docstring.
    """
    draws = integer_at_least("draws", draws, 2)
    rng = _check_rng(rng)
    if isinstance(law, (EntryLaw, JointLaw)):
        theta = law.sample(draws, rng, workers=workers)
    else:
        theta = law.sample(draws, rng)
    return summarize_moments(theta)

