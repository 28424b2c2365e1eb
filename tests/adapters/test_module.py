"""harness.ntk.adapters.module (the network as an nn.Module carrying given parameters, takes_module)
and harness.ntk.adapters.arrays (the MLP as plain arrays): each against the functional network or
the reference jacobian, so a wrong weight layout, scale or bias fails."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.models import ModelFunction, make_model, make_model_inputs
from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk.adapters import as_module, mlp_arrays, takes_module
from harness.ntk.adapters.arrays import apply
from harness.ntk.adapters.module import ScaledLinear
from harness.ntk.diagnosis import relative_error
from harness.ntk.jacobian import jacobian_ntk

ROOT = Path(__file__).resolve().parents[2]

ARCHITECTURES = [
    Architecture(widths=(5, 7, 6), sigma_w2=2.0, sigma_b2=0.3, output_dim=3),
    Architecture(widths=(5, 7), sigma_w2=1.5, sigma_b2=0.4, output_dim=2, parametrization="ntk", activation="erf"),
    Architecture(widths=(4, 6, 6), sigma_w2=2.0, trainable_bias=False, output_dim=1, parametrization="ntk",
                 activation="tanh"),
    Architecture(widths=(4, 3), sigma_w2=2.0, sigma_b2=0.1, output_dim=1, activation="linear"),
]


def _network(architecture):
    f = MLP(architecture)
    params = unstack(init_parameters(architecture, 11, [0], dtype=torch.float64, draw_dtype=torch.float64), 0)
    x = torch.randn(5, architecture.input_dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return f, params, x


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=lambda a: f"{a.parametrization}-{a.activation}")
def test_mlp_module_computes_the_functional_network_and_carries_its_parameters(architecture):
    f, params, x = _network(architecture)
    module = as_module(f, params)
    assert torch.allclose(module(x), f(params, x), rtol=0, atol=1e-14)
    named = dict(module.named_parameters())
    assert set(named) == set(params)
    for name, value in params.items():
        assert torch.equal(named[name].detach(), value) and named[name].data_ptr() != value.data_ptr()
    linear = nn.Linear if architecture.parametrization == "standard" else ScaledLinear
    assert all(type(layer) is linear for layer in module.layers)


def test_as_module_refuses_what_it_cannot_build():
    f, params, _ = _network(ARCHITECTURES[0])
    with pytest.raises(ValueError, match="layers.0.weight"):
        as_module(f, {k: v for k, v in params.items() if k != "layers.0.weight"})
    with pytest.raises(ValueError, match="unstack"):
        as_module(f, {k: v[None] for k, v in params.items()})
    with pytest.raises(TypeError, match="harness.networks.MLP or a harness.models.ModelFunction"):
        as_module(lambda p, x: x, params)
    with pytest.raises(TypeError, match="takes_module: fn must be callable"):
        takes_module(3)


@pytest.mark.parametrize("model, shape", [("tied:make_tied", (8,)), ("frozen:make_frozen", (8,)),
                                          ("cnn:make_cnn", (1, 8, 8))])
def test_model_module_loads_the_given_parameters_and_keeps_ties_frozen_and_buffers(model, shape):
    f = ModelFunction(make_model(model, {}, 3, base_dir=ROOT / "cases" / "models"), shape)
    other = ModelFunction(make_model(model, {}, 4, base_dir=ROOT / "cases" / "models"), shape).initial_parameters()
    x = make_model_inputs("gaussian", shape, 3, 0)
    module = as_module(f, other)
    assert torch.allclose(module(x).reshape(3, -1), f(other, x), rtol=0, atol=1e-13)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable == set(f.parameter_names)
    for group in f.tied:
        values = dict(module.named_parameters(remove_duplicate=False))
        assert values[group[0]] is values[group[1]]


def test_takes_module_turns_a_module_ntk_into_the_harness_convention():
    calls = []

    @takes_module
    def ntk(model, x1, x2):
        calls.append((type(model).__name__, x2 is x1))
        return jacobian_ntk(lambda p, x: torch.func.functional_call(model, p, (x,)).reshape(x.shape[0], -1),
                            {n: p for n, p in model.named_parameters() if p.requires_grad}, x1, x2)

    f, params, x = _network(ARCHITECTURES[1])
    assert relative_error(ntk(f, params, x, x), jacobian_ntk(f, params, x, x)) <= 1e-12
    assert calls == [("MLPModule", True)] and ntk.vmappable is False and ntk.__name__ == "ntk"


def _doc_snippet() -> str:
    text = (ROOT / "docs" / "implementations.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- takes_module example -->\s*```python\n(.*?)```", text, re.S)
    assert found, "docs/implementations.md lost its takes_module example"
    return found.group(1)


def test_the_documented_module_example_is_ten_lines_and_agrees_with_the_reference():
    code = _doc_snippet()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    namespace: dict = {}
    exec(compile(code, "docs/implementations.md", "exec"), namespace)
    my_module_ntk = namespace["my_module_ntk"]
    for architecture in ARCHITECTURES:
        f, params, x = _network(architecture)
        for x2 in (x, x[:3].clone()):
            assert relative_error(my_module_ntk(f, params, x, x2), jacobian_ntk(f, params, x, x2)) <= 1e-10
    for model, shape in (("tied:make_tied", (8,)), ("frozen:make_frozen", (8,))):
        f = ModelFunction(make_model(model, {}, 3, base_dir=ROOT / "cases" / "models"), shape)
        params = f.initial_parameters()
        x = make_model_inputs("gaussian", shape, 4, 0)
        assert relative_error(my_module_ntk(f, params, x, x), jacobian_ntk(f, params, x, x)) <= 1e-10


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=lambda a: f"{a.parametrization}-{a.activation}")
def test_mlp_arrays_reproduce_the_network_in_numpy(architecture):
    f, params, x = _network(architecture)
    arrays = mlp_arrays(f, params)
    assert arrays.layer_sizes == architecture.layer_sizes
    assert arrays.weights[0].shape == (architecture.input_dim, architecture.widths[1] if architecture.depth else 0)
    assert np.array_equal(arrays.weights[0], params["layers.0.weight"].numpy().T)
    assert (arrays.biases is None) == (not architecture.trainable_bias)
    np.testing.assert_allclose(apply(arrays, x.numpy()), f(params, x).numpy(), rtol=0, atol=1e-13)


def test_mlp_arrays_refuse_wrong_parameters():
    f, params, _ = _network(ARCHITECTURES[0])
    with pytest.raises(ValueError, match="lacks 'layers.1.bias'"):
        mlp_arrays(f, {k: v for k, v in params.items() if k != "layers.1.bias"})
    with pytest.raises(TypeError, match="harness.networks.MLP"):
        mlp_arrays(object(), params)
