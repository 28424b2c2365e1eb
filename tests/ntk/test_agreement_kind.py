"""The agreement kind passes every correct implementation and catches every broken one."""
from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from harness.kinds import load_cases as load_case_file
from harness.kinds.agreement import CALL_SHAPES, KIND
from harness.options import RunOptions
from harness.ntk.registry import BUILTINS
from tests.ntk.broken import BROKEN

ROOT = Path(__file__).resolve().parents[2]
CASE_DIR = ROOT / "cases" / "agreement"
MODEL_CASES = load_case_file(ROOT / "cases" / "models" / "models.toml")


def _quick_cases():
    cases = []
    for path in sorted(CASE_DIR.glob("*.toml")):
        cases += [c for c in load_case_file(path) if "quick" in c.markers]
    return cases


QUICK = _quick_cases()


def _messages(outcome) -> str:
    return " || ".join(f"{c.name}: {c.detail}" for c in outcome.failed_checks)


def test_quick_agreement_cases_cover_the_issue():
    archs = [c.sections.network.architecture() for c in QUICK]
    assert len(QUICK) >= 8
    assert {a.output_dim for a in archs} >= {1, 10}
    assert {a.trainable_bias for a in archs} == {True, False}
    assert {a.parametrization for a in archs} == {"standard", "ntk"}
    assert {a.activation for a in archs} >= {"relu", "tanh", "erf"}
    assert {c.sections.agreement.dtype for c in QUICK} == {"float64", "float32"}
    assert {a.depth for a in archs} >= {1, 2, 3, 4, 5, 8, 32}
    assert min(min(a.hidden_widths) for a in archs) == 2 and max(max(a.hidden_widths) for a in archs) >= 512
    assert any(c.sections.agreement.zero_input for c in QUICK)
    assert all(c.sections.agreement.networks >= 2 for c in QUICK)
    assert all(set(c.sections.agreement.call_shapes) == set(CALL_SHAPES) for c in QUICK)


@pytest.mark.parametrize("name", list(BUILTINS))
def test_builtins_pass_every_quick_case(name):
    """The small architectures (the deep, narrow and wide quick cases run in `pytest cases`)."""
    for case in [c for c in QUICK if c.source.name == "builtin_architectures.toml"]:
        outcome = KIND.run(case, RunOptions(implementation_spec=name, device="cpu"))
        assert outcome.checks_passed, f"{name} on {KIND.case_id(case)}: {_messages(outcome)}"
        names = {c.name for c in outcome.checks}
        assert {"agrees with jacobian", "symmetric", "positive semi-definite", "fresh parameters"} <= names
        assert outcome.result.max_relative_error <= outcome.result.rtol


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_each_broken_implementation_is_caught_for_its_reason(broken):
    spec = f"tests.ntk.broken:{broken}"
    phrase = BROKEN[broken]
    failures = []
    for case in QUICK:
        outcome = KIND.run(case, RunOptions(implementation_spec=spec, device="cpu"))
        if not outcome.checks_passed:
            message = _messages(outcome)
            assert spec in message, f"the message does not name the implementation: {message}"
            failures.append(message)
            if phrase in message:
                break
    assert failures, f"{broken} passed every quick agreement case"
    assert any(phrase in m for m in failures), f"{broken}: expected {phrase!r} in one of {failures}"


def test_failure_names_worst_entries():
    outcome = KIND.run(QUICK[0], RunOptions(implementation_spec="tests.ntk.broken:drops_biases", device="cpu"))
    (check,) = [c for c in outcome.failed_checks if c.name == "agrees with jacobian"]
    assert "worst entries: K[" in check.detail and "off by" in check.detail
    assert check.measured > check.target


def test_exception_is_a_failed_check_not_a_crash():
    outcome = KIND.run(QUICK[0], RunOptions(implementation_spec="tests.ntk.broken:raises_inside", device="cpu"))
    (check,) = outcome.failed_checks
    assert check.name == "runs" and "RuntimeError" in check.detail and "broken.py" in check.detail


def _plugin_installed() -> bool:
    return any(ep.value == "harness.plugin" for ep in entry_points(group="pytest11"))


def _pytest_cases(spec: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # an installed package loads the plugin through its pytest11 entry point; a bare checkout needs -p
    plugin = [] if _plugin_installed() else ["-p", "harness.plugin"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "cases/agreement", "-m", "quick", "-q", "-p", "no:cacheprovider",
         *plugin, "--ntk-implementation", spec, *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_end_to_end_pytest_cases_with_ntk_impl():
    """``pytest cases/agreement -m quick --ntk-implementation X``: fails for a broken X, passes for a correct one."""
    good = _pytest_cases("structured")
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-2000:]
    bad = _pytest_cases("tests.ntk.broken:drops_readout", "-x")
    assert bad.returncode != 0, bad.stdout[-3000:]
    assert "without the readout layer" in bad.stdout


@pytest.mark.parametrize(
    "table, key",
    [
        ("networks = 1", "agreement.networks"),
        ('call_shapes = ["cross", "cross"]', "agreement.call_shapes"),
        ('call_shapes = ["diagonal"]', "agreement.call_shapes"),
        ('dtype = "float16"', "agreement.dtype"),
        ("rtol = 0", "agreement.rtol"),
    ],
)
def test_invalid_agreement_section_names_the_key(tmp_path, table, key):
    from harness.cases.schema import CaseError

    path = tmp_path / "bad.toml"
    path.write_text(f'[[case]]\nname = "bad"\nkind = "agreement"\n[case.network]\nsigma_w2 = 2.0\n'
                    f"depth = 2\nwidth = 4\n[case.agreement]\n{table}\n")
    with pytest.raises(CaseError) as info:
        load_case_file(path)
    assert key in str(info.value) and "bad.toml" in str(info.value)


def test_case_level_implementation_is_used_and_ntk_impl_overrides_it(tmp_path):
    path = tmp_path / "pinned.toml"
    path.write_text('[[case]]\nname = "pinned"\nkind = "agreement"\nimplementation = "tests.ntk.broken:scaled"\n'
                    "[case.network]\nsigma_w2 = 2.0\ndepth = 2\nwidth = 6\n[case.agreement]\nnetworks = 2\n")
    (case,) = load_case_file(path)
    from harness.runner import run_case

    pinned = run_case(case, RunOptions(device="cpu"))
    assert not pinned.checks_passed and pinned.implementation_spec == "tests.ntk.broken:scaled"
    overridden = run_case(case, RunOptions(device="cpu", implementation_spec="structured"))
    assert overridden.checks_passed and overridden.implementation_spec == "structured"


@pytest.mark.parametrize("name", ["jacobian", "ntk-vector-products", "autograd-loop"])
def test_general_builtins_pass_every_model_case(name):
    for case in MODEL_CASES:
        outcome = KIND.run(case, RunOptions(implementation_spec=name, device="cpu"))
        if outcome.skipped:   # the probe found an operation without a rule: the one measured limitation
            assert (name, case.name) == ("ntk-vector-products", "transformer"), outcome.skipped
            assert "no forward-mode derivative (jvp) for aten::_native_multi_head_attention" in outcome.skipped
            continue
        assert outcome.checks_passed, f"{name} on {case.id}: {_messages(outcome)}"
        assert outcome.result.model is not None and outcome.result.max_relative_error <= outcome.result.rtol


def test_structured_is_skipped_on_models_with_its_reason_not_passed():
    outcome = KIND.run(MODEL_CASES[0], RunOptions(implementation_spec="structured", device="cpu"))
    assert outcome.skipped and "MLP" in outcome.skipped
    (agreement,) = outcome.result.implementations
    assert agreement.skipped and agreement.max_relative_error is None


def test_each_model_feature_bug_is_caught_on_its_model_only():
    from tests.ntk.broken_models import BROKEN_ON_MODELS

    model_of = {case.sections.model.factory.split(":")[0]: case for case in MODEL_CASES}
    for name, (model, phrase) in BROKEN_ON_MODELS.items():
        spec = f"tests.ntk.broken_models:{name}"
        for module, case in model_of.items():
            outcome = KIND.run(case, RunOptions(implementation_spec=spec, device="cpu"))
            if module == model:
                message = _messages(outcome)
                assert not outcome.checks_passed, f"{name} passed its model {model}"
                assert spec in message and phrase in message, message
            else:
                assert outcome.checks_passed, f"{name} failed on {module}, not its model: {_messages(outcome)}"


# ---------------------------------------------------------------- the float32 precision policy
def _float32_case():
    (case,) = [c for c in load_case_file(ROOT / "cases" / "agreement" / "builtin_architectures.toml")
               if c.sections.agreement.dtype == "float32" and c.sections.network.output_dim == 1]
    return case


def test_float32_tolerance_comes_from_the_references_own_float32_error():
    from harness.ntk.precision import FLOAT32_FLOOR, FLOAT32_MARGIN

    outcome = KIND.run(_float32_case(), RunOptions(implementation_spec="ntk-vector-products", device="cpu"))
    result = outcome.result
    assert outcome.checks_passed, _messages(outcome)
    assert 1e-8 < result.reference_float32_error < 1e-5        # float32 rounding, measured on these networks
    assert result.rtol == max(FLOAT32_MARGIN * result.reference_float32_error, FLOAT32_FLOOR)
    assert "8 x the reference's own float32 error" in result.tolerance_rule and result.reference_tf32 is False


def test_a_tf32_contraction_is_rejected_by_a_margin_of_five_unless_allowed():
    """A float32 implementation whose contraction runs on TF32 operands (10 mantissa bits) fails
    the float32 case by at least 5x its tolerance; --ntk-tf32 allow accepts it, and says so."""
    spec = "tests.ntk.broken:tf32_contraction"
    rejected = KIND.run(_float32_case(), RunOptions(implementation_spec=spec, device="cpu"))
    (check,) = [c for c in rejected.failed_checks if c.name == "agrees with jacobian"]
    assert check.measured >= 5 * check.target, (check.measured, check.target)
    allowed = KIND.run(_float32_case(), RunOptions(implementation_spec=spec, device="cpu", tf32="allow"))
    assert allowed.checks_passed, _messages(allowed)
    assert allowed.result.rtol == 1e-3 and "--ntk-tf32 allow" in allowed.result.tolerance_rule


def test_the_reference_runs_without_tf32_whatever_the_session_says():
    import torch

    from harness.ntk.precision import full_precision

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        with full_precision():
            assert torch.get_float32_matmul_precision() == "highest"
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)


# ---------------------------------------------------------------------------------------
# Diagnoses that name the cause (harness.ntk.diagnosis.diagnose), each for its own reason only.
# ---------------------------------------------------------------------------------------
def _diagnoses_on_a_small_mlp(name: str) -> list[str]:
    """The diagnosis of broken implementation ``name`` in a float64 check (rtol 1e-10) on a ReLU MLP
    without bias variance (so that the zero input x1[-1] has every pre-activation exactly 0), for
    K(x1, x2) and K(x1, x1)."""
    import torch

    import tests.ntk.broken as broken
    from harness.networks import MLP, Architecture, init_parameters, unstack
    from harness.ntk.diagnosis import diagnose, relative_error
    from harness.ntk.jacobian import jacobian_ntk

    architecture = Architecture(widths=(4, 6, 6), sigma_w2=2.0, sigma_b2=0.0, output_dim=2)
    f = MLP(architecture)
    params = unstack(init_parameters(architecture, 3, [0], dtype=torch.float64, draw_dtype=torch.float64), 0)
    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(4, 4, generator=generator, dtype=torch.float64) / 2
    x1[-1] = 0.0
    x2 = torch.randn(3, 4, generator=generator, dtype=torch.float64) / 2
    texts = []
    for a, b in ((x1, x2), (x1, x1)):
        result = getattr(broken, name)(f, {k: v.clone() for k, v in params.items()}, a, b).to(torch.float64)
        reference = jacobian_ntk(f, params, a, b)
        if relative_error(result, reference) > 1e-10:   # the agreement kind diagnoses failures only
            texts.append(diagnose(result, reference, f=f, params64=params, x1=a, x2=b, num_layers=f.num_layers,
                                  rtol=1e-10, earlier=[]))
    return texts


def _diagnosed_names() -> list[str]:
    from tests.ntk.broken import DIAGNOSED

    return sorted(DIAGNOSED)


_OTHERS = ["drops_readout", "drops_hidden_layer", "drops_first_weight", "swapped_outputs", "diagonal_outputs",
           "wrong_off_diagonal", "output_sum", "unsymmetric", "not_psd"]


@pytest.mark.parametrize("name", _diagnosed_names())
def test_each_diagnosis_names_its_cause_and_only_for_its_implementation(name):
    from tests.ntk.broken import DIAGNOSED

    texts = _diagnoses_on_a_small_mlp(name)
    assert texts and all(DIAGNOSED[name] in t for t in texts), f"{name}: expected {DIAGNOSED[name]!r} in {texts}"
    for other in [n for n in _diagnosed_names() if n != name] + _OTHERS:
        for text in _diagnoses_on_a_small_mlp(other):
            assert DIAGNOSED[name] not in text, f"{other} got {name}'s diagnosis: {text}"


def test_float32_rounding_is_no_longer_a_factor():
    """A float64 check off by float32 rounding is said to be that, never 'times 1.0000000002'."""
    for text in _diagnoses_on_a_small_mlp("low_precision"):
        assert "times" not in text and "float32" in text


def test_the_kink_diagnosis_reaches_the_agreement_kind():
    """relu_half_at_zero on a float64 quick agreement case with a zero input: the failure says
    relu'(0) = 1/2, in the agreement kind's own message."""
    from tests.ntk.broken import DIAGNOSED

    spec = "tests.ntk.broken:relu_half_at_zero"
    cases = [c for c in QUICK if c.sections.agreement.zero_input and c.sections.network.architecture().activation == "relu"
             and c.sections.agreement.dtype == "float64"]
    assert cases, "no float64 ReLU quick case with a zero input"
    outcome = KIND.run(cases[0], RunOptions(implementation_spec=spec, device="cpu"))
    message = _messages(outcome)
    assert not outcome.checks_passed and DIAGNOSED["relu_half_at_zero"] in message, message


def test_each_model_feature_bug_is_diagnosed_by_the_models_own_names():
    from tests.ntk.broken_models import BROKEN_ON_MODELS, DIAGNOSED_ON_MODELS

    model_of = {case.sections.model.factory.split(":")[0]: case for case in MODEL_CASES}
    for name, phrase in DIAGNOSED_ON_MODELS.items():
        model, _ = BROKEN_ON_MODELS[name]
        outcome = KIND.run(model_of[model], RunOptions(implementation_spec=f"tests.ntk.broken_models:{name}",
                                                       device="cpu"))
        message = _messages(outcome)
        assert phrase in message, f"{name} on {model}: expected {phrase!r} in {message}"
        for other, other_phrase in DIAGNOSED_ON_MODELS.items():
            if other != name:
                assert other_phrase not in message, f"{name} got {other}'s diagnosis: {message}"
