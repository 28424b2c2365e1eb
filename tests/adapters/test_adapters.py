"""Every adapter of harness.ntk.adapters against the reference ``jacobian``, entry by entry.

On small harness MLPs (both parametrizations, with and without biases, every activation, one and
three outputs, K(x1, x2) and K(x1, x1), a zero input) in float64 at rtol 1e-10 (and float32 at
1e-5; every adapter computes in the inputs' dtype, neural-tangents in float64 always), and on the
example models of cases/models that each adapter says it supports; on those it does not support,
``supports`` must say why. What the harness found wrong in a library is a strict expected failure
naming the defect (reports/third-party/README.md), so that a fixed library shows up as XPASS.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from harness.models import ModelFunction, make_model, make_model_inputs
from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk.diagnosis import relative_error
from harness.ntk.jacobian import jacobian_ntk
from harness.ntk.registry import BUILTINS, OPTIONAL, get_implementation

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = list(OPTIONAL)
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}

ARCHITECTURES = [
    Architecture(widths=(5, 7, 6), sigma_w2=2.0, sigma_b2=0.3, output_dim=1),
    Architecture(widths=(5, 7, 6), sigma_w2=2.0, sigma_b2=0.3, output_dim=3, activation="tanh"),
    Architecture(widths=(4, 6, 6, 6), sigma_w2=1.5, sigma_b2=0.0, trainable_bias=False, output_dim=2,
                 activation="erf"),
    Architecture(widths=(5, 8), sigma_w2=2.0, sigma_b2=0.2, output_dim=2, parametrization="ntk"),
    Architecture(widths=(5, 8, 8), sigma_w2=2.0, trainable_bias=False, output_dim=1, parametrization="ntk",
                 activation="linear"),
    Architecture(widths=(3, 4, 4), sigma_w2=2.0, sigma_b2=0.5, output_dim=1, parametrization="ntk"),
]

MODELS = {
    "cnn": ("cnn:make_cnn", {"channels": 4, "outputs": 3}, (1, 8, 8)),
    "residual_mlp": ("residual_mlp:make_residual_mlp", {"input_dim": 16, "width": 16, "blocks": 2, "outputs": 1},
                     (16,)),
    "tied": ("tied:make_tied", {"input_dim": 8, "hidden": 6, "outputs": 2}, (8,)),
    "frozen": ("frozen:make_frozen", {"input_dim": 8, "width": 8, "outputs": 1}, (8,)),
    "attention": ("attention:make_attention", {"dim": 8, "outputs": 1}, (6, 8)),
    "transformer": ("transformer:make_transformer", {"dim": 8, "heads": 2, "hidden": 16, "outputs": 1}, (4, 8)),
}

#: (adapter, model) -> (what the harness found, the dtypes where it shows): strict expected failures
KNOWN = {
    ("nngeometry", "cnn"): ("nngeometry's generic per-sample gradient buffers (torch.zeros without dtype, "
                            "backend/torch_hooks/grads.py) are float32: a float64 kernel off by float32 rounding",
                            (torch.float64,)),
    ("nngeometry", "residual_mlp"): ("the same float32 buffers, in LayerNorm's layer", (torch.float64,)),
    ("nngeometry", "frozen"): ("LayerCollection.from_model counts every parameter of a known layer, "
                               "requires_grad = False included: the frozen features are counted",
                               (torch.float64, torch.float32)),
    ("nngeometry", "attention"): ("nngeometry's Linear layer assumes 2-D inputs: on a sequence [N, T, d] "
                                  "it raises (t() expects a tensor with <= 2 dimensions)",
                                  (torch.float64, torch.float32)),
    ("curvlinops", "transformer"): ("no forward-mode derivative (jvp) for aten::_native_multi_head_attention "
                                    "in torch: curvlinops' Jacobian operator uses jvp (as the built-in "
                                    "ntk-vector-products, which the harness skips there)", (torch.float64, torch.float32)),
}


def require(name: str) -> None:
    """Skip the calling test unless the libraries of the optional adapter ``name`` import; the
    reason names the extra and the install command. (Here, not in conftest.py: some site-packages
    ship a top-level ``tests`` package, e.g. in the JAX stack's environment, so ``tests.adapters``
    is not importable there.)"""
    adapter = OPTIONAL[name]
    for module in adapter.modules:
        pytest.importorskip(module, reason=f"adapter {name!r} needs the optional extra {adapter.extra!r} "
                                           f"({module} is not installed): {adapter.install}")


def _mlp_call(architecture: Architecture, dtype):
    f = MLP(architecture)
    params = unstack(init_parameters(architecture, 7, [0], dtype=torch.float64, draw_dtype=torch.float64), 0)
    generator = torch.Generator().manual_seed(1)
    n0 = architecture.input_dim
    x1 = torch.randn(4, n0, generator=generator, dtype=torch.float64) / n0 ** 0.5
    x1[-1] = 0.0   # every pre-activation 0 without biases: relu'(0) matters
    x2 = torch.randn(3, n0, generator=generator, dtype=torch.float64) / n0 ** 0.5
    return f, params, x1, x2


def _id(architecture: Architecture) -> str:
    return (f"{architecture.parametrization}-{architecture.activation}-L{architecture.depth}-O{architecture.output_dim}"
            f"-{'bias' if architecture.trainable_bias else 'nobias'}")


def test_the_adapters_are_not_among_the_default_builtins():
    assert set(OPTIONAL).isdisjoint(BUILTINS)
    assert {"nngeometry", "backpack", "curvlinops", "neural-tangents/jacobian",
            "neural-tangents/ntk-vector-products", "neural-tangents/structured"} == set(OPTIONAL)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=_id)
@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_agrees_with_jacobian_on_the_mlp(name, architecture, dtype):
    require(name)
    implementation = get_implementation(name)
    f, params, x1, x2 = _mlp_call(architecture, dtype)
    reason = implementation.supports(f)
    if reason is not None:
        assert name == "nngeometry" and architecture.parametrization == "ntk" and architecture.trainable_bias, reason
        assert "NTK parametrization with trainable biases" in reason
        pytest.skip(reason)
    for a, b in ((x1, x2), (x1, x1)):
        given = {n: v.to(dtype) for n, v in params.items()}
        xa = a.to(dtype)
        xb = xa if b is a else b.to(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = implementation(f, given, xa, xb)
        reference = jacobian_ntk(f, params, a, b)
        assert tuple(result.shape) == tuple(reference.shape) and result.dtype == dtype
        error = relative_error(result.to(torch.float64), reference)
        assert error <= TOLERANCE[dtype], f"{name} on {_id(architecture)}: relative error {error:.3g}"


@pytest.mark.parametrize("name", [n for n in ADAPTERS if n.startswith("neural-tangents")])
def test_neural_tangents_relu_derivative_at_zero_is_one_half(name):
    """The one convention of stax that differs from torch's, measured: on a zero input of a ReLU
    network whose trainable biases are zero (sigma_b2 = 0, so every pre-activation of x1[-1] is 0 and
    the bias gradients pass through relu'(0)) the kernel equals the reference with relu'(0) = 1/2."""
    require(name)
    from harness.ntk.diagnosis import diagnose

    architecture = Architecture(widths=(4, 6, 6), sigma_w2=2.0, sigma_b2=0.0, output_dim=1)
    f, params, x1, x2 = _mlp_call(architecture, torch.float64)
    result = get_implementation(name)(f, params, x1, x2)
    reference = jacobian_ntk(f, params, x1, x2)
    assert relative_error(result, reference) > 1e-10
    assert relative_error(result[:-1, :], reference[:-1, :]) <= 1e-10       # the nonzero inputs agree
    text = diagnose(result, reference, f=f, params64=params, x1=x1, x2=x2, num_layers=f.num_layers, rtol=1e-10,
                    earlier=[])
    assert "relu'(0) = 1/2" in text, text


def _model(model: str):
    factory, kwargs, shape = MODELS[model]
    module = make_model(factory, kwargs, 5, base_dir=f"{ROOT}/cases/models")
    return ModelFunction(module, shape, label=model), shape


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_agrees_with_jacobian_on_the_models_it_supports(name, model, dtype, request):
    require(name)
    implementation = get_implementation(name)
    f, shape = _model(model)
    reason = implementation.supports(f)
    if reason is not None:
        assert reason and name.split("/")[0] in reason, reason
        pytest.skip(reason)
    known = KNOWN.get((name, model))
    if known is not None and dtype in known[1]:
        request.applymarker(pytest.mark.xfail(strict=True, reason=known[0]))
    params = f.initial_parameters()
    x1 = make_model_inputs("gaussian", shape, 4, 1)
    x2 = make_model_inputs("gaussian", shape, 3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = implementation(f, {n: v.to(dtype) for n, v in params.items()}, x1.to(dtype), x2.to(dtype))
    reference = jacobian_ntk(f, params, x1, x2)
    assert tuple(result.shape) == tuple(reference.shape) and result.dtype == dtype
    error = relative_error(result.to(torch.float64), reference)
    assert error <= TOLERANCE[dtype], f"{name} on {model}: relative error {error:.3g}"


@pytest.mark.parametrize("name", ADAPTERS)
def test_unsupported_networks_are_skipped_with_a_reason_naming_what(name):
    require(name)
    implementation = get_implementation(name)
    f, _ = _model("tied")
    reason = implementation.supports(f)
    if name.startswith("neural-tangents"):
        assert reason and "JAX" in reason
    elif name in ("backpack", "nngeometry"):
        assert reason and "decoder (TransposedLinear)" in reason, reason
    else:
        assert reason is None


def test_a_missing_library_names_the_extra_and_the_install_command(monkeypatch):
    from harness.ntk import registry

    fake = registry.OptionalImplementation("harness.ntk.adapters.with_curvlinops:curvlinops_ntk", "fake-extra",
                                           ("a_library_that_is_not_installed",), "pip install something")
    monkeypatch.setitem(registry.OPTIONAL, "fake-adapter", fake)
    with pytest.raises(registry.ImplementationError) as info:
        get_implementation("fake-adapter")
    message = str(info.value)
    assert "'fake-adapter'" in message and "'fake-extra'" in message and "a_library_that_is_not_installed" in message
    assert "pip install something" in message and "docs/third-party.md" in message
