"""Minimal reproductions of what the harness found in the third-party libraries, each checked
against a brute-force loop of torch.autograd.grad (one backward per input and output).

    python reports/third-party/evidence.py torch     # nngeometry, in the torch environment
    python reports/third-party/evidence.py jax       # neural-tangents, in the JAX environment

Prints one line per finding: what was measured and the number that decides it.
"""
from __future__ import annotations

import sys

import torch
from torch import nn


def brute_force(model: nn.Module, parameters: list, x: torch.Tensor) -> torch.Tensor:
    """Theta[a, b, i, j] = sum_p df_i(x_a)/dp df_j(x_b)/dp by one torch.autograd.grad per (a, i)."""
    rows = []
    for a in range(x.shape[0]):
        out = model(x[a:a + 1]).reshape(-1)
        for i in range(out.shape[0]):
            grads = torch.autograd.grad(out[i], parameters, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                   for g, p in zip(grads, parameters)]))
    jac = torch.stack(rows).reshape(x.shape[0], -1, rows[0].numel())
    return torch.einsum("aip,bjp->abij", jac, jac)


def nngeometry_kernel(model, x):
    from nngeometry import GramMatrix

    return GramMatrix(model, (x,)).to_torch().permute(1, 3, 0, 2)   # [O, N, O, N] -> [N, N, O, O]


def relative(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


def torch_findings() -> None:
    import nngeometry  # noqa: F401

    torch.manual_seed(0)
    # 1. float32 buffers: a float64 convolution's kernel is off by float32 rounding; with float64 as
    #    torch's default dtype (which torch.zeros(..., device=...) without dtype then uses) it is exact
    conv = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 2)).double()
    x = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    reference = brute_force(conv, list(conv.parameters()), x)
    default = relative(nngeometry_kernel(conv, x), reference)
    torch.set_default_dtype(torch.float64)
    try:
        as_float64 = relative(nngeometry_kernel(conv, x), reference)
    finally:
        torch.set_default_dtype(torch.float32)
    print(f"nngeometry float64 Conv2d kernel vs autograd loop: relative error {default:.2e} with torch's default "
          f"dtype float32, {as_float64:.2e} with default dtype float64 (the per-sample buffers follow the default dtype)")
    # 2. frozen parameters are counted: the Gram matrix equals the kernel over ALL parameters
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    model[0].requires_grad_(False)
    x = torch.randn(5, 4, dtype=torch.float64)
    trainable = brute_force(model, [p for p in model.parameters() if p.requires_grad], x)
    import copy

    unfrozen = copy.deepcopy(model).requires_grad_(True)
    everything = brute_force(unfrozen, list(unfrozen.parameters()), x)
    gram = nngeometry_kernel(model, x)
    print(f"nngeometry with layer 0 frozen (requires_grad=False): vs the kernel over trainable parameters "
          f"{relative(gram, trainable):.2e}, vs the kernel over all parameters {relative(gram, everything):.2e}")
    # 3. a Linear layer on a sequence [N, T, d]
    seq = nn.Sequential(nn.Linear(4, 3), nn.Flatten(), nn.Linear(6, 1)).double()
    try:
        nngeometry_kernel(seq, torch.randn(3, 2, 4, dtype=torch.float64))
        print("nngeometry Linear on [N, T, d]: ran")
    except RuntimeError as exc:
        print(f"nngeometry Linear on [N, T, d] inputs raises RuntimeError: {exc}")


def jax_findings() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from neural_tangents import stax

    _, apply_fn, _ = stax.Relu()
    derivative = jax.grad(lambda h: apply_fn((), h))(jnp.float64(0.0))
    h = torch.zeros((), dtype=torch.float64, requires_grad=True)
    torch.relu(h).backward()
    print(f"stax.Relu derivative at 0: {float(derivative)} (JAX, jnp.maximum); torch.relu: {float(h.grad)}; "
          f"jax.nn.relu: {float(jax.grad(jax.nn.relu)(0.0))}")
    import importlib.util

    spec = importlib.util.find_spec("tests")
    print(f"a top-level package 'tests' is installed at {spec.origin if spec else None} "
          "(neural-tangents 0.6.5's wheel ships its tests/ folder: it shadows a project's own tests package)")


if __name__ == "__main__":
    {"torch": torch_findings, "jax": jax_findings}[sys.argv[1] if len(sys.argv) > 1 else "torch"]()
