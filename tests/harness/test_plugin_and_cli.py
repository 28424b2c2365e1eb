"""`pytest cases` and `ntk-harness` end to end, in subprocesses, on small case files."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CASE = """
[[case]]
name = "tiny"
kind = "dispersion"
markers = {markers}

[case.network]
width = 8
depth = 3
sigma_w2 = [1.0, 2.5]

[case.sampling]
networks = 300
seed = 5

[case.expect]
theories = ["exact"]
"""


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


def pytest_run(cwd, *args):
    # -p ntk_harness-style loading is automatic through the pytest11 entry point
    return run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd)


@pytest.fixture
def case_dir(tmp_path):
    folder = tmp_path / "mycases"
    folder.mkdir()
    (folder / "good.toml").write_text(CASE.format(markers='["quick"]'))
    (folder / "paper.toml").write_text(CASE.format(markers='["paper"]').replace('"tiny"', '"big"'))
    return folder


def test_a_user_case_folder_runs_and_paper_cases_only_when_asked(case_dir):
    result = pytest_run(case_dir.parent, "mycases", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "good.toml::tiny[ordered-w8-L3-s1] PASSED" in result.stdout
    assert "good.toml::tiny[chaotic-w8-L3-s2.5] PASSED" in result.stdout
    assert "2 passed, 2 deselected" in result.stdout
    result = pytest_run(case_dir.parent, "mycases", "-m", "paper", "-q")
    assert "2 passed, 2 deselected" in result.stdout, result.stdout


def test_an_invalid_file_is_reported_and_the_other_files_still_run(case_dir):
    (case_dir / "bad.toml").write_text(CASE.format(markers="[]").replace("width = 8", "width = 0"))
    result = pytest_run(case_dir.parent, "mycases", "-q")
    assert result.returncode != 0
    assert "bad.toml: case 'tiny': key 'network.width': expected a value >= 1, got 0" in result.stdout
    # one failing item named after the file; no session-wide continue-on-collection-errors
    assert "2 passed" in result.stdout and "1 failed" in result.stdout
    assert "FAILED mycases/bad.toml::bad.toml" in result.stdout


def test_a_wrong_ntk_fails_with_the_verdict_table(case_dir):
    """A kernel scaled by 1.5 moves the mean far outside its calibrated interval (the
    interval is exact at level alpha/5; at S = 300 a 50% shift is ~10 standard errors)."""
    (case_dir / "wrong.py").write_text(textwrap.dedent("""
        from harness.ntk.jacobian import jacobian_ntk
        def scaled(f, params, x1, x2):
            return 1.5 * jacobian_ntk(f, params, x1, x2)
        scaled.vmappable = True
    """))
    result = pytest_run(case_dir, "good.toml", "-q", "--ntk-implementation", "wrong:scaled")
    assert result.returncode == 1
    out = result.stdout
    assert "2 failed" in out
    assert "FAIL  mean in calibrated interval (exact law)" in out
    for word in ("phase", "depth_to_width", "networks", "implementation", "wrong:scaled", "target", "accepted"):
        assert word in out


def test_the_deprecated_spelling_ntk_impl_still_works_and_says_so(case_dir):
    """--ntk-impl is --ntk-implementation for one release, with a deprecation warning in both front ends."""
    (case_dir / "wrong.py").write_text("from harness.ntk.jacobian import jacobian_ntk\n"
                                       "def scaled(f, params, x1, x2):\n    return 1.5 * jacobian_ntk(f, params, x1, x2)\n")
    result = pytest_run(case_dir, "good.toml", "-q", "--ntk-impl", "wrong:scaled")
    assert result.returncode == 1 and "2 failed" in result.stdout
    assert "--ntk-impl is deprecated" in result.stdout and "use --ntk-implementation" in result.stdout
    cli = run([sys.executable, "-m", "harness.cli", "run", "good.toml", "--ntk-impl", "wrong:scaled"], case_dir)
    assert cli.returncode == 1 and "--ntk-impl is deprecated" in cli.stderr


def test_a_broken_import_path_is_one_usage_error_at_start(case_dir):
    result = pytest_run(case_dir, "good.toml", "-q", "--ntk-implementation", "nosuchmodule:fn")
    assert result.returncode == 4
    assert "--ntk-implementation: NTK implementation 'nosuchmodule:fn': cannot import module 'nosuchmodule'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_measure_json_has_the_documented_keys(tmp_path):
    result = run([sys.executable, "-m", "harness.cli", "measure", "--width", "8", "--depth", "3", "--sigma-w2", "2.0",
                  "--networks", "200", "--json", "--ntk-cache-dir", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["format"] == "ntk-harness-results" and document["schema_version"] == 2
    (record,) = document["records"]
    assert record["passed"] is True
    assert record["phase"] == "eoc"
    diagonal = record["result"]["entries"][0]
    assert set(diagonal["statistics"]) >= {"mean", "dispersion"}
    assert diagonal["exact_mean"] > 0
    assert set(record["timing"]) == {"ntk_seconds", "reference_seconds", "total_seconds", "training_seconds"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--width", "0", "--depth", "3", "--sigma-w2", "2", "--networks", "10"], "key 'network.width': expected a value >= 1"),
        (["--width", "8", "--depth", "3", "--sigma-w2", "-1", "--networks", "10"], "key 'network.sigma_w2': expected a value > 0"),
        (["--width", "8", "--depth", "3", "--sigma-w2", "2", "--networks", "1"], "key 'sampling.networks': expected a value >= 2"),
    ],
)
def test_measure_bad_input_exits_2_with_the_key(tmp_path, args, message):
    result = run([sys.executable, "-m", "harness.cli", "measure", *args], tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_run_executes_case_files_outside_pytest(case_dir):
    result = run([sys.executable, "-m", "harness.cli", "run", str(case_dir), "--json"], case_dir)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)["records"]
    assert [r["case"] for r in records] == ["tiny[chaotic-w8-L3-s2.5]", "tiny[ordered-w8-L3-s1]"]  # by node id
    assert all(r["passed"] for r in records)


AGREEMENT = """
[[case]]
name = "small"
kind = "agreement"

[case.network]
width = [3, 4]
depth = 2
sigma_w2 = 2.0

[case.agreement]
networks = 2
inputs = 3
other_inputs = 2
call_shapes = ["cross"]
"""


@pytest.mark.parametrize("broken, diagnosis", [
    ("drops_biases", "It equals the reference without every bias."),
    ("returns_nan", "NTK implementation 'tests.ntk.broken:returns_nan' returned NaN."),
])
def test_a_diagnosis_shared_by_several_failed_cases_is_listed_once_at_the_end(tmp_path, broken, diagnosis):
    """Two agreement cases fail for one reason: each failure table carries the diagnosis, and the
    end of the session lists it once with both cases (not once more per case)."""
    import os

    (tmp_path / "agree.toml").write_text(AGREEMENT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "agree.toml", "-q",
                             "--ntk-implementation", f"tests.ntk.broken:{broken}"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env=env)
    out = result.stdout
    assert result.returncode == 1 and "2 failed" in out, out + result.stderr
    tail = out.split("ntk-harness: diagnoses shared by several failed cases", 1)
    assert len(tail) == 2, out
    lines = [line for line in tail[1].splitlines() if " cases: " in line]
    assert len(lines) == 1 and lines[0].startswith(diagnosis), tail[1]
    assert "2 cases: small[L2-w3" in lines[0] and "small[L2-w4" in lines[0], lines[0]


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`ntk-harness theory ... | head -1`: the reader has gone when the command writes (here it
    closes the pipe before anything is written); the command stops quietly (exit 1, Python's
    convention for EPIPE), without a BrokenPipeError traceback or "Exception ignored" at exit."""
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "theory", "--width", "20", "--depth", "10",
                                "--sigma-w2", "3.0", "--networks", "200"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 1, stderr
    assert stderr == "", stderr


# ---------------------------------------------------------------- frictions a new user hit
def test_a_selection_of_nothing_is_an_error_that_lists_the_markers(case_dir):
    result = run([sys.executable, "-m", "harness.cli", "run", "good.toml", "-m", "quik"], case_dir)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "-m 'quik' selects none of the 2 cases" in result.stderr
    assert "quick" in result.stderr and "dispersion" in result.stderr and "paper" in result.stderr


def test_a_case_file_naming_an_unknown_marker_is_refused_naming_it(case_dir):
    (case_dir / "typo.toml").write_text(CASE.format(markers='["quik"]'))
    result = run([sys.executable, "-m", "harness.cli", "run", "typo.toml"], case_dir)
    assert result.returncode == 2
    assert "typo.toml: case 'tiny': key 'markers': unknown marker 'quik'" in result.stderr
    plugin = pytest_run(case_dir, "typo.toml", "-q")
    assert plugin.returncode == 1 and "unknown marker 'quik'" in plugin.stdout
    # a marker registered in the project's pytest configuration is the user's own: accepted
    (case_dir / "pytest.ini").write_text("[pytest]\nmarkers =\n    quik: my own marker\n")
    (case_dir / "typo.toml").write_text(CASE.format(markers='["quik"]').replace("networks = 300", "networks = 20"))
    own = pytest_run(case_dir, "typo.toml", "-q", "--co")
    assert own.returncode == 0 and "2 tests collected" in own.stdout, own.stdout


def test_two_cases_of_one_name_are_refused_naming_both_tables(case_dir):
    (case_dir / "twice.toml").write_text(CASE.format(markers="[]") + CASE.format(markers="[]"))
    result = run([sys.executable, "-m", "harness.cli", "run", "twice.toml"], case_dir)
    assert result.returncode == 2
    assert "twice.toml: case 'tiny': key 'name': two cases have the id 'tiny[" in result.stderr
    assert "[[case]] tables 1 and 2 of the file" in result.stderr


def test_an_implementation_given_by_file_path_loads(case_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "my_ntk.py").write_text("from harness.ntk.jacobian import jacobian_ntk\n"
                                         "def my_ntk(f, params, x1, x2):\n    return jacobian_ntk(f, params, x1, x2)\n"
                                         "my_ntk.vmappable = True\n")
    spec = f"{elsewhere / 'my_ntk.py'}:my_ntk"
    result = run([sys.executable, "-m", "harness.cli", "run", "good.toml", "--ntk-implementation", spec], case_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    missing = run([sys.executable, "-m", "harness.cli", "run", "good.toml", "--ntk-implementation",
                   f"{elsewhere / 'nope.py'}:my_ntk"], case_dir)
    assert missing.returncode == 2 and "no file" in missing.stderr and "nope.py" in missing.stderr
