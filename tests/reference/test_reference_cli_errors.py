"""The ``ntk-harness theory`` command (harness/cli_theory.py), bad input everywhere, and the
rule that ``reference`` never imports torch or harness."""

from __future__ import annotations

import argparse
import json
import math
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


def test_the_deprecated_spelling_samples_still_works_and_says_so(capsys):
    argv = ["--width", "8", "--depth", "2", "--sigma-w2", "2.0", "--alpha", "0.05", "--json"]
    status, out, err = _run(argv + ["--samples", "50"], capsys)
    assert status == 0 and "--samples is deprecated" in err and "use --networks" in err
    status_new, out_new, err_new = _run(argv + ["--networks", "50"], capsys)
    assert status_new == 0 and err_new == "" and json.loads(out_new) == json.loads(out)


def test_json_output(capsys):
    status, out, err = _run(["--width", "20", "--depth", "10", "--sigma-w2", "3.0", "--networks", "100",
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
    status, out, _ = _run(["--width", "20", "--depth", "5", "--sigma-w2", "2", "--sigma-b2", "0.1", "--draws", "2000",
                           "--json"], capsys)
    result = json.loads(out)
    assert status == 0 and result["exact"]["method"] == "monte carlo" and result["asymptotic"] is None
    assert "ReLU with sigma_b2 = 0" in result["not_applicable"]
    assert result["infinite_width"]["mean"] == pytest.approx(
        reference.infinite_width_ntk(1.0, 1.0, 1.0, (20,) * 6, 2.0, sigma_b2=0.1))
    assert result["exact"]["monte_carlo"]["draws"] == 2000
    status, out, _ = _run(["--width", "20", "--depth", "5", "--sigma-w2", "0.8", "--activation", "tanh",
                           "--draws", "500"], capsys)
    assert status == 0 and "not applicable" in out and "ordered" in out
    status, out, err = _run(["--width", "20", "--depth", "5", "--sigma-w2", "2", "--activation", "tanh",
                             "--networks", "10"], capsys)
    assert status == 2 and "--networks" in err and "infinite-width" in err


@pytest.mark.parametrize("argv, needle", [
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--activation", "gelu"], "activation"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--sigma-b2", "-1"], "--sigma-b2"),
    (["--width", "0", "--depth", "3", "--sigma-w2", "2"], "--width"),
    (["--width", "5", "--depth", "0", "--sigma-w2", "2"], "--depth"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "-1"], "--sigma-w2"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--input-dim", "0"], "--input-dim"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--networks", "1"], "--networks"),
    (["--width", "5", "--depth", "3", "--sigma-w2", "2", "--networks", "10", "--alpha", "1.5"], "--alpha"),
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


# ---------------------------------------------------------------------------------------------
# Monte Carlo moments of the joint law (--inner-products, non-ReLU diagonals)
# ---------------------------------------------------------------------------------------------
def test_off_diagonal_moments_with_standard_errors(capsys):
    argv = ["--width", "20", "--depth", "10", "--sigma-w2", "3.0", "--inner-products", "1.0", "0.5", "--json"]
    status, out, err = _run(argv, capsys)
    assert status == 0 and err == ""
    result = json.loads(out)
    exact = result["exact"]
    assert exact["method"] == "exact"
    assert exact["monte_carlo"]["draws"] == cli_theory.DEFAULT_DRAWS and exact["monte_carlo"]["seed"] == 0
    assert "standard error" in exact["monte_carlo"]["errors"]
    entries = {e["inner_product"]: e for e in exact["off_diagonal"]}
    assert set(entries) == {1.0, 0.5}
    for entry in entries.values():
        assert {"inner_product", "mean", "mean_error", "dispersion", "dispersion_error"} <= set(entry)
        assert entry["mean"] > 0 and 0 < entry["mean_error"] < entry["mean"] and entry["dispersion_error"] > 0
    # c = 1 is Theta(x, x): its Monte Carlo mean agrees with the exact mean. Seeded; with finite
    # fourth moments the t-statistic is ~normal, so |t| > 5 has probability < 1e-6.
    diagonal = entries[1.0]
    assert abs(diagonal["mean"] - exact["mean"]) < 5 * diagonal["mean_error"]
    assert abs(diagonal["dispersion"] - exact["dispersion"]) < 5 * diagonal["dispersion_error"] + 0.05 * exact["dispersion"]
    # positive correlation lowers the kernel: Theta(x, y) < Theta(x, x) on average
    assert entries[0.5]["mean"] < diagonal["mean"] - 3 * diagonal["mean_error"]
    assert [e["inner_product"] for e in result["infinite_width"]["off_diagonal"]] == [1.0, 0.5]


def test_monte_carlo_draws_depend_only_on_seed_and_cosine(capsys):
    base = ["--width", "6", "--depth", "3", "--sigma-w2", "2", "--draws", "300", "--json"]
    one = json.loads(_run(base + ["--inner-products", "0.3", "-0.2"], capsys)[1])["exact"]["off_diagonal"]
    two = json.loads(_run(base + ["--inner-products", "-0.2"], capsys)[1])["exact"]["off_diagonal"]
    assert one[1] == two[0]
    other = json.loads(_run(base + ["--inner-products", "-0.2", "--seed", "1"], capsys)[1])["exact"]["off_diagonal"]
    assert other[0]["mean"] != two[0]["mean"]


def test_non_relu_diagonal_goes_under_exact_with_errors(capsys):
    status, out, _ = _run(["--width", "10", "--depth", "4", "--sigma-w2", "1.5", "--activation", "erf",
                           "--sigma-b2", "0.05", "--draws", "3000", "--inner-products", "0.0", "--json"], capsys)
    result = json.loads(out)
    exact = result["exact"]
    assert status == 0 and exact["method"] == "monte carlo" and result["infinite_width"] is None
    for key in ("mean", "mean_error", "dispersion", "dispersion_error"):
        assert math.isfinite(exact[key]) and exact[key] > 0
    assert exact["off_diagonal"][0]["inner_product"] == 0.0 and exact["monte_carlo"]["draws"] == 3000


def test_table_says_how_many_draws_and_that_errors_are_standard_errors(capsys):
    status, out, _ = _run(["--width", "8", "--depth", "4", "--sigma-w2", "2", "--inner-products", "0.5",
                           "--draws", "1000", "--seed", "7"], capsys)
    assert status == 0
    assert "off-diagonal entries Theta(x, y)" in out and " +- " in out
    assert "1000 draws per entry, seed 7" in out and "one standard error" in out


def test_huge_moments_are_printed_from_their_logs(capsys):
    """width 1, depth 10^5 at the edge of chaos: E[Theta^2] ~ 10^77824 (the former OverflowError)."""
    status, out, err = _run(["--width", "1", "--depth", "100000", "--sigma-w2", "2", "--json"], capsys)
    assert status == 0 and err == ""
    result = json.loads(out)
    exact = result["exact"]
    assert exact["second_moment"] is None and exact["dispersion"] is None
    assert exact["log_second_moment"] > 709 and exact["log_dispersion"] == pytest.approx(
        exact["log_second_moment"] - 2 * exact["log_mean"])
    assert "NaN" not in out and "Infinity" not in out
    table = cli_theory._table(result)   # the table of the same result
    line = next(row for row in table.splitlines() if row.startswith("exact E[Theta^2]"))
    mantissa, exponent = line.split()[-1].split("e+")
    assert int(exponent) == math.floor(exact["log_second_moment"] / math.log(10))
    assert 1 <= float(mantissa) < 10
    assert "nan" not in table and "inf " not in table


def test_format_from_log():
    assert cli_theory.format_from_log(math.log(805.31)) == "805.31"
    assert cli_theory.format_from_log(1000 * math.log(10)) == "1e+1000"
    assert cli_theory.format_from_log(-1000 * math.log(10) + math.log(2.5)) == "2.5e-1000"
    assert cli_theory.format_from_log(-math.inf) == "0"


# ---------------------------------------------------------------------------------------------
# supported ranges: every boundary is accepted, one step beyond is one line with exit 2
# ---------------------------------------------------------------------------------------------
NET = ["--width", "4", "--depth", "2", "--sigma-w2", "2"]


def _flags(base, **changes):
    argv = list(base)
    for flag, value in changes.items():
        flag = "--" + flag.replace("_", "-")
        values = value if isinstance(value, list) else [value]
        if flag in argv:
            i = argv.index(flag)
            argv[i + 1:i + 2] = values
        else:
            argv += [flag] + values
    return argv


@pytest.mark.parametrize("argv", [
    _flags(NET, width="1"), _flags(NET, width="1000000", depth="1"),
    _flags(NET, depth="1"), _flags(NET, input_dim="1"), _flags(NET, input_dim="1000000"),
    _flags(NET, sigma_w2="1e-6"), _flags(NET, sigma_w2="1e6"),
    _flags(NET, sigma_b2="1e-6", draws="200"), _flags(NET, sigma_b2="1e6", draws="200"),
    _flags(NET, inner_products=["-1", "1"], draws="200"), _flags(NET, inner_products=[str(c / 20) for c in range(20)],
                                                               draws="20"),
    _flags(NET, input_dim="1", inner_products=["-1"], draws="200"),
    _flags(NET, draws="2", inner_products=["0.5"]), _flags(NET, networks="2"), _flags(NET, networks="20", alpha="0.99"),
    _flags(NET, seed=str(2**63 - 1), inner_products=["0.5"], draws="10"),
], ids=lambda argv: " ".join(argv[6:]))
def test_the_boundaries_are_accepted(argv, capsys):
    status, out, err = _run(argv + ["--json"], capsys)
    assert status == 0 and err == "", err
    assert "NaN" not in out and "Infinity" not in out


@pytest.mark.parametrize("argv, message", [
    (_flags(NET, width="0"), "--width: expected an integer in [1, 1000000], got 0"),
    (_flags(NET, width="1000001"), "--width: expected an integer in [1, 1000000], got 1000001"),
    (_flags(NET, depth="0"), "--depth: expected an integer in [1, 100000], got 0"),
    (_flags(NET, depth="100001"), "--depth: expected an integer in [1, 100000], got 100001"),
    (_flags(NET, input_dim="0"), "--input-dim: expected an integer in [1, 1000000], got 0"),
    (_flags(NET, input_dim="1000001"), "--input-dim: expected an integer in [1, 1000000], got 1000001"),
    (_flags(NET, sigma_w2="1e-300"), "--sigma-w2: expected a number in [1e-06, 1e+06], got 1e-300"),
    (_flags(NET, sigma_w2="9.99e-7"), "--sigma-w2: expected a number in [1e-06, 1e+06], got 9.99e-07"),
    (_flags(NET, sigma_w2="1.000001e6"), "--sigma-w2: expected a number in [1e-06, 1e+06], got 1000001.0"),
    (_flags(NET, sigma_w2="1e308"), "--sigma-w2: expected a number in [1e-06, 1e+06], got 1e+308"),
    (_flags(NET, sigma_w2="nan"), "--sigma-w2: expected a number in [1e-06, 1e+06], got nan"),
    (_flags(NET, sigma_w2="inf"), "--sigma-w2: expected a number in [1e-06, 1e+06], got inf"),
    (_flags(NET, sigma_w2="0"), "--sigma-w2: expected a number in [1e-06, 1e+06], got 0.0"),
    (_flags(NET, sigma_b2="1e-7"), "--sigma-b2: expected 0 or a number in [1e-06, 1e+06], got 1e-07"),
    (_flags(NET, sigma_b2="2e6"), "--sigma-b2: expected 0 or a number in [1e-06, 1e+06], got 2000000.0"),
    (_flags(NET, sigma_b2="-1"), "--sigma-b2: expected 0 or a number in [1e-06, 1e+06], got -1.0"),
    (_flags(NET + ["--no-bias"], sigma_b2="0.1"), "--sigma-b2: frozen biases (--no-bias) are zero; expected 0, got 0.1"),
    (_flags(NET, activation="gelu"), "--activation: expected one of relu, tanh, erf, linear, got 'gelu'"),
    (_flags(NET, inner_products=["1.0000001"]), "--inner-products: expected a number in [-1, 1], got 1.0000001"),
    (_flags(NET, inner_products=["nan"]), "--inner-products: expected a number in [-1, 1], got nan"),
    (_flags(NET, inner_products=["0"] * 21), "--inner-products: expected at most 20 cosines, got 21"),
    (_flags(NET, input_dim="1", inner_products=["0.5"]),
     "--inner-products: the cosine 0.5 needs two independent inputs, i.e. --input-dim >= 2; "
     "expected -1 or 1 at input dimension 1"),
    (_flags(NET, draws="1"), "--draws: expected an integer in [2, 10000000], got 1"),
    (_flags(NET, draws="10000001"), "--draws: expected an integer in [2, 10000000], got 10000001"),
    (_flags(NET, networks="1"), "--networks: expected an integer in [2, 1000000], got 1"),
    (_flags(NET, networks="1000001"), "--networks: expected an integer in [2, 1000000], got 1000001"),
    (_flags(NET, networks="10", alpha="9e-7"), "--alpha: expected a number in [1e-06, 1), got 9e-07"),
    (_flags(NET, networks="10", alpha="1"), "--alpha: expected a number in [1e-06, 1), got 1.0"),
    (_flags(NET, seed="-1"), "--seed: expected an integer in [0, 9223372036854775807], got -1"),
    (_flags(NET, seed=str(2**63)), "--seed: expected an integer in [0, 9223372036854775807], got 9223372036854775808"),
])
def test_out_of_range_values_are_one_line_naming_flag_value_and_range(argv, message, capsys):
    status, out, err = _run(argv, capsys)
    assert status == 2 and out == ""
    assert err == f"ntk-harness theory: error: {message}\n"


@pytest.mark.parametrize("argv, needle", [
    # the Monte Carlo holds 16 draws of every neuron: width x depth <= 250000 when one is needed
    (["--width", "1000", "--depth", "251", "--sigma-w2", "2", "--inner-products", "0.5"],
     "--width: the Monte Carlo of the exact joint law (for --inner-products) holds 16 draws of every neuron at once; "
     "expected width x depth <= 250000, got 1000 x 251 = 251000"),
    (["--width", "20", "--depth", "10", "--sigma-w2", "2", "--inner-products", "0.5", "--draws", "10000000"],
     "--draws: expected at most "),
    # ~10 s for 2 draws of each of 7 entries (per layer and chunk ~100 us): more than 60 s
    (["--width", "1", "--depth", "100000", "--sigma-w2", "2", "--activation", "tanh", "--inner-products"]
     + ["-1", "1"] * 3, "--depth: the Monte Carlo of the exact joint law (for activation 'tanh') needs about "),
    (["--width", "20", "--depth", "10", "--sigma-w2", "2", "--networks", "1000000"],
     "--networks: calibrating the acceptance intervals would take about "),
])
def test_work_beyond_the_time_and_memory_limits_is_refused_at_once(argv, needle, capsys):
    status, out, err = _run(argv, capsys)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("ntk-harness theory: error: " + needle), err


def test_default_draws_are_lowered_to_fit_the_time_limit(capsys):
    # width 250, depth 1000: ~2.6 ms a draw; the default is lowered, and the output says so
    values = dict(width=250, depth=1000, activation="relu", draws=None)
    widths = (250,) + (250,) * 1000
    draws, note = cli_theory._monte_carlo_draws(values, [0.5], widths, "for --inner-products")
    assert 2 <= draws < cli_theory.DEFAULT_DRAWS and str(draws) in note and "--draws" in note
    seconds = cli_theory._sampling_seconds(draws, 250, 1000, cli_theory._chunk(widths, 0.5, "relu"))
    assert seconds <= cli_theory.MC_MAX_SECONDS


def test_unwritable_cache_dir_is_one_line(tmp_path, capsys):
    """A path under a regular FILE cannot be a directory, even for root (the tests may run as root)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, out, err = _run(NET + ["--networks", "10", "--ntk-cache-dir", str(blocker / "cache")], capsys)
    assert status == 2 and out == ""
    assert err == (f"ntk-harness theory: error: --ntk-cache-dir: expected a writable directory, got "
                   f"'{blocker / 'cache'}' (Not a directory)\n")


def test_cache_dir_is_used(tmp_path, capsys):
    status, out, _ = _run(NET + ["--networks", "10", "--alpha", "0.05", "--ntk-cache-dir", str(tmp_path), "--json"],
                          capsys)
    assert status == 0 and json.loads(out)["acceptance"]
    assert list(tmp_path.glob("acceptance-*.json"))


def test_help_states_the_ranges_the_checks_use():
    parser = argparse.ArgumentParser(prog="ntk-harness")
    cli_theory.add_parser(parser.add_subparsers(dest="command"))
    text = parser._subparsers._group_actions[0].choices["theory"].format_help()
    assert "supported ranges" in text and cli_theory.RANGES_HELP.splitlines()[0] in text
    assert cli_theory.WIDTH_RANGE == (1, 10**6) and cli_theory.DEPTH_RANGE == (1, 10**5)
    assert cli_theory.SIGMA_RANGE == (1e-6, 1e6) and cli_theory.DRAWS_RANGE == (2, 10**7)
    for fragment in ("[1, 10^6]", "[1, 10^5]", "[1e-6, 1e6]", "[2, 10^7]", "[2, 10^6]", "[1e-6, 1)", "2^63",
                     "at most 20", "250,000"):
        assert fragment in cli_theory.RANGES_HELP
