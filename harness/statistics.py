"""Statistics of NTK samples, each with a confidence interval.

For samples theta_1..theta_S of one NTK entry:

- ``mean``: (1/S) sum theta_s, Student-t interval;
- ``dispersion``: E[Theta^2]/E[Theta]^2 estimated by mean(theta^2)/mean(theta)^2,
  percentile-bootstrap interval. Heavy-tailed and biased low at small S: the verdicts
  against the exact law do not use this interval but the calibrated acceptance
  intervals of :mod:`reference.acceptance`; it is shown for reading only;
- ``log_mean``, ``log_variance``: mean and variance (ddof=1) of log theta (over
  theta > 0, the definition of :func:`reference.estimate`), t and bootstrap intervals;
- ``q05`` .. ``q95``: quantiles with distribution-free order-statistic intervals.

Point estimates come from :func:`reference.estimate`, so what the harness measures is
exactly what the reference calibrates.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from harness.records import Estimate, Interval
from reference import estimate

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BOOTSTRAP_RESAMPLES = 1000


def t_interval(x, confidence: float) -> Interval:
    """Student-t interval ``mean +- t_{(1+c)/2, n-1} s / sqrt(n)`` of the mean of ``x`` at
    ``confidence``; unbounded for fewer than two values (no spread to estimate)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return Interval(-math.inf, math.inf)
    half = scipy_stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return Interval(mean - half, mean + half)


def _bootstrap(x: np.ndarray, statistic: str, confidence: float, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over resamples, computed row-wise at once with the
    same formulas as :func:`reference.estimate` (dispersion = mean(t^2)/mean(t)^2;
    log_variance = var(log t, ddof=1) over t > 0)."""
    resamples = x[rng.integers(0, x.size, size=(BOOTSTRAP_RESAMPLES, x.size))]
    with np.errstate(divide="ignore", invalid="ignore"):
        if statistic == "dispersion":
            values = (resamples**2).mean(axis=1) / resamples.mean(axis=1) ** 2
        elif statistic == "log_variance":
            logs = np.where(resamples > 0, np.log(np.where(resamples > 0, resamples, 1.0)), np.nan)
            enough = (~np.isnan(logs)).sum(axis=1) >= 2
            values = np.full(BOOTSTRAP_RESAMPLES, np.nan)
            if enough.any():
                values[enough] = np.nanvar(logs[enough], axis=1, ddof=1)
        else:
            raise ValueError(f"no bootstrap for statistic {statistic!r}")
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def _quantile_interval(sorted_x: np.ndarray, q: float, confidence: float) -> Estimate:
    n = sorted_x.size
    value = float(np.quantile(sorted_x, q))
    # ranks whose binomial probabilities bracket the q-quantile (distribution-free)
    lo_rank = int(scipy_stats.binom.ppf((1 - confidence) / 2, n, q))
    hi_rank = int(scipy_stats.binom.ppf(0.5 + confidence / 2, n, q))
    return Estimate(value, Interval(float(sorted_x[max(lo_rank - 1, 0)]), float(sorted_x[min(hi_rank, n - 1)])),
                    confidence)


def summarize(theta: np.ndarray, *, confidence: float = 0.95, seed: int = 0) -> dict[str, Estimate]:
    """Every statistic of the finite entries of ``theta`` [S], with intervals."""
    theta = np.asarray(theta, dtype=np.float64)
    theta = theta[np.isfinite(theta)]
    rng = np.random.default_rng(seed)
    out: dict[str, Estimate] = {}
    if theta.size < 2:
        return out
    out["mean"] = Estimate(estimate(theta, "mean"), t_interval(theta, confidence), confidence)
    out["dispersion"] = Estimate(estimate(theta, "dispersion"),
                                 Interval(*_bootstrap(theta, "dispersion", confidence, rng)), confidence)
    positive = theta[theta > 0]
    if positive.size >= 2:
        out["log_mean"] = Estimate(estimate(theta, "log_mean"), t_interval(np.log(positive), confidence), confidence)
        out["log_variance"] = Estimate(estimate(theta, "log_variance"),
                                       Interval(*_bootstrap(theta, "log_variance", confidence, rng)), confidence)
    ordered = np.sort(theta)
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = _quantile_interval(ordered, q, confidence)
    return out
