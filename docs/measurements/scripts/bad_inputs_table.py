"""The bad-input table of the robustness issue: each input, the exit status and what was printed.

Runs every row in a fresh temporary folder, in a subprocess (pytest through its plugin entry
point, ntk-harness through ``python -m harness.cli``), and prints a Markdown table with the
exit status, the number of lines written and the first line (or the summary line for
``ntk-harness run``). ``tests/harness/test_bad_inputs.py`` asserts the same messages.

    python docs/measurements/scripts/bad_inputs_table.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests.harness.test_bad_inputs import DISPERSION, GOOD  # noqa: E402  (the test's own case files)

HANGS = '''
import time


def hangs(f, params, x1, x2):
    time.sleep(1000)
'''


def pytest_cmd(*args):
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]


def cli(*args):
    return [sys.executable, "-m", "harness.cli", *args]


def rows(folder: Path):
    (folder / "good.toml").write_text(GOOD)
    (folder / "inf.toml").write_text(DISPERSION.format(name="bad", width=4, depth=2, sigma_w2="inf"))
    big = folder / "big"
    big.mkdir()
    (big / "big.toml").write_text(DISPERSION.format(name="big", width=100000, depth=100, sigma_w2=2.0))
    mixed = folder / "mixed"
    mixed.mkdir()
    (mixed / "a_good.toml").write_text(GOOD)
    (mixed / "b_bad.toml").write_text(DISPERSION.format(name="bad", width=4, depth=2, sigma_w2="inf"))
    (mixed / "c_good.toml").write_text(GOOD.replace('name = "good"', 'name = "good-too"'))
    # a path below a regular file: unwritable even for root (a read-only folder is not)
    (folder / "a_file").write_text("not a folder")
    (folder / "hangs_impl.py").write_text(HANGS)
    return [
        ("`sigma_w2 = inf` in a case", pytest_cmd("inf.toml")),
        ("width 100000, depth 100", pytest_cmd("big")),
        ("`--ntk-device banana`", pytest_cmd("good.toml", "--ntk-device", "banana")),
        ("unwritable cache directory", pytest_cmd("good.toml", "--ntk-cache-dir", str(folder / "a_file" / "cache"))),
        ("`ntk-harness theory --sigma-w2 1e-300`", cli("theory", "--sigma-w2", "1e-300", "--width", "10", "--depth", "3")),
        ("`ntk-harness theory --width 1 --depth 100000`", cli("theory", "--width", "1", "--depth", "100000", "--sigma-w2", "2")),
        ("`ntk-harness theory --sigma-w2 1e308`", cli("theory", "--sigma-w2", "1e308", "--width", "10", "--depth", "3")),
        ("`--ntk-memory-budget 0`", pytest_cmd("good.toml", "--ntk-memory-budget", "0")),
        ("`ntk-harness run DIR` with one bad file", cli("run", "mixed")),
        ("`ntk-harness --frobnicate`", cli("--frobnicate")),
        ("`--ntk-implementation` with no such module", pytest_cmd("good.toml", "--ntk-implementation", "no_such_module:fn")),
        ("`--ntk-implementation` with no such function", pytest_cmd("good.toml", "--ntk-implementation", "hangs_impl:nothing")),
        ("an implementation that hangs, `--ntk-timeout 5`", pytest_cmd("good.toml", "--ntk-implementation", "hangs_impl:hangs",
                                                                         "--ntk-timeout", "5")),
    ]


def shown(output: str, command) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return "(nothing)"
    if command[1:3] == ["-m", "harness.cli"] and command[3] == "run":
        return " / ".join(lines[-2:])
    if command[1:3] == ["-m", "pytest"] and len(lines) > 1:
        # a failing item: its message (not pytest's progress line), and the summary line
        picked = [line for line in lines if line.startswith(("invalid case file", "timed out"))
                  or (" timed out after " in line and not line.startswith("FAILED"))]
        return (picked[0] if picked else lines[0]) + " / " + lines[-1]
    return lines[0]


def main() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    print("| input | exit | lines | first line (or summary) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, command in rows(folder):
            done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env, timeout=600)
            output = done.stdout + done.stderr
            traceback = " (traceback!)" if "Traceback" in output else ""
            lines = len([line for line in output.splitlines() if line.strip()])
            text = shown(output, command).replace("|", "\\|")
            if len(text) > 260:
                text = text[:257] + "..."
            print(f"| {label} | {done.returncode} | {lines}{traceback} | {text} |", flush=True)


if __name__ == "__main__":
    main()
