"""docs/kinds.md stays true: its worked example (three files and a registry line) is a working kind.

The code blocks of the page are written into a temporary package ``my_kinds``, the page's
registry line is added to the kinds' registry, and the page's case file runs end to end: in
pytest's own runner (two items, -m symmetry), through results.json, the JSON Schema, and the
report table.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "kinds.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(python|toml)\n(.*?)```", PAGE, flags=re.S)


def _files() -> dict[str, str]:
    return {code.splitlines()[0].lstrip("# ").strip(): code for language, code in BLOCKS
            if language == "python" and code.startswith("# my_kinds/")}


def _registry_line() -> str:
    (line,) = [code.strip() for language, code in BLOCKS if language == "python" and code.startswith("Registration(")]
    return line.rstrip(",")


@pytest.fixture
def example(tmp_path):
    files = _files()
    assert sorted(files) == ["my_kinds/symmetry/__init__.py", "my_kinds/symmetry/result.py",
                             "my_kinds/symmetry/run.py"], "the page shows one folder of three files"
    for name, code in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    (tmp_path / "my_kinds" / "__init__.py").write_text("")
    (case_text,) = [code for language, code in BLOCKS if language == "toml"]
    (tmp_path / "my_cases.toml").write_text(case_text)
    # the registry line, added by a conftest as a project would add it to KIND_TABLE
    (tmp_path / "conftest.py").write_text(
        "from harness.kinds import KINDS, Registration\n"
        f"KINDS.table.append({_registry_line()})\n")
    return tmp_path


def test_the_worked_example_kind_runs_under_pytest_and_selects_by_its_marker(example):
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "my_cases.toml", "-v",
               "--ntk-report-dir", "report", "-m", "symmetry"]
    result = subprocess.run(command, cwd=example, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "PYTHONPATH": str(example)})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "my_cases.toml::transpose[eoc-w8-L2-s2] PASSED" in out and "transpose[eoc-w8-L4-s2] PASSED" in out
    document = json.loads((example / "report" / "latest" / "results.json").read_text())
    (first, second) = document["records"]
    assert first["kind"] == "symmetry" and first["result"]["asymmetry"] <= 1e-10
    assert first["implementation_spec"] == "jacobian" and first["seed"] == 0 and first["dtype"] == "float64"
    report = (example / "report" / "latest" / "report.md").read_text()
    assert re.search(r"## symmetry cases.*\| transpose\[eoc-w8-L2-s2\] +\| jacobian +\| [0-9.e-]+ +\| pass", report,
                     flags=re.S), report


def test_the_worked_example_kind_reads_back_and_has_a_schema(example, monkeypatch):
    monkeypatch.syspath_prepend(str(example))
    from harness.kinds import KINDS, Registration
    from harness.records import CaseRecord
    from harness.records import schema
    from harness.runner import run_case
    from harness.cases.schema import load_case_file
    from harness.options import RunOptions

    registration = eval(_registry_line(), {"Registration": Registration})
    monkeypatch.setattr(KINDS, "table", KINDS.table + [registration])
    monkeypatch.setattr(KINDS, "_loaded", dict(KINDS._loaded))
    cases = load_case_file(example / "my_cases.toml", KINDS)
    assert [c.id for c in cases] == ["transpose[eoc-w8-L2-s2]", "transpose[eoc-w8-L4-s2]"]
    assert cases[0].sections.symmetry.other_inputs == 2      # typed sections, no string keys
    record = run_case(cases[1], RunOptions(device="cpu", implementation_spec="tests.ntk.broken:scaled"))
    back = CaseRecord.from_record(json.loads(json.dumps(record.to_record())))
    assert type(back.result).__name__ == "SymmetryResult" and back.result.asymmetry == record.result.asymmetry
    assert back.outcome == "passed"      # 1.5 K is wrong, and symmetric: this kind judges symmetry only
    defs = schema.generate()["$defs"]
    assert set(defs["symmetry_result"]["properties"]) == {"inputs", "other_inputs", "asymmetry"}
