"""``ntk-harness run ... --ntk-cluster ADDRESS``: the selected cases as tasks on a Dask cluster.

Dask distributed does the scheduling, the worker processes and the rescheduling of a task
whose worker died; this package only turns cases into tasks and their results back into
the records and output of a local ``ntk-harness run``:

- :mod:`harness.cluster.address`: what ADDRESS may be (``local:N``, ``tcp://HOST:PORT``),
  checked without importing Dask;
- :mod:`harness.cluster.connect`: Dask itself (imported only here, only with
  ``--ntk-cluster``): a LocalCluster, or a client of a running scheduler;
- :mod:`harness.cluster.task`: the function a worker runs, one case per task, through the
  function a local run calls;
- :mod:`harness.cluster.reruns`: which cases Dask ran again because their worker went away,
  from the scheduler's own event log;
- :mod:`harness.cluster.run`: :class:`~harness.cluster.run.ClusterRun`, what ``ntk-harness
  run`` talks to: submit cases, print and return their records in the order of a local run.

See docs/cluster.md.
"""
from __future__ import annotations

from harness.cluster.address import ClusterAddress, parse_address

__all__ = ["ClusterAddress", "parse_address", "start"]


def start(text: str, options, *, as_json: bool, root):
    """A :class:`~harness.cluster.run.ClusterRun` for ``--ntk-cluster text``: the address is
    checked and Dask's presence too (:class:`harness.options.OptionError` naming the option and
    the extra to install), the cluster is started or reached when the first case is submitted."""
    from harness.cluster.connect import require_distributed
    from harness.cluster.run import ClusterRun

    address = parse_address(text)
    require_distributed()
    return ClusterRun(address, options, as_json=as_json, root=root)
