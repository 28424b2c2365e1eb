"""Per-check calibration of the acceptance intervals (reference.acceptance).

The claim under test: for ONE fixed, cached calibration, every check's false-alarm rate is at
most its share of the case's alpha -- each tail of each statistic at most alpha_check / 2, the
KS check at most alpha_check -- not only on average over calibration seeds.

* Exact, cheap: a duck-typed law whose estimator has a known distribution (the mean of S
  standard normals is N(0, 1/S)), so each calibration's conditional tail mass is computed
  exactly; over many calibration seeds it must follow Beta(m, R + 1 - m) and exceed the tail
  level for a fraction <= delta of the seeds.  The former construction fails this.
* Null data sets (slow): the quick cases' configuration (ReLU, width 16, depth 8, S = 400,
  false-alarm rate 1e-3 split over 4 statistics + KS, so alpha_check = 2e-4), 10^5 null data
  sets from the exact sampler per configuration, every check's false-alarm count held to the
  upper binomial bound at its share (test false-alarm rate 1e-6 per count, 36 counts).  The
  same bound catches the former construction at the harness's calibration seed 0.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from scipy import stats

from reference import ExactLaw
from reference.joint import EntryLaw
from reference.acceptance import (STATISTICS, CALIBRATION_VERSION, _estimates, acceptance_intervals, block_layout,
                                  calibration_layer_draws, goodness_of_fit, goodness_of_fit_critical_distance,
                                  map_replicates, reference_sample, replicate_count, replicate_estimates,
                                  tail_exceedance_probability)


class NormalLaw:
    """Duck-typed law: i.i.d. N(0, 1) draws.  The mean of S of them is exactly N(0, 1/S)."""

    depth = 0

    def sample(self, size, rng):
        return rng.standard_normal(size)

    def key(self):
        return "NormalLaw/v1"


# ---------------------------------------------------------------------------- replicate counts
@pytest.mark.parametrize("alpha", [2e-4, 1e-3, 0.05, 0.1])
@pytest.mark.parametrize("delta", [1e-3, 0.05])
@pytest.mark.parametrize("m", [1, 2, 5])
def test_replicate_count_is_the_smallest_with_the_tolerance_guarantee(alpha, delta, m):
    r = replicate_count(alpha, delta=delta, m=m)
    assert tail_exceedance_probability(r, m, alpha / 2) <= delta
    assert tail_exceedance_probability(r - 1, m, alpha / 2) > delta
    if m == 1:
        assert r == math.ceil(math.log(delta) / math.log1p(-alpha / 2))


def test_replicate_count_values_and_former_construction():
    assert replicate_count(2e-4) == 69_075                       # the quick cases' level, delta = 1e-3
    assert replicate_count(2e-4, delta=None) == 9_999            # former: R + 1 = ceil(2 / alpha) m
    assert replicate_count(0.01, delta=None, m=3) == 599
    law = ExactLaw((16,) * 9, 2.0)
    assert calibration_layer_draws(law, 400, 2e-4) == 69_075 * 400 * 9


def test_laws_are_duck_typed():
    intervals = acceptance_intervals(NormalLaw(), 10, 0.1, statistics=("mean",))
    assert intervals["mean"][0] < 0 < intervals["mean"][1]

    class NoKey:
        depth = 1

        def sample(self, size, rng):
            return rng.standard_normal(size)

    with pytest.raises(ValueError, match=r"sample\(draws, rng\).*key\(\).*depth"):
        acceptance_intervals(NoKey(), 10, 0.1)

    class WrongShape(NormalLaw):
        def sample(self, size, rng):
            return rng.standard_normal((size, 2))

    with pytest.raises(ValueError, match="must return shape"):
        acceptance_intervals(WrongShape(), 10, 0.1)
    with pytest.raises(ValueError, match="key"):
        goodness_of_fit(object(), np.ones(5))


def test_per_entry_law_is_calibrated_the_same_way():
    """reference.joint.EntryLaw (an off-diagonal entry, here negative 97% of the time) goes through
    the same calibration: intervals, cache key from its own key(), goodness of fit.  Only mean
    and dispersion: the log statistics of a mostly negative entry are undefined (NaN) for 40% of
    data sets of 30, outside what the calibration covers (module docstring)."""
    law = EntryLaw((4,) * 4, 2.0, inner_product=-0.8, activation="tanh", trainable_bias=False)
    signed = ("mean", "dispersion")
    intervals = acceptance_intervals(law, 30, 0.1, statistics=signed)
    reps = replicate_estimates(law, 30, 300, statistics=signed, seed=4)
    for s in signed:
        inside = np.mean((intervals[s][0] <= reps[s]) & (reps[s] <= intervals[s][1]))
        assert inside >= 0.9 - 4.5 * math.sqrt(0.09 / 300), (s, inside)
    assert intervals["mean"][1] < 0
    data = law.sample(30, np.random.default_rng(1))
    assert 0.0 <= goodness_of_fit(law, data, reference_size=5000) <= 1.0


# ---------------------------------------------------------------------------- the guarantee, exactly
def _conditional_tail_masses(samples, alpha, seeds, **kwargs):
    """Exact null tail masses (lower, upper) of the mean's interval for each calibration seed."""
    lows, highs = [], []
    for seed in seeds:
        lo, hi = acceptance_intervals(NormalLaw(), samples, alpha, statistics=("mean",), seed=seed,
                                      threads=1, **kwargs)["mean"]
        lows.append(stats.norm.cdf(lo * math.sqrt(samples)))
        highs.append(stats.norm.sf(hi * math.sqrt(samples)))
    return np.array(lows), np.array(highs)


@pytest.mark.parametrize("m", [1, 3])
def test_conditional_tail_mass_is_beta_and_exceeds_its_share_for_at_most_delta_of_calibrations(m):
    """Mean of S = 8 standard normals: the tail mass beyond the interval is known exactly, so the
    Beta(m, R + 1 - m) law of the module docstring is checked directly over 400 calibrations
    (KS p-value; false-alarm rate 1e-4 per tail), and the fraction of calibrations whose tail
    exceeds a = alpha / 2 is held to the binomial bound at rate delta (false-alarm rate 1e-6)."""
    alpha, delta, seeds = 0.1, 0.05, range(400)
    r = replicate_count(alpha, delta=delta, m=m)
    lows, highs = _conditional_tail_masses(8, alpha, seeds, delta=delta, m=m)
    for masses in (lows, highs):
        assert stats.kstest(masses, stats.beta(m, r + 1 - m).cdf).pvalue > 1e-4
        exceed = int(np.sum(masses > alpha / 2))
        assert exceed <= stats.binom.isf(1e-6, len(seeds), delta), exceed


def test_former_construction_exceeds_its_share_for_a_third_of_calibrations():
    """The same measurement for the former m = 1 construction (R + 1 = 2 / alpha): the tail mass is
    Beta(1, R) with mean a, and exceeds a for (1 - a)^R ~ e^-1 of the calibrations -- the issue's
    "calibrated per case, not per check".  The lower binomial bound at rate 0.3 has false-alarm
    rate 1e-6, so this test also shows the check above can fail."""
    alpha, seeds = 0.1, range(400)
    lows, highs = _conditional_tail_masses(8, alpha, seeds, delta=None)
    for masses in (lows, highs):
        exceed = int(np.sum(masses > alpha / 2))
        assert exceed > stats.binom.ppf(1e-6, len(seeds), 0.3), exceed
        assert exceed > stats.binom.isf(1e-6, len(seeds), 0.05)


# ---------------------------------------------------------------------------- determinism, cache
def test_intervals_do_not_depend_on_the_thread_count():
    law = ExactLaw((8,) * 4, 2.0, trainable_bias=False)
    runs = [acceptance_intervals(law, 300, 0.02, threads=t) for t in (1, 2, 3)]
    assert runs[0] == runs[1] == runs[2]
    reps = [replicate_estimates(law, 300, 2_500, seed=5, threads=t) for t in (1, 3)]
    for s in STATISTICS:
        np.testing.assert_array_equal(reps[0][s], reps[1][s])


def test_cache_key_holds_the_construction_and_version(tmp_path):
    law = ExactLaw((8,) * 3, 2.0)
    first = acceptance_intervals(law, 20, 0.1, cache_dir=tmp_path, seed=3)
    (path,) = tmp_path.glob("acceptance-*.json")
    stored = json.loads(path.read_text())
    payload = stored["payload"]
    assert payload["version"] == CALIBRATION_VERSION == 2
    assert payload["delta"] == 1e-3 and payload["m"] == 1 and payload["construction"] == "tolerance"
    assert payload["replicates"] == replicate_count(0.1)
    # an entry whose payload is not this exact one (e.g. written by an older version) is not used
    stored["payload"]["version"] = 1
    stored["intervals"]["mean"] = [-1.0, -1.0]
    path.write_text(json.dumps(stored))
    assert acceptance_intervals(law, 20, 0.1, cache_dir=tmp_path, seed=3) == first
    # the former construction and another m are separate entries
    acceptance_intervals(law, 20, 0.1, cache_dir=tmp_path, seed=3, delta=None)
    acceptance_intervals(law, 20, 0.1, cache_dir=tmp_path, seed=3, m=2)
    assert len(list(tmp_path.glob("acceptance-*.json"))) == 3


# ---------------------------------------------------------------------------- 10^5 null data sets
WIDTHS = (16,) * 9            # width 16, depth 8: cases/dispersion/quick.toml
SAMPLES = 400
ALPHA_CHECK = 1e-3 / 5        # false_alarm_rate 1e-3 over 4 statistics + KS (harness/kinds/dispersion.py)
REFERENCE_SEED = 11           # quick.toml's sampling seed: the KS reference sample's seed
NULL_SETS = 100_000
TEST_ALPHA = 1e-6             # false-alarm rate of each count assertion below
CONFIGURATIONS = [(1.0, True), (2.0, True), (3.0, True), (2.0, False)]
STAT_BOUND = int(stats.binom.isf(TEST_ALPHA, NULL_SETS, ALPHA_CHECK / 2))    # 28
KS_BOUND = int(stats.binom.isf(TEST_ALPHA, NULL_SETS, ALPHA_CHECK))         # 45


def _law(index):
    sigma_w2, bias = CONFIGURATIONS[index]
    return ExactLaw(WIDTHS, sigma_w2, trainable_bias=bias)


def _ks_distance(x, reference):
    """KS distance of each row of x [r, S] to the sorted reference sample (searchsorted)."""
    n_ref, samples = reference.size, x.shape[1]
    i = np.arange(1, samples + 1)
    xs = np.sort(x, axis=1)
    below = np.searchsorted(reference, xs, side="right") / n_ref          # G(x)
    strictly_below = np.searchsorted(reference, xs, side="left") / n_ref  # G(x-)
    return np.maximum((i / samples - below).max(axis=1), (strictly_below - (i - 1) / samples).max(axis=1))


def _ks_rejects(x, reference, critical):
    """Rows of x [r, S] whose KS distance exceeds ``critical``, without a search per sample:
    D <= d iff for every i, G(x_(i)) >= i/S - d, i.e. x_(i) >= r_(k_i) with k_i = ceil((i/S - d) N),
    and G(x_(i)-) <= (i-1)/S + d, i.e. x_(i) <= r_(j_i + 1) with j_i = floor(((i-1)/S + d) N)."""
    n_ref, samples = reference.size, x.shape[1]
    i = np.arange(1, samples + 1)
    k = np.ceil((i / samples - critical) * n_ref).astype(np.int64)
    j = np.floor(((i - 1) / samples + critical) * n_ref).astype(np.int64)
    lower = np.where(k >= 1, reference[np.clip(k - 1, 0, n_ref - 1)], -np.inf)
    lower[k > n_ref] = np.inf
    upper = np.where(j < n_ref, reference[np.clip(j, 0, n_ref - 1)], np.inf)
    xs = np.sort(x, axis=1)
    return np.any((xs < lower) | (xs > upper), axis=1)


@functools.lru_cache(maxsize=None)
def _null(index):
    """Every estimator and the KS decision at the case's level on 10^5 null data sets (drawn with
    their own seeds, independent of the calibration and of the KS reference sample)."""
    law = _law(index)
    reference = reference_sample(law, 200_000, REFERENCE_SEED)
    critical = goodness_of_fit_critical_distance(SAMPLES, ALPHA_CHECK, reference.size)

    def statistics(x):
        out = _estimates(x, STATISTICS)
        out["ks_rejects"] = _ks_rejects(x, reference, critical)
        return out

    return map_replicates(law, SAMPLES, NULL_SETS, statistics, entropy=[2022, index])


def _counts(null, intervals):
    return {(s, tail): int(np.sum(null[s] < lo) if tail == "low" else np.sum(null[s] > hi))
            for s, (lo, hi) in intervals.items() for tail in ("low", "high")}


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CONFIGURATIONS)),
                         ids=[f"s{s:g}-{'bias' if b else 'nobias'}" for s, b in CONFIGURATIONS])
def test_every_check_false_alarm_rate_on_1e5_null_data_sets(index, tmp_path_factory):
    """~20 s on 2 idle cores: calibration (R = 69,075) plus 10^5 null data sets of 400 networks."""
    law = _law(index)
    cache = tmp_path_factory.mktemp("acceptance-cache")
    intervals = acceptance_intervals(law, SAMPLES, ALPHA_CHECK, cache_dir=cache)
    assert acceptance_intervals(law, SAMPLES, ALPHA_CHECK, cache_dir=cache) == intervals   # the cached one
    null = _null(index)
    for (s, tail), count in _counts(null, intervals).items():
        assert count <= STAT_BOUND, (s, tail, count, STAT_BOUND)
    # KS: the harness rejects when goodness_of_fit(...) < alpha_check, i.e. D > the critical distance
    rejected = null["ks_rejects"]
    assert int(rejected.sum()) <= KS_BOUND, (int(rejected.sum()), KS_BOUND)
    # the threshold decision is the distance's, and the distance is goodness_of_fit's: check both
    # on block 0 of the null data sets (redrawn alone, it is the same data)
    reference = reference_sample(law, 200_000, REFERENCE_SEED)
    critical = goodness_of_fit_critical_distance(SAMPLES, ALPHA_CHECK, reference.size)
    first_block = block_layout(SAMPLES, NULL_SETS)[0]
    rows = map_replicates(law, SAMPLES, first_block, lambda x: {"x": x}, entropy=[2022, index])["x"]
    distance = _ks_distance(rows, reference)
    np.testing.assert_array_equal(distance > critical, rejected[:first_block])
    for row in np.argsort(np.abs(distance - critical))[:8]:        # the data sets nearest the boundary
        p = goodness_of_fit(law, rows[row], seed=REFERENCE_SEED)
        assert (p < ALPHA_CHECK) == bool(distance[row] > critical), (row, p, distance[row], critical)


@pytest.mark.slow
def test_former_construction_fails_the_same_bound():
    """The former m = 1 construction (R = 9,999) at the harness's calibration seed 0, checked on the
    same 10^5 null data sets as sigma_w2 = 1 with biases above: 44 of them fall below the mean's
    interval (rate 4.4e-4 against the share 1e-4; bound 28).  So the count test can fail, and did
    for the shipped construction.  (Of 48 former calibrations -- 4 configurations x seeds 0..11 --
    19 exceed the bound in some tail: docs/measurements/calibration_and_power.md.)"""
    law = _law(0)
    old = acceptance_intervals(law, SAMPLES, ALPHA_CHECK, delta=None)
    counts = _counts(_null(0), old)
    assert counts[("mean", "low")] > STAT_BOUND, counts
    assert max(counts.values()) == counts[("mean", "low")]
