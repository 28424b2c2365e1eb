"""``--ntk-cluster tcp://HOST:PORT``: a scheduler and a worker started apart (``dask scheduler``,
``dask worker``, as on a real cluster, here on loopback), the same records as a local run."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from cluster_support import environment, explain, ntk_harness
from records_compare import compare

from harness.records import document


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def scheduler(case_dir, distributed_installed):
    """The address of a scheduler on a free loopback port with one worker process of one
    thread, both started in the case folder's parent (the user's working directory); both
    are stopped at the end."""
    address_file = case_dir / "scheduler.json"
    started = []
    try:
        started.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(address_file)], cwd=case_dir, env=environment(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while not address_file.exists() and time.monotonic() < deadline and started[0].poll() is None:
            time.sleep(0.1)
        assert address_file.exists(), f"the scheduler did not start (exit {started[0].poll()})"
        time.sleep(0.2)   # the file is written in one go, but give it a moment
        address = json.loads(address_file.read_text())["address"]
        started.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nworkers", "1", "--nthreads", "1",
             "--no-dashboard"], cwd=case_dir, env=environment(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        yield address
    finally:
        for process in reversed(started):
            _stop(process)


def test_a_separately_started_scheduler_gives_every_record_of_a_local_run(case_dir, scheduler):
    assert scheduler.startswith("tcp://127.0.0.1:")
    cluster = ntk_harness(case_dir, "run", "mycases", "--json", "--ntk-cluster", scheduler)
    assert cluster.returncode == 0, explain(cluster)
    assert f"the cases run on the Dask cluster {scheduler} ({scheduler}: " in cluster.stderr
    local = ntk_harness(case_dir, "run", "mycases", "--json")
    assert local.returncode == 0, explain(local)
    theirs = document.ResultsDocument.from_json(json.loads(cluster.stdout))
    comparison = compare(document.ResultsDocument.from_json(json.loads(local.stdout)), theirs)
    assert comparison.equal and comparison.records == 6, comparison
    assert theirs.sessions[0]["cluster"]["address"] == scheduler
    assert len(theirs.sessions[0]["cluster"]["workers_used"]) == 1
