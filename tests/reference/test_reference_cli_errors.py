"""The ``ntk-harness theory`` command (harness/cli_theory.py), bad input everywhere, and the
rule that ``reference`` never imports torch or harness."""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import pytest

import reference
from harness import cli_theory
from reference import ExactLaw, NotApplicable


def _run(argv, capsys):
    parser = argparse.ArgumentParser(prog="ntk-harness")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_theory.add_parser(sub)
    status = cli_theory.main(parser.parse_args(["theory"] + argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_json_output(capsys):
    status, out, err = _run(["--width", "20", "--depth", "10", "--sigma-w2", "3.0", "--samples", "100",
                             "--alpha", "0.05", "--json"], capsys)
    assert status == 0 and err == ""
    result = json.loads(out)
    assert result["phase"] == "chaotic" and result["depth_to_width"] == 0.5
    assert result["exact"]["mean"] == pytest.approx(805.31, rel=1e-4)
    assert result["exact"]["dispersion"] == pytest.approx(5.367, rel=1e-3)
    assert result["exact"]["second_moment"] == pytest.approx(result["exact"]["dispersion"] * result["exact"]["mean"] ** 2)
    assert result["asymptotic"]["dispersion"] == pytest.approx(reference.asymptotic_dispersion(0.5, 3.0))
    lo, hi = result["acceptance"]["mean"]
    assert lo < 805.31 < hi
    assert len(result["acceptance"]["dispersion"]) == 2


def test_defaults_and_table(capsys):
    status, out, _ = _run(["--width", "8", "--depth", "4", "--sigma-w2", "2", "--no-bias", "--input-dim", "5"], capsys)
    assert status == 0
    assert "eoc" in out and "dispersion" in out and "acceptance" not in out
    status, out, _ = _run(["--width", "8", "--depth", "4", "--sigma-w2", "2", "--no-bias", "--json"], capsys)
    result = json.loads(out)
    assert result["exact"]["mean"] == pytest.approx(5.0, rel=1e-3) and result["input_dim"] == 8
    assert result["trainable_bias"] is False


def test_outside_exact_assumptions_says_so(capsys):
    status, out, _ = _run(["--width", "20", "--depth", "5", "--sigma-w2", "2", "--sigma-b2", "0.1", "--json"], capsys)
    result = json.loads(out)
    assert status == 0 and result["exact"] is None and result["asymptotic"] is None
    assert "infinite-width" in result["not_applicable"]
    assert result["infinite_width"]["mean"] == pytest.approx(
        reference.infinite_width_ntk(1.0, 1.0, 1.0, (20,) * 6, 2.0, sigma_b2=0.1))
    status, out, _ = _run(["--width", "20", "--depth", "5", "--sigma-w2", "0.8", "--activation", "tanh"], capsys)
    assert status == 0 and "not applicable" in out and "ordered" in out
    status, out, err = _run(["--width", "20", "--depth", "5", "--sigma-w2", "2", "--activation", "tanh",
                             "--samples", "10"], capsys)
    assert status == 2 and "--samples" in err and "infinite-width" in err


@pytest.mark.parametrize("argv, needle", [
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--activation", "gelu"], "activation"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--sigma-b2", "-1"], "--sigma-b2"),
    (["--width", "0", "--depth", "3", "--sigma-w2", "2"], "--width"),
    (["--width", "5", "--depth", "0", "--sigma-w2", "2"], "--depth"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "-1"], "--sigma-w2"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--input-dim", "0"], "--input-dim"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--samples", "1"], "--samples"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--samples", "10", "--alpha", "1.5"], "--alpha"),
])
def test_bad_input_exits_2_with_message(argv, needle, capsys):
    status, out, err = _run(argv, capsys)
    assert status == 2 and out == ""
    assert err.startswith("ntk-harness theory: error: ") and needle in err
    assert "Traceback" not in err


@pytest.mark.parametrize("kwargs, needle", [
    ({"widths": (5, 0, 3)}, "widths[1]"),
    ({"widths": (0, 3)}, "widths[0]"),
    ({"widths": (5,)}, "depth >= 1"),
    ({"sigma_w2": 0.0}, "sigma_w2"),
    ({"sigma_w2": float("nan")}, "sigma_w2"),
    ({"sigma_b2": -0.1}, "sigma_b2"),
    ({"activation": "gelu"}, "activation"),
    ({"input_norm_sq": -1.0}, "input_norm_sq"),
    ({"parametrization": "mup"}, "parametrization"),
])
def test_exact_law_bad_arguments(kwargs, needle):
    args = {"widths": (4, 4), "sigma_w2": 2.0} | kwargs
    widths, sigma_w2 = args.pop("widths"), args.pop("sigma_w2")
    with pytest.raises(ValueError) as info:
        ExactLaw(widths, sigma_w2, **args)
    assert needle in str(info.value) and not isinstance(info.value, NotApplicable)


@pytest.mark.parametrize("kwargs, needle", [
    ({"sigma_b2": 0.1}, "infinite-width"), ({"activation": "tanh"}, "infinite-width"),
])
def test_exact_law_outside_assumptions_is_not_applicable(kwargs, needle):
    with pytest.raises(NotApplicable, match=needle):
        ExactLaw((4, 4), 2.0, **kwargs)


@pytest.mark.parametrize("call, needle", [
    (lambda: reference.phase_of(-1.0), "sigma_w2"),
    (lambda: reference.chi_1(1.0, -0.5), "sigma_b2"),
    (lambda: reference.variance_fixed_point(1.0, 0.0, "softplus"), "activation"),
    (lambda: reference.edge_of_chaos_sigma_w2(0.0, "swish"), "activation"),
    (lambda: reference.depth_to_width([]), "hidden_widths"),
    (lambda: reference.depth_to_width([3, 0]), "hidden_widths"),
    (lambda: reference.asymptotic_dispersion(-1.0, 2.0), "depth_to_width"),
    (lambda: reference.asymptotic_dispersion(1.0, 0.0), "sigma_w2"),
    (lambda: reference.infinite_width_ntk(2.0, 1.0, 1.0, (3, 3), 2.0), "inner"),
    (lambda: reference.infinite_width_ntk(0.5, 1.0, 1.0, (3, 0), 2.0), "widths[1]"),
])
def test_other_bad_arguments(call, needle):
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_reference_never_imports_torch_or_harness():
    code = ("import sys, reference, reference.acceptance, reference.asymptotic; "
            "reference.ExactLaw((4, 4), 2.0).sample(10, __import__('numpy').random.default_rng(0)); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'harness')]; "
            "assert not bad, bad")
    root = pathlib.Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
