"""Phase map (reference.phase) and asymptotic dispersion (reference.asymptotic).

Deterministic: closed-form phase boundaries, quadrature against scipy.integrate.quad and a
closed-form erf variance map, and the exact finite-width dispersion converging to the
continuum limit (Richardson extrapolation over n = 1000, 2000, 4000 at fixed lambda).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from reference import (ExactLaw, asymptotic_dispersion, chi_1, depth_to_width, edge_of_chaos_sigma_w2,
                       phase_of, variance_fixed_point, PHASES)


def test_relu_phases_closed_form():
    assert PHASES == ("ordered", "eoc", "chaotic")
    assert phase_of(1.0) == "ordered" and phase_of(2.0) == "eoc" and phase_of(3.0) == "chaotic"
    assert phase_of(1.999) == "ordered" and phase_of(2.001) == "chaotic"
    assert chi_1(3.0) == pytest.approx(1.5)
    assert variance_fixed_point(2.5) == 0.0
    assert variance_fixed_point(1.0, 0.5) == pytest.approx(1.0)           # q = q/2 + 1/2
    assert variance_fixed_point(2.5, 0.5) == math.inf
    assert edge_of_chaos_sigma_w2(0.0) == 2.0 and edge_of_chaos_sigma_w2(0.7) == 2.0
    assert depth_to_width([100] * 50) == 0.5 and depth_to_width([10, 20]) == pytest.approx(0.15)


@pytest.mark.parametrize("activation, sigma_b2, expected", [
    ("tanh", 0.0, 1.0), ("erf", 0.0, math.pi / 4), ("linear", 0.0, 1.0), ("linear", 0.3, 1.0), ("relu", 0.0, 2.0),
])
def test_edge_of_chaos_closed_forms(activation, sigma_b2, expected):
    assert edge_of_chaos_sigma_w2(sigma_b2, activation) == pytest.approx(expected, abs=1e-6)


def test_tanh_edge_of_chaos_with_bias_solves_chi_1_equal_one():
    """For sigma_b2 > 0 the EOC is found by root finding; verify chi_1 = 1 there using an
    independent adaptive quadrature (scipy.integrate.quad) at the fixed point."""
    for sigma_b2 in (0.05, 0.3):
        s = edge_of_chaos_sigma_w2(sigma_b2, "tanh")
        q = variance_fixed_point(s, sigma_b2, "tanh")
        density = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        eq = integrate.quad(lambda z: math.tanh(math.sqrt(q) * z) ** 2 * density(z), -12, 12)[0]
        assert s * eq + sigma_b2 == pytest.approx(q, rel=1e-8)
        slope = integrate.quad(lambda z: math.cosh(math.sqrt(q) * z) ** -4 * density(z), -12, 12)[0]
        assert s * slope == pytest.approx(1.0, abs=1e-7)
        assert phase_of(s * 0.98, sigma_b2, "tanh") == "ordered"
        assert phase_of(s * 1.02, sigma_b2, "tanh") == "chaotic"
        assert s > 1.0  # biases push the tanh EOC to larger sigma_w2


def test_erf_fixed_point_closed_form():
    """E[erf(u)^2] = (2/pi) arcsin(2q / (1 + 2q)) for u ~ N(0, q)."""
    for s, b in [(2.0, 0.1), (3.0, 0.5), (1.5, 0.0)]:
        q = variance_fixed_point(s, b, "erf")
        assert q == pytest.approx(s * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + b, rel=1e-10)
        assert chi_1(s, b, "erf") == pytest.approx(s * 4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-10)


def test_tanh_phases_without_bias():
    assert phase_of(0.9, 0.0, "tanh") == "ordered"
    assert phase_of(1.0, 0.0, "tanh") == "eoc"
    assert phase_of(1.5, 0.0, "tanh") == "chaotic"


def _richardson(values):
    """Two-step Richardson extrapolation for an error expansion in 1/n (n doubling)."""
    r1 = 2 * values[1] - values[0]
    r2 = 2 * values[2] - values[1]
    return (4 * r2 - r1) / 3


@pytest.mark.parametrize("lam", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("sigma_w2, bias", [(1.0, True), (2.0, True), (3.0, True), (2.0, False)])
def test_exact_dispersion_converges_to_asymptotic(lam, sigma_w2, bias):
    exact = [ExactLaw((n,) * (int(round(lam * n)) + 1), sigma_w2, trainable_bias=bias).dispersion()
             for n in (1000, 2000, 4000)]
    limit = asymptotic_dispersion(lam, sigma_w2, bias)
    assert _richardson(exact) == pytest.approx(limit, rel=5e-3)
    # and the raw n = 4000 value is already close: the 1/n error shrinks
    assert abs(exact[2] - limit) < abs(exact[0] - limit) + 1e-12


def test_asymptotic_shape_per_phase():
    lams = [0.1, 0.5, 1.0, 2.0]
    for lam in lams:
        assert asymptotic_dispersion(lam, 1.0) == 1.0
        assert asymptotic_dispersion(lam, 3.0) == asymptotic_dispersion(lam, 5.0)   # chaotic: sigma-free
        assert 1.0 < asymptotic_dispersion(lam, 2.0) < asymptotic_dispersion(lam, 3.0)
        assert asymptotic_dispersion(lam, 1.0, False) == asymptotic_dispersion(lam, 3.0, False)
    eoc = [asymptotic_dispersion(lam, 2.0) for lam in lams]
    chaotic = [asymptotic_dispersion(lam, 3.0) for lam in lams]
    assert np.all(np.diff(np.log(eoc)) > 0) and np.all(np.diff(np.log(chaotic)) > 0)
    # exponential growth: log-dispersion per unit lambda approaches a positive constant
    assert math.log(asymptotic_dispersion(4.0, 3.0)) - math.log(asymptotic_dispersion(3.0, 3.0)) > 1.0
    assert asymptotic_dispersion(0.0, 2.0) == 1.0


@pytest.mark.parametrize("input_dim_ratio, norm_sq", [(0.25, 1.0), (1.0, 3.0)])
def test_asymptotic_input_scale_at_eoc(input_dim_ratio, norm_sq):
    """At the EOC with biases the limit depends on |x|^2 n / n_0 (weight versus bias paths);
    Richardson over n = 1000, 2000, 4000 at lambda = 0.5 with n_0 = ratio * n."""
    exact = [ExactLaw((int(input_dim_ratio * n),) + (n,) * (n // 2), 2.0, input_norm_sq=norm_sq).dispersion()
             for n in (1000, 2000, 4000)]
    limit = asymptotic_dispersion(0.5, 2.0, input_scale=norm_sq / input_dim_ratio)
    assert _richardson(exact) == pytest.approx(limit, rel=5e-3)
    assert limit != pytest.approx(asymptotic_dispersion(0.5, 2.0), rel=1e-2)
