"""Speed of every NTK implementation over a grid of network sizes (pytest-benchmark).

Each benchmark computes K(x, x) for N inputs of one randomly initialized fully connected
ReLU network (width n, depth L hidden layers, O outputs, input dimension n) and records
in ``extra_info`` the implementation's FLOP estimate and the achieved GFLOP/s. Tests of
one grid point share a pytest-benchmark ``group``, so the table compares the
implementations side by side; ``--benchmark-save``/``--benchmark-compare`` track
regressions between versions.

Grids (environment variable ``NTK_BENCH_GRID``):

- ``small`` (default; what ``pytest tests`` runs): four cheap CPU points, seconds;
- ``goal``: width 512, depth 16, 128 inputs, 1 output, float32, CPU, where ``structured``
  should be at least 5x faster than ``jacobian``;
- ``sweep``: the points of tests/benchmarks/RESULTS.md (affordable on 2 CPU cores);
- ``full``: width 64..1024 x depth 2..64 x inputs 1..256 x outputs 1, 10, float32, on CPU
  and on CUDA when present (hours on a CPU; points whose Jacobians would exceed
  ``NTK_BENCH_MEMORY_GB``, default 4, are skipped with the reason).

``NTK_BENCH_IMPLS`` (comma-separated names or ``package.module:function``) restricts or
extends the implementations, e.g. ``NTK_BENCH_IMPLS=jacobian,mymodule:my_ntk``;
``NTK_BENCH_ROUNDS`` (default 3) and ``NTK_BENCH_WARMUP`` (default 1) set the rounds.
On a shared machine set ``OMP_NUM_THREADS=1``: oversubscribed OpenMP threads spin and
turn millisecond kernels into 100 ms outliers.

Run::

    pytest tests/benchmarks --benchmark-only --benchmark-save=baseline
    NTK_BENCH_GRID=goal pytest tests/benchmarks --benchmark-only
    pytest tests/benchmarks --benchmark-only --benchmark-compare=0001 --benchmark-compare-fail=mean:25%
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import pytest
import torch

from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk import get_implementation
from harness.ntk.registry import BUILTINS


@dataclass(frozen=True)
class Point:
    width: int
    depth: int
    inputs: int
    outputs: int
    dtype: str = "float32"
    device: str = "cpu"

    @property
    def id(self) -> str:
        return f"w{self.width}-L{self.depth}-N{self.inputs}-O{self.outputs}-{self.dtype}-{self.device}"

    def architecture(self) -> Architecture:
        return Architecture(widths=(self.width,) * (self.depth + 1), sigma_w2=2.0, output_dim=self.outputs)


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _grid(name: str) -> list[Point]:
    if name == "small":
        return [Point(64, 2, 16, 1), Point(128, 4, 32, 1), Point(64, 4, 8, 3), Point(256, 8, 16, 1)]
    if name == "goal":
        return [Point(512, 16, 128, 1)]
    if name == "sweep":
        return [
            Point(64, 2, 1, 1), Point(64, 2, 16, 10), Point(128, 8, 64, 1), Point(256, 4, 128, 1),
            Point(256, 16, 32, 10), Point(512, 16, 128, 1), Point(1024, 2, 256, 1), Point(128, 64, 64, 1),
            Point(512, 4, 16, 10),
        ]
    if name == "full":
        return [
            Point(w, d, n, o, "float32", dev)
            for dev, w, d, n, o in itertools.product(
                _devices(), (64, 128, 256, 512, 1024), (2, 4, 8, 16, 32, 64), (1, 16, 128, 256), (1, 10)
            )
        ]
    raise ValueError(f"NTK_BENCH_GRID must be small, goal, sweep or full; got {name!r}")


GRID = _grid(os.environ.get("NTK_BENCH_GRID", "small"))
IMPLEMENTATIONS = [s for s in os.environ.get("NTK_BENCH_IMPLS", ",".join(BUILTINS)).split(",") if s]
MEMORY_BYTES = float(os.environ.get("NTK_BENCH_MEMORY_GB", "4")) * 2**30
ROUNDS = int(os.environ.get("NTK_BENCH_ROUNDS", "3"))
WARMUP = int(os.environ.get("NTK_BENCH_WARMUP", "1"))


def flop_estimate(name: str, point: Point) -> float | None:
    """Multiply-adds x 2 of each built-in's algorithm for K(x, x), N inputs (None if unknown).

    P = parameters, F = 2P the forward pass of one input, S = sum of layer widths;
    a backward pass through one layer costs 2 n_{l-1} n_l, a weight gradient n_{l-1} n_l.
    """
    arch = point.architecture()
    p = arch.parameter_count()
    n, o = point.inputs, point.outputs
    sizes = arch.layer_sizes
    inputs_width = sum(sizes[:-1])  # sum of n_{l-1} over layers
    outputs_width = sum(sizes[1:])  # sum of n_l over layers
    if name in ("jacobian", "autograd-loop"):
        # forward, O backward passes with weight gradients, the N^2 O^2 P contraction
        return 2 * n * p + 3 * n * o * p + 2 * n * n * o * o * p
    if name == "ntk-vector-products":
        # N O single-input vjps (forward + backward) and N O jvps over the batch (tangent 4P
        # per input); for K(x, x) the row of input a needs inputs a.. only: N (N + 1) / 2 in all
        return n * o * 5 * p + 4 * o * p * n * (n + 1) / 2
    if name == "structured":
        # forward, O backward passes without weight gradients, per-layer Gram matrices
        return 2 * n * p + 2 * n * o * p + 2 * n * n * inputs_width + 2 * n * n * o * o * outputs_width
    return None


def jacobian_bytes(point: Point) -> float:
    return point.inputs * point.outputs * point.architecture().parameter_count() * 4


@pytest.mark.parametrize("point", GRID, ids=lambda p: p.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_ntk_speed(benchmark, name, point):
    if point.device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    if name != "structured" and jacobian_bytes(point) > MEMORY_BYTES:
        pytest.skip(f"{name} needs ~{jacobian_bytes(point) / 2**30:.1f} GiB of per-input gradients "
                    f"(> NTK_BENCH_MEMORY_GB={MEMORY_BYTES / 2**30:g})")
    implementation = get_implementation(name)
    arch = point.architecture()
    dtype = getattr(torch, point.dtype)
    f = MLP(arch)
    params = unstack(init_parameters(arch, 0, [0], dtype=dtype, device=point.device), 0)
    x = torch.randn(point.inputs, arch.input_dim, generator=torch.Generator().manual_seed(1), dtype=dtype)
    x = (x / arch.input_dim**0.5).to(point.device)

    def compute():
        result = implementation(f, params, x, x)
        if point.device != "cpu":
            torch.cuda.synchronize()
        return result

    benchmark.group = point.id
    result = benchmark.pedantic(compute, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    expected = (point.inputs, point.inputs) + ((point.outputs,) * 2 if point.outputs > 1 else ())
    assert tuple(result.shape) == expected

    flops = flop_estimate(name, point)
    benchmark.extra_info.update(
        implementation=name, width=point.width, depth=point.depth, inputs=point.inputs, outputs=point.outputs,
        dtype=point.dtype, device=point.device, parameters=arch.parameter_count(), flops=flops,
    )
    if flops is not None and benchmark.stats is not None:
        mean = benchmark.stats.stats.mean
        benchmark.extra_info["gflops_per_s"] = flops / mean / 1e9 if mean > 0 else None
