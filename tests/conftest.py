"""Every test session uses its own calibration cache (subprocesses inherit it), never the
user's ~/.cache/ntk-harness: results do not depend on what an earlier session left there."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_calibration_cache(tmp_path_factory):
    previous = os.environ.get("NTK_HARNESS_CACHE_DIR")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # xdist workers share one cache folder under the controller's base temp folder
        directory = tmp_path_factory.getbasetemp().parent / "ntk-harness-cache"
    else:
        directory = tmp_path_factory.mktemp("ntk-harness-cache")
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["NTK_HARNESS_CACHE_DIR"] = str(directory)
    yield
    if previous is None:
        os.environ.pop("NTK_HARNESS_CACHE_DIR", None)
    else:
        os.environ["NTK_HARNESS_CACHE_DIR"] = previous
