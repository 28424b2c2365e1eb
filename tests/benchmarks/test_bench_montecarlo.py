"""The runner's Monte Carlo against the PyTorch tutorial's one-network-at-a-time loop.

Three benchmarks in one group, so pytest-benchmark prints their ratios side by side:

- ``runner``: :func:`harness.montecarlo.sample_ntk` (stacked parameters, vmapped
  jacobian implementation, chunked to the 512 MiB default budget);
- ``tutorial-loop``: for each network, build an ``nn.Sequential`` of ``nn.Linear`` in
  float64, initialize its weights ~ N(0, sigma_w^2/fan_in) and zero biases with torch's
  default generator, then ``vmap(jacrev(functional_call))`` per sample and contract the
  Jacobians parameter by parameter (the tutorial's method, one network at a time);
- ``weight-draws``: only drawing the standard normals of every network with the runner's
  generator (torch CPU Mersenne Twister, float32 draws, seeded per network), one network
  after another on one thread: the floor of any Monte Carlo over real networks, as the
  issue states it;
- ``weight-draws-parallel``: the same draws split over the intra-op threads, as the runner
  does them (each network has its own generator, so networks draw independently): the
  floor on this machine's cores;
- ``user-path-<implementation>``: the whole path a user's ``pytest cases`` or
  ``ntk-harness run`` takes: :func:`harness.runner.run_case` on an in-memory dispersion case
  of the same size (the exact-law mean check, calibration cached after the warm-up round),
  with ``extra_info["ntk_ms_per_network"]`` the Monte Carlo part of it (the record's
  ``timing.ntk_seconds`` per network).

``extra_info`` records the time per network, the FLOP estimate (8 P flops per input and
network: forward 2P, reverse 4P, contraction 2P), the achieved GFLOP/s and the peak
resident memory of the process (``ru_maxrss``).

Sizes (environment ``NTK_BENCH_GRID``): default ``small`` (width 32, depth 8, 40 networks:
seconds, what ``pytest tests`` runs); ``goal`` or ``full``: the issue's point, width 128,
depth 32, 400 networks, one input each, float64, CPU (and CUDA when present)::

    NTK_BENCH_GRID=goal pytest tests/benchmarks/test_bench_montecarlo.py --benchmark-only
"""
from __future__ import annotations

import os
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from harness.montecarlo import sample_ntk
from harness.networks import Architecture, init_parameters, network_seed
from harness.ntk import get_implementation

GRID = os.environ.get("NTK_BENCH_GRID", "small")
WIDTH, DEPTH, SAMPLES = (128, 32, 400) if GRID in ("goal", "full") else (32, 8, 40)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() and GRID in ("goal", "full") else [])


def _architecture() -> Architecture:
    return Architecture(widths=(WIDTH,) * (DEPTH + 1), sigma_w2=2.0)


def _input(device) -> torch.Tensor:
    x = np.random.default_rng(0).standard_normal((1, WIDTH))
    return torch.as_tensor(x / np.linalg.norm(x), dtype=torch.float64, device=device)


def tutorial_loop(samples: int, device) -> list[float]:
    """Theta(x, x) of ``samples`` networks, one network at a time (the baseline)."""
    x = _input(device)
    values = []
    for _ in range(samples):
        layers = []
        for _ in range(DEPTH):
            layers += [nn.Linear(WIDTH, WIDTH, dtype=torch.float64, device=device), nn.ReLU()]
        layers.append(nn.Linear(WIDTH, 1, dtype=torch.float64, device=device))
        model = nn.Sequential(*layers)
        with torch.no_grad():
            for layer in model:
                if isinstance(layer, nn.Linear):
                    layer.weight.normal_(0.0, (2.0 / layer.in_features) ** 0.5)
                    layer.bias.zero_()
        params = {k: v.detach() for k, v in model.named_parameters()}

        def single(p, xi):
            return functional_call(model, p, (xi.unsqueeze(0),)).squeeze(0)

        jac = vmap(jacrev(single), (None, 0))(params, x)
        theta = sum(torch.einsum("aip,bjp->ab", j.flatten(2), j.flatten(2)) for j in jac.values())
        values.append(float(theta[0, 0]))
    return values


def weight_draws(samples: int, device) -> None:
    arch = _architecture()
    total = arch.parameter_count()
    out = torch.empty(total, dtype=torch.float32, device=device)
    generator = torch.Generator(device=device)
    for index in range(samples):
        generator.manual_seed(network_seed(0, index))
        torch.randn(total, generator=generator, out=out)


def weight_draws_parallel(samples: int, device) -> None:
    init_parameters(_architecture(), 0, range(samples), dtype=torch.float32, device=device)


def _record(benchmark, name: str, device: str) -> None:
    p = _architecture().parameter_count()
    benchmark.extra_info.update(
        {
            "method": name,
            "device": device,
            "networks": SAMPLES,
            "parameters_per_network": p,
            "flops": 8 * p * SAMPLES,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _finish(benchmark) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        mean = stats.stats.mean
        benchmark.extra_info["ms_per_network"] = 1e3 * mean / SAMPLES
        benchmark.extra_info["gflops"] = benchmark.extra_info["flops"] / mean / 1e9


@pytest.mark.parametrize("device", DEVICES)
def test_runner(benchmark, device):
    benchmark.group = f"montecarlo-w{WIDTH}-L{DEPTH}-S{SAMPLES}-{device}"
    _record(benchmark, "runner", device)
    arch, x = _architecture(), _input("cpu").numpy()
    impl = get_implementation("jacobian")
    result = benchmark.pedantic(
        sample_ntk, args=(arch, x), kwargs=dict(networks=SAMPLES, seed=0, implementation=impl, device=device),
        rounds=3, warmup_rounds=1,
    )
    _finish(benchmark)
    # Theta(x, x) >= 1 with trainable biases (the readout bias alone contributes 1)
    assert result.row.shape == (SAMPLES, 1) and np.all(result.diagonal >= 1.0)


def _user_case(implementation: str, device: str):
    from harness.cases.schema import assign_ids, expand_case
    from harness.kinds import KINDS

    raw = {"name": "bench", "kind": "dispersion", "implementation": implementation,
           "network": {"width": WIDTH, "depth": DEPTH, "sigma_w2": 2.0},
           "sampling": {"networks": SAMPLES, "seed": 0, "device": device},
           "expect": {"theories": ["exact"], "statistics": ["mean"], "goodness_of_fit": False}}
    return assign_ids(expand_case(raw, Path("<benchmark>"), 0, KINDS), KINDS)[0]


@pytest.mark.parametrize("implementation", ["jacobian", "structured"])
@pytest.mark.parametrize("device", DEVICES)
def test_user_path(benchmark, device, implementation, tmp_path):
    from harness.options import RunOptions
    from harness.runner import run_case

    benchmark.group = f"montecarlo-w{WIDTH}-L{DEPTH}-S{SAMPLES}-{device}"
    _record(benchmark, f"user-path-{implementation}", device)
    case, options = _user_case(implementation, device), RunOptions(cache_dir=tmp_path)
    records = []
    benchmark.pedantic(lambda: records.append(run_case(case, options)), rounds=3, warmup_rounds=1)
    _finish(benchmark)
    record = records[-1]
    assert record.outcome == "passed", [(c.name, c.detail) for c in record.failed_checks]
    benchmark.extra_info["ntk_ms_per_network"] = 1e3 * record.timing.ntk_seconds / SAMPLES


@pytest.mark.parametrize("device", DEVICES)
def test_tutorial_loop(benchmark, device):
    benchmark.group = f"montecarlo-w{WIDTH}-L{DEPTH}-S{SAMPLES}-{device}"
    _record(benchmark, "tutorial-loop", device)
    values = benchmark.pedantic(tutorial_loop, args=(SAMPLES, device), rounds=1 if GRID != "small" else 2, warmup_rounds=0)
    _finish(benchmark)
    assert len(values) == SAMPLES and min(values) >= 1.0


@pytest.mark.parametrize("device", DEVICES)
def test_weight_draws(benchmark, device):
    benchmark.group = f"montecarlo-w{WIDTH}-L{DEPTH}-S{SAMPLES}-{device}"
    _record(benchmark, "weight-draws", device)
    benchmark.pedantic(weight_draws, args=(SAMPLES, device), rounds=3, warmup_rounds=1)
    _finish(benchmark)


@pytest.mark.parametrize("device", DEVICES)
def test_weight_draws_parallel(benchmark, device):
    benchmark.group = f"montecarlo-w{WIDTH}-L{DEPTH}-S{SAMPLES}-{device}"
    _record(benchmark, "weight-draws-parallel", device)
    benchmark.pedantic(weight_draws_parallel, args=(SAMPLES, device), rounds=3, warmup_rounds=1)
    _finish(benchmark)
