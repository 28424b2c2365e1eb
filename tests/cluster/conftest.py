"""Fixtures of the ``--ntk-cluster`` tests; the shared helpers are in ``cluster_support``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))   # cluster_support, records_compare

from cluster_support import AGREEMENT, DISPERSION, HAVE_DISTRIBUTED, MISSING_EXTRA, TINY_MODEL  # noqa: E402


@pytest.fixture
def distributed_installed():
    """Skip, saying which extra to install, when Dask distributed is not installed."""
    if not HAVE_DISTRIBUTED:
        pytest.skip(MISSING_EXTRA)


@pytest.fixture
def case_dir(tmp_path) -> Path:
    """A folder of small case files: 3 dispersion cases, 2 MLP agreement cases and one on a
    model whose factory is a module next to its case file (6 cases, a few seconds each)."""
    folder = tmp_path / "mycases"
    folder.mkdir()
    (folder / "dispersion.toml").write_text(DISPERSION)
    (folder / "agreement.toml").write_text(AGREEMENT)
    (folder / "tiny_model.py").write_text(TINY_MODEL)
    return tmp_path
