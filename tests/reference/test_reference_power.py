"""Power against a scale error Theta -> c Theta (reference.power).

Each test checks the simulated minimum detectable scale against something computed another
way: a normal approximation of log_mean at large S, a direct simulation of the checks
(``estimate`` and ``goodness_of_fit`` on rescaled exact data) at the returned scales, and
scipy's KS p-value for the closed-form KS acceptance ranges.  Everything is seeded; each
statistical assertion states its tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from reference import ExactLaw
from reference.joint import EntryLaw
from reference.acceptance import acceptance_intervals, estimate, goodness_of_fit, map_replicates, replicate_count
from reference.power import (GOODNESS_OF_FIT, case_minimum_detectable_scale, minimum_detectable_scale,
                             power_at_scale, scale_acceptance)

Z90 = stats.norm.ppf(0.9)


def test_log_mean_matches_the_normal_approximation_at_large_samples():
    """log_mean alone, S = 2000, law with a nearly symmetric log Theta (skewness 0.05): the
    estimator is N(mu + log c, sd^2 / S) to high accuracy, so power 0.9 is reached at
    log c = hi - mu + z_0.9 sd / sqrt(S) (and symmetrically below).  mu and sd come from an
    independent 10^6-draw sample.  Tolerance: 3% of log c plus 3 standard errors of the
    simulation and of mu (measured deviation: 0.0009 in log c, a third of the tolerance)."""
    law = ExactLaw((64,) * 5, 2.0)
    samples, alpha = 2000, 0.01
    interval = acceptance_intervals(law, samples, alpha, statistics=("log_mean",))
    found = minimum_detectable_scale(law, samples, interval, replicates=4000, seed=1)
    logs = np.log(law.sample(1_000_000, np.random.default_rng(123)))
    mu, sd = logs.mean(), logs.std()
    se = sd / math.sqrt(samples)
    lo, hi = interval["log_mean"]
    predicted_high = hi - mu + Z90 * se
    predicted_low = lo - mu - Z90 * se
    # 3 standard errors of the simulation (power error / slope of the power curve) and of mu
    mc = 3 * (math.sqrt(0.09 / 4000) / stats.norm.pdf(Z90) * se + sd / math.sqrt(logs.size))
    assert abs(math.log(found.high) - predicted_high) <= 0.03 * predicted_high + mc
    assert abs(math.log(found.low) - predicted_low) <= 0.03 * abs(predicted_low) + mc
    # and close to the textbook exp((z_a + z_0.9) sd / sqrt(S)), with z_a the endpoint's expected
    # normal quantile 1 / (R + 1); the realized m = 1 endpoint is random, hence the 15%
    z_a = stats.norm.isf(1.0 / (replicate_count(alpha) + 1))
    assert math.log(found.high) == pytest.approx((z_a + Z90) * se, rel=0.15)
    assert -math.log(found.low) == pytest.approx((z_a + Z90) * se, rel=0.15)
    assert found.per_check["log_mean"] == (found.low, found.high)


def _family_fails(data, law, intervals, level, reference_seed, reference_size):
    fails = any(not (lo <= estimate(data, s) <= hi) for s, (lo, hi) in intervals.items())
    return fails or goodness_of_fit(law, data, seed=reference_seed, reference_size=reference_size) < level


def test_direct_simulation_at_the_returned_scales_gives_the_target_power():
    """Full family (4 statistics + KS, false-alarm rate 0.05 split five ways) on a heavy-tailed
    law: at the returned c < 1 and c > 1, 2000 fresh exact data sets rescaled by c and checked
    with estimate() and goodness_of_fit() fail with frequency 0.9 within 4.5 standard errors
    (binomial error of the direct simulation and of the 20,000 replicates behind c)."""
    law = ExactLaw((16,) * 5, 2.0)
    samples, level, reference_seed, reference_size = 100, 0.01, 5, 20_000
    intervals = acceptance_intervals(law, samples, level)
    found = minimum_detectable_scale(law, samples, intervals, goodness_of_fit_level=level,
                                     reference_seed=reference_seed, reference_size=reference_size, seed=2)
    assert found.low < 1 < found.high
    assert found.low_interval[0] <= found.low <= found.low_interval[1]
    assert found.high_interval[0] <= found.high <= found.high_interval[1]
    trials = 2000
    fresh = map_replicates(law, samples, trials, lambda x: {"x": x}, entropy=[99, 1])["x"]
    tolerance = 4.5 * math.sqrt(0.09 / trials + 0.09 / found.replicates)
    for c in (found.low, found.high):
        # just beyond the crossing (the returned c is the boundary of a step)
        c = c * (1.0 - 1e-9) if c < 1 else c * (1.0 + 1e-9)
        rate = np.mean([_family_fails(c * row, law, intervals, level, reference_seed, reference_size)
                        for row in fresh])
        assert abs(rate - 0.9) <= tolerance, (c, rate)


def _off_diagonal_law():
    """tanh, anti-correlated inputs, frozen biases: an off-diagonal entry that is negative 97% of
    the time (negative mean, samples of both signs)."""
    return EntryLaw((4,) * 4, 2.0, inner_product=-0.8, activation="tanh", trainable_bias=False)


@pytest.mark.parametrize("law", [ExactLaw((4,) * 4, 2.0), ExactLaw((4,) * 4, 2.0, trainable_bias=False),
                                 _off_diagonal_law()], ids=["bias", "nobias", "entry-negative"])
def test_ks_scale_ranges_agree_with_goodness_of_fit(law):
    """The closed-form KS acceptance range in c agrees with goodness_of_fit's p-value on every one
    of 300 data sets at three scales (including the atom at 0 of dead nets without biases, and
    samples of both signs for an off-diagonal entry)."""
    samples, level = 60, 0.05
    accepted = scale_acceptance(law, samples, goodness_of_fit_level=level, reference_size=5000,
                                reference_seed=7, replicates=300, seed=3)
    rows = map_replicates(law, samples, 300, lambda x: {"x": x}, entropy=[3, 0x706F776572])["x"]
    low, high = accepted.per_check[GOODNESS_OF_FIT]
    rejections = 0
    for i, row in enumerate(rows):
        for c in (0.8, 1.0, 1.3):
            p = goodness_of_fit(law, c * row, seed=7, reference_size=5000)
            assert (p < level) == (not low[i] <= c <= high[i]), (i, c, p, low[i], high[i])
            rejections += p < level
    assert 0 < rejections < 900            # both outcomes occur


def test_scale_free_statistics_cannot_see_a_scale_error():
    law = ExactLaw((8,) * 4, 2.0)
    intervals = acceptance_intervals(law, 50, 0.05, statistics=("dispersion", "log_variance"))
    found = minimum_detectable_scale(law, 50, intervals, replicates=2000)
    assert math.isnan(found.low) and math.isnan(found.high)
    assert found.per_check == {"dispersion": None, "log_variance": None}
    power, se = found.power_curve(np.array([0.5, 1.0, 2.0]))
    assert power[0] == power[1] == power[2] == found.null_rejection <= 0.05 + 4.5 * math.sqrt(0.05 / 2000)


def test_power_at_scale_grows_away_from_one_and_is_a_false_alarm_rate_at_one():
    law = ExactLaw((16,) * 5, 3.0, trainable_bias=False)
    intervals = acceptance_intervals(law, 200, 0.01, statistics=("mean", "log_mean"))
    c = np.array([0.7, 0.85, 0.95, 1.0, 1.05, 1.2, 1.4])
    estimate_ = power_at_scale(c, law, 200, intervals, replicates=3000, seed=4)
    p = estimate_.power
    assert p[3] <= 2 * 0.01 + 4.5 * math.sqrt(0.02 / 3000)          # two checks at 0.01 each
    assert p[0] >= p[1] >= p[2] > p[3] and p[3] < p[4] <= p[5] <= p[6]
    np.testing.assert_allclose(estimate_.standard_error, np.sqrt(p * (1 - p) / 3000))
    with pytest.raises(ValueError, match="c must be"):
        power_at_scale(0.0, law, 200, intervals)


def test_case_minimum_detectable_scale_is_the_harness_split(tmp_path):
    """alpha 1e-3 over 4 statistics + KS: each check at 2e-4, the same numbers as composing the
    calls by hand (and the calibration is read back from the cache)."""
    law = ExactLaw((16,) * 3, 1.0)
    samples = 50
    found = case_minimum_detectable_scale(law, samples, cache_dir=tmp_path, reference_seed=11, replicates=3000)
    intervals = acceptance_intervals(law, samples, 2e-4, cache_dir=tmp_path)
    by_hand = minimum_detectable_scale(law, samples, intervals, goodness_of_fit_level=2e-4, reference_seed=11,
                                       replicates=3000)
    assert (found.low, found.high) == (by_hand.low, by_hand.high)
    assert set(found.per_check) == {"mean", "dispersion", "log_mean", "log_variance", GOODNESS_OF_FIT}
    assert found.per_check["dispersion"] is None and found.per_check["log_variance"] is None
    # the family is at least as powerful as any one of its checks
    for check in ("mean", "log_mean", GOODNESS_OF_FIT):
        low, high = found.per_check[check]
        assert low <= found.low and found.high <= high
    # the result is cached next to the intervals and read back without the simulation
    assert len(list(tmp_path.glob("power-*.json"))) == 1
    again = case_minimum_detectable_scale(law, samples, cache_dir=tmp_path, reference_seed=11, replicates=3000)
    assert (again.low, again.high, again.per_check) == (found.low, found.high, found.per_check)
    np.testing.assert_array_equal(again.curve[1], found.curve[1])
    assert again.acceptance is None
    with pytest.raises(ValueError, match="cache"):
        again.power_curve([1.0])


def test_negative_mean_entry_law_matches_direct_checks():
    """A duck-typed per-entry law with a negative mean: the accepted scale range of the mean check
    flips its ends, and the family's verdicts agree with estimate()/goodness_of_fit() on 200 data
    sets at four scales."""
    law = _off_diagonal_law()
    samples, level = 40, 0.02
    intervals = acceptance_intervals(law, samples, level, statistics=("mean", "log_mean", "dispersion"))
    assert intervals["mean"][1] < 0
    accepted = scale_acceptance(law, samples, intervals, goodness_of_fit_level=level, reference_size=5000,
                                replicates=200, seed=8)
    rows = map_replicates(law, samples, 200, lambda x: {"x": x}, entropy=[8, 0x706F776572])["x"]
    for i, row in enumerate(rows):
        for c in (0.5, 0.9, 1.0, 1.6):
            fails = _family_fails(c * row, law, intervals, level, 0, 5000)
            assert fails == (not accepted.low[i] <= c <= accepted.high[i]), (i, c)
    assert accepted.power(0.5) > 0.5 and accepted.power(1.6) > 0.5


def test_bad_arguments():
    law = ExactLaw((4, 4), 2.0)
    with pytest.raises(ValueError, match="intervals must name"):
        scale_acceptance(law, 10)
    with pytest.raises(ValueError, match="power"):
        minimum_detectable_scale(law, 10, {"mean": (0.0, 1.0)}, power=1.0)
    with pytest.raises(ValueError, match="statistic"):
        minimum_detectable_scale(law, 10, {"median": (0.0, 1.0)})


# ---------------------------------------------------------------- the joint mean test's detectable scale
def test_the_two_sample_detectable_scale_is_reached_by_the_real_permutation_test():
    """Simulation with the real permutation test: fresh exact samples scaled by the computed c are
    rejected with probability >= 0.9 (up to the simulation's error), and unscaled ones at about
    the level. 160 replicates: the binomial standard error at power 0.9 is 0.024, so a rejection
    rate below 0.82 (3.4 standard errors) fails the test (false alarm ~3e-4); the bound would
    have to be off by about 10% in |c - 1| to fall there (the power curve's slope at 0.9)."""
    import numpy as np

    from reference import JointLaw
    from reference.power import two_sample_detectable_scale
    from reference.two_sample import permutation_tests

    law = JointLaw((4, 8, 8), 1.5, [[1.0, 0.5], [0.5, 1.0]], activation="tanh", sigma_b2=0.05)
    rng = np.random.default_rng(7)
    networks, alpha = 150, 0.01
    exact = law.sample(20 * networks, rng)[:, 0, :]
    low, high = two_sample_detectable_scale(exact, networks, alpha)
    assert 0.7 < low < 1.0 < high < 1.3
    rejected = {1.0: 0, high: 0, low: 0}
    for replicate in range(160):
        fresh = law.sample(networks, rng)[:, 0, :]
        for c in rejected:
            p = permutation_tests(c * fresh, exact, ("mean",), permutations=400, seed=replicate)["mean"]["p_value"]
            rejected[c] += p < alpha
    assert rejected[high] / 160 >= 0.82 and rejected[low] / 160 >= 0.82, rejected
    assert rejected[1.0] / 160 <= 0.06, rejected      # the level 0.01; 6/160 has probability ~1e-3 under H0


@pytest.mark.parametrize("sigma_w2, bias", [(1.0, True), (2.0, True), (3.0, True), (2.0, False)])
def test_normal_detectable_scale_is_close_to_the_simulated_one(sigma_w2, bias):
    """The normal approximation the default (decided) calibration records against the
    simulation through the case's own calibrated checks (case_minimum_detectable_scale). What
    the record claims must hold: the approximation may not be optimistic (each side's distance
    from 1 at least 95% of the simulated one: a 5% allowance for the approximation of the
    calibrated ends), and it must stay useful (at most 30% wider; the skew of log Theta at
    width 16 without biases makes it conservative there). Deterministic given the seeds."""
    from reference import case_minimum_detectable_scale, normal_detectable_scale

    law = ExactLaw((16, 16, 16), sigma_w2, trainable_bias=bias)
    statistics = ("mean", "dispersion", "log_mean", "log_variance")
    family = 5e-3
    simulated = case_minimum_detectable_scale(law, 200, family, statistics, True, replicates=20_000)
    low, high = normal_detectable_scale(law, 200, family / 5, statistics)
    for mine, theirs in ((1 - low, 1 - simulated.low), (high - 1, simulated.high - 1)):
        assert 0.95 * theirs <= mine <= 1.30 * theirs, (low, high, simulated.low, simulated.high)


def test_normal_detectable_scale_needs_a_scale_sensitive_check():
    from reference import normal_detectable_scale

    law = ExactLaw((8, 8, 8), 2.0)
    assert normal_detectable_scale(law, 100, 1e-3, ("dispersion", "log_variance")) == (0.0, math.inf)
    low, high = normal_detectable_scale(law, 100, 1e-3, ("mean",))
    assert 0 < low < 1 < high < 2
