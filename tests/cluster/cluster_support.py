"""Shared pieces of the ``--ntk-cluster`` tests: small case files, the command line in a
subprocess, and whether Dask distributed is installed. A module of its own (not ``conftest``):
several test folders have a ``conftest.py``, so ``from conftest import`` would take whichever
was imported last."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MISSING_EXTRA = "the cluster extra is not installed: pip install -e '.[cluster]'"


def _have_distributed() -> bool:
    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):   # ValueError: sys.modules["distributed"] is None
        return False


HAVE_DISTRIBUTED = _have_distributed()

DISPERSION = textwrap.dedent("""
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

AGREEMENT = textwrap.dedent("""
    [[case]]
    name = "mlp"
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

    [[case]]
    name = "tied"
    kind = "agreement"

    [case.model]
    factory = "tiny_model:make_tied"
    input_shape = [5]

    [case.agreement]
    networks = 2
    inputs = 3
    other_inputs = 2
    seed = 3
""")

# a model factory next to its case file: it must be importable on the workers too
TINY_MODEL = textwrap.dedent('''
    import torch
    from torch import nn


    class Tied(nn.Module):
        """One weight used twice (encoder W, decoder W^T)."""

        def __init__(self, dim=5, hidden=4):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(hidden, dim) / dim ** 0.5)
            self.readout = nn.Linear(dim, 1)

        def forward(self, x):
            return self.readout(torch.tanh(x @ self.weight.T) @ self.weight)


    def make_tied():
        return Tied().eval()
''')


def environment(**extra: str) -> dict:
    """The subprocesses' environment: one thread per process (the machine is shared), no
    progress bar, unbuffered output, the calibration cache the session set up (inherited)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NTK_HARNESS_PROGRESS="0", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def ntk_harness(cwd: Path, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """``python -m harness.cli ARGS`` in ``cwd`` (the command line a user types)."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=environment(**env),
                          capture_output=True, text=True, timeout=timeout)


def explain(result: subprocess.CompletedProcess) -> str:
    """A failed run's stderr and the errors of its records (with --json), for an assertion message."""
    import json

    try:
        errors = [f"{r['nodeid']}: {r.get('error')}" for r in json.loads(result.stdout)["records"] if r.get("error")]
    except (ValueError, KeyError, TypeError):
        errors = [result.stdout[-2000:]]
    return result.stderr[-4000:] + "\n".join(errors)


def without_timings(text: str) -> str:
    """The verdict printing without its ``timing:`` lines (the only lines that differ between runs)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("timing:"))
