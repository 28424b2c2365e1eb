"""Speed and peak memory of every NTK implementation on the example models (pytest-benchmark).

Each benchmark computes K(x, x) for N = 8 inputs (``x2 is x1``, as the harness's cases
do) of one example model of ``cases/models`` at its default size (cnn, residual_mlp,
tied, frozen, attention; their module docstrings give the parameter counts), in float32
and in float64. Tests of one (model, dtype, device) share a pytest-benchmark ``group``, so
the table compares the implementations side by side; an implementation that does not
support a model (``structured`` takes only the harness's MLP) is skipped with its error.

Peak memory, in ``extra_info``, is measured in one extra, untimed call:

- on CPU: the peak total size of the tensor storages that aten operators create during
  the call and that are alive at once (a ``TorchDispatchMode`` adds each new storage's
  bytes and a weakref finalizer subtracts them when the storage is freed). It counts
  every tensor the implementation and autograd create, including those made inside
  ``torch.func`` transforms, but not scratch memory inside a kernel, Python objects, or
  memory held before the call (parameters, inputs). ``tracemalloc`` is not used: it does
  not see torch's CPU allocator at all;
- on CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation before the call,
  after ``torch.cuda.reset_peak_memory_stats`` (the caching allocator's own count).

``extra_info["memory_measure"]`` says which. ``NTK_BENCH_IMPLS``, ``NTK_BENCH_ROUNDS`` and
``NTK_BENCH_WARMUP`` work as in test_bench_ntk.py. Run::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks/test_bench_models.py --benchmark-only \\
        --benchmark-columns=min,mean,rounds --benchmark-json=models.json
    python tests/benchmarks/test_bench_models.py models.json     # the table with memory and ratios
"""
from __future__ import annotations

import json
import sys
import weakref
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from harness.models import ModelFunction, make_model, make_model_inputs
from harness.ntk import get_implementation
from harness.ntk.registry import ImplementationError

# the options of the MLP benchmarks (NTK_BENCH_IMPLS, NTK_BENCH_ROUNDS, NTK_BENCH_WARMUP) and devices
from test_bench_ntk import IMPLEMENTATIONS, ROUNDS, WARMUP, _devices

MODEL_DIR = Path(__file__).resolve().parents[2] / "cases" / "models"
INPUTS = 8


@dataclass(frozen=True)
class ModelPoint:
    model: str
    input_shape: tuple[int, ...]
    dtype: str
    device: str = "cpu"

    @property
    def id(self) -> str:
        return f"{self.model}-N{INPUTS}-{self.dtype}-{self.device}"

    def function(self) -> ModelFunction:
        module = make_model(f"{self.model}.py:make_{self.model}", {}, 0, getattr(torch, self.dtype), self.device,
                            base_dir=MODEL_DIR)
        return ModelFunction(module, self.input_shape, label=self.model)


SHAPES = {"cnn": (1, 8, 8), "residual_mlp": (16,), "tied": (8,), "frozen": (8,), "attention": (4, 8)}
POINTS = [ModelPoint(model, shape, dtype, device)
          for device in _devices() for model, shape in SHAPES.items() for dtype in ("float32", "float64")]


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the mode and alive at the same time."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _freed(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if not isinstance(value, torch.Tensor) or value.device.type == "meta":
                continue
            storage = value.untyped_storage()
            try:
                key = storage.data_ptr()
            except RuntimeError:  # a storage-less tensor (forward AD's _efficientzerotensor): no memory
                continue
            if key and key not in self.live:  # views and in-place results reuse a storage
                self.live[key] = storage.nbytes()
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
                weakref.finalize(storage, self._freed, key)
        return out


def peak_memory(compute, device: str) -> tuple[int | None, str]:
    """(peak bytes of one call of ``compute``, how they were measured); (None, why) where the
    call, which has just run without the tracker, raises inside it: torch 2.3's forward AD
    passes a Python float to ``aten.alias`` under a dispatch mode (the attention model's
    scale), which torch 2.4+ does not. The speed is still measured; the memory is not."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        compute()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before, "torch.cuda.max_memory_allocated"
    try:
        with PeakTensorMemory() as tracker:
            compute()
    except RuntimeError as exc:
        return None, f"not measured: the call raises under a TorchDispatchMode on torch {torch.__version__} ({exc})"
    return tracker.peak, "aten tensor storages (TorchDispatchMode)"


@pytest.mark.parametrize("point", POINTS, ids=lambda p: p.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_model_ntk_speed(benchmark, name, point):
    if point.device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    implementation = get_implementation(name)
    f = point.function()
    params = f.initial_parameters()
    x = make_model_inputs("gaussian", point.input_shape, INPUTS, 1, getattr(torch, point.dtype), point.device)

    def compute():
        result = implementation(f, params, x, x)
        if point.device != "cpu":
            torch.cuda.synchronize()
        return result

    try:
        compute()
    except ImplementationError as exc:
        pytest.skip(f"{name} does not support {point.model}: {exc}")
    memory, measure = peak_memory(compute, point.device)

    benchmark.group = point.id
    result = benchmark.pedantic(compute, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    expected = (INPUTS, INPUTS) + ((f.output_dim,) * 2 if f.output_dim > 1 else ())
    assert tuple(result.shape) == expected and result.dtype == x.dtype
    benchmark.extra_info.update(
        implementation=name, model=point.model, inputs=INPUTS, outputs=f.output_dim, dtype=point.dtype,
        device=point.device, parameters=f.parameter_count(), peak_memory_bytes=memory, memory_measure=measure,
    )


def table(data: dict) -> list[list]:
    """Rows (point, implementation, min ms, mean ms, peak KiB, vs jacobian) of a --benchmark-json file."""
    by_point: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if "model" in info:
            by_point[bench["group"]][info["implementation"]] = bench
    rows = []
    for point in sorted(by_point):
        benches = by_point[point]
        baseline = benches.get("jacobian", {}).get("stats", {}).get("min")
        for name, bench in sorted(benches.items(), key=lambda kv: kv[1]["stats"]["min"]):
            fastest = bench["stats"]["min"]
            info = bench["extra_info"]
            rows.append([point, name, info["parameters"], f"{fastest * 1e3:.3g}", f"{bench['stats']['mean'] * 1e3:.3g}",
                         f"{info['peak_memory_bytes'] / 1024:.4g}" if info["peak_memory_bytes"] is not None else "-", f"{baseline / fastest:.3g}x" if baseline else ""])
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    from tabulate import tabulate

    data = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    measures = {b["extra_info"].get("memory_measure") for b in data["benchmarks"] if "model" in b["extra_info"]}
    print(f"peak memory: {', '.join(sorted(m for m in measures if m))}")
    print(tabulate(table(data), headers=["point", "implementation", "P", "min ms", "mean ms", "peak KiB",
                                         "vs jacobian"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
