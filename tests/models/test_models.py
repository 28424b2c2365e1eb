"""harness.models: loading a user's model, its network function, and NTKs of the example models.

Every example model of cases/models is checked with the built-in implementations against
an independent brute force, on every call shape an NTK implementation meets; the broken
implementations of tests/ntk/broken_models.py are checked to be right on the harness's MLP,
wrong on their model and right on the others.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from harness.models import (
    ModelError,
    ModelFunction,
    load_factory,
    make_model,
    make_model_inputs,
    trainable_parameters,
)
from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk import get_implementation
from harness.ntk.jacobian import jacobian_ntk
from harness.ntk.registry import ImplementationError
from tests.ntk import broken_models
from tests.ntk.broken_models import BROKEN_ON_MODELS

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "cases"
MODEL_DIR = CASES / "models"
# a case file's folder: the example models are found in its parent's models/ folder
CASE_FOLDER = CASES / "agreement"

GENERIC = ("jacobian", "ntk-vector-products", "autograd-loop")
RTOL = 1e-10


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run this module's thousands of tiny operations on one thread, then restore the setting.

    On a shared machine a second OpenMP thread only waits for a descheduled core: this module
    took 42-60 s with torch's default 2 threads under load, 4 s with one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class ModelCase:
    spec: str
    input_shape: tuple[int, ...]
    kwargs: dict = field(default_factory=dict)
    inputs: str = "gaussian"


# small sizes: every NTK below takes milliseconds
MODELS = {
    "cnn": ModelCase("models.cnn:make_cnn", (1, 8, 8), {"channels": 3, "outputs": 2}, "digits"),
    "residual_mlp": ModelCase("models.residual_mlp:make_residual_mlp", (6,),
                              {"input_dim": 6, "width": 8, "blocks": 2, "outputs": 1}),
    "tied": ModelCase("models.tied:make_tied", (6,), {"input_dim": 6, "hidden": 4, "outputs": 2}),
    "frozen": ModelCase("models.frozen:make_frozen", (6,), {"input_dim": 6, "width": 6, "outputs": 1}),
    "attention": ModelCase("models.attention:make_attention", (3, 4), {"dim": 4, "outputs": 2}),
    "transformer": ModelCase("models.transformer:make_transformer", (3, 4), {"dim": 4, "heads": 2, "hidden": 6,
                                                                             "outputs": 2}),
}

# the parameter counts the module docstrings state for the default keyword arguments
DOCUMENTED_COUNTS = {
    ("cnn", ()): 205, ("cnn", (("outputs", 3),)): 239, ("residual_mlp", ()): 929, ("tied", ()): 80,
    ("frozen", ()): 97, ("attention", ()): 297, ("transformer", ()): 609,
}
#: Built-ins that cannot run a model, with the operation they lack a rule for (measured; the
#: agreement kind skips them there with this reason: test_each_known_limitation_is_what_torch_says).
UNSUPPORTED = {("transformer", "ntk-vector-products"): "aten::_native_multi_head_attention"}


def supported(name: str, implementations=None) -> list[str]:
    """The implementations of ``implementations`` (default: the generic built-ins) that run model ``name``."""
    return [i for i in (implementations or GENERIC) if (name, i) not in UNSUPPORTED]


DEFAULT_SHAPES = {"cnn": (1, 8, 8), "residual_mlp": (16,), "tied": (8,), "frozen": (8,), "attention": (4, 8),
                  "transformer": (4, 8)}

MLP_ARCHITECTURES = [
    Architecture(widths=(3, 6), sigma_w2=2.0, sigma_b2=0.1),
    Architecture(widths=(4, 5, 7, 6), sigma_w2=2.0, sigma_b2=0.2, output_dim=3),
    Architecture(widths=(5, 8, 8), sigma_w2=1.3, trainable_bias=False, output_dim=2),
    Architecture(widths=(3, 6, 4), sigma_w2=1.5, sigma_b2=0.3, activation="tanh", parametrization="ntk"),
]


def build(name: str, seed: int = 0, dtype=torch.float64) -> ModelFunction:
    case = MODELS[name]
    module = make_model(case.spec, case.kwargs, seed, dtype, base_dir=CASE_FOLDER)
    return ModelFunction(module, case.input_shape, label=name)


def inputs(name: str, count: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    case = MODELS[name]
    return make_model_inputs(case.inputs, case.input_shape, count, seed, dtype)


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    return ((result - reference).abs().max() / reference.abs().max()).item()


def assert_entrywise(result: torch.Tensor, reference: torch.Tensor, rtol: float = RTOL, what: str = "") -> None:
    assert result.shape == reference.shape, f"{what}: shape {list(result.shape)} != {list(reference.shape)}"
    assert result.dtype == reference.dtype, what
    close = torch.isclose(result, reference, rtol=rtol, atol=rtol * reference.abs().max().item())
    assert bool(close.all()), f"{what}: {int((~close).sum())} entries off; relative error " \
                              f"{relative_error(result, reference):.3g}"


def brute_force_ntk(module: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """The NTK from the module itself, no functional_call: one torch.autograd.grad per input
    and output over ``module.parameters()`` with requires_grad. ``parameters()`` lists a
    tied tensor once, so its gradient sums every use."""
    leaves = [p for p in module.parameters() if p.requires_grad]

    def gradients(x):
        rows = []
        for a in range(x.shape[0]):
            out = module(x[a : a + 1]).reshape(-1)
            per_output = []
            for i in range(out.shape[0]):
                grads = torch.autograd.grad(out[i], leaves, retain_graph=True, allow_unused=True)
                per_output.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                             for g, p in zip(grads, leaves)]))
            rows.append(torch.stack(per_output))
        return torch.stack(rows)  # [N, O, P]

    theta = torch.einsum("aip,bjp->abij", gradients(x1), gradients(x2))
    return theta[..., 0, 0] if theta.shape[-1] == 1 else theta


def call_shapes(name: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    a = inputs(name, 3, seed=1)
    b = inputs(name, 4, seed=2)
    if torch.equal(a[0], b[0]):  # digits draws from one image set: keep x1 != x2 honest
        b = inputs(name, 4, seed=3)
    return {
        "N1=1": (a[:1], b),
        "N1=N2, x1 != x2": (a, b[:3]),
        "x2 holds x1's rows": (a[:2], torch.cat([b[:1], a[:2], b[1:2]])),
        "duplicate rows": (a[[0, 1, 0]], b[[2, 2, 1, 2]]),
        "x1 is x2": (a, a),
        "x1 == x2, different tensors": (a, a.clone()),
    }


# --------------------------------------------------------------------------- the example models


@pytest.mark.parametrize("key, count", list(DOCUMENTED_COUNTS.items()), ids=lambda v: str(v))
def test_documented_parameter_counts(key, count):
    name, kwargs = key
    module = make_model(f"{name}.py:make_{name}", dict(kwargs), 0, base_dir=MODEL_DIR)
    f = ModelFunction(module, DEFAULT_SHAPES[name])
    assert f.parameter_count() == count
    assert sum(p.numel() for p in trainable_parameters(module).values()) == count


def test_model_features_are_what_the_docstrings_say():
    tied, frozen = build("tied"), build("frozen")
    assert tied.tied == (("encoder.weight", "decoder.weight"),)
    assert "decoder.weight" not in tied.parameter_names and "encoder.weight" in tied.parameter_names
    assert set(frozen.frozen_parameter_names) == {"features.0.weight", "features.0.bias"}
    assert {"norm.running_mean", "norm.running_var"} <= set(frozen.buffer_names)
    assert {"norm.weight", "norm.bias"} <= set(frozen.parameter_names)
    cnn = build("cnn")
    assert any(p.dim() == 4 for p in cnn.initial_parameters().values())
    for name in MODELS:
        f = build(name)
        assert not f.module.training
        if name != "cnn":
            assert all(p.dim() <= 2 for p in f.initial_parameters().values()), name
        if name != "tied":
            assert f.tied == (), name
        if name != "frozen":
            assert f.frozen_parameter_names == () and f.buffer_names == (), name


@pytest.mark.parametrize("model, implementation", sorted(UNSUPPORTED))
def test_each_known_limitation_is_what_torch_says(model, implementation):
    """A built-in listed as unsupported on a model raises the error the probe classifies, naming the
    operation: if torch gains the rule, this fails and the entry goes."""
    from harness.ntk.diagnosis import unsupported_operation

    f = build(model)
    x = inputs(model, 2, seed=1)
    with pytest.raises(Exception) as info:
        get_implementation(implementation)(f, f.initial_parameters(), x, x)
    missing = unsupported_operation(info.value)
    assert missing is not None and UNSUPPORTED[(model, implementation)] in missing, str(info.value)


@pytest.mark.parametrize("name", list(MODELS))
def test_builtins_agree_with_brute_force_on_every_call_shape(name):
    f = build(name)
    params = f.initial_parameters()
    for shape, (x1, x2) in call_shapes(name).items():
        brute = brute_force_ntk(f.module, x1, x2)
        reference = jacobian_ntk(f, params, x1, x2)
        assert_entrywise(reference, brute, what=f"{name}, {shape}: jacobian vs brute force")
        for implementation in supported(name):
            result = get_implementation(implementation)(f, params, x1, x2)
            assert_entrywise(result, reference, what=f"{name}, {shape}: {implementation} vs jacobian")
        if shape == "duplicate rows":
            assert_entrywise(reference[2], reference[0], what=f"{name}: rows of equal inputs")
            assert_entrywise(reference[:, 3], reference[:, 0], what=f"{name}: columns of equal inputs")
        if shape == "x2 holds x1's rows":
            same = jacobian_ntk(f, params, x1, x1)
            assert_entrywise(reference[:, 1:3], same, what=f"{name}: K(x1, x2) holds K(x1, x1)")


@pytest.mark.parametrize("name", list(MODELS))
def test_float32_agrees_with_float64(name):
    f64, f32 = build(name), build(name, dtype=torch.float32)
    x1, x2 = inputs(name, 3, seed=1), inputs(name, 2, seed=2)
    reference = jacobian_ntk(f64, f64.initial_parameters(), x1, x2)
    for implementation in supported(name):
        result = get_implementation(implementation)(f32, f32.initial_parameters(), x1.float(), x2.float())
        assert result.dtype == torch.float32
        assert relative_error(result.double(), reference) < 1e-5, implementation


# digits in each input layout: an image, a sequence of 8 rows of 8 pixels, a flat vector
DIGIT_LAYOUTS = [
    ("models.cnn:make_cnn", {"channels": 2, "outputs": 1}, (1, 8, 8)),
    ("models.attention:make_attention", {"dim": 8, "outputs": 1}, (8, 8)),
    ("models.residual_mlp:make_residual_mlp", {"input_dim": 64, "width": 8, "blocks": 1, "outputs": 2}, (64,)),
]


@pytest.mark.parametrize("spec, kwargs, shape", DIGIT_LAYOUTS, ids=[s for s, _, _ in DIGIT_LAYOUTS])
def test_builtins_agree_on_digits(spec, kwargs, shape):
    f = ModelFunction(make_model(spec, kwargs, 0, base_dir=CASE_FOLDER), shape)
    params = f.initial_parameters()
    x1, x2 = make_model_inputs("digits", shape, 3, 5), make_model_inputs("digits", shape, 2, 6)
    assert_entrywise(jacobian_ntk(f, params, x1, x2), brute_force_ntk(f.module, x1, x2), what="jacobian vs brute force")
    for implementation in GENERIC:
        for a, b in ((x1, x2), (x1, x1)):
            assert_entrywise(get_implementation(implementation)(f, params, a, b), jacobian_ntk(f, params, a, b),
                             what=f"{spec}: {implementation}")


@pytest.mark.parametrize("name", list(MODELS))
def test_structured_refuses_models(name):
    f = build(name)
    x = inputs(name, 2, seed=1)
    with pytest.raises(ImplementationError, match="structured.*fully connected"):
        get_implementation("structured")(f, f.initial_parameters(), x, x)


@pytest.mark.parametrize("name", list(MODELS))
def test_calls_leave_the_model_unchanged(name):
    f = build(name)
    params = f.initial_parameters()
    state = {k: v.clone() for k, v in f.module.state_dict(keep_vars=False).items()}
    fixed = {k: v.clone() for k, v in f.fixed_tensors().items()}
    given = {k: v.clone() for k, v in params.items()}
    x1, x2 = inputs(name, 3, seed=1), inputs(name, 2, seed=2)
    for implementation in supported(name):
        get_implementation(implementation)(f, params, x1, x2)
        get_implementation(implementation)(f, params, x1, x1)
    for broken in BROKEN_ON_MODELS:
        getattr(broken_models, broken)(f, params, x1, x2)
    after = f.module.state_dict()
    assert state.keys() == after.keys()
    for key, value in state.items():
        assert torch.equal(value, after[key]), f"{name}: {key} changed"
    for key, value in fixed.items():
        assert torch.equal(value, f.fixed_tensors()[key]), f"{name}: fixed {key} changed"
    for key, value in given.items():
        assert torch.equal(value, params[key]), f"{name}: params[{key}] changed"
    assert not f.module.training


@pytest.mark.parametrize("name", list(MODELS))
def test_vmap_over_stacked_parameters(name):
    f = build(name)
    networks = [build(name, seed=s).initial_parameters() for s in range(3)]
    stacked = {k: torch.stack([p[k] for p in networks]) for k in networks[0]}
    x1, x2 = inputs(name, 3, seed=1), inputs(name, 2, seed=2)
    outputs = torch.func.vmap(f, in_dims=(0, None))(stacked, x1)
    for m in range(3):
        assert torch.allclose(outputs[m], f(networks[m], x1), rtol=1e-12, atol=1e-14)
    for implementation in supported(name, ("jacobian", "ntk-vector-products")):
        function = get_implementation(implementation).function
        batched = torch.func.vmap(function, in_dims=(None, 0, None, None))(f, stacked, x1, x2)
        for m in range(3):
            assert_entrywise(batched[m], jacobian_ntk(f, networks[m], x1, x2), what=f"{name}: {implementation} m={m}")


def test_seeds_give_different_networks():
    for name in MODELS:
        a, b = build(name, seed=0).initial_parameters(), build(name, seed=1).initial_parameters()
        assert any(not torch.equal(a[k], b[k]) for k in a), name


# --------------------------------------------------------------------------- broken implementations


def _mlp(arch):
    params = unstack(init_parameters(arch, 3, [0], dtype=torch.float64, draw_dtype=torch.float64), 0)
    gen = torch.Generator().manual_seed(4)
    x1 = torch.randn(4, arch.input_dim, generator=gen, dtype=torch.float64)
    x2 = torch.randn(3, arch.input_dim, generator=gen, dtype=torch.float64)
    return MLP(arch), params, x1, x2


@pytest.mark.parametrize("broken", list(BROKEN_ON_MODELS))
def test_broken_implementations_are_right_on_the_mlp(broken):
    function = getattr(broken_models, broken)
    for arch in MLP_ARCHITECTURES:
        f, params, x1, x2 = _mlp(arch)
        for a, b in ((x1, x2), (x1, x1)):
            assert_entrywise(function(f, params, a, b), jacobian_ntk(f, params, a, b), rtol=1e-12,
                             what=f"{broken} on {arch}")


@pytest.mark.parametrize("broken", list(BROKEN_ON_MODELS))
def test_broken_implementations_are_wrong_on_their_model_only(broken):
    function = getattr(broken_models, broken)
    target, phrase = BROKEN_ON_MODELS[broken]
    assert target in MODELS and phrase
    for name in MODELS:
        f = build(name)
        params = f.initial_parameters()
        x1, x2 = inputs(name, 3, seed=1), inputs(name, 2, seed=2)
        for a, b in ((x1, x2), (x1, x1)):
            result, reference = function(f, params, a, b), jacobian_ntk(f, params, a, b)
            assert result.shape == reference.shape and result.dtype == reference.dtype
            if name == target:
                assert relative_error(result, reference) > 1e-6, f"{broken} is right on {name}"
            else:
                assert_entrywise(result, reference, what=f"{broken} on {name}, which lacks its feature")


# --------------------------------------------------------------------------- loading and building


def test_load_factory_finds_models_next_to_the_case_folder():
    from_parent = load_factory("models.cnn:make_cnn", CASE_FOLDER)
    by_file = load_factory("../models/cnn.py:make_cnn", CASE_FOLDER)
    assert from_parent.__name__ == by_file.__name__ == "make_cnn"
    assert load_factory("torch.nn:Linear", None) is torch.nn.Linear
    module = make_model("torch.nn:Linear", {"in_features": 3, "out_features": 2}, 0)
    assert isinstance(module, torch.nn.Linear) and not module.training


def test_load_factory_relative_imports_inside_a_users_package(tmp_path):
    package = tmp_path / "project" / "mymodels"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text("from torch import nn\n\ndef block(n):\n    return nn.Linear(n, 1)\n")
    (package / "net.py").write_text("from .layers import block\n\ndef make(n=3):\n    return block(n)\n")
    cases = tmp_path / "project" / "cases" / "deep"
    cases.mkdir(parents=True)
    module = make_model("mymodels.net:make", {"n": 4}, 0, base_dir=cases)
    assert module.in_features == 4


def _write(tmp_path, text: str) -> Path:
    (tmp_path / "user_models.py").write_text(text)
    return tmp_path


@pytest.mark.parametrize("spec, source, expected", [
    ("no_such_package.nothing:make", None, "cannot import module 'no_such_package.nothing': no such module"),
    ("models.cnn", None, "no ':function' given"),
    ("models.cnn:make_nothing", None, "has no attribute 'make_nothing'"),
    ("missing.py:make", None, "no file"),
    ("user_models.py:VALUE", "VALUE = 3\n", "is a int, not callable"),
    ("user_models:make", "import no_such_dependency_xyz\n", "cannot import module 'user_models' from"),
    ("user_models.py:make", "raise RuntimeError('broken module')\n", "raised RuntimeError: broken module"),
])
def test_load_factory_errors_name_the_spec(tmp_path, spec, source, expected):
    base = _write(tmp_path, source) if source else CASE_FOLDER
    with pytest.raises(ModelError) as caught:
        load_factory(spec, base)
    message = str(caught.value)
    assert spec in message and expected in message and "\n" not in message, message


@pytest.mark.parametrize("source, expected", [
    ("def make():\n    raise ValueError('width must be even')\n", "factory raised ValueError: width must be even"),
    ("def make():\n    return 42\n", "factory did not return a torch.nn.Module (got int)"),
])
def test_make_model_errors_name_the_spec(tmp_path, source, expected):
    _write(tmp_path, source)
    with pytest.raises(ModelError) as caught:
        make_model("user_models.py:make", {}, 0, base_dir=tmp_path)
    assert "user_models.py:make" in str(caught.value) and expected in str(caught.value)


def test_make_model_depends_only_on_the_seed_and_keeps_global_state():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = make_model("models.cnn:make_cnn", {}, 7, base_dir=CASE_FOLDER)
    assert torch.equal(torch.rand(3), expected_next), "make_model changed the global random state"
    again = make_model("models.cnn:make_cnn", {}, 7, torch.float32, base_dir=CASE_FOLDER)
    for (name, a), (_, b) in zip(first.named_parameters(), again.named_parameters()):
        assert a.dtype == torch.float64 and b.dtype == torch.float32
        assert torch.equal(a, b.double()), f"{name}: float64 model does not hold the float32 draws"


def test_float32_model_on_upcast_parameters_uses_its_fixed_tensors_exactly():
    f32, f64 = build("frozen", dtype=torch.float32), build("frozen")
    params = {k: v.double() for k, v in f32.initial_parameters().items()}
    x = inputs("frozen", 3, seed=1)
    assert torch.equal(jacobian_ntk(f32, params, x, x), jacobian_ntk(f64, f64.initial_parameters(), x, x))


def test_model_function_validates_its_arguments():
    f = build("frozen")
    params = f.initial_parameters()
    x = inputs("frozen", 2, seed=1)
    with pytest.raises(ModelError, match=r"lacks \['head.0.weight'\]"):
        f({k: v for k, v in params.items() if k != "head.0.weight"}, x)
    with pytest.raises(ModelError, match="unknown names"):
        f({**params, "nope": x}, x)
    with pytest.raises(ModelError, match=r"inputs have shape \[2, 7\], expected \[N, 6\]"):
        f(params, torch.zeros(2, 7, dtype=torch.float64))
    with pytest.raises(ModelError, match="training mode"):
        ModelFunction(copy.deepcopy(f.module).train(), (6,))
    with pytest.raises(ModelError, match="forward pass on inputs of shape"):
        ModelFunction(f.module, (5,))


def test_parameter_selection_and_scalar_outputs():
    f = build("frozen")
    head_only = ModelFunction(f.module, (6,), parameters=["head.*"])
    assert head_only.parameter_names == ("head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias")
    assert {"norm.weight", "norm.bias"} <= set(head_only.frozen_parameter_names)
    with pytest.raises(ModelError, match="matches no trainable parameter"):
        ModelFunction(f.module, (6,), parameters=["features.*"])

    class Scalar(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))

        def forward(self, x):
            return torch.tanh(x @ self.w)  # [N]

    scalar = ModelFunction(Scalar().eval(), (3,))
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert scalar.output_dim == 1 and scalar(scalar.initial_parameters(), x).shape == (4, 1)
    assert jacobian_ntk(scalar, scalar.initial_parameters(), x, x).shape == (4, 4)


def test_tied_weight_stays_tied_in_the_function():
    f = build("tied")
    params = f.initial_parameters()
    changed = {**params, "encoder.weight": params["encoder.weight"] * 1.5}
    x = inputs("tied", 3, seed=1)
    module = copy.deepcopy(f.module)
    with torch.no_grad():
        module.encoder.weight.mul_(1.5)  # the decoder shares it
    assert module.decoder.weight is module.encoder.weight
    assert torch.allclose(f(changed, x), module(x), rtol=1e-14, atol=0)


def test_model_inputs():
    gaussian = make_model_inputs("gaussian", (64,), 4000, 0)
    assert gaussian.shape == (4000, 64) and gaussian.dtype == torch.float64
    assert torch.equal(gaussian, make_model_inputs("gaussian", (64,), 4000, 0))
    assert not torch.equal(gaussian[:5], make_model_inputs("gaussian", (64,), 5, 1))
    # mean squared norm 1; its standard error is sqrt(2 / 64 / 4000) = 0.0028, so 0.03 is
    # 10.7 standard errors: a false alarm about 1e-26 (seeded, so in fact never)
    assert abs((gaussian**2).sum(1).mean().item() - 1) < 0.03
    for shape in ((1, 8, 8), (64,), (8, 8)):
        digits = make_model_inputs("digits", shape, 50, 0, torch.float32)
        assert digits.shape == (50, *shape) and digits.dtype == torch.float32
        norms = digits.reshape(50, -1).double().norm(dim=1)
        assert torch.allclose(norms, torch.ones(50, dtype=torch.float64), atol=1e-6)
        assert torch.unique(digits.reshape(50, -1), dim=0).shape[0] == 50
    with pytest.raises(ModelError, match=r"input_shape \[3, 8, 8\] holds 192"):
        make_model_inputs("digits", (3, 8, 8), 4, 0)
    with pytest.raises(ModelError, match="1797 images; 2000 requested"):
        make_model_inputs("digits", (64,), 2000, 0)
    with pytest.raises(ModelError, match="kind must be one of gaussian, digits"):
        make_model_inputs("cifar", (3, 32, 32), 4, 0)
