"""Two-sample tests of measured NTK entries against draws of the exact law.

Owns: :func:`permutation_test`, a test of whether the measured rows of NTK entries and rows
drawn from the exact law (:class:`reference.JointLaw`) share one law, through one
statistic (``mean``, ``dispersion``, ``log_mean``, ``log_variance``, the estimators of
:func:`reference.estimate`) of every entry at once; and :func:`ks_entries`, a two-sample
Kolmogorov-Smirnov test of each entry.

Why two-sample tests here.  For the diagonal of a zero-bias ReLU network the exact law has
an O(L) sampler and the acceptance interval of each estimator is calibrated from replicates
(:mod:`reference.acceptance`). For an off-diagonal entry, or any entry of a network with
biases or a smooth activation, the exact sampler costs O(L n k) random numbers per draw
(Gaussian conditioning), so replicating S-sample data sets thousands of times is out of
reach. A two-sample test needs ONE exact sample of N rows: under the null the S measured
rows and the N exact rows are i.i.d. from one law, so the pooled rows are exchangeable and
a permutation p-value is valid at every level, for any statistic and any law (heavy tails,
atoms at dead networks included): P(p <= a) <= a. The exact sample is drawn fresh for each
case from a seed derived from the case's own, so the guarantee is per check, averaged over
that draw; with N >= S the rate conditional on the draw is close to the nominal one.

The statistic of the joint test.  For entry j let d_j be the difference between the
statistic of the measured rows and of the exact rows. Each d_j is standardized by its
standard deviation over the permutations, and the test statistic is T = max_j |d_j| /
sd_j: one test for all entries, whose permutation distribution carries their correlation
exactly (rows are permuted whole), so no Bonferroni split between entries is needed.
The p-value is (1 + #{b: T_b >= T}) / (1 + B) over B permutations, with sd_j taken over
the observed and the B permuted differences together (a Monte Carlo permutation test,
exactly valid for any B: the observed T is exchangeable with the permuted ones).

KS: :func:`ks_entries` returns scipy's two-sample KS p-value of each entry (exact null
distribution for small samples, asymptotic otherwise); with atoms (dead networks) it is
conservative.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _stats

from ._validate import integer_at_least

STATISTICS = ("mean", "dispersion", "log_mean", "log_variance")
_BLOCK = 1024   # permutations per block (memory: block x (S + N) floats)


_SUMS = ("x", "x2", "positive", "log", "log2")


def _statistic_from_sums(sums: dict[str, np.ndarray], count: float, statistic: str) -> np.ndarray:
    """The statistic of a group from its column sums (``count`` rows); NaN where undefined, as
    :func:`reference.estimate`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if statistic in ("mean", "dispersion"):
            first = sums["x"] / count
            if statistic == "mean":
                return first
            return (sums["x2"] / count) / (first * first)
        positive = sums["positive"]
        log_mean = np.where(positive >= 1, sums["log"] / positive, np.nan)
        if statistic == "log_mean":
            return log_mean
        variance = (sums["log2"] - positive * log_mean * log_mean) / (positive - 1)
        return np.where(positive >= 2, variance, np.nan)


def _pooled(measured: np.ndarray, exact: np.ndarray) -> dict[str, np.ndarray]:
    x = np.concatenate([measured, exact]).astype(np.float64)
    positive = x > 0
    logs = np.where(positive, np.log(np.where(positive, x, 1.0)), 0.0)
    return {"x": x, "x2": x * x, "positive": positive.astype(np.float64), "log": logs, "log2": logs * logs}


def permutation_test(measured, exact, statistic: str, permutations: int = 4000, seed: int = 0) -> dict:
    """Joint two-sample permutation test of one statistic over every entry (module docstring).

    measured: [S, k] measured rows (S networks, k entries); exact: [N, k] exact-law rows.
    Returns ``{"p_value", "statistic" (T), "difference" [k] (measured minus exact),
    "measured" [k], "exact" [k], "standard_deviation" [k], "permutations"}``.
    """
    return permutation_tests(measured, exact, (statistic,), permutations, seed)[statistic]


def permutation_tests(measured, exact, statistics=STATISTICS, permutations: int = 4000, seed: int = 0) -> dict:
    """:func:`permutation_test` of several statistics on the SAME permutations (each p-value is
    valid on its own; drawing the permutations once makes the others nearly free)."""
    statistics = tuple(statistics)
    for statistic in statistics:
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)} (got {statistic!r})")
    measured = np.atleast_2d(np.asarray(measured, dtype=np.float64))
    exact = np.atleast_2d(np.asarray(exact, dtype=np.float64))
    if measured.ndim != 2 or exact.ndim != 2 or measured.shape[1] != exact.shape[1]:
        raise ValueError(f"measured [S, k] and exact [N, k] must have the same k (got {measured.shape}, {exact.shape})")
    integer_at_least("measured rows", measured.shape[0], 2)
    integer_at_least("exact rows", exact.shape[0], 2)
    integer_at_least("permutations", permutations, 1)
    if not (np.all(np.isfinite(measured)) and np.all(np.isfinite(exact))):
        raise ValueError("measured and exact rows must be finite")
    s, n = measured.shape[0], exact.shape[0]
    k = measured.shape[1]
    data = _pooled(measured, exact)
    stacked = np.concatenate([data[name] for name in _SUMS], axis=1)          # [S + N, 5 k]
    total = stacked.sum(axis=0)

    def differences_of(sums_a: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        parts_a = {name: sums_a[..., i * k:(i + 1) * k] for i, name in enumerate(_SUMS)}
        parts_b = {name: total[i * k:(i + 1) * k] - parts_a[name] for i, name in enumerate(_SUMS)}
        return {statistic: (_statistic_from_sums(parts_a, s, statistic), _statistic_from_sums(parts_b, n, statistic))
                for statistic in statistics}

    observed = differences_of(stacked[:s].sum(axis=0))
    # Three words, so never equal to a network's two-word [seed, index] key.
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E57, 1]))
    permuted: dict[str, list[np.ndarray]] = {statistic: [] for statistic in statistics}
    done = 0
    while done < permutations:
        block = min(_BLOCK, permutations - done)
        chosen = np.argpartition(rng.random((block, s + n)), s - 1, axis=1)[:, :s]   # a random group of S rows
        weights = np.zeros((block, s + n))
        np.put_along_axis(weights, chosen, 1.0, axis=1)
        for statistic, (a, b) in differences_of(weights @ stacked).items():
            permuted[statistic].append(a - b)
        done += block
    results = {}
    for statistic in statistics:
        a, b = observed[statistic]
        difference = a - b
        differences = np.concatenate(permuted[statistic])                  # [B, k]
        # The spread is a symmetric function of all B + 1 differences (the observed one
        # included), so under the null the observed T is exchangeable with the B permuted ones
        # and the p-value below is exactly valid for any B.
        everything = np.concatenate([difference[None, :], differences])   # [B + 1, k]
        with np.errstate(invalid="ignore"):
            spread = np.nanstd(everything, axis=0) if np.any(np.isfinite(everything)) else np.zeros(k)
        spread = np.where(spread > 0, spread, np.inf)                     # a constant entry carries no evidence
        with np.errstate(invalid="ignore"):
            standardized = np.abs(difference) / spread
            observed_t = float(np.nanmax(standardized)) if np.any(np.isfinite(standardized)) else 0.0
            permuted_t = np.abs(differences) / spread
            permuted_t = np.where(np.isnan(permuted_t), 0.0, permuted_t).max(axis=1)
        if not math.isfinite(observed_t):
            observed_t = 0.0
        p_value = (1.0 + float(np.sum(permuted_t >= observed_t))) / (1.0 + permutations)
        results[statistic] = {"p_value": p_value, "statistic": observed_t, "difference": difference, "measured": a,
                              "exact": b, "standard_deviation": np.where(np.isfinite(spread), spread, 0.0),
                              "permutations": permutations}
    return results


def ks_entries(measured, exact) -> np.ndarray:
    """Two-sample KS p-value of each entry: measured [S, k] against exact [N, k]; returns [k]."""
    measured = np.atleast_2d(np.asarray(measured, dtype=np.float64))
    exact = np.atleast_2d(np.asarray(exact, dtype=np.float64))
    if measured.shape[1] != exact.shape[1]:
        raise ValueError(f"measured and exact rows must have the same number of entries "
                         f"(got {measured.shape[1]} and {exact.shape[1]})")
    return np.array([_stats.ks_2samp(measured[:, j], exact[:, j]).pvalue for j in range(measured.shape[1])])
