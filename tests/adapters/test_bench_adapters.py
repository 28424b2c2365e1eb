"""Speed and peak memory of the third-party adapters beside the built-ins (pytest-benchmark).

The small grid of tests/benchmarks/test_bench_ntk.py (K(x, x) of one ReLU MLP: w64-L2-N16-O1,
w128-L4-N32-O1, w64-L4-N8-O3, w256-L8-N16-O1, float32, CPU) and the example models of
tests/benchmarks/test_bench_models.py (N = 8 inputs, float32 and float64), for every built-in and
every adapter in :data:`harness.ntk.registry.OPTIONAL` whose library is installed (the others are
skipped naming the extra) and that supports the network (else skipped with its reason; one that
raises on it is skipped with its error). Without any third-party library the built-ins are skipped
here too (tests/benchmarks measures them). One
group per point, so the implementations are side by side; ``extra_info`` holds the implementation,
the point and, for the implementations that allocate through torch, the peak memory of one extra
untimed call (``PeakTensorMemory`` of test_bench_models.py: tensor storages created by aten
operators). neural-tangents allocates in XLA, outside torch: its peak is not measured here
(``peak_memory_bytes`` None, ``memory_measure`` says so). Its time includes the conversion of
parameters and inputs to float64 numpy arrays and back; the first (warm-up) call compiles.

``NTK_BENCH_IMPLS`` restricts the implementations as in tests/benchmarks. No test asserts a time.
Run (one core)::

    OMP_NUM_THREADS=1 python -m pytest tests/adapters/test_bench_adapters.py --benchmark-only \\
        --benchmark-json=adapters.json
    python tests/adapters/test_bench_adapters.py adapters.json      # the table
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from test_bench_models import POINTS as MODEL_POINTS, INPUTS, peak_memory  # noqa: E402
from test_bench_ntk import _grid, ROUNDS, WARMUP  # noqa: E402

from harness.models import make_model_inputs  # noqa: E402
from harness.networks import MLP, init_parameters, unstack  # noqa: E402
from harness.ntk.registry import BUILTINS, OPTIONAL, get_implementation  # noqa: E402

GRID = [p for p in _grid("small") if p.device == "cpu"]
IMPLEMENTATIONS = [s for s in os.environ.get("NTK_BENCH_IMPLS", ",".join([*BUILTINS, *OPTIONAL])).split(",") if s]
CPU_MODELS = [p for p in MODEL_POINTS if p.device == "cpu"]


def _installed(name: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(module) is not None for module in OPTIONAL[name].modules)


ANY_ADAPTER = any(_installed(name) for name in OPTIONAL)


def _load(name: str):
    if name not in OPTIONAL and not ANY_ADAPTER:
        pytest.skip("no third-party library is installed: the built-ins alone are benchmarked in tests/benchmarks")
    if name in OPTIONAL:
        adapter = OPTIONAL[name]
        for module in adapter.modules:
            pytest.importorskip(module, reason=f"adapter {name!r} needs the optional extra {adapter.extra!r}: "
                                               f"{adapter.install}")
    return get_implementation(name)


def _measure(benchmark, name, implementation, f, params, x, info):
    reason = implementation.supports(f)
    if reason is not None:
        pytest.skip(reason)

    def compute():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return implementation(f, params, x, x)

    try:
        compute()   # (neural-tangents compiles here, outside the measurement)
    except Exception as exc:   # a library that fails on this network: no speed to measure
        pytest.skip(f"{name} raises on this network: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    if name.startswith("neural-tangents"):
        memory, measure = None, "not measured: XLA allocates outside torch"
    else:
        memory, measure = peak_memory(compute, "cpu")
    result = benchmark.pedantic(compute, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    assert result.dtype == x.dtype and result.shape[:2] == (x.shape[0], x.shape[0])
    benchmark.extra_info.update(implementation=name, peak_memory_bytes=memory, memory_measure=measure, **info)


@pytest.mark.parametrize("point", GRID, ids=lambda p: p.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_adapter_speed_on_the_mlp(benchmark, name, point):
    implementation = _load(name)
    architecture = point.architecture()
    dtype = getattr(torch, point.dtype)
    f = MLP(architecture)
    params = unstack(init_parameters(architecture, 0, [0], dtype=dtype), 0)
    x = torch.randn(point.inputs, architecture.input_dim, generator=torch.Generator().manual_seed(1), dtype=dtype)
    x = x / architecture.input_dim ** 0.5
    benchmark.group = f"adapters-mlp-{point.id}"
    _measure(benchmark, name, implementation, f, params, x,
             {"point": point.id, "parameters": architecture.parameter_count()})


@pytest.mark.parametrize("point", CPU_MODELS, ids=lambda p: p.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_adapter_speed_on_the_models(benchmark, name, point):
    implementation = _load(name)
    f = point.function()
    params = f.initial_parameters()
    x = make_model_inputs("gaussian", point.input_shape, INPUTS, 1, getattr(torch, point.dtype), "cpu")
    benchmark.group = f"adapters-model-{point.id}"
    _measure(benchmark, name, implementation, f, params, x, {"point": point.id, "parameters": f.parameter_count()})


def table(data: dict) -> list[list]:
    """Rows (point, implementation, min ms, mean ms, peak KiB, speed vs jacobian) of a --benchmark-json file."""
    by_point: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if "point" in info and "implementation" in info:
            by_point[info["point"]][info["implementation"]] = bench
    rows = []
    for point in sorted(by_point):
        benches = by_point[point]
        baseline = benches.get("jacobian", {}).get("stats", {}).get("min")
        for name, bench in sorted(benches.items(), key=lambda kv: kv[1]["stats"]["min"]):
            fastest = bench["stats"]["min"]
            memory = bench["extra_info"].get("peak_memory_bytes")
            rows.append([point, name, f"{fastest * 1e3:.3g}", f"{bench['stats']['mean'] * 1e3:.3g}",
                         f"{memory / 1024:.4g}" if memory is not None else "n/a",
                         f"{baseline / fastest:.3g}x" if baseline else ""])
    return rows


def main(argv: list[str]) -> int:
    if not 2 <= len(argv) <= 3:
        print(__doc__)
        return 2
    from tabulate import tabulate

    data: dict = {"benchmarks": []}
    for path in argv[1:]:
        data["benchmarks"] += json.loads(Path(path).read_text(encoding="utf-8"))["benchmarks"]
    print(tabulate(table(data), headers=["point", "implementation", "min ms", "mean ms", "peak KiB", "vs jacobian"],
                   tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
