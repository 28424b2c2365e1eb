"""Every bad input gets a one-line answer: the exact message and exit status, row by row.

The table (pytest: usage errors exit 4, an invalid case file is one failing item; ntk-harness:
exit 2 for bad input, the message ``ntk-harness <command>: error: ...``):

=====================================================  ===========================================
bad input                                              answer
=====================================================  ===========================================
``sigma_w2 = inf`` in a case                           key 'network.sigma_w2': expected a finite
                                                       number, got inf
width 100000, depth 100 in a case                      key 'network.width': one network's NTK
                                                       needs about 29.1 TiB ... (collection, nothing
                                                       allocated)
``--ntk-device banana``                                --ntk-device: expected auto, cpu, cuda,
                                                       cuda:N or mps, got 'banana'
an unwritable ``--ntk-cache-dir``                      --ntk-cache-dir: ... is not a writable
                                                       directory (Not a directory), before any case
``ntk-harness theory --sigma-w2 1e-300`` / ``1e308``   --sigma-w2: expected a number in
                                                       [1e-06, 1e+06], got ...
``ntk-harness theory --width 1 --depth 100000``        exit 0: moments beyond float64 printed from
                                                       their logs
``--ntk-memory-budget 0``                              --ntk-memory-budget: expected a number of
                                                       MiB > 0, got 0
``ntk-harness run DIR``, one bad file among good ones  the bad file's line, the good cases run, a
                                                       summary line, exit 2
``ntk-harness --frobnicate``                           unrecognized argument '--frobnicate'
``--ntk-implementation`` that cannot be loaded         --ntk-implementation: NTK implementation ...:
                                                       cannot import / has no attribute / expected
                                                       a callable fn(f, params, x1, x2)
=====================================================  ===========================================

ntk-harness rows run in subprocesses (the console entry point as installed: ``python -m
harness.cli``); pytest rows in subprocesses too (the plugin loads through its entry point).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cases.schema import CaseError
from harness.kinds import load_cases

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[[case]]
name = "good"
kind = "agreement"
implementation = "jacobian"

[case.network]
width = 3
depth = 1
sigma_w2 = 2.0

[case.agreement]
networks = 2
inputs = 2
other_inputs = 1
call_shapes = ["cross"]
"""

DISPERSION = """
[[case]]
name = "{name}"
kind = "dispersion"

[case.network]
width = {width}
depth = {depth}
sigma_w2 = {sigma_w2}

[case.sampling]
networks = 4
"""


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def ntk_harness(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def pytest_run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def one_line(result) -> str:
    """The only line the command wrote (stdout and stderr together), with no traceback."""
    lines = _lines(result.stdout + result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    return tmp_path


# ----------------------------------------------------------------------------- case files
def test_infinite_sigma_w2_names_file_case_and_key(folder):
    path = folder / "inf.toml"
    path.write_text(DISPERSION.format(name="bad", width=4, depth=2, sigma_w2="inf"))
    with pytest.raises(CaseError) as info:
        load_cases(path)
    assert str(info.value) == f"{path}: case 'bad': key 'network.sigma_w2': expected a finite number, got inf"
    result = ntk_harness("run", "inf.toml", cwd=folder)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == ("ntk-harness run: error: inf.toml: case 'bad': key 'network.sigma_w2': "
                             "expected a finite number, got inf\n")
    assert result.stdout == "ntk-harness run: no cases; 1 invalid case file(s): inf.toml\n"


@pytest.mark.parametrize("kind_table, key", [
    (DISPERSION.format(name="big", width=100000, depth=100, sigma_w2=2.0), "network.width"),
    (GOOD.replace("width = 3", "width = 100000").replace("depth = 1", "depth = 100"), "network.width"),
    (textwrap.dedent("""
        [[case]]
        name = "big"
        kind = "training"
        [case.network]
        width = 100000
        depth = 100
        sigma_w2 = 2.0
        input_dim = 64
        output_dim = 10
        [case.training]
        learning_rate = 0.1
        steps = 1
        """), "network.width"),
    (DISPERSION.format(name="deep", width=2, depth=10**12, sigma_w2=2.0), "network.depth"),
], ids=["dispersion", "agreement", "training", "depth-1e12"])
def test_a_network_too_big_for_any_machine_is_refused_at_collection(tmp_path, kind_table, key):
    """width 100000, depth 100: ~10^12 parameters; refused from the architecture alone (no
    allocation: this test would otherwise need terabytes), naming the key, the estimate and
    the fixed 64 GiB ceiling (the run-time --ntk-memory-budget only sizes chunks)."""
    path = tmp_path / "big.toml"
    path.write_text(kind_table)
    with pytest.raises(CaseError) as info:
        load_cases(path)
    message = str(info.value)
    assert info.value.key == key and "\n" not in message
    if key == "network.depth":
        assert message.endswith("expected at most 100000 hidden layers, got 1000000000000")
    else:
        assert "one network's NTK needs about" in message and " (width 100000, depth 100: " in message
        assert message.endswith("more than the collection-time ceiling of 64 GiB for one network; shrink the network")


TRAINING = """
[[case]]
name = "t"
kind = "training"
[case.network]
width = 4
depth = 2
sigma_w2 = 2.0
input_dim = 64
output_dim = 10
[case.training]
learning_rate = 0.1
steps = 2
"""


@pytest.mark.parametrize("text, key, reason", [
    (DISPERSION.format(name="d", width=4, depth=2, sigma_w2=2.0).replace("networks = 4", 'networks = 4\ndevice = "exact"'),
     "sampling.device", "expected auto, cpu, cuda, cuda:N or mps, got 'exact'"),
    (GOOD.replace("networks = 2", 'networks = 2\ndevice = "gpu"'), "agreement.device",
     "expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (TRAINING.replace("steps = 2", 'steps = 2\ndevice = "cuda:x"'), "training.device",
     "expected auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
    # the calibration draws ~14 / alpha replicate data sets: 1e-300 never finished (a time-out)
    (DISPERSION.format(name="d", width=4, depth=2, sigma_w2=2.0) + "[case.expect]\nfalse_alarm_rate = 1e-300\n",
     "expect.false_alarm_rate", "expected a value >= 1e-06 (the calibrated intervals draw about 14 / alpha "
                                "replicate data sets per check), got 1e-300"),
    # depth = round(lambda * width) overflowed (OverflowError) at lambda = 1e308
    (TRAINING + "[case.scaling]\nwidth_values = [4, 8]\ndepth_to_width = 1e308\n", "scaling.depth_to_width",
     "expected depth_to_width x width <= 100000 hidden layers, got 1e+308 x 4"),
], ids=["sampling-device", "agreement-device", "training-device", "false-alarm-rate", "depth-to-width"])
def test_values_that_cannot_run_are_refused_at_collection(tmp_path, text, key, reason):
    path = tmp_path / "case.toml"
    path.write_text(text)
    with pytest.raises(CaseError) as info:
        load_cases(path)
    assert info.value.key == key and info.value.reason == reason


def test_the_size_message_of_width_100000_depth_100(folder):
    (folder / "big.toml").write_text(DISPERSION.format(name="big", width=100000, depth=100, sigma_w2=2.0))
    result = ntk_harness("run", "big.toml", cwd=folder)
    assert result.returncode == 2
    assert result.stderr == (
        "ntk-harness run: error: big.toml: case 'big': key 'network.width': one network's NTK needs about 29.1 TiB "
        "(width 100000, depth 100: 1000010100001 parameters, 1 inputs x 1 outputs, float64), more than the "
        "collection-time ceiling of 64 GiB for one network; shrink the network\n")


def test_run_continues_past_one_bad_file_and_exits_2(folder):
    (folder / "also_good.toml").write_text(GOOD.replace('"good"', '"also-good"'))
    (folder / "bad.toml").write_text(GOOD.replace("width = 3", "width = 0"))
    result = ntk_harness("run", ".", cwd=folder)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == ("ntk-harness run: error: bad.toml: case 'good': key 'network.width': "
                             "expected a value >= 1, got 0\n")
    assert "case also-good[" in result.stdout and "case good[" in result.stdout   # both good files ran
    assert _lines(result.stdout)[-1] == "ntk-harness run: 2 passed; 1 invalid case file(s): bad.toml"


# ----------------------------------------------------------------------------- run options
@pytest.mark.parametrize("option, message", [
    (["--ntk-device", "banana"], "--ntk-device: expected auto, cpu, cuda, cuda:N or mps, got 'banana'"),
    (["--ntk-memory-budget", "0"], "--ntk-memory-budget: expected a number of MiB > 0, got 0"),
    (["--ntk-memory-budget", "abc"], "--ntk-memory-budget: expected a number of MiB > 0, got 'abc'"),
    (["--ntk-timeout", "-1"], "--ntk-timeout: expected a number of seconds from 0 to 1e+09 (0: no limit), got -1"),
    (["--ntk-dtype", "float16"], "--ntk-dtype: expected float64 or float32, got 'float16'"),
    (["--ntk-implementation", "nosuchmodule:fn"],
     "--ntk-implementation: NTK implementation 'nosuchmodule:fn': cannot import module 'nosuchmodule': "
     "no such module on the import path or {folder}"),
    (["--ntk-implementation", "json:nosuchfn"], "--ntk-implementation: NTK implementation 'json:nosuchfn': module 'json' has no "
                                      "attribute 'nosuchfn'"),
    (["--ntk-implementation", "wrong_signature:ntk"],
     "--ntk-implementation: NTK implementation 'wrong_signature:ntk': expected a callable fn(f, params, x1, x2), "
     "got signature (f, params)"),
], ids=["device", "budget-0", "budget-text", "timeout", "dtype", "impl-module", "impl-function", "impl-signature"])
def test_a_bad_run_option_is_one_line_before_any_case(folder, option, message):
    (folder / "wrong_signature.py").write_text("def ntk(f, params):\n    return None\n")
    message = message.format(folder=folder.resolve())
    result = pytest_run("good.toml", *option, cwd=folder)
    assert result.returncode == 4   # pytest's usage error
    assert one_line(result) == f"ERROR: {message}"
    result = ntk_harness("run", "good.toml", *option, cwd=folder)
    assert result.returncode == 2
    assert one_line(result) == f"ntk-harness run: error: {message}"


def test_an_unwritable_cache_dir_is_one_line_before_any_case(folder):
    """The tests may run as root, who can write into any directory whatever its mode; a path
    under a regular FILE cannot become a directory for anyone (mkdir fails with ENOTDIR)."""
    blocker = folder / "a-file"
    blocker.write_text("")
    cache = blocker / "cache"
    result = pytest_run("good.toml", "--ntk-cache-dir", cache, cwd=folder)
    assert result.returncode == 4
    assert one_line(result) == f"ERROR: --ntk-cache-dir: {cache} is not a writable directory (Not a directory)"
    result = ntk_harness("run", "good.toml", "--ntk-cache-dir", cache, cwd=folder)
    assert result.returncode == 2
    assert one_line(result) == (f"ntk-harness run: error: --ntk-cache-dir: {cache} is not a writable directory "
                                "(Not a directory)")


def test_an_unknown_flag_is_one_line():
    result = ntk_harness("--frobnicate", cwd=ROOT)
    assert result.returncode == 2
    assert one_line(result) == ("ntk-harness: error: unrecognized argument '--frobnicate'; options go after the "
                                "command: ntk-harness {theory,measure,run,report} [OPTIONS] (see ntk-harness --help)")
    result = ntk_harness("run", "x.toml", "--frobnicate", cwd=ROOT)
    assert result.returncode == 2
    assert one_line(result) == "ntk-harness: error: unrecognized arguments: --frobnicate (see ntk-harness --help)"


# ----------------------------------------------------------------------------- ntk-harness theory
@pytest.mark.parametrize("args, message", [
    (["--width", "20", "--depth", "10", "--sigma-w2", "1e-300"],
     "--sigma-w2: expected a number in [1e-06, 1e+06], got 1e-300"),
    (["--width", "20", "--depth", "10", "--sigma-w2", "1e308"],
     "--sigma-w2: expected a number in [1e-06, 1e+06], got 1e+308"),
    (["--width", "1", "--depth", "100001", "--sigma-w2", "2"], "--depth: expected an integer in [1, 100000], got 100001"),
    (["--width", "x", "--depth", "2", "--sigma-w2", "2"],
     "argument --width: invalid int value: 'x' (see ntk-harness theory --help)"),
])
def test_theory_out_of_range_is_one_line(args, message):
    result = ntk_harness("theory", *args, cwd=ROOT)
    assert result.returncode == 2
    assert one_line(result) == f"ntk-harness theory: error: {message}"


def test_theory_at_width_1_depth_100000_prints_moments_from_their_logs():
    result = ntk_harness("theory", "--width", "1", "--depth", "100000", "--sigma-w2", "2", cwd=ROOT)
    assert result.returncode == 0 and result.stderr == ""
    values = {name: value.strip() for name, value in (line.split("  ", 1) for line in result.stdout.splitlines()[2:])}
    assert values["exact E[Theta^2]"].startswith("4.4457") and values["exact E[Theta^2]"].endswith("e+77824")
    assert not {"nan", "inf", "-inf"} & set(values.values())


# ----------------------------------------------------------------------------- integers beyond floats
@pytest.mark.parametrize("value", ["9" * 5000, "1" + "0" * 400], ids=["5000-digit-integer", "int-1e400-as-float"])
def test_integers_beyond_the_float_range_are_a_case_error(tmp_path, value):
    """tomllib refuses an integer of more than 4300 digits with a plain ValueError, and an
    integer beyond the float range cannot become a float: both are one-line case errors."""
    path = tmp_path / "huge.toml"
    path.write_text(DISPERSION.format(name="huge", width=4, depth=2, sigma_w2=value))
    with pytest.raises(CaseError) as info:
        load_cases(path)
    assert "huge.toml" in str(info.value) and "\n" not in str(info.value)
