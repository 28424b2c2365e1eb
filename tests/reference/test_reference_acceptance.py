"""Calibrated acceptance intervals and goodness of fit (reference.acceptance).

False-alarm checks count how often data drawn from the exact law (and, once, from real torch
networks) fall outside the intervals; the count must not exceed alpha * trials by more than
4.5 binomial standard deviations (false-alarm rate of each such check about 7e-6).  Power
checks use data from a different configuration and require rejection.  Everything is seeded.
The per-check (tolerance) guarantee itself is tested in test_reference_calibration.py.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from scipy import stats

from reference import STATISTICS, ExactLaw, acceptance_intervals, estimate, goodness_of_fit
from reference.acceptance import replicate_count
from reference_brute_force import diagonal_ntk_batched


def _outside(theta, intervals):
    return {s: not (lo <= estimate(theta, s) <= hi) for s, (lo, hi) in intervals.items()}


def test_estimators_definitions():
    x = np.array([1.0, 2.0, 4.0, 0.0])
    assert estimate(x, "mean") == pytest.approx(1.75)
    assert estimate(x, "dispersion") == pytest.approx(np.mean(x**2) / 1.75**2)
    logs = np.log([1.0, 2.0, 4.0])                       # zeros are left out of log statistics
    assert estimate(x, "log_mean") == pytest.approx(logs.mean())
    assert estimate(x, "log_variance") == pytest.approx(logs.var(ddof=1))
    assert math.isnan(estimate(np.array([0.0, 3.0]), "log_variance"))
    with pytest.raises(ValueError, match="statistic"):
        estimate(x, "median")


@pytest.mark.parametrize("widths, sigma_w2, bias, samples", [
    ((10,) * 4, 2.0, True, 50),
    ((6,) * 5, 3.0, False, 30),       # atom at zero (dead nets) and heavy tails
])
def test_false_alarm_rate_on_exact_data(widths, sigma_w2, bias, samples):
    """Default construction (m = 1): the rate is at most alpha.  With m = 100 each tail's
    conditional rate is Beta(m, R + 1 - m), concentrated enough to also bound it from below
    (its 1e-4 quantile), so the interval is not vacuously wide either."""
    alpha, trials = 0.05, 4000
    law = ExactLaw(widths, sigma_w2, trainable_bias=bias)
    data = law.sample(trials * samples, np.random.default_rng(99)).reshape(trials, samples)
    sd = math.sqrt(trials * alpha * (1 - alpha))
    for m in (1, 100):
        intervals = acceptance_intervals(law, samples, alpha, seed=1, m=m)
        counts = dict.fromkeys(STATISTICS, 0)
        for row in data:
            for s, out in _outside(row, intervals).items():
                counts[s] += out
        r = replicate_count(alpha, m=m)
        floor = 2 * stats.beta.ppf(1e-4, m, r + 1 - m)
        for s, c in counts.items():
            assert c <= alpha * trials + 4.5 * sd, (m, s, c)
            if m > 1:
                assert c >= floor * trials - 4.5 * math.sqrt(trials * floor), (m, s, c, floor)


def test_false_alarm_rate_on_torch_networks():
    """200 data sets of 50 real networks each (width 10, depth 3, EOC, biases)."""
    alpha, samples, trials = 0.05, 50, 200
    widths = (10,) * 4
    law = ExactLaw(widths, 2.0)
    intervals = acceptance_intervals(law, samples, alpha, seed=2)
    brute = diagonal_ntk_batched(widths, 2.0, samples * trials, seed=21).reshape(trials, samples)
    sd = math.sqrt(trials * alpha * (1 - alpha))
    for s in STATISTICS:
        c = sum(_outside(row, intervals)[s] for row in brute)
        assert c <= alpha * trials + 4.5 * sd, (s, c)


def test_dispersion_interval_reflects_bias_and_heavy_tail():
    """At small S the dispersion estimator is biased low and right-skewed: the calibrated
    interval lies mostly below the exact dispersion and is asymmetric around its centre."""
    law = ExactLaw((20,) * 21, 2.0)               # lambda = 1, EOC
    lo, hi = acceptance_intervals(law, 200, 0.01, statistics=("dispersion",))["dispersion"]
    exact = law.dispersion()
    assert lo < exact
    assert replicate_count(0.01) == math.ceil(math.log(1e-3) / math.log1p(-0.005))   # m = 1, delta = 1e-3
    from reference.acceptance import replicate_estimates
    reps = replicate_estimates(law, 200, 2000, ("dispersion",), seed=4)["dispersion"]
    assert np.median(reps) < exact                              # biased low
    assert hi - np.median(reps) > 2 * (np.median(reps) - lo)    # long right tail


def test_different_configuration_is_rejected():
    """Data from the same nets with biases left out, or with sigma_w2 changed, is rejected:
    the mean falls outside its interval and the KS p-value is tiny."""
    widths, samples = (10,) * 4, 200
    law = ExactLaw(widths, 2.0)
    intervals = acceptance_intervals(law, samples, 1e-3, seed=0)
    no_bias = diagonal_ntk_batched(widths, 2.0, samples, seed=5, trainable_bias=False)
    assert _outside(no_bias, intervals)["mean"]
    assert goodness_of_fit(law, no_bias) < 1e-6
    other_sigma = ExactLaw(widths, 2.6).sample(samples, np.random.default_rng(6))
    assert _outside(other_sigma, intervals)["mean"]
    assert goodness_of_fit(law, other_sigma) < 1e-6
    same = diagonal_ntk_batched(widths, 2.0, samples, seed=7)
    assert not any(_outside(same, intervals).values())   # false-alarm rate <= 4e-3 (4 statistics)
    assert goodness_of_fit(law, same) > 1e-3


def test_goodness_of_fit_false_alarm_rate():
    """p-values under the null (including the atom at 0 of dead nets without biases):
    rejection frequency at level 0.05 within 4.5 binomial sd of at most 0.05."""
    trials, level = 300, 0.05
    for law in (ExactLaw((10,) * 4, 2.0), ExactLaw((4,) * 4, 2.0, trainable_bias=False)):
        data = law.sample(trials * 100, np.random.default_rng(8)).reshape(trials, 100)
        rejections = sum(goodness_of_fit(law, row, reference_size=20_000) < level for row in data)
        assert rejections <= level * trials + 4.5 * math.sqrt(trials * level * (1 - level))


def test_cache_round_trip(tmp_path):
    law = ExactLaw((8,) * 3, 2.0)
    first = acceptance_intervals(law, 20, 0.1, cache_dir=tmp_path, seed=3)
    files = list(tmp_path.glob("acceptance-*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["payload"]["law"] == law.key() and stored["payload"]["networks"] == 20
    assert acceptance_intervals(law, 20, 0.1, cache_dir=tmp_path, seed=3) == first
    files[0].write_text("{not json")                        # a corrupt entry is recomputed
    assert acceptance_intervals(law, 20, 0.1, cache_dir=tmp_path, seed=3) == first
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    other = acceptance_intervals(law, 20, 0.1, cache_dir=tmp_path, seed=4)
    assert other != first and len(list(tmp_path.glob("acceptance-*.json"))) == 2


@pytest.mark.parametrize("kwargs, name", [
    ({"networks": 1}, "networks"), ({"networks": 10, "alpha": 0.0}, "alpha"), ({"networks": 10, "alpha": 1.0}, "alpha"),
    ({"networks": 10, "statistics": ("mode",)}, "statistic"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        acceptance_intervals(ExactLaw((4, 4), 2.0), **kwargs)


# ---------------------------------------------------------------- decisions without the interval
def _decision_cases():
    """(law, S, alpha, m): several blocks of replicates each (S = 2000: 131 data sets a block)."""
    return [(ExactLaw((4, 4, 4), 2.0), 2000, 0.02, 1), (ExactLaw((3, 5, 5, 5), 3.0, trainable_bias=False), 2000, 0.05, 3)]


@pytest.mark.parametrize("case", range(2))
def test_decisions_equal_the_full_intervals_at_every_estimate(case, tmp_path):
    """acceptance_decisions gives exactly lo <= t <= hi of acceptance_intervals (same arguments)
    for estimates inside, at both ends (ties), just beyond them, far out and NaN; with 1 or 2
    threads; an accepted estimate needs no interval (at the ends it may take every block), a
    rejected one draws all R and brings the intervals (cached, and then read back without drawing)."""
    from reference import acceptance_decisions

    law, networks, alpha, m = _decision_cases()[case]
    statistics = ("mean", "dispersion", "log_mean", "log_variance")
    intervals = acceptance_intervals(law, networks, alpha, statistics, m=m)
    replicates = replicate_count(alpha, m=m)
    for position in ("inside", "low", "high", "below", "above", "nan"):
        for threads in (1, 2):
            estimates = {}
            for s, (lo, hi) in intervals.items():
                estimates[s] = {"inside": 0.5 * (lo + hi), "low": lo, "high": hi, "below": np.nextafter(lo, -np.inf),
                                "above": np.nextafter(hi, np.inf), "nan": np.nan}[position]
            decided = acceptance_decisions(law, networks, estimates, alpha, m=m, threads=threads)
            assert decided.accepted == {s: bool(lo <= estimates[s] <= hi) for s, (lo, hi) in intervals.items()}
            assert decided.replicates == replicates
            if all(decided.accepted.values()):
                assert decided.intervals is None and 0 < decided.replicates_drawn <= replicates
            else:
                assert decided.intervals == intervals and decided.replicates_drawn == replicates
    # one statistic out, the others inside: all R drawn, every interval returned and cached
    mixed = {s: 0.5 * (lo + hi) for s, (lo, hi) in intervals.items()}
    mixed["mean"] = intervals["mean"][1] * 1.5
    first = acceptance_decisions(law, networks, mixed, alpha, cache_dir=tmp_path, m=m)
    assert first.accepted == {"mean": False, "dispersion": True, "log_mean": True, "log_variance": True}
    assert first.intervals == intervals and len(list(tmp_path.iterdir())) == 1
    again = acceptance_decisions(law, networks, mixed, alpha, cache_dir=tmp_path, m=m)
    assert again == first


def test_an_accepted_estimate_is_decided_on_one_block_where_the_full_calibration_draws_hundreds():
    """The point of deciding: at the quick cases' size (S = 300, alpha 2.5e-5 per check) a typical
    estimate is decided on the first block of 873 data sets instead of R = 552,620."""
    from reference import acceptance_decisions

    law = ExactLaw((64, 64, 64), 2.0)
    rng = np.random.default_rng(5)
    theta = law.sample(300, rng)
    estimates = {s: estimate(theta, s) for s in ("mean", "log_mean")}
    decided = acceptance_decisions(law, 300, estimates, 2.5e-5)
    assert decided.accepted == {"mean": True, "log_mean": True}
    assert decided.replicates == replicate_count(2.5e-5) and decided.replicates > 500_000
    assert decided.replicates_drawn == (1 << 18) // 300
    assert "decided on 873 of" in decided.describe("mean", 2.5e-5)
