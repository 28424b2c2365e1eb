"""Where and with what a run happened: host, versions, command line (for results.json)."""
from __future__ import annotations

import functools
import os
import platform
import socket
import sys
from importlib import metadata


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _static() -> dict:
    """What does not change while the process runs (computed once per process / xdist worker)."""
    return {
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "ntk-harness": _version("ntk-harness"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "pytest": _version("pytest"),
    }


def environment() -> dict:
    """Host and versions of this process, and, once torch is loaded (a case ran), its threads,
    CUDA version and GPU."""
    info = dict(_static())
    torch = sys.modules.get("torch")   # never import torch only to describe it
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        info["xdist_worker"] = worker
    return info
