"""Dask itself, imported here only (and only with ``--ntk-cluster``): start or reach a cluster.

``local:N`` starts a ``distributed.LocalCluster`` of N worker processes with one thread
each (one case at a time per process; Dask's nanny sets ``OMP_NUM_THREADS=1`` and its
relatives in them); ``tcp://HOST:PORT`` connects a ``distributed.Client`` to a running
scheduler, waiting as long as Dask's ``distributed.comm.timeouts.connect`` (30 s unless
configured, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``).
"""
from __future__ import annotations

import logging

from harness.cluster.address import EXPECTED, FLAG, ClusterAddress
from harness.options import OptionError

EXTRA = "pip install -e '.[cluster]' (or pip install 'dask[distributed]')"


def require_distributed():
    """The ``distributed`` module, or an :class:`OptionError` naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise OptionError(f"{FLAG} needs Dask distributed, which is not installed ({exc}): the cluster extra is "
                          f"not installed: {EXTRA}") from None
    return distributed


def connect(address: ClusterAddress):
    """(client, cluster): a client of the cluster at ``address``; ``cluster`` is the
    LocalCluster started for ``local:N`` (close it after the client), else None.
    A scheduler that does not answer is an :class:`OptionError` naming ``--ntk-cluster``."""
    distributed = require_distributed()
    import dask

    if address.local_workers is not None:
        # saturation 1: a worker holds no more cases than it runs (queued ones wait on the scheduler);
        # Dask's own log lines are kept quiet: the run reports what happened to its cases itself
        with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
            cluster = distributed.LocalCluster(n_workers=address.local_workers, threads_per_worker=1,
                                               processes=True, dashboard_address=None, silence_logs=logging.CRITICAL)
        return distributed.Client(cluster), cluster
    try:
        return distributed.Client(address.scheduler), None
    except (OSError, TimeoutError) as exc:
        waited = dask.config.get("distributed.comm.timeouts.connect")
        raise OptionError(f"{FLAG}: no Dask scheduler answered at {address.scheduler} within {waited} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); expected {EXPECTED}"
                          ) from None
