"""Each built-in NTK implementation against the reference and an independent brute force."""
from __future__ import annotations

import itertools

import pytest
import torch

from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk import get_implementation
from harness.ntk.registry import BUILTINS, ImplementationError

NAMES = list(BUILTINS)

ARCHITECTURES = [
    Architecture(widths=(3, 6), sigma_w2=2.0, sigma_b2=0.1),
    Architecture(widths=(4, 5, 7, 6), sigma_w2=2.0, sigma_b2=0.2, output_dim=3),
    Architecture(widths=(5, 8, 8), sigma_w2=1.3, trainable_bias=False, output_dim=2),
    Architecture(widths=(3, 6, 4), sigma_w2=1.5, sigma_b2=0.3, activation="tanh", parametrization="ntk"),
    Architecture(widths=(3, 5, 5, 5), sigma_w2=2.5, activation="erf", parametrization="ntk", output_dim=4),
]


def brute_force_ntk(f, params, x1, x2):
    """Theta[a, b, i, j] = sum over every scalar parameter of products of single gradients,
    one torch.autograd.grad call per (input, output), parameter by parameter."""
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}

    def grads(x):
        rows = []
        for a in range(x.shape[0]):
            out = f(leaves, x[a : a + 1])[0]
            rows.append([torch.autograd.grad(out[i], list(leaves.values()), retain_graph=True) for i in range(out.shape[0])])
        return rows

    g1, g2 = grads(x1), grads(x2)
    n_out = len(g1[0])
    theta = torch.zeros(x1.shape[0], x2.shape[0], n_out, n_out, dtype=torch.float64)
    for a, b, i, j in itertools.product(range(x1.shape[0]), range(x2.shape[0]), range(n_out), range(n_out)):
        theta[a, b, i, j] = sum((u * v).sum() for u, v in zip(g1[a][i], g2[b][j]))
    return theta[..., 0, 0] if n_out == 1 else theta


def _setup(arch, seed=0, networks=2):
    gen = torch.Generator().manual_seed(seed)
    x1 = torch.randn(4, arch.input_dim, generator=gen, dtype=torch.float64)
    x2 = torch.randn(3, arch.input_dim, generator=gen, dtype=torch.float64)
    params = init_parameters(arch, seed, range(networks), dtype=torch.float64, draw_dtype=torch.float64)
    return MLP(arch), params, x1, x2


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda a: f"L{a.depth}-o{a.output_dim}-{a.activation}-{a.parametrization}-b{int(a.trainable_bias)}")
def test_builtins_match_reference_and_brute_force(arch):
    f, stacked, x1, x2 = _setup(arch)
    params = unstack(stacked, 0)
    brute = brute_force_ntk(f, params, x1, x2)
    reference = get_implementation("jacobian")(f, params, x1, x2)
    assert torch.allclose(reference, brute, rtol=1e-12, atol=1e-12 * brute.abs().max())
    for name in NAMES:
        result = get_implementation(name)(f, params, x1, x2)
        assert result.shape == brute.shape, name
        assert result.dtype == torch.float64, name
        error = ((result - brute).abs().max() / brute.abs().max()).item()
        assert error < 1e-12, f"{name}: relative error {error:.3g} against brute force"
        same = get_implementation(name)(f, params, x1, x1)
        assert torch.allclose(same, brute_force_ntk(f, params, x1, x1), rtol=1e-12, atol=1e-12 * brute.abs().max()), name


@pytest.mark.parametrize("name", NAMES)
def test_float32(name):
    f, stacked, x1, x2 = _setup(ARCHITECTURES[1])
    params = unstack(stacked, 1)
    reference = get_implementation("jacobian")(f, params, x1, x2)
    result = get_implementation(name)(f, {n: p.float() for n, p in params.items()}, x1.float(), x2.float())
    assert result.dtype == torch.float32
    assert ((result.double() - reference).abs().max() / reference.abs().max()).item() < 1e-5


@pytest.mark.parametrize("name", [n for n in NAMES if get_implementation(n).vmappable])
def test_vmappable_builtins_work_under_vmap(name):
    arch = ARCHITECTURES[1]
    f, stacked, x1, x2 = _setup(arch, networks=3)
    fn = get_implementation(name).function
    batched = torch.func.vmap(fn, in_dims=(None, 0, None, None))(f, stacked, x1, x2)
    for m in range(3):
        reference = get_implementation("jacobian")(f, unstack(stacked, m), x1, x2)
        assert torch.allclose(batched[m], reference, rtol=1e-12, atol=1e-12 * reference.abs().max()), (name, m)


def test_autograd_loop_is_not_marked_vmappable():
    assert not get_implementation("autograd-loop").vmappable


def test_structured_rejects_a_network_that_is_not_an_mlp():
    arch = ARCHITECTURES[0]
    f, stacked, x1, x2 = _setup(arch)
    params = unstack(stacked, 0)
    with pytest.raises(ImplementationError, match="structured.*fully connected"):
        get_implementation("structured")(lambda p, x: f(p, x), params, x1, x2)


@pytest.mark.parametrize("activation", ["relu", "tanh", "erf", "linear"])
def test_structured_activation_derivatives_match_autograd(activation):
    from harness.networks import activation_function
    from harness.ntk.structured import ACTIVATION_DERIVATIVES

    h = torch.cat([torch.linspace(-3, 3, 61, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    leaf = h.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(activation_function(activation)(leaf).sum(), [leaf])
    assert torch.allclose(ACTIVATION_DERIVATIVES[activation](h), autograd, rtol=1e-14, atol=1e-15)


def test_structured_falls_back_for_an_activation_without_a_written_derivative(monkeypatch):
    import harness.ntk.structured as structured

    monkeypatch.delitem(structured.ACTIVATION_DERIVATIVES, "tanh")
    f, stacked, x1, x2 = _setup(ARCHITECTURES[3])
    params = unstack(stacked, 0)
    reference = get_implementation("jacobian")(f, params, x1, x2)
    result = structured.structured_ntk(f, params, x1, x2)
    assert torch.allclose(result, reference, rtol=1e-12, atol=1e-12 * reference.abs().max())
    batched = torch.func.vmap(structured.structured_ntk, in_dims=(None, 0, None, None))(f, stacked, x1, x2)
    assert torch.allclose(batched[0], reference, rtol=1e-12, atol=1e-12 * reference.abs().max())


_WARNING_FREE = """
import warnings
warnings.simplefilter("error")            # every warning is an exception, as under -W error
import torch
from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk.jacobian import jacobian_ntk
from harness.ntk.vector_products import ntk_vector_products

arch = Architecture(widths=(3, 5, 4), sigma_w2=2.0, sigma_b2=0.1, output_dim=2)
f = MLP(arch)
stacked = init_parameters(arch, 0, range(2), dtype=torch.float64, draw_dtype=torch.float64)
x = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
theta = ntk_vector_products(f, unstack(stacked, 0), x, x)           # the process's first jvp
assert torch.allclose(theta, jacobian_ntk(f, unstack(stacked, 0), x, x), rtol=1e-12, atol=1e-12)
torch.func.vmap(ntk_vector_products, in_dims=(None, 0, None, None))(f, stacked, x, x[:2])
try:                                      # the caller's filters are back: a deprecation still raises
    warnings.warn("deprecated", DeprecationWarning)
except DeprecationWarning:
    print("ok")
"""


def test_ntk_vector_products_raises_no_warning_under_error_filter():
    """The first forward-mode derivative of a process imports torch's jvp decompositions,
    which call the deprecated torch.jit.script (a DeprecationWarning on this torch). Checked
    in a fresh interpreter: in this one an earlier test may have imported them already, and
    the test would then pass for the wrong reason."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run([sys.executable, "-c", _WARNING_FREE], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_ntk_vector_products_under_warnings_as_errors_in_process():
    """The same in this process, under warnings.simplefilter("error") (the import-time part is
    covered only if no earlier test ran a jvp; the subprocess test above always covers it)."""
    import warnings

    from harness.ntk.vector_products import ntk_vector_products

    f, stacked, x1, x2 = _setup(ARCHITECTURES[1])
    params = unstack(stacked, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ntk_vector_products(f, params, x1, x2)
    reference = get_implementation("jacobian")(f, params, x1, x2)
    assert torch.allclose(result, reference, rtol=1e-12, atol=1e-12 * reference.abs().max())
