"""The value of ``--ntk-cluster``: ``local:N`` or ``tcp://HOST:PORT``, checked without Dask."""
from __future__ import annotations

import re
from dataclasses import dataclass

from harness.options import OptionError

FLAG = "--ntk-cluster"
EXPECTED = ("local:N (a Dask LocalCluster of N worker processes on this machine, N >= 1) or tcp://HOST:PORT "
            "(the address of a running Dask scheduler, as `dask scheduler` prints it)")

_LOCAL = re.compile(r"local:(\d+)")
_TCP = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d+)")


@dataclass(frozen=True)
class ClusterAddress:
    """Either ``local_workers`` (start a LocalCluster of that many processes) or ``scheduler``
    (the address of a running scheduler)."""

    local_workers: int | None = None
    scheduler: str | None = None

    def __str__(self) -> str:
        return f"local:{self.local_workers}" if self.local_workers is not None else str(self.scheduler)


def parse_address(text: str) -> ClusterAddress:
    """``local:N`` (N >= 1) or ``tcp://HOST:PORT`` (1 <= PORT <= 65535); anything else is an
    :class:`OptionError` naming ``--ntk-cluster``, what was expected and what was given."""
    text = (text or "").strip()
    local = _LOCAL.fullmatch(text)
    if local and int(local.group(1)) >= 1:
        return ClusterAddress(local_workers=int(local.group(1)))
    tcp = _TCP.fullmatch(text)
    if tcp and 1 <= int(tcp.group(2)) <= 65535:
        return ClusterAddress(scheduler=text)
    raise OptionError(f"{FLAG}: expected {EXPECTED}; got {text!r}")
