"""Shared runs for the report tests: small seeded dispersion cases, run once per module."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CASES = textwrap.dedent("""
    [[case]]
    name = "small"
    kind = "dispersion"

    [case.network]
    width = 8
    depth = 3
    sigma_w2 = [1.0, 2.0, 3.0]

    [case.inputs]
    kind = "correlated"
    inner_products = [1.0, 0.5, 0.0]

    [case.sampling]
    networks = 50
    seed = 7

    [case.expect]
    theories = ["exact"]
    statistics = ["mean", "dispersion"]
    goodness_of_fit = false
    false_alarm_rate = 1e-3
""")


def run_pytest(workdir: Path, *args: str, cache: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m pytest`` in ``workdir`` with the harness's plugins, a shared interval cache."""
    env = dict(os.environ)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--ntk-cache-dir", str(cache), *args]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def case_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cases")
    (directory / "small.toml").write_text(CASES)
    # rootdir marker, so node ids are relative to this folder in every run
    (directory / "pytest.ini").write_text("[pytest]\n")
    return directory


@pytest.fixture(scope="session")
def interval_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("interval-cache")


@pytest.fixture(scope="session")
def serial_run(case_dir, interval_cache):
    """One serial run with a report and a tiny in-session pytest-benchmark test."""
    (case_dir / "test_tiny_bench.py").write_text(
        "def test_sum(benchmark):\n    benchmark(sum, range(100))\n")
    result = run_pytest(case_dir, "small.toml", "test_tiny_bench.py", "--benchmark-max-time=0.01",
                        "--benchmark-min-rounds=3", "--ntk-report-dir", "serial", cache=interval_cache)
    return result, latest_run(case_dir / "serial")


def latest_run(directory: Path) -> Path:
    """The run directory ``directory/latest`` points to (the last complete run)."""
    return (directory / "latest").resolve()


def only_run(directory: Path) -> Path:
    """The one run directory under ``directory/runs`` (complete or not)."""
    (run,) = sorted((directory / "runs").iterdir())
    return run
