"""Networks, initialization and the batched Monte Carlo, against brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.montecarlo import MemoryBudgetError, bytes_per_network, sample_ntk
from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk import get_implementation


def brute_force_diagonal(architecture: Architecture, params: dict, x: torch.Tensor) -> float:
    """Theta(x, x) = |df/dp|^2 over all parameters, by plain autograd."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    out = MLP(architecture)(leaves, x[None])[0, 0]
    grads = torch.autograd.grad(out, list(leaves.values()))
    return float(sum((g**2).sum() for g in grads))


def test_initialization_depends_only_on_seed_and_index():
    arch = Architecture(widths=(6, 5, 4), sigma_w2=2.0)
    whole = init_parameters(arch, 7, range(6))
    parts = init_parameters(arch, 7, [4, 5])
    for name in whole:
        assert torch.equal(whole[name][4:], parts[name])
    other = init_parameters(arch, 8, [4])
    assert not torch.equal(other["layers.0.weight"][0], whole["layers.0.weight"][4])


def test_initialization_variances():
    """W ~ N(0, sigma_w2 / fan_in): the sample variance of 2000 x 64 x 32 entries is within
    6 standard errors (false-alarm rate ~1e-9)."""
    arch = Architecture(widths=(32, 64), sigma_w2=1.5, sigma_b2=0.25)
    params = init_parameters(arch, 0, range(2000))
    w = params["layers.0.weight"]
    assert w.dtype == torch.float64
    expected = 1.5 / 32
    n = w.numel()
    assert abs(w.var().item() - expected) < 6 * expected * np.sqrt(2 / n)
    b = params["layers.0.bias"]
    assert abs(b.var().item() - 0.25) < 6 * 0.25 * np.sqrt(2 / b.numel())


def test_ntk_parametrization_computes_the_same_function():
    standard = Architecture(widths=(5, 7, 6), sigma_w2=2.0, sigma_b2=0.3)
    ntk = Architecture(widths=(5, 7, 6), sigma_w2=2.0, sigma_b2=0.3, parametrization="ntk")
    z = unstack(init_parameters(ntk, 3, [0]), 0)
    w = {}
    sizes = standard.layer_sizes
    for i in range(len(sizes) - 1):
        w[f"layers.{i}.weight"] = z[f"layers.{i}.weight"] * np.sqrt(2.0 / sizes[i])
        w[f"layers.{i}.bias"] = z[f"layers.{i}.bias"] * np.sqrt(0.3)
    x = torch.randn(4, 5, dtype=torch.float64)
    assert torch.allclose(MLP(ntk)(z, x), MLP(standard)(w, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("trainable_bias", [True, False])
def test_monte_carlo_matches_brute_force_network_by_network(trainable_bias):
    arch = Architecture(widths=(6, 8, 8, 8), sigma_w2=2.0, trainable_bias=trainable_bias)
    x = np.random.default_rng(1).standard_normal((3, 6))
    samples = sample_ntk(arch, x, networks=5, seed=4, implementation=get_implementation("jacobian"))
    params = init_parameters(arch, 4, range(5))
    for i in range(5):
        expected = brute_force_diagonal(arch, unstack(params, i), torch.as_tensor(x[0]))
        assert samples.diagonal[i] == pytest.approx(expected, rel=1e-12)


def test_monte_carlo_is_the_same_whatever_the_chunking():
    arch = Architecture(widths=(4, 8, 8), sigma_w2=1.5)
    x = np.eye(4)[:2]
    impl = get_implementation("jacobian")
    small_budget = 3 * bytes_per_network(arch, 2, torch.float64, torch.float32)
    chunked = sample_ntk(arch, x, networks=10, seed=2, implementation=impl, memory_budget_bytes=small_budget)
    whole = sample_ntk(arch, x, networks=10, seed=2, implementation=impl)
    assert chunked.chunk_size == 3 and whole.chunk_size == 10
    np.testing.assert_array_equal(chunked.row, whole.row)


@pytest.mark.parametrize("inputs", [31, 33, 65])
def test_chunk_boundaries_inside_the_networks_and_inside_the_inputs_change_nothing(inputs, monkeypatch):
    """The Monte Carlo's network chunks (a budget of 3 networks for 7: boundaries after networks 3
    and 6) and the input chunks of ntk-vector-products (a byte budget of 7 inputs per chunk, its
    rule CHUNK_BYTES // (3 O P itemsize): a partial last chunk at 31, 33 and 65 inputs) give the
    rows of one unchunked call, entry by entry, against the reference implementation."""
    import harness.ntk.vector_products as vector_products

    arch = Architecture(widths=(4, 6, 6), sigma_w2=2.0, sigma_b2=0.1)
    x = np.random.default_rng(inputs).standard_normal((inputs, 4)) / 2.0
    impl = get_implementation("ntk-vector-products")
    per_input = arch.parameter_count() * 8
    monkeypatch.setattr(vector_products, "CHUNK_BYTES", 3 * 7 * per_input)
    flat = {"all": torch.zeros(arch.parameter_count(), dtype=torch.float64)}
    assert vector_products._inputs_per_chunk(flat, 1, inputs, True) == 7    # the Monte Carlo calls K(x, x)
    budget = 3 * bytes_per_network(arch, inputs, torch.float64, torch.float32, impl)
    chunked = sample_ntk(arch, x, networks=7, seed=3, implementation=impl, memory_budget_bytes=budget)
    reference = sample_ntk(arch, x, networks=7, seed=3, implementation=get_implementation("jacobian"))
    assert chunked.chunk_size == 3 and reference.chunk_size == 7
    np.testing.assert_allclose(chunked.row, reference.row, rtol=1e-10, atol=0)


def test_a_network_larger_than_the_budget_fails_with_the_estimate():
    arch = Architecture(widths=(64, 64, 64), sigma_w2=2.0)
    with pytest.raises(MemoryBudgetError, match=r"MiB .* more than the memory budget of 0\.1 MiB"):
        sample_ntk(arch, np.eye(64)[:1], networks=2, seed=0, implementation=get_implementation("jacobian"),
                   memory_budget_bytes=int(0.1 * 2**20))


def test_float32_overflow_is_counted_not_hidden():
    arch = Architecture(widths=(8,) * 13, sigma_w2=1e4)
    samples = sample_ntk(arch, np.eye(8)[:1], networks=4, seed=0, implementation=get_implementation("jacobian"),
                         dtype=torch.float32)
    assert samples.nonfinite == 4
