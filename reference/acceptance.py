"""Calibrated acceptance intervals and goodness of fit for measured samples of Theta(x, x).

Owns: the estimators the harness applies to measured NTK samples (:func:`estimate`), their
exact sampling distributions at the case's sample size (:func:`acceptance_intervals`) and a
goodness-of-fit p-value against the exact law (:func:`goodness_of_fit`).

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

Calibration (exact, not a normal approximation).  Draw R replicate data sets of size S from
the exact law, compute each estimator, sort.  Under the null the measured estimate and the
R replicates are exchangeable, so the probability that the measured value falls strictly
below the m-th smallest replicate is at most m / (R + 1), and likewise above the m-th
largest.  With ``R = ceil(2 / alpha) * m - 1`` the two-sided false-alarm rate is at most
alpha for every law, every S and every estimator -- heavy tails, atoms and the low bias of
the dispersion estimator at small S included.  The interval is closed: accept iff
``lo <= estimate <= hi``.  NaN replicates sort above every number.

Choice of m: m = 1 is the cheapest exact choice; larger m makes the interval endpoints less
random (the interval is then closer to the true alpha/2 quantiles) at m times the cost.  We
take the largest m <= 50 whose total cost ``R * S * (L + 1)`` stays under
``_DRAW_BUDGET`` = 2e7 layer-draws (about 1 s), and never less than 1.  Results are cached
as JSON (written atomically) when ``cache_dir`` is given.

Goodness of fit: two-sample Kolmogorov-Smirnov test of the measured samples against a large
exact sample (``reference_size``, default ``max(200_000, 100 S)``).  The law has an atom at
``Theta = beta`` (dead networks, probability ``1 - prod(1 - 2^-n_l)``); with atoms the KS
p-value is conservative (the false-alarm rate is at most the nominal one), and the reference
sample is large enough that the two-sample p-value is close to the one-sample one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile

import numpy as np
from scipy import stats as _stats

from ._validate import integer_at_least, probability_open
from .exact import ExactLaw

STATISTICS = ("mean", "dispersion", "log_mean", "log_variance")

_DRAW_BUDGET = 2e7
_MAX_M = 50
_BLOCK = 1 << 20   # samples per replicate block (memory bound)


def _check_statistics(statistics) -> tuple[str, ...]:
    if isinstance(statistics, str):
        statistics = (statistics,)
    out = tuple(statistics)
    for s in out:
        if s not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)} (got {s!r})")
    if not out:
        raise ValueError("statistics must name at least one of " + ", ".join(STATISTICS))
    return out


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


def replicate_count(law: ExactLaw, samples: int, alpha: float) -> tuple[int, int]:
    """``(R, m)``: number of replicate data sets and order-statistic index per tail."""
    base = math.ceil(2.0 / alpha)
    cost = base * samples * (law.depth + 1)
    m = int(max(1, min(_MAX_M, _DRAW_BUDGET // cost)))
    return base * m - 1, m


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


def replicate_estimates(law: ExactLaw, samples: int, replicates: int, statistics=STATISTICS,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """Each estimator on ``replicates`` independent exact data sets of size ``samples``.

    Returns ``{statistic: array of shape [replicates]}``.
    """
    statistics = _check_statistics(statistics)
    rng = np.random.default_rng(seed)
    per_block = max(1, _BLOCK // samples)
    parts = {s: [] for s in statistics}
    done = 0
    while done < replicates:
        r = min(per_block, replicates - done)
        x = law.sample(r * samples, rng).reshape(r, samples)
        for s, values in _estimates(x, statistics).items():
            parts[s].append(values)
        done += r
    return {s: np.concatenate(v) for s, v in parts.items()}


def acceptance_intervals(law: ExactLaw, samples: int, alpha: float = 1e-3, statistics=STATISTICS,
                         cache_dir=None, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Closed interval ``(lo, hi)`` per statistic such that, for data of size ``samples`` drawn
    from ``law``, ``P(estimate outside [lo, hi]) <= alpha`` (each statistic separately; the
    caller applies any multiple-testing correction).  Construction: module docstring.
    """
    if not isinstance(law, ExactLaw):
        raise ValueError(f"law must be a reference.ExactLaw (got {type(law).__name__})")
    samples = integer_at_least("samples", samples, 2)
    alpha = probability_open("alpha", alpha)
    statistics = _check_statistics(statistics)
    seed = integer_at_least("seed", seed, 0)
    replicates, m = replicate_count(law, samples, alpha)
    payload = {"law": law.key(), "samples": samples, "alpha": alpha, "statistics": list(statistics),
               "seed": seed, "replicates": replicates, "m": m, "version": 1}
    path = _cache_path(cache_dir, payload) if cache_dir is not None else None
    if path is not None and os.path.exists(path):
        try:
            with open(path) as handle:
                stored = json.load(handle)
            if stored.get("payload") == payload:
                return {s: tuple(stored["intervals"][s]) for s in statistics}
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: recompute and overwrite
    values = replicate_estimates(law, samples, replicates, statistics, seed)
    intervals = {}
    for s in statistics:
        ordered = np.sort(values[s])                 # NaN sorts last
        lo, hi = float(ordered[m - 1]), float(ordered[replicates - m])
        intervals[s] = (lo, math.inf if math.isnan(hi) else hi)
    if path is not None:
        _atomic_write_json(path, {"payload": payload, "intervals": {s: list(v) for s, v in intervals.items()}})
    return intervals


_REFERENCE_CACHE: dict[tuple, np.ndarray] = {}


def goodness_of_fit(law: ExactLaw, theta, seed: int = 0, reference_size=None) -> float:
    """p-value of the two-sample KS test of ``theta`` (shape [S]) against an exact sample of
    size ``reference_size`` (default ``max(200_000, 100 S)``) drawn with ``seed``."""
    if not isinstance(law, ExactLaw):
        raise ValueError(f"law must be a reference.ExactLaw (got {type(law).__name__})")
    x = np.asarray(theta, dtype=float).reshape(-1)
    if x.size < 2:
        raise ValueError(f"theta must hold at least 2 samples (got {x.size})")
    if not np.all(np.isfinite(x)):
        raise ValueError("theta must be finite")
    seed = integer_at_least("seed", seed, 0)
    size = max(200_000, 100 * x.size) if reference_size is None else integer_at_least(
        "reference_size", reference_size, 2)
    key = (law.key(), seed, size)
    reference = _REFERENCE_CACHE.get(key)
    if reference is None:
        reference = np.sort(law.sample(size, np.random.default_rng([seed, 0x9E3779B9])))
        if len(_REFERENCE_CACHE) > 16:
            _REFERENCE_CACHE.clear()
        _REFERENCE_CACHE[key] = reference
    return float(_stats.ks_2samp(x, reference, method="asymp").pvalue)
