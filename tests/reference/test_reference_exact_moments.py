"""Exact moments (transfer matrices) and the exact sampler of reference.exact.

Deterministic checks (check values of theory.md, homogeneity identities, log scaling at
L = 10^4) and seeded Monte Carlo checks of the sampler against the transfer-matrix moments
(4.5 standard errors: false-alarm rate about 7e-6 per comparison, normal approximation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference import ExactLaw


@pytest.mark.parametrize("widths, sigma_w2, bias, mean, dispersion", [
    ((10,) * 6, 2.0, True, 11.990, 3.051),
    ((20,) * 11, 3.0, True, 805.31, 5.367),
    ((20,) * 11, 1.0, True, 2.0098, 1.0927),
    ((8,) * 5, 2.0, False, 5.000, 4.526),
    ((5,) + (40,) * 6, 1.5, True, 12.187, 1.4530),
])
def test_check_values_of_theory_md(widths, sigma_w2, bias, mean, dispersion):
    law = ExactLaw(widths, sigma_w2, trainable_bias=bias)
    assert law.mean() == pytest.approx(mean, rel=5e-4)
    assert law.dispersion() == pytest.approx(dispersion, rel=5e-4)
    assert law.second_moment() == pytest.approx(law.dispersion() * law.mean() ** 2, rel=1e-12)


@pytest.mark.parametrize("widths, sigma_w2, bias, par, norm", [
    ((8,) * 5, 2.0, True, "standard", 1.0),
    ((8,) * 5, 2.0, False, "standard", 1.0),
    ((3, 7, 5, 9), 2.7, True, "standard", 0.4),
    ((12,) * 4, 0.8, True, "standard", 1.0),
    ((6, 10, 10, 10), 2.0, True, "ntk", 1.0),
    ((2, 2, 2), 1.3, False, "standard", 1.0),      # width 2: dead nets are common
    ((3, 300, 70, 300), 2.2, True, "standard", 1.0),  # width > 255: numpy binomial path
])
def test_sampler_moments_match_transfer_matrices(widths, sigma_w2, bias, par, norm):
    law = ExactLaw(widths, sigma_w2, trainable_bias=bias, parametrization=par, input_norm_sq=norm)
    x = law.sample(400_000, np.random.default_rng(11))
    assert x.shape == (400_000,) and x.dtype == np.float64
    n = x.size
    assert abs(x.mean() - law.mean()) < 4.5 * x.std(ddof=1) / math.sqrt(n)
    x2 = x * x
    assert abs(x2.mean() - law.second_moment()) < 4.5 * x2.std(ddof=1) / math.sqrt(n)


def test_dead_networks_are_an_exact_atom():
    """Theta = beta exactly on dead networks, with probability 1 - prod(1 - 2^-n_l);
    checked at width 2 (binomial 4.5-sigma bound on the frequency)."""
    widths = (3, 2, 2, 2)
    for bias, beta in ((True, 1.0), (False, 0.0)):
        law = ExactLaw(widths, 2.0, trainable_bias=bias)
        x = law.sample(100_000, np.random.default_rng(5))
        p_dead = 1.0 - 0.75**3
        freq = np.mean(x == beta)
        assert abs(freq - p_dead) < 4.5 * math.sqrt(p_dead * (1 - p_dead) / x.size)
        assert np.all(x >= beta)


def test_homogeneity_identities_hold_at_extreme_depth():
    """Without biases the weight part scales as sigma_w2^L exactly, so at L = 10^4 the log
    moments differ by exactly L log(ratio) (and 2 L log(ratio)) and the dispersion does not
    depend on sigma_w2 -- across sigma_w2 from 0.1 to 10, i.e. values far outside float64.
    With biases every moment stays finite in log form."""
    depth = 10_000
    widths = (100,) * (depth + 1)
    reference = ExactLaw(widths, 1.0, trainable_bias=False)
    m1, m2 = reference.log_mean_second_moment()
    for sigma_w2 in (0.1, 2.0, 10.0):
        law = ExactLaw(widths, sigma_w2, trainable_bias=False)
        l1, l2 = law.log_mean_second_moment()
        assert l1 - m1 == pytest.approx(depth * math.log(sigma_w2), rel=1e-9, abs=1e-6)
        assert l2 - m2 == pytest.approx(2 * depth * math.log(sigma_w2), rel=1e-9, abs=1e-6)
        assert law.dispersion() == pytest.approx(reference.dispersion(), rel=1e-9)
        biased = ExactLaw(widths, sigma_w2, trainable_bias=True)
        b1, b2 = biased.log_mean_second_moment()
        assert math.isfinite(b1) and math.isfinite(b2) and biased.dispersion() >= 1.0
    # ordered phase with biases: Theta concentrates near 1/(1 - sigma_w2/2)
    ordered = ExactLaw(widths, 0.1, trainable_bias=True)
    assert ordered.mean() == pytest.approx(1.0 / (1.0 - 0.05), rel=1e-3)
    assert ordered.dispersion() == pytest.approx(1.0, abs=1e-3)


def test_mean_is_path_count_formula():
    """E[Theta] for equal widths (n_0 = n, |x| = 1, ignoring the 2^-n dead-layer term at
    n = 60) is (L + 1) c^{2L} + sum_{k=0}^{L} c^{2k} with c^2 = sigma_w2 / 2 (the backward
    1 - 2/n factors and the 2/n switch terms cancel exactly)."""
    for sigma_w2 in (0.5, 2.0, 3.3):
        c2, depth = sigma_w2 / 2, 7
        law = ExactLaw((60,) * (depth + 1), sigma_w2)
        expected = (depth + 1) * c2**depth + sum(c2**k for k in range(depth + 1))
        assert law.mean() == pytest.approx(expected, rel=1e-12)


def test_key_is_stable_and_distinguishes_parameters():
    a = ExactLaw((5, 8, 8), 2.0)
    assert a.key() == ExactLaw([5, 8, 8], 2).key()
    others = [ExactLaw((5, 8, 9), 2.0), ExactLaw((5, 8, 8), 2.5), ExactLaw((5, 8, 8), 2.0, trainable_bias=False),
              ExactLaw((5, 8, 8), 2.0, input_norm_sq=2.0), ExactLaw((5, 8, 8), 2.0, parametrization="ntk")]
    assert len({a.key()} | {o.key() for o in others}) == 6


def test_sampler_is_reproducible():
    law = ExactLaw((10,) * 4, 2.0)
    a = law.sample(1000, np.random.default_rng(3))
    b = law.sample(1000, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert law.sample(0, np.random.default_rng(0)).shape == (0,)


def test_popcount_without_numpy_bitwise_count_gives_the_same_binomial_draws(monkeypatch):
    """NumPy < 2.0 has no np.bitwise_count: the byte-table popcount must give the same counts,
    so an exact law draws the same Binomial(n, 1/2) values on the declared NumPy floor."""
    import numpy as np
    from reference import exact

    words = np.random.default_rng(7).bit_generator.random_raw(4096)
    words[:3] = (0, np.iinfo(np.uint64).max, 1 << 63)
    expected = np.array([bin(int(w)).count("1") for w in words], dtype=np.uint8)
    with_numpy = exact._popcount(words)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    table = exact._popcount(words)
    assert table.dtype == np.uint8 and with_numpy.dtype == np.uint8
    np.testing.assert_array_equal(table, expected)
    np.testing.assert_array_equal(with_numpy, expected)
    draws = exact._binomial_half(np.random.default_rng(3), 100, 1000)
    monkeypatch.undo()
    np.testing.assert_array_equal(draws, exact._binomial_half(np.random.default_rng(3), 100, 1000))
