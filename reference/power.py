"""Power of the exact-law checks against a scale error ``Theta -> c Theta``.

Owns: :func:`scale_acceptance` (for many null data sets, the range of scales c at which a
family of checks accepts ``c * data``), :func:`power_at_scale`, :func:`minimum_detectable_scale`
and :func:`case_minimum_detectable_scale` (the harness's Bonferroni split, calibrated here).

The question.  A case holds its S measured samples to accepted intervals of some statistics
(:func:`reference.acceptance.acceptance_intervals`) and optionally to the KS goodness of fit
(:func:`reference.acceptance.goodness_of_fit`) at a level.  An NTK implementation with a
wrong scale produces ``c * Theta`` instead of ``Theta``.  The family "catches" it when any of
its checks fails.  ``power(c) = P(some check fails | data = c * exact draws)``, and the
minimum detectable scale errors are the c < 1 and the c > 1 at which power reaches a target
(default 0.9).

Exact reduction to one pass.  Draw n null data sets ``x`` of size S from the exact law once
(independent of the calibration and of the KS reference).  For each data set and each check
the set of c > 0 at which the check accepts ``c x`` is a closed interval, found in closed form:

* ``log_mean(c x) = log_mean(x) + log c``: accept iff
  ``c in [exp(lo - log_mean(x)), exp(hi - log_mean(x))]``;
* ``mean(c x) = c mean(x)``: ``c in [lo / mean(x), hi / mean(x)]`` (ends swapped for a
  negative mean, as off-diagonal entries can have);
* ``dispersion`` and ``log_variance`` are scale-free (``dispersion(c x) = dispersion(x)``,
  ``log_variance(c x) = log_variance(x)``): they accept for all c or for none, so they
  cannot see a scale error; they only add their null false alarms;
* KS against the sorted reference sample ``r_1 <= ... <= r_N`` with critical distance d
  (:func:`reference.acceptance.goodness_of_fit_critical_distance`): with ``x_(i)`` sorted,
  ``D(c x) <= d`` iff for every i ``G(c x_(i)) >= i/S - d`` and ``G((c x_(i))-) <= (i-1)/S + d``
  (G the reference distribution function), i.e. ``c x_(i) >= r_(k_i)`` with ``k_i`` the
  smallest count with ``k_i / N >= i/S - d`` and ``c x_(i) <= r_(j_i + 1)`` with ``j_i`` the
  largest count with ``j_i / N <= (i-1)/S + d`` (c > 0 keeps the order of the samples, of
  any sign): again an interval in c, found with precomputed thresholds (no KS call per
  data set).

The family accepts ``c x`` iff c lies in the intersection of its checks' intervals, so the
estimated power at every c is one count, ``1 - #{i : c in [low_i, high_i]} / n``, and the
detectable scales are exact crossings of that step function.  Monte Carlo error: at the
crossing the power estimate has standard error ``sqrt(p (1 - p) / n)`` (0.0021 for p = 0.9,
n = 20,000); inverting the estimated curve at ``p -+ 1.96`` of them gives the reported 95%
Monte Carlo interval of each detectable scale.

Cost: n S (depth + 1) layer-draws (n = 20,000 is 29% of a calibration at alpha = 2e-4,
delta = 1e-3), plus sorting the data sets when KS is included.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _stats

from . import acceptance as _acceptance
from ._validate import integer_at_least, positive_float, probability_open

_POWER_TAG = 0x706F776572  # null data sets of power estimates: SeedSequence([seed, tag])
GOODNESS_OF_FIT = "goodness_of_fit"


@dataclass(frozen=True)
class ScaleAcceptance:
    """For each of ``replicates`` null data sets, the closed range ``[low[i], high[i]]`` of scales c
    at which every check of the family accepts ``c * data`` (empty when ``low[i] > high[i]``).

    Attributes:
        low, high: float arrays of shape [replicates].
        per_check: ``{check: (low, high)}`` for each check alone (statistic names, and
            ``"goodness_of_fit"`` for the KS check).
        replicates: number of null data sets n.
        scale_free: the checks that cannot see a scale error (dispersion, log_variance).
    """

    low: np.ndarray
    high: np.ndarray
    per_check: dict
    replicates: int
    scale_free: tuple = ()

    def power(self, c, check: str | None = None) -> np.ndarray:
        """Estimated probability that the family (or ``check`` alone) fails on ``c * Theta``;
        ``c`` scalar or array, result of the same shape."""
        low, high = (self.low, self.high) if check is None else self.per_check[check]
        nonempty = low <= high
        lows, highs = np.sort(low[nonempty]), np.sort(high[nonempty])
        c = np.asarray(c, dtype=float)
        accepted = (np.searchsorted(lows, c, side="right") - np.searchsorted(highs, c, side="left"))
        return 1.0 - accepted / self.replicates

    def standard_error(self, c, check: str | None = None) -> np.ndarray:
        """Binomial standard error of :meth:`power` (``sqrt(p (1 - p) / n)``)."""
        p = self.power(c, check)
        return np.sqrt(p * (1.0 - p) / self.replicates)

    def crossing(self, target: float, side: str, check: str | None = None) -> float:
        """``side="high"``: the smallest c > 1 above which the estimated power is ``>= target``
        (just above that c); ``side="low"``: the largest c < 1 below which it is.  ``nan`` if the
        checks are scale-free; ``inf`` (high) or 0 (low) if no c in the data reaches it."""
        low, high = (self.low, self.high) if check is None else self.per_check[check]
        if check in self.scale_free:
            return math.nan
        nonempty = low <= high
        lows, highs = np.sort(low[nonempty]), np.sort(high[nonempty])
        n = self.replicates
        if side == "high":
            candidates = highs[highs >= 1.0]
            if candidates.size == 0:
                return math.inf
            # just above h: accepted = #{low <= h} - #{high <= h}
            accepted = (np.searchsorted(lows, candidates, side="right")
                        - np.searchsorted(highs, candidates, side="right"))
            hit = np.nonzero(1.0 - accepted / n >= target)[0]
            return float(candidates[hit[0]]) if hit.size else math.inf
        if side == "low":
            candidates = lows[lows <= 1.0][::-1]
            if candidates.size == 0:
                return 0.0
            # just below l: accepted = #{low < l} - #{high < l}
            accepted = (np.searchsorted(lows, candidates, side="left")
                        - np.searchsorted(highs, candidates, side="left"))
            hit = np.nonzero(1.0 - accepted / n >= target)[0]
            return float(candidates[hit[0]]) if hit.size else 0.0
        raise ValueError(f"side must be 'low' or 'high' (got {side!r})")


@dataclass(frozen=True)
class DetectableScale:
    """Minimum detectable scale errors of a family of checks (:func:`minimum_detectable_scale`).

    Attributes:
        low: the c < 1 at which ``c * Theta`` is caught with probability ``power`` (smaller c
            are caught more often).
        high: the c > 1 likewise.
        low_interval, high_interval: 95% Monte Carlo intervals of ``low`` and ``high``.
        power: the target probability of catching the error.
        null_rejection: estimated probability that the family fails at c = 1 (its false alarms).
        per_check: ``{check: (low, high)}`` for each check alone; ``None`` for the scale-free
            statistics (dispersion, log_variance), which cannot see a scale error.
        replicates: number of null data sets behind the estimates.
        curve: ``(c, power)``, the estimated power on 41 scales spanning ``[low / 1.1, high * 1.1]``
            (``[0.5, 2]`` for scale-free families).
        acceptance: the :class:`ScaleAcceptance` the numbers come from (power at any c), or None
            for a result read from a cache.
    """

    low: float
    high: float
    low_interval: tuple
    high_interval: tuple
    power: float
    null_rejection: float
    per_check: dict
    replicates: int
    curve: tuple = field(repr=False, default=((), ()))
    acceptance: ScaleAcceptance | None = field(repr=False, default=None)

    def power_curve(self, c) -> tuple[np.ndarray, np.ndarray]:
        """``(power, standard_error)`` of the family at the scales ``c`` (array)."""
        if self.acceptance is None:
            raise ValueError("power_curve needs the simulation itself; this result was read from a cache "
                             "(use .curve, or call again with cache_dir=None)")
        return self.acceptance.power(c), self.acceptance.standard_error(c)

    def to_json(self) -> dict:
        """The numbers as plain JSON types (no simulation arrays)."""
        return {"low": self.low, "high": self.high, "low_interval": list(self.low_interval),
                "high_interval": list(self.high_interval), "power": self.power,
                "null_rejection": self.null_rejection, "replicates": self.replicates,
                "per_check": {k: (None if v is None else list(v)) for k, v in self.per_check.items()},
                "curve": [list(map(float, self.curve[0])), list(map(float, self.curve[1]))]}

    @classmethod
    def from_json(cls, content: dict) -> "DetectableScale":
        return cls(low=float(content["low"]), high=float(content["high"]),
                   low_interval=tuple(map(float, content["low_interval"])),
                   high_interval=tuple(map(float, content["high_interval"])), power=float(content["power"]),
                   null_rejection=float(content["null_rejection"]), replicates=int(content["replicates"]),
                   per_check={k: (None if v is None else tuple(map(float, v)))
                              for k, v in content["per_check"].items()},
                   curve=(np.array(content["curve"][0]), np.array(content["curve"][1])))


def _ks_thresholds(reference: np.ndarray, networks: int, critical: float) -> tuple[np.ndarray, np.ndarray]:
    """Per sorted sample index i = 1..S: the value ``c x_(i)`` must reach (``lower``; -inf = no
    constraint, +inf = impossible) and must not exceed (``upper``; +inf = no constraint)."""
    n_ref = reference.size
    i = np.arange(1, networks + 1, dtype=float)
    # lower: smallest count k with k / N >= i/S - d (float comparisons as in the KS statistic)
    p = i / networks - critical
    k = np.ceil(p * n_ref)
    k = np.where((k - 1.0) / n_ref >= p, k - 1.0, k)
    k = np.where(k / n_ref < p, k + 1.0, k)
    lower = np.where(k <= 0, -np.inf, np.inf)
    inside = (k >= 1) & (k <= n_ref)
    lower[inside] = reference[k[inside].astype(np.int64) - 1]
    # upper: largest count j with j / N <= (i-1)/S + d; then c x_(i) <= r_(j+1)
    q = (i - 1.0) / networks + critical
    j = np.floor(q * n_ref)
    j = np.where(j / n_ref > q, j - 1.0, j)
    j = np.where((j + 1.0) / n_ref <= q, j + 1.0, j)
    upper = np.full(networks, np.inf)
    inside = (j >= 0) & (j < n_ref)
    upper[inside] = reference[j[inside].astype(np.int64)]
    upper[j < 0] = -np.inf   # cannot happen for d >= 0; kept for completeness
    return lower, upper


def _ks_scale_range(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise range of c > 0 with KS accepting ``c x`` (x: [r, S], any signs; thresholds from
    _ks_thresholds).  ``lower_i <= c x_(i) <= upper_i`` bounds c from below and above by
    ``lower_i / x_(i)`` and ``upper_i / x_(i)`` (swapped for x_(i) < 0; all or nothing at 0);
    c > 0 keeps the order of the samples."""
    xs = np.sort(x, axis=1)
    positive, negative = xs > 0, xs < 0
    zero_ok = (lower <= 0.0) & (0.0 <= upper)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_lower, by_upper = lower / xs, upper / xs
    lo = np.where(positive, by_lower, np.where(negative, by_upper, np.where(zero_ok, 0.0, np.inf)))
    hi = np.where(positive, by_upper, np.where(negative, by_lower, np.where(zero_ok, np.inf, 0.0)))
    return np.maximum(lo.max(axis=1), 0.0), hi.min(axis=1)


def _statistic_scale_range(name: str, values: np.ndarray, interval) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = float(interval[0]), float(interval[1])
    everything = (np.zeros_like(values), np.full_like(values, np.inf))
    nothing = (np.full_like(values, np.inf), np.zeros_like(values))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if name == "log_mean":
            return np.exp(lo - values), np.exp(hi - values)          # NaN -> NaN: never accepted
        if name == "mean":                                           # c > 0 flips nothing
            positive, negative = values > 0, values < 0
            ok_zero = (lo <= 0.0 <= hi)
            low = np.where(positive, lo / values, np.where(negative, hi / values, 0.0 if ok_zero else np.inf))
            high = np.where(positive, hi / values, np.where(negative, lo / values, np.inf if ok_zero else 0.0))
            return np.maximum(low, 0.0), high
    accepted = (lo <= values) & (values <= hi)                         # scale-free
    return np.where(accepted, everything[0], nothing[0]), np.where(accepted, everything[1], nothing[1])


def scale_acceptance(law, networks: int, intervals=None, *, goodness_of_fit_level=None, reference_seed: int = 0,
                     reference_size=None, delta=_acceptance.DEFAULT_DELTA, replicates: int = 20_000, seed: int = 0,
                     threads=None) -> ScaleAcceptance:
    """The accepted scale range of ``replicates`` null data sets of size S = ``networks`` (module docstring).

    Args:
        law: duck-typed law (see :mod:`reference.acceptance`).
        samples: S, the case's sample size.
        intervals: ``{statistic: (lo, hi)}`` the case checks (e.g. from ``acceptance_intervals``).
        goodness_of_fit_level: the KS check's level (accept iff p >= level), or None for no KS.
        reference_seed, reference_size, delta: those of the case's ``goodness_of_fit`` call.
        replicates, seed: number of null data sets and their seed (drawn with entropy
            ``[seed, 0x706F776572]``, so never the calibration's own replicates).
    """
    _acceptance.check_law(law)
    networks = integer_at_least("networks", networks, 2)
    replicates = integer_at_least("replicates", replicates, 1)
    seed = integer_at_least("seed", seed, 0)
    intervals = dict(intervals or {})
    statistics = _acceptance._check_statistics(tuple(intervals)) if intervals else ()
    if not statistics and goodness_of_fit_level is None:
        raise ValueError("intervals must name at least one statistic, or goodness_of_fit_level must be given")
    lower = upper = None
    if goodness_of_fit_level is not None:
        level = probability_open("goodness_of_fit_level", goodness_of_fit_level)
        size = (_acceptance.default_reference_size(networks) if reference_size is None
                else integer_at_least("reference_size", reference_size, 2))
        reference = _acceptance.reference_sample(law, size, reference_seed)
        critical = _acceptance.goodness_of_fit_critical_distance(networks, level, size, delta)
        lower, upper = _ks_thresholds(reference, networks, critical)

    def ranges(x: np.ndarray) -> dict:
        out = {}
        if statistics:
            values = _acceptance._estimates(x, statistics)
            for name in statistics:
                out[name + ":low"], out[name + ":high"] = _statistic_scale_range(name, values[name], intervals[name])
        if lower is not None:
            out[GOODNESS_OF_FIT + ":low"], out[GOODNESS_OF_FIT + ":high"] = _ks_scale_range(x, lower, upper)
        return out

    raw = _acceptance.map_replicates(law, networks, replicates, ranges, entropy=[seed, _POWER_TAG], threads=threads)
    checks = list(statistics) + ([GOODNESS_OF_FIT] if lower is not None else [])
    per_check = {}
    for name in checks:
        low, high = raw[name + ":low"], raw[name + ":high"]
        bad = np.isnan(low) | np.isnan(high)
        per_check[name] = (np.where(bad, np.inf, low), np.where(bad, 0.0, high))
    low = np.max([per_check[c][0] for c in checks], axis=0)
    high = np.min([per_check[c][1] for c in checks], axis=0)
    scale_free = tuple(c for c in checks if c in _acceptance.SCALE_FREE_STATISTICS)
    return ScaleAcceptance(low=low, high=high, per_check=per_check, replicates=replicates, scale_free=scale_free)


@dataclass(frozen=True)
class PowerEstimate:
    """Estimated probability of catching ``c * Theta``: ``power`` and its binomial
    ``standard_error`` over ``replicates`` null data sets (arrays shaped like ``c``)."""

    power: np.ndarray
    standard_error: np.ndarray
    replicates: int


def power_at_scale(c, law, networks: int, intervals=None, **options) -> PowerEstimate:
    """Probability that the family (``intervals`` and, with ``goodness_of_fit_level``, KS) fails on
    ``c * Theta`` with S = ``networks``; ``c`` > 0 scalar or array.  ``options``: those of
    :func:`scale_acceptance`."""
    values = np.asarray(c, dtype=float)
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"c must be finite and > 0 (got {c!r})")
    accepted = scale_acceptance(law, networks, intervals, **options)
    return PowerEstimate(accepted.power(values), accepted.standard_error(values), accepted.replicates)


def minimum_detectable_scale(law, networks: int, intervals=None, *, power: float = 0.9, **options) -> DetectableScale:
    """The c < 1 and c > 1 at which ``Theta -> c Theta`` is caught with probability ``power``.

    Caught = any check of the family fails: each statistic in ``intervals`` (``{name: (lo, hi)}``,
    the case's accepted intervals) and, if ``goodness_of_fit_level`` is given, the KS check.
    Simulated from the exact law (``replicates`` null data sets, default 20,000) with the
    reduction of the module docstring; ``low_interval``/``high_interval`` give the 95% Monte
    Carlo error.  Scale-free statistics (dispersion, log_variance) get ``per_check[name] = None``:
    they cannot see a scale error.  ``options``: those of :func:`scale_acceptance`.
    """
    target = probability_open("power", power)
    accepted = scale_acceptance(law, networks, intervals, **options)
    se = math.sqrt(target * (1.0 - target) / accepted.replicates)
    z = _stats.norm.isf(0.025)

    def crossing(side, p, check=None):
        return accepted.crossing(min(max(p, 1e-12), 1.0), side, check)

    per_check = {}
    for check in accepted.per_check:
        if check in accepted.scale_free:
            per_check[check] = None
        else:
            per_check[check] = (crossing("low", target, check), crossing("high", target, check))
    if len(accepted.scale_free) == len(accepted.per_check):
        low = high = math.nan
        low_interval = high_interval = (math.nan, math.nan)
    else:
        low, high = crossing("low", target), crossing("high", target)
        low_interval = (crossing("low", target - z * se), crossing("low", target + z * se))
        high_interval = (crossing("high", target - z * se), crossing("high", target + z * se))
    low_interval = (min(low_interval), max(low_interval))
    high_interval = (min(high_interval), max(high_interval))
    span = (0.5, 2.0) if math.isnan(low) else (max(low, 1e-300) / 1.1, min(high, 1e300) * 1.1)
    grid = np.geomspace(min(span[0], 0.99), max(span[1], 1.01), 41)
    return DetectableScale(low=low, high=high, low_interval=low_interval, high_interval=high_interval,
                           power=target, null_rejection=float(accepted.power(1.0)), per_check=per_check,
                           replicates=accepted.replicates, curve=(grid, accepted.power(grid)),
                           acceptance=accepted)


def _normal_solve(power_at, target: float, inside: float, outside: float) -> float:
    """The c between ``inside`` (power below target) and ``outside`` where ``power_at`` reaches
    ``target`` (bisection to 1e-6); ``outside`` when even it stays below."""
    if power_at(outside) < target:
        return outside
    for _ in range(60):
        middle = 0.5 * (inside + outside)
        if power_at(middle) >= target:
            outside = middle
        else:
            inside = middle
        if abs(outside - inside) < 1e-6:
            break
    return outside


def two_sample_detectable_scale(exact: np.ndarray, networks: int, alpha: float, *, power: float = 0.9,
                                entries: int | None = None) -> tuple[float, float]:
    """The factors c < 1 and c > 1 at which the permutation test of the MEAN (over the entries jointly,
    :func:`reference.two_sample.permutation_test`) catches ``Theta -> c Theta`` with probability
    ``power``, for S = ``networks`` measured rows against the ``exact`` rows [R, m] it is run with.

    The normal approximation of the test: for entry j with exact mean mu_j and standard deviation
    sigma_j (from ``exact``), a measured sample scaled by c has a mean difference
    ``d_j ~ N((c - 1) mu_j, sigma_j^2 (c^2 / S + 1 / R))`` and the permutation standard deviation of
    ``d_j`` under the null is ``sigma_j sqrt(1 / S + 1 / R)``. The joint test rejects when
    ``max_j |d_j| / sd_j`` exceeds its threshold, which is at most the Bonferroni threshold
    ``t = z_{1 - alpha / (2 m)}`` over the m entries (``entries``, default the columns of
    ``exact``); so its power is at least that of the most sensitive entry's test at ``t``::

        power_j(c) = Phi((|a| - tau) / b) + Phi((-|a| - tau) / b),
        a = (c - 1) mu_j,  b = sigma_j sqrt(c^2 / S + 1 / R),  tau = t sigma_j sqrt(1 / S + 1 / R)

    and the returned factors (bisection on each side, to 1e-6) are where the best entry reaches
    ``power``: a scale error at least this far from 1 is caught with probability >= ``power``
    up to the normal approximation (tests/reference/test_reference_power.py checks it against the
    real permutation test by simulation). ``(0, inf)`` when no entry has a non-zero mean.
    """
    from scipy import stats as _scipy_stats

    exact = np.asarray(exact, dtype=float)
    if exact.ndim == 1:
        exact = exact[:, None]
    networks = integer_at_least("networks", networks, 2)
    alpha = probability_open("alpha", alpha)
    m = exact.shape[1] if entries is None else integer_at_least("entries", entries, 1)
    rows = exact.shape[0]
    t = float(_scipy_stats.norm.isf(alpha / (2 * m)))
    mu = exact.mean(axis=0)
    sigma = exact.std(axis=0, ddof=1)
    useful = (np.abs(mu) > 0) & (sigma > 0)
    if not useful.any():
        return 0.0, math.inf

    def best_power(c: float) -> float:
        a = np.abs((c - 1.0) * mu[useful])
        b = sigma[useful] * math.sqrt(c * c / networks + 1.0 / rows)
        tau = t * sigma[useful] * math.sqrt(1.0 / networks + 1.0 / rows)
        p = _scipy_stats.norm.cdf((a - tau) / b) + _scipy_stats.norm.cdf((-a - tau) / b)
        return float(p.max())

    return _normal_solve(best_power, power, 1.0, 1e-3), _normal_solve(best_power, power, 1.0, 1e3)


def normal_detectable_scale(law, networks: int, level: float, statistics=_acceptance.STATISTICS, *,
                            power: float = 0.9, reference_seed: int = 0) -> tuple[float, float]:
    """The factors c < 1 and c > 1 at which ONE of the case's scale-sensitive checks (``mean``,
    ``log_mean``, each at its own ``level``) catches ``Theta -> c Theta`` with probability ``power``,
    in the normal approximation: no calibration replicates needed.

    For the estimator T of one check, with exact mean mu_T and standard deviation sd_T at S =
    ``networks`` samples, its calibrated interval at ``level`` is taken as ``mu_T +- z sd_T`` with
    ``z = z_{1 - 1 / (R + 1)}``, R = :func:`reference.acceptance.replicate_count` (``level``): the
    interval's ends are the extremes of R replicates, whose expected tail mass is ``1 / (R + 1)``
    (smaller than ``level / 2``: the price of the per-check guarantee). A scaled sample moves T to ``mu_T + log c`` (log_mean; sd
    unchanged) or to ``c mu_T`` with sd ``c sd_T`` (mean), so
    ``power(c) = Phi((|shift| - z sd_T) / sd_c) + Phi((-|shift| - z sd_T) / sd_c)``.
    log_mean: ``sd_T = sd(log Theta) / sqrt(S)`` over the positive draws of the goodness-of-fit
    reference sample (:func:`reference.acceptance.reference_sample` with ``reference_seed``,
    200,000 draws or more); mean: ``sd_T = sqrt((E[Theta^2] - E[Theta]^2) / S)`` from the exact moments.
    The family catches c whenever one check does, so the best single check bounds its detectable
    scale from outside (conservative); the normal approximation is good for log_mean (light
    tails) and optimistic for the mean of a heavy-tailed law, so the mean is used only where
    log_mean is not checked. ``(0, inf)`` when neither is checked (scale-free checks only).
    tests/reference/test_reference_power.py compares it with :func:`case_minimum_detectable_scale`.
    """
    statistics = _acceptance._check_statistics(statistics)
    networks = integer_at_least("networks", networks, 2)
    level = probability_open("level", level)
    z = float(_stats.norm.isf(1.0 / (_acceptance.replicate_count(level) + 1.0)))
    if "log_mean" in statistics:
        sample = _acceptance.reference_sample(law, _acceptance.default_reference_size(networks), reference_seed)
        positive = sample[sample > 0]
        sd = float(np.std(np.log(positive), ddof=1)) / math.sqrt(networks)

        def power_at(c: float) -> float:
            shift = abs(math.log(c))
            return float(_stats.norm.cdf((shift - z * sd) / sd) + _stats.norm.cdf((-shift - z * sd) / sd))
    elif "mean" in statistics:
        mu = float(law.mean())
        sd = math.sqrt(max(float(law.second_moment()) - mu * mu, 0.0) / networks)

        def power_at(c: float) -> float:
            shift = abs(c - 1.0) * abs(mu)
            return float(_stats.norm.cdf((shift - z * sd) / (c * sd)) + _stats.norm.cdf((-shift - z * sd) / (c * sd)))
    else:
        return 0.0, math.inf
    if sd <= 0:
        return 0.0, math.inf
    return _normal_solve(power_at, power, 1.0, 1e-3), _normal_solve(power_at, power, 1.0, 1e3)


def case_minimum_detectable_scale(law, networks: int, false_alarm_rate: float = 1e-3,
                                  statistics=_acceptance.STATISTICS, goodness_of_fit: bool = True, *,
                                  cache_dir=None, calibration_seed: int = 0, reference_seed: int = 0,
                                  delta=_acceptance.DEFAULT_DELTA, power: float = 0.9, replicates: int = 20_000,
                                  seed: int = 0, threads=None) -> DetectableScale:
    """:func:`minimum_detectable_scale` of an exact-law case as the harness runs it: the case's
    ``false_alarm_rate`` split equally (Bonferroni) over its statistics and the KS check, each
    statistic's interval from ``acceptance_intervals`` (cached under ``cache_dir``), KS at the same
    level against the default-size reference drawn with ``reference_seed`` (the case's sampling
    seed).  With ``cache_dir`` the result is cached too (JSON, atomic; key: every argument, the
    intervals and ``CALIBRATION_VERSION``); a cached result has ``acceptance=None``."""
    statistics = _acceptance._check_statistics(statistics)
    false_alarm_rate = probability_open("false_alarm_rate", false_alarm_rate)
    level = false_alarm_rate / (len(statistics) + int(bool(goodness_of_fit)))
    intervals = _acceptance.acceptance_intervals(law, networks, level, statistics, cache_dir=cache_dir,
                                                 seed=calibration_seed, delta=delta, threads=threads)
    payload = {"kind": "minimum_detectable_scale", "law": law.key(), "networks": int(networks),
               "intervals": {k: list(v) for k, v in intervals.items()},
               "goodness_of_fit_level": level if goodness_of_fit else None, "reference_seed": int(reference_seed),
               "delta": delta, "power": float(power), "replicates": int(replicates), "seed": int(seed),
               "version": _acceptance.CALIBRATION_VERSION}
    path = None
    if cache_dir is not None:
        path = _acceptance._cache_path(cache_dir, payload).replace("acceptance-", "power-")
        try:
            with open(path) as handle:
                stored = json.load(handle)
            if stored.get("payload") == payload:
                return DetectableScale.from_json(stored["result"])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            pass  # missing or unreadable: recompute
    result = minimum_detectable_scale(law, networks, intervals, power=power,
                                      goodness_of_fit_level=level if goodness_of_fit else None,
                                      reference_seed=reference_seed, delta=delta, replicates=replicates,
                                      seed=seed, threads=threads)
    if path is not None:
        _acceptance._atomic_write_json(path, {"payload": payload, "result": result.to_json()})
    return result
