"""One runner for both front ends: the same case through pytest and ``ntk-harness run`` gives
the same record (timings aside); a resumed sweep reuses what an earlier run finished."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.kinds import KINDS, load_cases
from harness.options import RunOptions
from harness.runner import resume_key, run_case

CASES = textwrap.dedent("""
    [[case]]
    name = "same"
    kind = "dispersion"

    [case.network]
    width = 8
    depth = 3
    sigma_w2 = [1.0, 3.0]

    [case.inputs]
    inner_products = [1.0, 0.5]

    [case.sampling]
    networks = 60
    seed = 4

    [case.expect]
    statistics = ["mean", "log_mean"]
    power = false

    [[case]]
    name = "agree"
    kind = "agreement"

    [case.network]
    sigma_w2 = 2.0
    depth = 2
    width = 5
    output_dim = 2

    [case.agreement]
    networks = 2
    inputs = 3
    other_inputs = 2
    call_shapes = ["cross", "self"]
""")

TIMING = ("timing", "wall_seconds", "environment")


def _comparable(record: dict) -> dict:
    out = {k: v for k, v in record.items() if k not in TIMING}
    result = json.loads(json.dumps(out.get("result")))
    for implementation in (result or {}).get("implementations", []):
        implementation.pop("implementation_seconds", None)
        implementation.pop("reference_seconds", None)
    if result and result.get("differential"):
        result["differential"].pop("seconds", None)
    out["result"] = result
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    directory = tmp_path_factory.mktemp("same")
    (directory / "cases.toml").write_text(CASES)
    (directory / "pytest.ini").write_text("[pytest]\n")
    return directory


def test_pytest_and_the_command_line_give_identical_records(folder):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    via_pytest = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "cases.toml",
                                 "--ntk-report-dir", "r"], cwd=folder, env=env, capture_output=True, text=True,
                                timeout=600)
    assert via_pytest.returncode == 0, via_pytest.stdout + via_pytest.stderr
    via_cli = subprocess.run([sys.executable, "-m", "harness.cli", "run", "cases.toml", "--json"], cwd=folder,
                             env=env, capture_output=True, text=True, timeout=600)
    assert via_cli.returncode == 0, via_cli.stderr
    from_pytest = json.loads((folder / "r" / "latest" / "results.json").read_text())["records"]
    from_cli = json.loads(via_cli.stdout)["records"]
    assert [r["nodeid"] for r in from_pytest] == [r["nodeid"] for r in from_cli]
    assert len(from_cli) == 3
    for a, b in zip(from_pytest, from_cli):
        assert _comparable(a) == _comparable(b), a["case"]


def test_resume_reuses_finished_cases_and_recomputes_changed_ones(folder, tmp_path, monkeypatch):
    cases = load_cases(folder / "cases.toml")
    options = RunOptions(cache_dir=tmp_path, resume=True)
    first = run_case(cases[0], options)
    assert first.outcome == "passed"
    stored = list((tmp_path / "records").glob("*.json"))
    assert len(stored) == 1 and stored[0].stem == resume_key(cases[0], options)

    def must_not_run(case, options, resolution=None):
        raise AssertionError("a finished case was recomputed")

    monkeypatch.setattr(KINDS["dispersion"], "run", must_not_run)
    again = run_case(cases[0], options)
    assert again.to_record() == first.to_record()
    with pytest.raises(AssertionError, match="recomputed"):      # another case: not stored, computed
        run_case(cases[1], options)
    # other options (a different dtype) are another key
    assert resume_key(cases[0], RunOptions(cache_dir=tmp_path, dtype="float32")) != resume_key(cases[0], options)


def test_without_resume_nothing_is_stored(folder, tmp_path):
    case = load_cases(folder / "cases.toml")[2]
    record = run_case(case, RunOptions(cache_dir=tmp_path))
    assert record.outcome == "passed" and not (tmp_path / "records").exists()


def test_resume_key_changes_when_the_users_implementation_changes(folder, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "user_impl.py").write_text(
        "from harness.ntk.jacobian import jacobian_ntk\ndef ntk(f, params, x1, x2):\n    return jacobian_ntk(f, params, x1, x2)\n")
    case = load_cases(folder / "cases.toml")[0]
    options = RunOptions(cache_dir=tmp_path, resume=True, implementation_spec="user_impl:ntk")
    before = resume_key(case, options)
    (tmp_path / "user_impl.py").write_text(
        "from harness.ntk.jacobian import jacobian_ntk\ndef ntk(f, params, x1, x2):\n    return 2 * jacobian_ntk(f, params, x1, x2)\n")
    assert resume_key(case, options) != before


SLEEPY = textwrap.dedent("""
    [[case]]
    name = "sleepy"
    kind = "agreement"
    implementation = "sleepy_ntk:sleepy"
    timeout = {timeout}

    [case.network]
    sigma_w2 = 2.0
    depth = 1
    width = 3

    [case.agreement]
    networks = 2
    inputs = 2
    other_inputs = 1
    call_shapes = ["cross"]
""")


@pytest.mark.parametrize("case_seconds, option_seconds, limit", [
    (0.5, None, 0.5),      # the case's own limit when --ntk-timeout is not given
    (3600, 0.5, 0.5),      # --ntk-timeout wins over the case's
])
def test_a_case_has_its_own_time_limit_unless_the_option_is_given(tmp_path, monkeypatch, case_seconds,
                                                                  option_seconds, limit):
    (tmp_path / "sleepy_ntk.py").write_text("import time\n\ndef sleepy(f, params, x1, x2):\n    time.sleep(30)\n")
    (tmp_path / "sleepy.toml").write_text(SLEEPY.format(timeout=case_seconds))
    monkeypatch.syspath_prepend(str(tmp_path))
    (case,) = load_cases(tmp_path / "sleepy.toml")
    assert case.timeout == case_seconds
    record = run_case(case, RunOptions(cache_dir=tmp_path / "cache", timeout_seconds=option_seconds))
    assert record.outcome == "error" and record.error == f"timed out after {limit:g} s in sleepy_ntk:sleepy"


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "true", '"1h"'])
def test_a_case_timeout_that_is_not_a_positive_number_is_refused_with_its_key(tmp_path, value):
    from harness.cases.schema import CaseError

    (tmp_path / "bad.toml").write_text(SLEEPY.format(timeout=value))
    with pytest.raises(CaseError) as info:
        load_cases(tmp_path / "bad.toml")
    assert info.value.key == "timeout" and "expected a number of seconds > 0" in str(info.value)
