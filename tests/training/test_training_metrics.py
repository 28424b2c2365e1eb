"""Metrics of NTK movement and statistics over seeds, on hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.training import metrics


def test_relative_change_by_hand():
    theta0 = np.array([[2.0, 1.0], [1.0, 2.0]])  # |.|_F = sqrt(10)
    theta_t = np.array([[3.0, 1.0], [1.0, 2.0]])  # differs by 1 in one entry
    assert metrics.relative_change(theta_t, theta0) == pytest.approx(1 / math.sqrt(10))
    assert metrics.relative_change(theta0, theta0) == 0.0


def test_relative_change_of_per_output_blocks():
    theta0 = np.zeros((2, 2, 2, 2))
    theta0[..., 0, 0] = 1.0
    theta0[..., 1, 1] = 1.0  # |.|_F = sqrt(8)
    theta_t = theta0.copy()
    theta_t[0, 1, 0, 1] = 2.0  # one off-diagonal output entry appears
    assert metrics.relative_change(theta_t, theta0) == pytest.approx(2 / math.sqrt(8))


def test_alignment_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert metrics.alignment(a, b) == pytest.approx(2 / (math.sqrt(2) * 2))
    assert metrics.alignment(3 * a, a) == pytest.approx(1.0)  # scale-free
    assert metrics.relative_change(3 * a, a) == pytest.approx(2.0)  # while the relative change is not


def test_eigenvalue_change_by_hand():
    theta0 = np.diag([4.0, 2.0, 1.0])
    theta_t = np.diag([6.0, 2.0, 0.5])
    np.testing.assert_allclose(metrics.top_eigenvalues(theta0, 2), [4.0, 2.0])
    np.testing.assert_allclose(metrics.eigenvalue_change(theta_t, theta0, 3), [0.5, 0.0, -0.5])


def test_block_ratio_by_hand():
    # classes [0, 0, 1, 1]; within-class off-diagonal entries 3, between-class entries 1 or -1
    theta = np.array([
        [9.0, 3.0, 1.0, -1.0],
        [3.0, 9.0, -1.0, 1.0],
        [1.0, -1.0, 9.0, 3.0],
        [-1.0, 1.0, 3.0, 9.0],
    ])
    assert metrics.block_ratio(theta, [0, 0, 1, 1]) == pytest.approx(3.0)  # diagonal excluded, |.| taken
    # a kernel without class structure has ratio 1
    assert metrics.block_ratio(np.ones((4, 4)), [0, 0, 1, 1]) == pytest.approx(1.0)


def test_block_ratio_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        metrics.block_ratio(np.eye(3), [0, 1])
    with pytest.raises(ValueError, match="two classes"):
        metrics.block_ratio(np.eye(3), [0, 0, 0])


def test_mean_interval_is_the_t_interval():
    values = [1.0, 2.0, 3.0, 6.0]
    e = metrics.mean_interval(values, 0.95)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert e.value == pytest.approx(3.0)
    assert tuple(e.interval) == pytest.approx((3.0 - half, 3.0 + half))
    single = metrics.mean_interval([5.0])
    assert single.interval.low == -math.inf and single.interval.high == math.inf


def test_power_law_fit_recovers_a_known_exponent():
    rng = np.random.default_rng(1)
    widths = np.repeat([16, 32, 64, 128, 256], 6)
    y = 3.0 * widths ** -0.75 * np.exp(0.05 * rng.standard_normal(widths.size))
    fit = metrics.power_law_fit(widths, y, confidence=0.999)  # seeded; a 0.1% chance to miss
    assert fit.slope == pytest.approx(-0.75, abs=0.05)
    assert fit.interval[0] < -0.75 < fit.interval[1]
    assert math.exp(fit.intercept) == pytest.approx(3.0, rel=0.2)
    exact = metrics.power_law_fit([1, 2, 4, 8], [1.0, 0.5, 0.25, 0.125])
    assert exact.slope == pytest.approx(-1.0)
    assert exact.interval == pytest.approx((-1.0, -1.0))


def test_power_law_fit_interval_coverage():
    """The t-interval of the slope covers the true exponent at about its level (seeded, 400 fits)."""
    rng = np.random.default_rng(7)
    x = np.repeat([16.0, 32.0, 64.0, 128.0], 4)
    covered = 0
    for _ in range(400):
        y = x ** 0.3 * np.exp(0.3 * rng.standard_normal(x.size))
        low, high = metrics.power_law_fit(x, y, 0.9).interval
        covered += low <= 0.3 <= high
    # 90% nominal; binomial sd over 400 fits is 1.5%, so [0.85, 0.95] is a > 3-sd band
    assert 0.85 <= covered / 400 <= 0.95


def test_fits_reject_bad_input():
    with pytest.raises(ValueError, match="positive"):
        metrics.power_law_fit([1, 2], [1.0, 0.0])
    with pytest.raises(ValueError, match="two distinct"):
        metrics.least_squares_fit([1, 1, 1], [1.0, 2.0, 3.0])


def test_welch_ratio_test_matches_scipy_on_logs():
    a, b = [0.2, 0.35, 0.3, 0.25], [0.9, 1.4, 0.7, 1.1]
    test = metrics.welch_ratio_test(a, b, 0.05)
    reference = stats.ttest_ind(np.log(a), np.log(b), equal_var=False, alternative="less")
    assert test.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert test.ratio == pytest.approx(stats.gmean(a) / stats.gmean(b))
    assert test.smaller and not test.larger and test.upper < 1
    reverse = metrics.welch_ratio_test(b, a, 0.05)
    assert reverse.larger and not reverse.smaller
    assert reverse.ratio == pytest.approx(1 / test.ratio)
    with pytest.raises(ValueError, match="two positive values"):
        metrics.welch_ratio_test([1.0], [1.0, 2.0])


def test_welch_ratio_test_size_is_its_level():
    """Equal log-normal groups of 4: 'smaller' at level 0.05 about 5% of the time (seeded, 4000 tries)."""
    rng = np.random.default_rng(11)
    hits = sum(metrics.welch_ratio_test(np.exp(rng.normal(0, 0.5, 4)), np.exp(rng.normal(0, 1.0, 4)), 0.05).smaller
               for _ in range(4000))
    # Welch's approximation is slightly conservative for unequal variances; binomial sd 0.35%
    assert 0.03 <= hits / 4000 <= 0.06


def test_geometric_mean_interval():
    e = metrics.geometric_mean_interval([1.0, 4.0], 0.95)
    assert e.value == pytest.approx(2.0)
    assert e.interval.low < 2.0 < e.interval.high
    assert e.interval.low * e.interval.high == pytest.approx(4.0)   # symmetric on the log scale
    with pytest.raises(ValueError, match="positive"):
        metrics.geometric_mean_interval([1.0, 0.0])


# ---------------------------------------------------------------- the paper's Fig. 4 ratios
def _notebook_ratios(K: np.ndarray, M: int):
    """The authors' notebook (ntk_dynamics_figures.ipynb), re-typed from its definitions: blocks
    of M consecutive rows (inputs sorted by class, M per class), the class-diagonal blocks and,
    per block column, the rows outside its block."""
    diag_blocks = np.array([K[i:i + M, i:i + M] for i in range(0, len(K), M)])
    off_blocks = np.array([np.concatenate((K[:i, i:i + M], K[i + M:, i:i + M])) for i in range(0, len(K), M)])
    d = np.mean(np.diag(K))
    return (np.mean(diag_blocks) / d, np.mean([np.std(b) for b in diag_blocks]) / d,
            np.mean(off_blocks) / d, np.std(off_blocks) / d)


@pytest.mark.parametrize("classes, per_class, seed", [(10, 10, 0), (3, 4, 1), (2, 2, 2)])
def test_class_block_ratios_are_the_notebooks(classes, per_class, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(classes * per_class, 7))
    K = a @ a.T + 3.0
    labels = np.repeat(np.arange(classes), per_class)
    found = metrics.class_block_ratios(K, labels)
    expected = _notebook_ratios(K, per_class)
    assert np.allclose([found.class_block_over_diagonal, found.class_block_over_diagonal_error,
                        found.off_class_over_diagonal, found.off_class_over_diagonal_error], expected, rtol=1e-12)
    # the rows need not be sorted: any order of the inputs gives the same ratios
    order = rng.permutation(labels.size)
    shuffled = metrics.class_block_ratios(K[np.ix_(order, order)], labels[order])
    assert np.allclose([shuffled.class_block_over_diagonal, shuffled.class_block_over_diagonal_error,
                        shuffled.off_class_over_diagonal, shuffled.off_class_over_diagonal_error],
                       expected, rtol=1e-12)


def test_class_block_ratios_by_hand_and_scale_free():
    # two classes of two: blocks [[4, 2], [2, 4]] and [[2, 0], [0, 2]], off-class entries 1 and 3
    K = np.array([[4.0, 2, 1, 3], [2, 4, 3, 1], [1, 3, 2, 0], [3, 1, 0, 2]])
    found = metrics.class_block_ratios(K, [0, 0, 1, 1])
    d = 3.0   # mean of 4, 4, 2, 2
    assert found.class_block_over_diagonal == pytest.approx((12 + 4) / 8 / d)
    assert found.class_block_over_diagonal_error == pytest.approx((1.0 + 1.0) / 2 / d)
    assert found.off_class_over_diagonal == pytest.approx(2.0 / d)
    assert found.off_class_over_diagonal_error == pytest.approx(1.0 / d)
    scaled = metrics.class_block_ratios(890.0 * K, [0, 0, 1, 1])   # an NTK that grows uniformly
    assert scaled.off_class_over_diagonal == pytest.approx(found.off_class_over_diagonal, rel=1e-14)
    with pytest.raises(ValueError, match="two classes"):
        metrics.class_block_ratios(K, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="labels"):
        metrics.class_block_ratios(K, [0, 1])
