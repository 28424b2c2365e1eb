""":class:`ClusterRun`: the selected cases as Dask tasks, their records back in a local run's order.

``ntk-harness run --ntk-cluster ADDRESS`` submits each selected case as soon as its file is
loaded (:meth:`ClusterRun.submit`; the cluster is started or reached at the first one),
then :meth:`ClusterRun.records` waits for them and prints each record as a local run
prints it (the verdict table, or nothing with ``--json``) in the order a local run prints
them: a finished case waits for the cases before it. After Ctrl-C, :meth:`ClusterRun.finished`
returns (and prints) every record that arrived, plus those the cluster finished meanwhile;
the rest are dropped, as a local run drops the case it was in. Which cases Dask ran again
because their worker went away comes from the scheduler's event log (:mod:`harness.cluster.reruns`).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import uuid

from harness.cluster import reruns as reruns_module
from harness.cluster.address import ClusterAddress
from harness.cluster.task import TaskResult, fingerprint, run_case_task
from harness.records import CaseRecord

PREFIX = "ntk-harness run"
#: How long, after Ctrl-C, a result the cluster has finished may take to arrive (seconds).
FETCH_AFTER_INTERRUPT = 10


@dataclasses.dataclass
class _Submitted:
    case_id: str
    kind: str
    nodeid: str
    key: str
    future: object   # dropped once its result arrived, so the cluster frees it (and never recomputes it)
    result: TaskResult | None = None


class ClusterRun:
    """One ``ntk-harness run`` on a Dask cluster; see the module docstring."""

    def __init__(self, address: ClusterAddress, options, *, as_json: bool, root):
        self.address = address
        self.options = dataclasses.replace(options, progress=None)   # a terminal callback does not travel
        self.as_json = as_json
        self.root = str(root)
        self.cwd = os.getcwd()
        self.token = uuid.uuid4().hex[:12]
        self.client = self.cluster = None
        self.workers_at_start: int | None = None
        self.submitted: list[_Submitted] = []
        self.printed = 0
        self.reruns: dict[str, reruns_module.Attempts] = {}

    # ------------------------------------------------------------------ cluster
    def _connect(self) -> None:
        from harness.cluster.connect import connect

        self.client, self.cluster = connect(self.address)
        nthreads = self.client.nthreads()
        self.workers_at_start = len(nthreads)
        print(f"{PREFIX}: the cases run on the Dask cluster {self.client.scheduler.address} ({self.address}: "
              f"{len(nthreads)} workers, {sum(nthreads.values())} threads)", file=sys.stderr, flush=True)
        if not nthreads:
            print(f"{PREFIX}: the scheduler has no workers yet; the cases wait for workers to join",
                  file=sys.stderr, flush=True)

    def submit(self, case) -> None:
        """Send one case to the cluster (started or reached at the first case)."""
        from harness.runner import nodeid_of

        if self.client is None:
            self._connect()
        key = f"ntk-harness-{self.token}-{len(self.submitted)}"
        future = self.client.submit(run_case_task, case, self.options, self.root, self.cwd, fingerprint(),
                                    key=key, pure=False)
        self.submitted.append(_Submitted(case.id, case.kind, nodeid_of(case, self.root), key, future))

    def close(self) -> None:
        """Release the tasks and the client; stop the LocalCluster this run started."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    # ------------------------------------------------------------------ results
    def records(self) -> list[CaseRecord]:
        """Wait for every submitted case; print each record in the order of a local run."""
        if not self.submitted:
            return []
        from distributed import as_completed

        index = {item.key: item for item in self.submitted}
        pending = as_completed([item.future for item in self.submitted])
        for future in pending:
            self._receive(index[future.key])
            del future
            self._print_ready()
        self._read_reruns()
        return [item.result.record for item in self.submitted]

    def finished(self) -> list[CaseRecord]:
        """After an interrupt: every record that arrived or that the cluster has finished."""
        for item in self.submitted:
            if item.result is None and item.future is not None and item.future.status in ("finished", "error"):
                try:
                    self._receive(item, timeout=FETCH_AFTER_INTERRUPT)
                except Exception:   # the cluster is going away: keep what arrived
                    pass
        self._print_ready(gaps=True)
        try:
            self._read_reruns()
        except Exception:
            pass
        return [item.result.record for item in self.submitted if item.result is not None]

    def _receive(self, item: _Submitted, timeout: float | None = None) -> None:
        try:
            item.result = item.future.result(timeout=timeout)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:   # KilledWorker, a lost scheduler, an exception that escaped the task
            item.result = TaskResult(self._failed(item, exc))
        item.future = None

    def _failed(self, item: _Submitted, exc: BaseException) -> CaseRecord:
        name = type(exc).__name__
        if name == "KilledWorker":
            import dask

            error = (f"Dask gave up on the case: the workers running it died more than "
                     f"distributed.scheduler.allowed-failures = {dask.config.get('distributed.scheduler.allowed-failures')}"
                     f" times (KilledWorker)")
        else:
            error = f"the case's task failed on the cluster: {name}: {exc}".splitlines()[0]
        return CaseRecord(case=item.case_id, kind=item.kind, nodeid=item.nodeid,
                          source=item.nodeid.rsplit("::", 1)[0], outcome="error", error=error)

    def _print_ready(self, gaps: bool = False) -> None:
        """Print the records that are next in order (with ``gaps``, every one that arrived)."""
        from harness.verdict import format_record

        while self.printed < len(self.submitted):
            item = self.submitted[self.printed]
            if item.result is None and not gaps:
                return
            self.printed += 1
            if item.result is None:
                continue
            if item.result.stderr:
                sys.stderr.write(item.result.stderr)
                sys.stderr.flush()
            if not self.as_json:
                print(format_record(item.result.record), flush=True)
                print(flush=True)

    def _read_reruns(self) -> None:
        keys = {item.key: item.nodeid for item in self.submitted}
        if self.client is not None and keys:
            self.reruns = reruns_module.attempts(self.client.get_events(reruns_module.STARTED),
                                                 self.client.get_events("all"), keys)

    # ------------------------------------------------------------------ what the run says
    def report_lines(self) -> list[str]:
        """One line per finished case whose worker went away (run again, or moved before it
        started); after an interrupt the cases that did not finish are not reported."""
        done = {item.nodeid for item in self.submitted if item.result is not None}
        return [f"{PREFIX}: {reruns_module.describe(nodeid, item)}" for nodeid, item in sorted(self.reruns.items())
                if nodeid in done]

    def summary_suffix(self) -> str:
        """For the summary line: how many cases Dask ran again (nothing when none)."""
        done = {item.nodeid for item in self.submitted if item.result is not None}
        n = sum(1 for nodeid, item in self.reruns.items() if item.retries and nodeid in done)
        return f"; {n} case{'s' if n != 1 else ''} run again after a worker died" if n else ""

    def session(self) -> dict:
        """Keys for the results document's session: the cluster, its workers, the reschedulings."""
        ran_on = sorted({item.result.worker for item in self.submitted if item.result and item.result.worker})
        return {"workers": self.workers_at_start,
                "cluster": {"address": str(self.address), "workers_used": ran_on,
                            "retried": {nodeid: item.retries for nodeid, item in sorted(self.reruns.items())
                                        if item.retries}}}
