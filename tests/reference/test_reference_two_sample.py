"""Two-sample tests of measured rows against exact-law rows (reference.two_sample).

The permutation test is exactly valid for any law (exchangeability of the pooled rows):
checked on a heavy-tailed law with an atom, with stated false-alarm rates; and it has power:
a 20% scale error and a changed correlation between entries are caught.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reference.two_sample import ks_entries, permutation_test, permutation_tests


def _heavy_rows(rng, count, k=3, scale=1.0):
    """Rows of k correlated, heavy-tailed entries with an atom at 1 (a 'dead network')."""
    z = rng.standard_normal((count, 1)) + 0.5 * rng.standard_normal((count, k))
    rows = np.exp(1.2 * z)
    dead = rng.random(count) < 0.05
    rows[dead] = 1.0
    return scale * rows


def test_null_rejection_rate_is_at_most_the_level():
    """1000 null data sets (S = N = 60), 200 permutations each, level 0.05: the number of
    rejections of each statistic must not exceed the binomial 1 - 1e-4 quantile of
    Binomial(1000, 0.05) (false-alarm rate of this test: 4 statistics x 1e-4)."""
    rng = np.random.default_rng(1)
    rejections = {name: 0 for name in ("mean", "dispersion", "log_mean", "log_variance")}
    for trial in range(1000):
        found = permutation_tests(_heavy_rows(rng, 60), _heavy_rows(rng, 60), permutations=200, seed=trial)
        for name, result in found.items():
            rejections[name] += result["p_value"] <= 0.05
    bound = stats.binom.ppf(1 - 1e-4, 1000, 0.05)
    assert all(count <= bound for count in rejections.values()), (rejections, bound)
    # and not vacuous: the rate is near the level, not near 0 (lower 1e-4 quantile)
    assert all(count >= stats.binom.ppf(1e-4, 1000, 0.05) for count in rejections.values()), rejections


def test_a_scale_error_and_a_changed_shape_are_caught():
    """S = N = 2000 rows: a 20% scale error moves the mean of log Theta by 0.18, about 9 of its
    permutation standard deviations; p must be at the resolution floor 1/(B + 1)."""
    rng = np.random.default_rng(2)
    exact = _heavy_rows(rng, 2000)
    scaled = permutation_test(_heavy_rows(rng, 2000, scale=1.2), exact, "log_mean", permutations=999, seed=3)
    assert scaled["p_value"] == pytest.approx(1 / 1000)
    assert scaled["difference"] == pytest.approx(np.log(1.2), abs=0.06)
    wider = _heavy_rows(rng, 2000) ** 1.3          # the same median, a wider law: dispersion sees it
    spread = permutation_test(wider, exact, "log_variance", permutations=999, seed=4)
    assert spread["p_value"] == pytest.approx(1 / 1000)


def test_equal_samples_give_p_one_and_results_are_seeded():
    rng = np.random.default_rng(3)
    rows = _heavy_rows(rng, 50)
    same = permutation_test(rows, rows.copy(), "mean", permutations=99, seed=0)
    assert same["p_value"] == 1.0 and np.allclose(same["difference"], 0.0)
    other = _heavy_rows(rng, 50)
    first = permutation_tests(rows, other, permutations=99, seed=5)
    again = permutation_tests(rows, other, permutations=99, seed=5)
    assert all(first[k]["p_value"] == again[k]["p_value"] for k in first)


def test_ks_entries_and_bad_arguments():
    rng = np.random.default_rng(4)
    p = ks_entries(_heavy_rows(rng, 500), _heavy_rows(rng, 500, scale=2.0))
    assert p.shape == (3,) and np.all(p < 1e-10)
    with pytest.raises(ValueError, match="statistic"):
        permutation_test(np.ones((3, 2)), np.ones((3, 2)), "median")
    with pytest.raises(ValueError, match="same k"):
        permutation_test(np.ones((3, 2)), np.ones((3, 3)), "mean")
    with pytest.raises(ValueError, match="finite"):
        permutation_test(np.array([[1.0], [np.nan]]), np.ones((3, 1)), "mean")
