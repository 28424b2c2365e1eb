"""Timings of reference/: exact moments at depth 10^4, 10^6 exact draws, calibrated intervals.

    python docs/measurements/scripts/reference_timings.py

Prints wall and CPU seconds of each step (docs/measurements/reference.md quotes the output).
"""
import tempfile
import time

import numpy as np

from reference import ExactLaw, acceptance_intervals


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


for sigma_w2 in (0.1, 2.0, 10.0):
    law = ExactLaw((100,) * 10001, sigma_w2)
    (log_mean, log_second), wall, cpu = timed(law.log_mean_second_moment)
    print(f"exact moments n=100 L=10^4 sigma_w2={sigma_w2}: log E={log_mean:.6f} log E2={log_second:.4f} "
          f"wall {wall:.3f}s cpu {cpu:.3f}s")
law = ExactLaw((100,) * 51, 2.0)
draws, wall, cpu = timed(lambda: law.sample(10**6, np.random.default_rng(0)))
print(f"10^6 exact draws n=100 L=50: wall {wall:.2f}s cpu {cpu:.2f}s  sample mean {draws.mean():.3f} "
      f"(exact {law.mean():.3f})")
with tempfile.TemporaryDirectory() as cache:
    law = ExactLaw((16,) * 17, 2.0)
    _, wall, cpu = timed(lambda: acceptance_intervals(law, 500, 2e-4, cache_dir=cache))
    print(f"acceptance_intervals S=500 L=16 alpha=2e-4 (per-check construction): wall {wall:.2f}s cpu {cpu:.2f}s")
    _, wall, cpu = timed(lambda: acceptance_intervals(law, 500, 2e-4, cache_dir=cache))
    print(f"the same, from the cache: wall {wall:.3f}s")
