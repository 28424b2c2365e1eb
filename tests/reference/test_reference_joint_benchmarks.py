"""Speed of the exact joint NTK law (reference.joint) against real torch networks, at width 100
and depth 50 (pytest-benchmark; nothing about time is asserted, only that results are sane).

    pytest tests/reference/test_reference_joint_benchmarks.py --benchmark-only

The full-size measurement (10^6 pair draws, the ratio to one real network) is this file run as
a script; its output is recorded in docs/measurements/joint_law.md:

    python tests/reference/test_reference_joint_benchmarks.py --draws 1000000 --workers 2
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

from reference import EntryLaw

WIDTH, DEPTH = 100, 50
QUICK_DRAWS = 10_000


def pair_law(width: int = WIDTH, depth: int = DEPTH) -> EntryLaw:
    """Theta(x, y), <x, y> = 0.5, |x| = |y| = 1, relu at the edge of chaos, trainable zero biases."""
    return EntryLaw((width,) * (depth + 1), 2.0, inner_product=0.5)


def _inputs(width: int) -> torch.Tensor:
    x = torch.zeros(2, width, dtype=torch.float64)
    x[0, 0] = 1.0
    x[1, 0], x[1, 1] = 0.5, math.sqrt(0.75)
    return x


def torch_network_ntk_autograd(generator: torch.Generator, width: int = WIDTH, depth: int = DEPTH) -> torch.Tensor:
    """Build ONE real network (float64 weights N(0, 2 / fan_in), zero trainable biases) and
    compute its 2 x 2 NTK by torch.autograd over every parameter."""
    x = _inputs(width)
    dims = [width] * (depth + 1) + [1]
    params = []
    for l in range(1, len(dims)):
        w = torch.randn(dims[l], dims[l - 1], generator=generator, dtype=torch.float64) * math.sqrt(2.0 / dims[l - 1])
        params += [w.requires_grad_(True), torch.zeros(dims[l], dtype=torch.float64, requires_grad=True)]

    def f(inp):
        h = inp
        for i in range(0, len(params), 2):
            h = params[i] @ h + params[i + 1]
            if i < len(params) - 2:
                h = torch.relu(h)
        return h[0]

    grads = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(f(x[a]), params)]) for a in range(2)])
    return grads @ grads.T


def torch_network_ntk_lean(generator: torch.Generator, width: int = WIDTH, depth: int = DEPTH) -> torch.Tensor:
    """The same network, drawn the harness's fast way (float32 normals cast to float64) and its
    2 x 2 NTK by explicit backprop: Theta = sum_l (delta^T delta) * (X_{l-1}^T X_{l-1} + 1)."""
    x = _inputs(width)
    dims = [width] * (depth + 1) + [1]
    weights = [torch.randn(dims[l], dims[l - 1], generator=generator, dtype=torch.float32).to(torch.float64)
               .mul_(math.sqrt(2.0 / dims[l - 1])) for l in range(1, len(dims))]
    acts, masks = [x.T], []
    for w in weights[:-1]:
        h = w @ acts[-1]
        masks.append(h > 0)
        acts.append(h * masks[-1])
    delta = torch.ones(1, 2, dtype=torch.float64)
    theta = torch.zeros(2, 2, dtype=torch.float64)
    for l in range(len(weights) - 1, -1, -1):
        theta += (delta.T @ delta) * (acts[l].T @ acts[l] + 1.0)
        if l > 0:
            delta = masks[l - 1] * (weights[l].T @ delta)
    return theta


class _single_torch_thread:
    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


def test_benchmark_pair_law_depth_50(benchmark):
    law = pair_law()
    draws = benchmark.pedantic(lambda: law.sample(QUICK_DRAWS, np.random.default_rng(0)), rounds=1, iterations=1)
    benchmark.extra_info["draws"] = QUICK_DRAWS
    # off-diagonal entries may fall below 1 (gradient inner products can be negative); the mean
    # is near the infinite-width value (~46 here)
    assert draws.shape == (QUICK_DRAWS,) and np.all(np.isfinite(draws)) and 20.0 < draws.mean() < 80.0


def test_benchmark_torch_network_autograd_depth_50(benchmark):
    generator = torch.Generator().manual_seed(0)
    with _single_torch_thread():
        theta = benchmark.pedantic(lambda: torch_network_ntk_autograd(generator), rounds=3, iterations=1)
    assert theta.shape == (2, 2) and float(theta[0, 0]) >= 1.0


def test_benchmark_torch_network_lean_depth_50(benchmark):
    generator = torch.Generator().manual_seed(0)
    with _single_torch_thread():
        theta = benchmark.pedantic(lambda: torch_network_ntk_lean(generator), rounds=3, iterations=1)
    assert theta.shape == (2, 2) and float(theta[0, 0]) >= 1.0


def _timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1_000_000, help="pair draws (default 10^6)")
    parser.add_argument("--workers", type=int, default=2, help="threads for the pair law (default 2)")
    parser.add_argument("--networks", type=int, default=20, help="torch networks per implementation (default 20)")
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--depth", type=int, default=DEPTH)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, usable {len(os.sched_getaffinity(0))}; "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"numpy {np.__version__}, torch {torch.__version__}; width {args.width}, depth {args.depth}, relu, sigma_w2 = 2")
    law = pair_law(args.width, args.depth)
    law.sample(1000, np.random.default_rng(1))                       # warm-up
    single = 20_000
    _, wall1, cpu1 = _timed(lambda: law.sample(single, np.random.default_rng(2)))
    print(f"pair law, {single} draws, 1 worker: wall {wall1:.2f} s, cpu {cpu1:.2f} s "
          f"-> {wall1 / single * 1e6:.0f} us/draw wall, {cpu1 / single * 1e6:.0f} us/draw cpu")
    with _single_torch_thread():
        generator = torch.Generator().manual_seed(0)
        torch_network_ntk_autograd(generator)
        torch_network_ntk_lean(generator)
        per_network = {}
        for name, build in (("autograd, float64 draws", torch_network_ntk_autograd),
                            ("explicit backprop, float32 draws", torch_network_ntk_lean)):
            _, wall, cpu = _timed(lambda: [build(generator) for _ in range(args.networks)])
            per_network[name] = (wall / args.networks, cpu / args.networks)
            print(f"torch network + 2x2 NTK ({name}), 1 thread, {args.networks} networks: "
                  f"{wall / args.networks * 1e3:.2f} ms/network wall, {cpu / args.networks * 1e3:.2f} ms cpu "
                  f"-> pair law is {wall / args.networks / (wall1 / single):.0f}x (wall), "
                  f"{cpu / args.networks / (cpu1 / single):.0f}x (cpu) faster per draw")
    draws, wall, cpu = _timed(lambda: law.sample(args.draws, np.random.default_rng(3), workers=args.workers))
    print(f"pair law, {args.draws} draws, {args.workers} workers: wall {wall:.1f} s, cpu {cpu:.1f} s "
          f"({wall / args.draws * 1e6:.0f} us/draw wall); mean Theta(x, y) {draws.mean():.3f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    sys.exit(main())
