"""Speed of the reference computations (pytest-benchmark; one round each, nothing about
time is asserted, only that the results are sane).  Full-size numbers: docs/measurements/scripts/reference_timings.py.

    pytest tests/reference/test_reference_benchmarks.py --benchmark-only
"""

from __future__ import annotations

import math

import numpy as np

from reference import ExactLaw, acceptance_intervals


def test_benchmark_exact_moments_depth_10000(benchmark):
    law = ExactLaw((100,) * 10_001, 3.0)
    log_mean, log_second = benchmark.pedantic(law.log_mean_second_moment, rounds=1, iterations=1)
    assert math.isfinite(log_mean) and math.isfinite(log_second) and log_second > 2 * log_mean


def test_benchmark_sampler_depth_50(benchmark):
    law = ExactLaw((100,) * 51, 2.0)
    draws = benchmark.pedantic(lambda: law.sample(100_000, np.random.default_rng(0)), rounds=1, iterations=1)
    assert draws.shape == (100_000,) and np.all(draws >= 1.0)


def test_benchmark_acceptance_intervals(benchmark):
    law = ExactLaw((16,) * 9, 2.0)
    intervals = benchmark.pedantic(lambda: acceptance_intervals(law, 200, 2e-3), rounds=1, iterations=1)
    assert intervals["mean"][0] < law.mean() < intervals["mean"][1]
