"""Every command the README shows in a ``console`` block runs as written and prints what the
README says it prints.

The README's first screen (install, ``pytest cases -m quick``, ``pytest tests``) is what
``.ci/run`` runs on a fresh clone; the ``console`` blocks below it are run here, from the
repository root, with a bare ``pytest`` and the ``ntk-harness`` console script, exactly as
a user types them. Deterministic outputs (``ntk-harness theory``) must match line for line;
for pytest runs the summary counts and the verdict lines shown must appear.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def console_commands() -> list[tuple[str, list[str]]]:
    """(command, the lines the README shows after it) of every ``$`` line in console blocks."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        lines = block.rstrip("\n").splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                shown = []
                for later in lines[i + 1:]:
                    if later.startswith("$ "):
                        break
                    shown.append(later)
                found.append((line[2:], shown))
    return found


COMMANDS = console_commands()


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 3


@pytest.mark.parametrize("command, shown", COMMANDS, ids=[c[:60] for c, _ in COMMANDS])
def test_a_readme_command_runs_as_written(command, shown, tmp_path):
    argv = shlex.split(command)
    executable = shutil.which(argv[0], path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    assert executable, f"{argv[0]} is not installed next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env["NTK_HARNESS_PROGRESS"] = "0"
    result = subprocess.run([executable, *argv[1:], *(["-p", "no:cacheprovider"] if argv[0] == "pytest" else [])],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout
    if argv[0] == "ntk-harness":
        assert result.returncode == 0, result.stderr
        assert output.rstrip("\n").splitlines() == shown, output
        return
    expects_failure = "tests.ntk.broken" in command
    assert result.returncode == (1 if expects_failure else 0), output[-3000:] + result.stderr[-2000:]
    summary = next((line for line in shown if re.search(r"\d+ (passed|failed)", line)), None)
    if summary is not None:
        counts = re.findall(r"\d+ (?:passed|failed|deselected)", summary)
        assert all(count in output for count in counts), (counts, output[-2000:])
    if expects_failure:
        # the README's abridged table of the failure that follows this command
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        table = text.split(command, 1)[1].split("```\n", 2)[2].split("```", 1)[0]
        head = table.strip().splitlines()[0]
        assert head in output, (head, output[-3000:])
        for line in table.splitlines():
            if line.startswith("FAIL  "):
                name = line[6:].split("  ")[0].replace(" (...)", "").rstrip(".")
                assert f"FAIL  {name}" in output, (name, output[-4000:])
        _same_numbers(table, output)


NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")


def _same_numbers(table: str, output: str) -> None:
    """Every number of every line of the README's table appears in the line of the output that
    starts the same way (its label: the text before the first number), times excepted."""
    printed = output.splitlines()
    for line in table.strip().splitlines():
        numbers = NUMBER.findall(line.replace("(...)", ""))
        if not numbers or re.search(r"\d+(\.\d+)?s\b|seconds", line):
            continue
        label = line[:NUMBER.search(line).start()].replace("(...)", "").strip()
        candidates = [p for p in printed if p.strip().startswith(label[:40])] if label else []
        assert candidates, f"no printed line starts like the README's {line!r}"
        found = set(NUMBER.findall(" ".join(candidates)))
        missing = [n for n in numbers if n not in found]
        assert not missing, f"the README shows {missing} in {line!r}; the command prints {candidates}"
