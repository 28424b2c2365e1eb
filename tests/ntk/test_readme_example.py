"""The documentation's worked example of a user implementation really passes the agreement cases."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from harness.kinds.agreement import KIND
from harness.options import RunOptions

ROOT = Path(__file__).resolve().parents[2]


def _example_source() -> str:
    for path in (ROOT / "docs" / "implementations.md",):
        if path.exists():
            for block in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
                if "def my_ntk(" in block:
                    return block
    pytest.fail("no ```python block defining my_ntk in docs/implementations.md")


def test_worked_example_passes_the_quick_agreement_cases(tmp_path, monkeypatch):
    from tests.ntk.test_agreement_kind import QUICK, _messages

    (tmp_path / "my_ntk.py").write_text(_example_source())
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        for case in QUICK:
            outcome = KIND.run(case, RunOptions(implementation_spec="my_ntk:my_ntk", device="cpu"))
            assert outcome.checks_passed, f"{KIND.case_id(case)}: {_messages(outcome)}"
            assert "vmap" in {c.name for c in outcome.checks}
    finally:
        sys.modules.pop("my_ntk", None)
