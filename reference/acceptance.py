"""Calibrated acceptance intervals and goodness of fit for measured samples of an NTK entry.

Owns: the estimators the harness applies to measured NTK samples (:func:`estimate`), their
exact sampling distributions at the case's sample size (:func:`acceptance_intervals`, built
on :func:`map_replicates`; :func:`acceptance_decisions`, the same verdicts from only the
replicates they need), and a goodness-of-fit p-value against the exact law
(:func:`goodness_of_fit`).  The guarantee below holds for each check of ONE fixed, cached
calibration, not only on average over calibration seeds.

Laws (duck-typed)
-----------------
Any object with ``.sample(draws, rng) -> float array of shape [size]`` (``rng`` a
``numpy.random.Generator``; independent draws), ``.key() -> str`` (a stable id of every
parameter of the law, used in the disk cache) and ``.depth`` (int, only for cost estimates:
one draw costs about ``depth + 1`` "layer-draws").  :class:`reference.ExactLaw` (diagonal
``Theta(x, x)``) is one; a per-entry law of off-diagonal entries is calibrated the same way.

Estimators (``theta``: 1-D array of S samples)::

    mean          = mean(theta)
    dispersion    = mean(theta^2) / mean(theta)^2
    log_mean      = mean(log theta_+)
    log_variance  = var(log theta_+, ddof=1)

where ``theta_+`` are the strictly positive entries.  Zeros occur only for networks without
trainable biases whose forward pass died (some layer with no active neuron, probability
``1 - prod_l (1 - 2^-n_l)``); the log statistics describe the surviving networks.  With biases
``Theta >= 1`` always.  An estimator that is undefined (no positive entry for log_mean,
fewer than two for log_variance) is NaN, both here and in the calibration replicates.
``mean`` and ``log_mean`` move under a scale error ``Theta -> c Theta`` (by the factor c,
resp. by ``log c``); ``dispersion`` and ``log_variance`` are scale-free and cannot see one.

Calibration: a tolerance interval per tail (exact, not a normal approximation)
-----------------------------------------------------------------------------
Draw R replicate data sets of size S from the law with ONE fixed seed, compute each
estimator on each, and take ``lo = X_(m)`` (m-th smallest replicate) and ``hi = X_(R+1-m)``
(m-th largest).  The interval is closed: accept iff ``lo <= estimate <= hi``.  Let F be the
null distribution function of the estimator (atoms allowed) and ``a = alpha / 2`` the share
of one tail.  Conditionally on the calibration, the lower tail's false-alarm rate is
``p_lo = P(T < X_(m) | X) = F(X_(m)-)``.  Realize ``X_i = F^-1(U_i)`` with i.i.d. uniform
``U_i``; then ``F(X_(m)-) <= U_(m) ~ Beta(m, R + 1 - m)``, so over the calibration draw::

    P(p_lo > a) <= P(U_(m) > a) = P(Binomial(R, a) <= m - 1) =: B(R, m, a)

and the same for the upper tail (``1 - F(X_(R+1-m)) <= 1 - U_(R+1-m)``, the same Beta law).
Undefined estimates (NaN) count as +inf in the replicates (``hi = inf`` if one is among the m
largest), while a measured NaN fails the closed-interval check; the guarantee therefore needs
``P(NaN)`` to be negligible.  For ExactLaw a NaN needs all S networks dead (probability at
most ``(1 - prod_l (1 - 2^-n_l))^S``); for entries that are mostly non-positive (off-diagonal
laws) the log statistics are undefined too often and should not be checked.
We take the smallest R with ``B(R, m, a) <= delta`` (:func:`replicate_count`).  Then, with
probability at least ``1 - delta`` over the one cached calibration, THAT interval's tail has
a false-alarm rate ``<= a`` for every law, every S and every estimator -- heavy tails, atoms
and the low bias of the dispersion estimator at small S included; both tails together hold
``<= alpha`` with probability ``>= 1 - 2 delta``.  Default ``delta = 1e-3``.  For m = 1,
``R = ceil(ln delta / ln(1 - a)) ~ ln(1/delta) / a`` (69,075 for a = 1e-4), and a tail
exceeds ``k a`` with probability ``(1 - k a)^R ~ delta^k``: rates above ``2 a`` happen for
about one calibration in a million.  Averaged over calibration seeds the rate per tail is
only ``m / (R + 1)`` (``a / 6.9`` for m = 1, delta = 1e-3): the price of the conditional
guarantee is a wider interval, i.e. power.

The former construction (``R + 1 = m ceil(2 / alpha)``; ``delta=None`` here) is exact only on
average over calibration seeds: conditionally, for m = 1 its tail rate is ``Beta(1, R)``,
which exceeds ``2 a`` for ``e^-2 = 14%`` of seeds and ``4 a`` for 2% of them.

Choice of m.  Larger m pulls the endpoint towards the true a-quantile (expected tail mass
``m / (R + 1)``, less random) but R grows like ``(m + z_delta sqrt(m) + ...) / a``.  For a
scale error detected through an approximately normal estimator the sample size S needed for
a given power grows with the endpoint's normal quantile, and the total calibration cost
``R * S`` is smallest at m = 1 (table in docs/measurements/calibration_and_power.md:
for a = 1e-4, delta = 1e-3, m = 5 needs R = 2.1x and S = 0.93x of m = 1); m = 1 is the
default and ``m`` may be given.

Cost and speed.  ``R * S * (depth + 1)`` layer-draws, about 52-57 ns each on one core of the
2-core CI box (ExactLaw): S = 400, L = 8, alpha = 2e-4 (the quick cases) is 2.5e8
layer-draws, 13.0 s on one core.  The replicates are split into blocks of a fixed number
of data sets (``2^18 // S``), block b drawn with its own generator
``SeedSequence(seed, spawn_key=(b,))``; blocks run on a thread pool (numpy's generators and
ufuncs release the GIL on large arrays).  The block layout depends only on (R, S), so the
intervals are bit-identical for every number of threads; 2 threads took 6.3 s for the same
calibration on the idle box (2.1x), and gain nothing when other work already fills both
cores (docs/measurements/calibration_and_power.md).
Results are cached as JSON (written atomically) under ``cache_dir``; the key holds every
parameter and ``CALIBRATION_VERSION``, so entries of other versions are never reused.

Decisions without the interval
------------------------------
A verdict needs only ``lo <= t <= hi``, i.e. at least m replicates ``<= t`` and at least m
``>= t`` (NaN as +inf).  :func:`acceptance_decisions` draws the same seeded blocks and stops at
the first block, in block order, where every estimate has both: the verdict of the full
interval, for the same calibration and guarantee, from ``2^18 // S`` data sets instead of R
for a typical passing estimate (R / block = 211 blocks at S = 400, alpha = 1e-4).  An estimate
outside the interval is known to be outside only after the last block; then the intervals are
computed (and cached) as here.

Goodness of fit
---------------
Kolmogorov-Smirnov distance D between the measured samples and a large exact reference
sample (``reference_size`` N, default ``max(200_000, 100 S)``, drawn with a fixed seed).
The fixed reference is itself random; by the Dvoretzky-Kiefer-Wolfowitz inequality (Massart's
constant) its empirical distribution function is within ``eps = sqrt(ln(2 / delta) / (2 N))``
of the true one, uniformly, with probability ``>= 1 - delta``.  On that event
``D <= D_true + eps`` where ``D_true`` is the one-sample distance to the true law, so the
p-value ``P(D_S >= D - eps)`` of the exact one-sample distribution of ``D_S`` (continuous
law; scipy's ``kstwo``) is valid conditionally on the reference: ``P(p < level) <= level``
for every level.  With atoms (``Theta = beta`` for dead networks) ``D_true`` is stochastically
smaller than in the continuous case, so it stays conservative.  ``eps`` = 0.0044 at
N = 200,000, delta = 1e-3, against a critical D of 0.107 at S = 400, level 2e-4.
``delta=None`` gives the former two-sample asymptotic p-value (valid only on average over
reference samples).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import numbers
import os
import tempfile
from dataclasses import dataclass

import numpy as np
from scipy import stats as _stats

from ._validate import integer_at_least, probability_open

STATISTICS = ("mean", "dispersion", "log_mean", "log_variance")
SCALE_FREE_STATISTICS = ("dispersion", "log_variance")

CALIBRATION_VERSION = 2
DEFAULT_DELTA = 1e-3
_BLOCK_DRAWS = 1 << 18      # draws per calibration block (memory and load balance)
_REFERENCE_TAG = 0x9E3779B9  # goodness-of-fit reference samples: rng([seed, tag])


# ---------------------------------------------------------------------------- arguments
def check_law(law, name: str = "law"):
    """Return ``law`` if it provides ``sample(draws, rng)``, ``key()`` and an integer ``depth``."""
    depth = getattr(law, "depth", None)
    if (not callable(getattr(law, "sample", None)) or not callable(getattr(law, "key", None))
            or isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 0):
        raise ValueError(
            f"{name} must provide sample(draws, rng) -> 1-D float array, key() -> str and an integer "
            f"depth >= 0, like reference.ExactLaw (got {type(law).__name__})")
    return law


def _check_statistics(statistics) -> tuple[str, ...]:
    if isinstance(statistics, str):
        statistics = (statistics,)
    out = tuple(statistics)
    for s in out:
        if s not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)} (got {s!r})")
    if not out:
        raise ValueError("statistics must name at least one of " + ", ".join(STATISTICS))
    if len(set(out)) != len(out):
        raise ValueError(f"statistics must not repeat a name (got {out!r})")
    return out


def _check_delta(delta):
    return None if delta is None else probability_open("delta", delta)


def _check_threads(threads) -> int:
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    return integer_at_least("threads", threads, 1)


# ---------------------------------------------------------------------------- estimators
def _estimates(x: np.ndarray, statistics) -> dict[str, np.ndarray]:
    """Row-wise estimators for a [r, S] block of samples (definitions in the module docstring)."""
    out = {}
    if "mean" in statistics or "dispersion" in statistics:
        m1 = x.mean(axis=1)
        out["mean"] = m1
        if "dispersion" in statistics:
            with np.errstate(divide="ignore", invalid="ignore"):
                out["dispersion"] = np.mean(x * x, axis=1) / (m1 * m1)
    if "log_mean" in statistics or "log_variance" in statistics:
        positive = x > 0
        count = positive.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(positive, np.log(np.where(positive, x, 1.0)), 0.0)
            log_mean = logs.sum(axis=1) / count
            out["log_mean"] = np.where(count >= 1, log_mean, np.nan)
            if "log_variance" in statistics:
                dev = np.where(positive, logs - log_mean[:, None], 0.0)
                var = np.sum(dev * dev, axis=1) / (count - 1)
                out["log_variance"] = np.where(count >= 2, var, np.nan)
    return {s: out[s] for s in statistics}


def estimate(theta, statistic: str) -> float:
    """The harness's estimator ``statistic`` on measured samples ``theta`` (shape [S], S >= 1)."""
    (statistic,) = _check_statistics(statistic)
    x = np.asarray(theta, dtype=float).reshape(-1)
    if x.size < 1:
        raise ValueError("theta must hold at least one sample (got an empty array)")
    return float(_estimates(x[None, :], (statistic,))[statistic][0])


# ---------------------------------------------------------------------------- replicates
def block_layout(networks: int, replicates: int) -> list[int]:
    """Data sets per block, in block order: ``2^18 // networks`` each (at least 1), the last
    block holding the rest.  Depends only on its arguments, never on the thread count."""
    per_block = max(1, _BLOCK_DRAWS // networks)
    full, rest = divmod(replicates, per_block)
    return [per_block] * full + ([rest] if rest else [])


def map_replicates(law, networks: int, replicates: int, function, *, entropy=0, threads=None) -> dict:
    """Apply ``function`` to ``replicates`` independent exact data sets of size S = ``networks``.

    The data sets are drawn in the blocks of :func:`block_layout`; block b uses the generator
    ``default_rng(SeedSequence(entropy, spawn_key=(b,)))`` and ``function`` gets the block as a
    float array of shape [r, networks] and returns ``{name: array of shape [r, ...]}``.  Blocks run
    on ``threads`` threads (default: the CPUs this process may use); the concatenated result
    ``{name: array of shape [replicates, ...]}`` is identical for every thread count.
    """
    check_law(law)
    networks = integer_at_least("networks", networks, 1)
    replicates = integer_at_least("replicates", replicates, 1)
    threads = _check_threads(threads)
    layout = block_layout(networks, replicates)

    def run(block: int):
        rows = layout[block]
        rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(block,)))
        x = np.asarray(law.sample(rows * networks, rng), dtype=float)
        if x.shape != (rows * networks,):
            raise ValueError(f"law.sample({rows * networks}, rng) must return shape ({rows * networks},) "
                             f"(got {x.shape} from {type(law).__name__})")
        return function(x.reshape(rows, networks))

    if threads == 1 or len(layout) == 1:
        parts = [run(b) for b in range(len(layout))]
    else:
        with concurrent.futures.ThreadPoolExecutor(min(threads, len(layout))) as pool:
            parts = list(pool.map(run, range(len(layout))))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def replicate_estimates(law, networks: int, replicates: int, statistics=STATISTICS, seed: int = 0, *,
                        threads=None) -> dict[str, np.ndarray]:
    """Each estimator on ``replicates`` independent exact data sets of size S = ``networks``.

    Returns ``{statistic: array of shape [replicates]}`` (the data sets of :func:`map_replicates`
    with ``entropy=seed``; the same for every thread count).
    """
    statistics = _check_statistics(statistics)
    seed = integer_at_least("seed", seed, 0)
    return map_replicates(law, networks, replicates, lambda x: _estimates(x, statistics),
                          entropy=seed, threads=threads)


# ---------------------------------------------------------------------------- calibration
def tail_exceedance_probability(replicates: int, m: int, tail_level: float) -> float:
    """``P(Binomial(R, a) <= m - 1)``: the probability, over the calibration draw, that the tail
    beyond the m-th order statistic of R replicates holds more than ``a`` of the null law."""
    return float(_stats.binom.cdf(m - 1, replicates, tail_level))


def replicate_count(alpha: float, *, delta=DEFAULT_DELTA, m: int = 1) -> int:
    """Number R of replicate data sets for a two-sided interval at level ``alpha`` with the
    m-th order statistic as each end.

    ``delta`` given: the smallest R with ``P(Binomial(R, alpha / 2) <= m - 1) <= delta``
    (per-tail tolerance guarantee, module docstring); ``delta=None``: the former
    ``R = m ceil(2 / alpha) - 1`` (exact only on average over calibration seeds).
    """
    alpha = probability_open("alpha", alpha)
    m = integer_at_least("m", m, 1)
    delta = _check_delta(delta)
    if delta is None:
        return math.ceil(2.0 / alpha) * m - 1
    a = alpha / 2.0
    if m == 1:
        r = max(1, math.ceil(math.log(delta) / math.log1p(-a)))
        while r > 1 and (1.0 - a) ** (r - 1) <= delta:     # guard the float rounding both ways
            r -= 1
        while (1.0 - a) ** r > delta:
            r += 1
        return r
    low, high = m, max(m + 1, math.ceil(m / a))
    while tail_exceedance_probability(high, m, a) > delta:
        low, high = high, 2 * high
    while high - low > 1:                                   # invariant: B(low) > delta >= B(high)
        mid = (low + high) // 2
        if tail_exceedance_probability(mid, m, a) > delta:
            low = mid
        else:
            high = mid
    return high


def calibration_layer_draws(law, networks: int, alpha: float, *, delta=DEFAULT_DELTA, m: int = 1) -> int:
    """Cost of :func:`acceptance_intervals` with an empty cache, ``R * S * (depth + 1)`` layer-draws:
    the cost model of :class:`reference.ExactLaw` (about 55 ns a layer-draw on one core).  Laws
    whose draws cost more per layer (the joint law's pair draws, O(n k^2) a layer) take longer."""
    check_law(law)
    networks = integer_at_least("networks", networks, 1)
    return replicate_count(alpha, delta=delta, m=m) * networks * (int(law.depth) + 1)


def _cache_path(cache_dir, payload: dict) -> str:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
    return os.path.join(os.fspath(cache_dir), f"acceptance-{digest}.json")


def _atomic_write_json(path: str, content: dict) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(content, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _calibration_payload(law, networks, alpha, statistics, seed, delta, m, replicates) -> dict:
    """Every parameter of a calibration: its cache key."""
    return {"law": law.key(), "networks": networks, "alpha": alpha, "statistics": list(statistics),
            "seed": seed, "replicates": replicates, "m": m, "delta": delta,
            "construction": "exchangeable" if delta is None else "tolerance",
            "block_draws": _BLOCK_DRAWS, "version": CALIBRATION_VERSION}


def acceptance_intervals(law, networks: int, alpha: float = 1e-3, statistics=STATISTICS, cache_dir=None,
                         seed: int = 0, *, delta=DEFAULT_DELTA, m: int = 1,
                         threads=None) -> dict[str, tuple[float, float]]:
    """Closed interval ``(lo, hi)`` per statistic for data of size S = ``networks`` drawn from ``law``.

    With probability ``>= 1 - delta`` over the calibration (seeded by ``seed``, cached), each
    tail of the returned interval has a null false-alarm rate ``<= alpha / 2``, so
    ``P(estimate outside [lo, hi]) <= alpha`` for each statistic separately (the caller applies
    any multiple-testing correction; ``alpha`` is one statistic's two-sided share).
    ``lo``/``hi`` are the m-th smallest/largest of :func:`replicate_count` replicate estimates;
    NaN replicates count as +inf (``hi = inf`` if one is among the m largest).  ``delta=None``:
    the former construction, valid only on average over seeds.  ``threads`` changes only the
    speed.  Construction and cost: module docstring.
    """
    check_law(law)
    networks = integer_at_least("networks", networks, 2)
    alpha = probability_open("alpha", alpha)
    statistics = _check_statistics(statistics)
    seed = integer_at_least("seed", seed, 0)
    delta = _check_delta(delta)
    m = integer_at_least("m", m, 1)
    replicates = replicate_count(alpha, delta=delta, m=m)
    payload = _calibration_payload(law, networks, alpha, statistics, seed, delta, m, replicates)
    path = _cache_path(cache_dir, payload) if cache_dir is not None else None
    if path is not None and os.path.exists(path):
        try:
            with open(path) as handle:
                stored = json.load(handle)
            if stored.get("payload") == payload:
                return {s: (float(stored["intervals"][s][0]), float(stored["intervals"][s][1]))
                        for s in statistics}
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            pass  # unreadable cache entry: recompute and overwrite
    values = replicate_estimates(law, networks, replicates, statistics, seed, threads=threads)
    intervals = {}
    for s in statistics:
        x = values[s]
        lo = float(np.partition(x, m - 1)[m - 1])                       # NaN sorts last
        hi = float(np.partition(x, replicates - m)[replicates - m])
        intervals[s] = (lo, math.inf if math.isnan(hi) else hi)
    if path is not None:
        _atomic_write_json(path, {"payload": payload, "intervals": {s: list(v) for s, v in intervals.items()}})
    return intervals


# ---------------------------------------------------------------------------- decisions
@dataclass
class AcceptanceDecisions:
    """Whether each estimate lies in its calibrated acceptance interval (:func:`acceptance_decisions`).

    Attributes:
        accepted: ``{statistic: bool}``, exactly ``lo <= estimate <= hi`` for the interval
            :func:`acceptance_intervals` returns with the same arguments.
        intervals: ``{statistic: (lo, hi)}`` when an estimate is rejected (every replicate was
            drawn then), else None: accepted estimates need no interval.
        replicates_drawn: the replicate data sets the decision used (all R when one is rejected).
        replicates: R, the calibration's replicate count (:func:`replicate_count`).
    """

    accepted: dict
    intervals: dict | None
    replicates_drawn: int
    replicates: int

    def describe(self, statistic: str, alpha: float) -> str:
        """The accepted region in words, e.g. ``[2.1, 3.4] at level 0.0001`` or, decided early,
        ``inside the calibrated interval at level 0.0001 (decided on 655 of 138155 replicates)``."""
        if self.intervals is not None:
            low, high = self.intervals[statistic]
            return f"[{low:.6g}, {high:.6g}] at level {alpha:.2g}"
        return (f"inside the calibrated interval at level {alpha:.2g} (decided on {self.replicates_drawn} of "
                f"{self.replicates} replicates)")


def acceptance_decisions(law, networks: int, estimates, alpha: float = 1e-3, cache_dir=None, seed: int = 0, *,
                         delta=DEFAULT_DELTA, m: int = 1, threads=None) -> AcceptanceDecisions:
    """The verdicts of :func:`acceptance_intervals` on ``estimates`` without the interval where
    it is not needed: the same decision, usually from one block of replicates instead of R.

    ``estimates``: ``{statistic: measured value}`` of data of size S = ``networks``.  With the
    m-th order statistics as ends, ``lo <= t`` iff at least m replicates are ``<= t`` and
    ``t <= hi`` iff at least m are ``>= t`` (a NaN replicate counts as +inf, as there).  The
    replicates are drawn in the blocks of :func:`map_replicates` with ``entropy=seed`` -- the
    very data sets :func:`acceptance_intervals` ranks -- and counted block by block, in block
    order; once every estimate has m replicates on each side it is inside the interval,
    whatever the other replicates are, and the rest are never drawn.  A NaN estimate is
    rejected (the closed-interval check fails).  An estimate that is still undecided after
    the last block is outside: then every replicate has been drawn, and the intervals of all
    statistics are computed (and cached under ``cache_dir`` like :func:`acceptance_intervals`;
    a cached calibration answers such a call without drawing).  The result depends on the
    arguments only (never on the cache or ``threads``): ``replicates_drawn`` counts the blocks
    up to the deciding one.  Same guarantee as :func:`acceptance_intervals`, which it equals.
    """
    check_law(law)
    networks = integer_at_least("networks", networks, 2)
    alpha = probability_open("alpha", alpha)
    statistics = _check_statistics(tuple(estimates))
    observed = {s: float(estimates[s]) for s in statistics}
    seed = integer_at_least("seed", seed, 0)
    delta = _check_delta(delta)
    m = integer_at_least("m", m, 1)
    threads = _check_threads(threads)
    replicates = replicate_count(alpha, delta=delta, m=m)

    def full() -> AcceptanceDecisions:
        intervals = acceptance_intervals(law, networks, alpha, statistics, cache_dir, seed, delta=delta, m=m,
                                         threads=threads)
        accepted = {s: bool(intervals[s][0] <= observed[s] <= intervals[s][1]) for s in statistics}
        return AcceptanceDecisions(accepted, intervals, replicates, replicates)

    if any(math.isnan(v) for v in observed.values()):
        return full()
    cached = _cached_intervals(law, networks, alpha, statistics, seed, delta, m, replicates, cache_dir)
    if cached is not None and not all(lo <= observed[s] <= hi for s, (lo, hi) in cached.items()):
        return AcceptanceDecisions({s: bool(lo <= observed[s] <= hi) for s, (lo, hi) in cached.items()},
                                   cached, replicates, replicates)
    layout = block_layout(networks, replicates)
    below = dict.fromkeys(statistics, 0)
    above = dict.fromkeys(statistics, 0)
    drawn = 0

    def count(block: int) -> dict[str, tuple[int, int]]:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
        x = np.asarray(law.sample(layout[block] * networks, rng), dtype=float).reshape(layout[block], networks)
        values = _estimates(x, statistics)
        return {s: (int(np.sum(values[s] <= observed[s])),
                    int(np.sum(np.isnan(values[s]) | (values[s] >= observed[s])))) for s in statistics}

    pool = concurrent.futures.ThreadPoolExecutor(threads) if threads > 1 and len(layout) > 1 else None
    try:
        for start in range(0, len(layout), threads):
            wave = range(start, min(start + threads, len(layout)))
            counts = list(pool.map(count, wave)) if pool is not None else [count(b) for b in wave]
            for block, found in zip(wave, counts):   # block order: the deciding block is the same for any threads
                drawn += layout[block]
                for s in statistics:
                    below[s] += found[s][0]
                    above[s] += found[s][1]
                if all(below[s] >= m and above[s] >= m for s in statistics):
                    return AcceptanceDecisions(dict.fromkeys(statistics, True), None, drawn, replicates)
    finally:
        if pool is not None:
            pool.shutdown()
    return full()


def _cached_intervals(law, networks, alpha, statistics, seed, delta, m, replicates, cache_dir):
    """The intervals :func:`acceptance_intervals` cached for these arguments, or None."""
    if cache_dir is None:
        return None
    path = _cache_path(cache_dir, _calibration_payload(law, networks, alpha, statistics, seed, delta, m, replicates))
    try:
        with open(path) as handle:
            stored = json.load(handle)
        if stored.get("payload") != _calibration_payload(law, networks, alpha, statistics, seed, delta, m,
                                                         replicates):
            return None
        return {s: (float(stored["intervals"][s][0]), float(stored["intervals"][s][1])) for s in statistics}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


# ---------------------------------------------------------------------------- goodness of fit
_REFERENCE_CACHE: dict[tuple, np.ndarray] = {}


def default_reference_size(networks: int) -> int:
    """Goodness-of-fit reference sample size: ``max(200_000, 100 S)``."""
    return max(200_000, 100 * int(networks))


def reference_sample(law, size: int, seed: int = 0) -> np.ndarray:
    """The sorted exact reference sample of :func:`goodness_of_fit` (shape [size]; drawn with
    ``default_rng([seed, 0x9E3779B9])``, cached in memory per law, seed and size)."""
    check_law(law)
    size = integer_at_least("reference_size", size, 2)
    seed = integer_at_least("seed", seed, 0)
    key = (law.key(), seed, size)
    reference = _REFERENCE_CACHE.get(key)
    if reference is None:
        reference = np.sort(np.asarray(law.sample(size, np.random.default_rng([seed, _REFERENCE_TAG])),
                                       dtype=float))
        if len(_REFERENCE_CACHE) > 16:
            _REFERENCE_CACHE.clear()
        _REFERENCE_CACHE[key] = reference
    return reference


def reference_error_bound(reference_size: int, delta=DEFAULT_DELTA) -> float:
    """``eps = sqrt(ln(2 / delta) / (2 N))``: the reference sample's distribution function is
    within eps of the law's, uniformly, with probability ``>= 1 - delta`` (DKW, Massart)."""
    reference_size = integer_at_least("reference_size", reference_size, 1)
    delta = probability_open("delta", delta)
    return math.sqrt(math.log(2.0 / delta) / (2.0 * reference_size))


def goodness_of_fit_critical_distance(networks: int, level: float, reference_size: int,
                                      delta=DEFAULT_DELTA) -> float:
    """The largest KS distance D that :func:`goodness_of_fit` accepts at ``level`` (p >= level).

    ``delta`` given: ``kstwo.isf(level, S) + eps``; ``delta=None``: ``kstwo.isf(level, n_eff)``
    with ``n_eff = round(S N / (S + N))`` (scipy's two-sample asymptotic p-value).
    """
    networks = integer_at_least("networks", networks, 2)
    level = probability_open("level", level)
    reference_size = integer_at_least("reference_size", reference_size, 2)
    delta = _check_delta(delta)
    if delta is None:
        n_eff = round(networks * reference_size / (networks + reference_size))
        return float(_stats.kstwo.isf(level, n_eff))
    return float(_stats.kstwo.isf(level, networks)) + reference_error_bound(reference_size, delta)


def goodness_of_fit(law, theta, seed: int = 0, reference_size=None, *, delta=DEFAULT_DELTA) -> float:
    """p-value of the KS distance of ``theta`` (shape [S]) to an exact reference sample of size
    ``reference_size`` (default ``max(200_000, 100 S)``) drawn with ``seed``.

    ``delta`` given (default): ``P(D_S >= D - eps)`` under the exact one-sample law of ``D_S``,
    with the DKW margin ``eps`` of :func:`reference_error_bound` -- valid with probability
    ``>= 1 - delta`` over the reference sample (module docstring).  ``delta=None``: scipy's
    two-sample asymptotic p-value.
    """
    check_law(law)
    x = np.asarray(theta, dtype=float).reshape(-1)
    if x.size < 2:
        raise ValueError(f"theta must hold at least 2 samples (got {x.size})")
    if not np.all(np.isfinite(x)):
        raise ValueError("theta must be finite")
    seed = integer_at_least("seed", seed, 0)
    delta = _check_delta(delta)
    size = default_reference_size(x.size) if reference_size is None else integer_at_least(
        "reference_size", reference_size, 2)
    reference = reference_sample(law, size, seed)
    result = _stats.ks_2samp(x, reference, method="asymp")
    if delta is None:
        return float(result.pvalue)
    excess = max(float(result.statistic) - reference_error_bound(size, delta), 0.0)
    return float(min(1.0, _stats.kstwo.sf(excess, x.size))) if excess > 0.0 else 1.0
