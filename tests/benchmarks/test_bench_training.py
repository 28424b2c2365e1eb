"""Speed of the training cases' probe NTK at the paper's size (pytest-benchmark).

The paper's training measurement: the output-trace NTK ``sum_i Theta[a, b, i, i]`` of a
network of width 300, depth 20, 10 outputs (input dimension 64: digits; P = 1,738,210
parameters) on 100 probe inputs (10 per class), float32, CPU. Two ways:

- ``after``: :func:`harness.training.probe.probe_trace_ntk`, the structured output-trace path
  (no parameter-sized Jacobian), at the full 100 probes;
- ``before``: the trace of the full per-output blocks from the Jacobian implementation,
  chunked to the default 512 MiB budget as the training cases did before (3 probes per
  chunk, ``k (k + 1) / 2`` block calls for ``k = ceil(N / 3)`` chunks). One call at 100 probes
  takes minutes, so by default it runs at ``NTK_BENCH_TRAINING_BEFORE_PROBES`` = 9 probes
  (3 chunks, 6 block calls: seconds) and records in ``extra_info`` the estimate at 100 probes
  scaled by the number of block calls (595 / 6), which is the N^2 scaling of the chunked path;
  set the variable to 20 for a better estimate (28 block calls) or to 100 to time the real thing.

Run (one thread on a shared machine)::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks/test_bench_training.py --benchmark-only \\
        --benchmark-json=training.json
"""
from __future__ import annotations

import math
import os

import pytest
import torch

from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk import get_implementation
from harness.training import probe

PAPER = Architecture(widths=(64,) + (300,) * 20, sigma_w2=2.0, output_dim=10)
PROBES = 100
BUDGET = 512 * 2**20
BEFORE_PROBES = int(os.environ.get("NTK_BENCH_TRAINING_BEFORE_PROBES", "9"))


def _block_calls(n: int, chunk: int) -> int:
    k = math.ceil(n / chunk)
    return k * (k + 1) // 2


@pytest.fixture(scope="module")
def paper_network():
    f = MLP(PAPER)
    params = unstack(init_parameters(PAPER, 0, [0], dtype=torch.float32, device="cpu"), 0)
    x = torch.rand(PROBES, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float32)  # pixels in [0, 1]
    return f, params, x


def test_probe_trace_ntk_after(benchmark, paper_network):
    f, params, x = paper_network
    benchmark.group = "probe NTK, paper size (w300 L20 O10 N100 float32)"
    result = benchmark.pedantic(lambda: probe.probe_trace_ntk(None, f, params, x, 10, BUDGET),
                                rounds=3, warmup_rounds=1, iterations=1)
    assert tuple(result.shape) == (PROBES, PROBES)
    benchmark.extra_info.update(path="structured output trace", probes=PROBES,
                                parameters=PAPER.parameter_count())


def test_probe_trace_ntk_before(benchmark, paper_network):
    f, params, x = paper_network
    n = min(BEFORE_PROBES, PROBES)
    jacobian = get_implementation("jacobian")
    chunk = probe.chunk_size(n, 10, PAPER.parameter_count(), 4, BUDGET)
    benchmark.group = "probe NTK, paper size (w300 L20 O10 N100 float32)"
    result = benchmark.pedantic(
        lambda: probe.output_trace(probe.probe_ntk(jacobian, f, params, x[:n], 10, BUDGET)),
        rounds=1, warmup_rounds=1, iterations=1)
    assert tuple(result.shape) == (n, n)
    full_chunk = probe.chunk_size(PROBES, 10, PAPER.parameter_count(), 4, BUDGET)
    scale = _block_calls(PROBES, full_chunk) / _block_calls(n, chunk)
    benchmark.extra_info.update(
        path="jacobian full blocks, chunked to 512 MiB, then the trace", probes=n, chunk=chunk,
        block_calls=_block_calls(n, chunk), block_calls_at_100=_block_calls(PROBES, full_chunk),
        estimated_seconds_at_100_probes=(benchmark.stats.stats.min * scale) if benchmark.stats else None)
    # the two paths agree on the probes both computed (float32: the contractions differ in order)
    fast = probe.probe_trace_ntk(None, f, params, x[:n], 10, BUDGET)
    torch.testing.assert_close(fast, result, rtol=1e-3, atol=1e-3 * float(result.abs().max()))
