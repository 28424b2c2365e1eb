"""How much an NTK moved during training, and statistics over networks.

NTK comparisons (``theta_t`` the NTK after t steps, ``theta_0`` at initialization; any shape,
compared entrywise, so both the output-trace [N, N] and the full [N, N, O, O] NTK work):

- :func:`relative_change`  ``|Theta_t - Theta_0|_F / |Theta_0|_F``;
- :func:`alignment`        ``<Theta_t, Theta_0>_F / (|Theta_t|_F |Theta_0|_F)`` (cosine; 1 = same direction);
- :func:`eigenvalue_change` ``(lambda_i(Theta_t) - lambda_i(Theta_0)) / lambda_i(Theta_0)`` for the k
  largest eigenvalues of a symmetric [N, N] matrix;
- :func:`block_ratio`      mean |within-class off-diagonal entry| / mean |between-class entry| of a
  [N, N] matrix with given class labels (diagonal entries Theta(x, x) excluded: they are norms,
  not similarities, and would make the ratio large for any kernel);
- :func:`class_block_ratios` the paper's own Fig. 4 measures (Seleznova & Kutyniok 2022; the
  authors' notebook ``ntk_dynamics_figures.ipynb``), scale-free ratios of an [N, N] matrix to
  the mean of its diagonal ``Theta_d``: ``Theta_c / Theta_d`` (the mean of the class-diagonal
  blocks, diagonal entries included) and ``Theta_n / Theta_d`` (the mean of every entry outside
  them), with the paper's error bars.

Statistics (numpy/scipy, no torch):

- :func:`mean_interval` the mean over networks with its Student-t confidence interval;
- :func:`geometric_mean_interval` the same on the log scale (positive, multiplicative spreads);
- :func:`welch_ratio_test` is one group of networks' quantity smaller than another's (one-sided
  Welch t-test on logs, the comparison behind claim 3: smallest in the ordered phase);
- :func:`least_squares_fit` / :func:`power_law_fit` a straight-line fit (of log y on log x for
  the power law) by ordinary least squares over all (seed, x) points, with the t-interval of
  the slope on n - 2 degrees of freedom.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from harness.records import Estimate, Interval
from harness.statistics import t_interval


def _flat(theta) -> np.ndarray:
    if hasattr(theta, "detach"):
        theta = theta.detach().cpu().numpy()
    return np.asarray(theta, dtype=np.float64).ravel()


def relative_change(theta_t, theta_0) -> float:
    """``|Theta_t - Theta_0|_F / |Theta_0|_F`` (both of the same shape)."""
    a, b = _flat(theta_t), _flat(theta_0)
    if a.shape != b.shape:
        raise ValueError(f"relative_change: shapes differ ({a.size} vs {b.size} entries)")
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def alignment(theta_t, theta_0) -> float:
    """Kernel alignment (cosine similarity of the flattened matrices)."""
    a, b = _flat(theta_t), _flat(theta_0)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _square(theta) -> np.ndarray:
    if hasattr(theta, "detach"):
        theta = theta.detach().cpu().numpy()
    m = np.asarray(theta, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square [N, N] matrix; got shape {m.shape}")
    return m


def top_eigenvalues(theta, k: int) -> np.ndarray:
    """The k largest eigenvalues of the symmetric part of [N, N] ``theta``, descending."""
    m = _square(theta)
    values = np.linalg.eigvalsh((m + m.T) / 2)
    return values[::-1][: min(k, values.size)]


def eigenvalue_change(theta_t, theta_0, k: int) -> np.ndarray:
    """[k] relative changes of the k largest eigenvalues, ``(lambda_t - lambda_0) / lambda_0``."""
    return top_eigenvalues(theta_t, k) / top_eigenvalues(theta_0, k) - 1.0


def block_ratio(theta, labels: Sequence[int]) -> float:
    """Mean |within-class off-diagonal entry| / mean |between-class entry| of [N, N] ``theta``."""
    m = np.abs(_square(theta))
    labels = np.asarray(labels)
    if labels.shape != (m.shape[0],):
        raise ValueError(f"block_ratio: {labels.size} labels for a {m.shape[0]} x {m.shape[0]} matrix")
    same = labels[:, None] == labels[None, :]
    within = same & ~np.eye(labels.size, dtype=bool)
    between = ~same
    if not within.any() or not between.any():
        raise ValueError("block_ratio needs at least two classes and two samples in some class")
    return float(m[within].mean() / m[between].mean())


@dataclass(frozen=True)
class ClassBlockRatios:
    """The paper's Fig. 4 measures of one [N, N] NTK matrix on class-grouped inputs.

    With ``d = mean_a Theta(x_a, x_a)`` (the mean of the diagonal), the class-diagonal blocks
    ``B_k = {(a, b): y_a = y_b = k}`` (diagonal included) and the off-class entries
    ``O = {(a, b): y_a != y_b}``:

    - ``class_block_over_diagonal``  = mean of Theta over the union of the B_k, / d
      (equal-size classes: the mean of the block means, as the notebook's
      ``np.mean(extract_block_diag(K, 10))``);
    - ``class_block_over_diagonal_error`` = mean over classes k of std(Theta on B_k), / d
      (the notebook's error bar: population standard deviations, ``np.std``);
    - ``off_class_over_diagonal``   = mean of Theta over O, / d;
    - ``off_class_over_diagonal_error`` = std(Theta on O), / d.
    """

    class_block_over_diagonal: float
    class_block_over_diagonal_error: float
    off_class_over_diagonal: float
    off_class_over_diagonal_error: float


def class_block_ratios(theta, labels: Sequence[int]) -> ClassBlockRatios:
    """The paper's Fig. 4 ratios of [N, N] ``theta`` with one class label per row (see
    :class:`ClassBlockRatios`); the rows need not be sorted by class."""
    m = _square(theta)
    labels = np.asarray(labels)
    if labels.shape != (m.shape[0],):
        raise ValueError(f"class_block_ratios: {labels.size} labels for a {m.shape[0]} x {m.shape[0]} matrix")
    classes = np.unique(labels)
    if classes.size < 2:
        raise ValueError("class_block_ratios needs at least two classes")
    diagonal = float(np.mean(np.diag(m)))
    same = labels[:, None] == labels[None, :]
    blocks = [m[np.ix_(labels == k, labels == k)] for k in classes]
    off = m[~same]
    return ClassBlockRatios(
        class_block_over_diagonal=float(m[same].mean() / diagonal),
        class_block_over_diagonal_error=float(np.mean([block.std() for block in blocks]) / diagonal),
        off_class_over_diagonal=float(off.mean() / diagonal),
        off_class_over_diagonal_error=float(off.std() / diagonal),
    )


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean of ``values`` with the Student-t interval ``mean +- t_{(1+c)/2, n-1} s / sqrt(n)``
    (:func:`harness.statistics.t_interval`; unbounded for one value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_interval needs at least one value")
    return Estimate(float(v.mean()), t_interval(v, confidence), confidence)


def describe(estimate: Estimate, count: int) -> str:
    """``mean [low, high] (95% CI, n networks)``."""
    return (f"{estimate.value:.4g} [{estimate.interval.low:.4g}, {estimate.interval.high:.4g}] "
            f"({estimate.confidence:.0%} CI, {count} networks)")


@dataclass(frozen=True)
class LineFit:
    """``y = intercept + slope * x`` by least squares; ``interval`` the t-interval of the slope."""

    slope: float
    intercept: float
    interval: tuple[float, float]
    standard_error: float
    confidence: float
    points: int

    def __str__(self) -> str:
        return (f"slope {self.slope:.4g} [{self.interval[0]:.4g}, {self.interval[1]:.4g}] "
                f"({self.confidence:.0%} CI, {self.points} points), intercept {self.intercept:.4g}")


def least_squares_fit(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> LineFit:
    """Ordinary least squares of y on x with the t-interval of the slope (n - 2 dof).

    The points are assumed independent with equal variance (here: one point per seed and x;
    the networks of different seeds and sizes are drawn independently).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"least_squares_fit: x and y must be 1-d of equal length; got {x.shape}, {y.shape}")
    if np.unique(x).size < 2:
        raise ValueError("least_squares_fit needs at least two distinct x values")
    n = x.size
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum() / sxx)
    intercept = float(ym - slope * xm)
    if n <= 2:
        return LineFit(slope, intercept, (-math.inf, math.inf), math.inf, confidence, n)
    residuals = y - intercept - slope * x
    se = math.sqrt(float((residuals ** 2).sum()) / (n - 2) / sxx)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 2)) * se
    return LineFit(slope, intercept, (slope - half, slope + half), se, confidence, n)


def power_law_fit(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> LineFit:
    """Fit ``y = A x^alpha``: least squares of log y on log x; ``slope`` is the exponent alpha.

    All y must be positive.
    """
    y = np.asarray(y, dtype=np.float64)
    if np.any(~(y > 0)):
        raise ValueError(f"power_law_fit needs positive y; got {y[~(y > 0)][:5]}")
    return least_squares_fit(np.log(np.asarray(x, dtype=np.float64)), np.log(y), confidence)


def geometric_mean_interval(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Geometric mean of positive ``values`` with the exponentiated t-interval of the mean of their logs.

    The relative change of an NTK is positive and spreads multiplicatively over networks (a
    factor of 2 or more between seeds), so its log is the scale on which a t-interval is
    honest; ``exp`` of the interval's ends is an interval for the median of a log-normal spread.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or np.any(~(v > 0)):
        raise ValueError(f"geometric_mean_interval needs positive values; got {v.tolist()}")
    logs = np.log(v)
    low, high = t_interval(logs, confidence)
    return Estimate(float(math.exp(logs.mean())), Interval(math.exp(low), math.exp(high)), confidence)


@dataclass(frozen=True)
class RatioTest:
    """One-sided Welch t-test that ``a`` is smaller than ``b`` on the log scale.

    ``ratio``: geometric mean of a over geometric mean of b; ``upper``: the one-sided
    ``1 - level`` upper bound of that ratio, ``lower`` the one-sided lower bound (the reverse
    test at the same level); ``p_value``: of H0 "mean log a >= mean log b";
    ``degrees_of_freedom``: Welch-Satterthwaite. ``smaller``: ``upper < 1`` (a smaller at
    ``level``); ``larger``: ``lower > 1`` (a larger at ``level``).
    """

    ratio: float
    lower: float
    upper: float
    p_value: float
    degrees_of_freedom: float
    level: float

    @property
    def smaller(self) -> bool:
        return self.upper < 1.0

    @property
    def larger(self) -> bool:
        return self.lower > 1.0

    def __str__(self) -> str:
        return (f"ratio {self.ratio:.3g}, one-sided {1 - self.level:.0%} bounds [{self.lower:.3g}, {self.upper:.3g}], "
                f"p = {self.p_value:.3g} (Welch, {self.degrees_of_freedom:.1f} dof, on logs)")


def welch_ratio_test(a: Sequence[float], b: Sequence[float], level: float = 0.05) -> RatioTest:
    """Is ``a`` smaller than ``b``? Welch's t-test on ``log a`` and ``log b`` (positive values,
    at least two of each), one-sided at ``level``; see :class:`RatioTest`.

    Size: when the mean logs are equal, ``smaller`` is true with probability ``level`` (for
    normal logs; Welch's approximation of the null distribution is close for 3 or more values
    per group); when a's mean log is larger, with less.
    """
    la, lb = np.log(np.asarray(a, dtype=np.float64)), np.log(np.asarray(b, dtype=np.float64))
    if la.size < 2 or lb.size < 2 or not (np.all(np.isfinite(la)) and np.all(np.isfinite(lb))):
        raise ValueError(f"welch_ratio_test needs at least two positive values per group; got {list(a)}, {list(b)}")
    va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
    difference = float(la.mean() - lb.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:
        dof = float(la.size + lb.size - 2)
        bound = difference
        return RatioTest(math.exp(difference), math.exp(bound), math.exp(bound),
                         0.0 if difference < 0 else 1.0, dof, level)
    dof = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
    quantile = float(stats.t.ppf(1 - level, dof))
    p_value = float(stats.t.cdf(difference / se, dof))
    return RatioTest(math.exp(difference), math.exp(difference - quantile * se), math.exp(difference + quantile * se),
                     p_value, float(dof), level)
