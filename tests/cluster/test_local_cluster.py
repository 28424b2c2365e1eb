"""``--ntk-cluster local:N`` end to end: the records and the output of a local run, a worker
killed mid-run rescheduled by Dask (and said so), Ctrl-C keeping the finished records."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from cluster_support import environment, explain, ntk_harness, without_timings
from records_compare import compare

from harness.records import document


def _both(case_dir, *args):
    local = ntk_harness(case_dir, "run", "mycases", *args)
    cluster = ntk_harness(case_dir, "run", "mycases", "--ntk-cluster", "local:2", *args)
    return local, cluster


def test_a_local_cluster_gives_every_record_and_line_of_a_local_run(case_dir, distributed_installed):
    local, cluster = _both(case_dir, "--json")
    assert local.returncode == 0 and cluster.returncode == 0, explain(cluster) + explain(local)
    ours, theirs = document.ResultsDocument.from_json(json.loads(local.stdout)), \
        document.ResultsDocument.from_json(json.loads(cluster.stdout))
    comparison = compare(ours, theirs)
    assert comparison.equal and comparison.records == 6, comparison
    assert comparison.values > 1000 and comparison.identical + comparison.rounding == comparison.values, comparison
    assert theirs.complete and [r.nodeid for r in theirs.records] == [r.nodeid for r in ours.records]
    assert all(r.environment.get("hostname") and r.wall_seconds is not None for r in theirs.records)
    session = theirs.sessions[0]
    assert session["workers"] == 2 and session["cluster"]["address"] == "local:2"
    assert session["cluster"]["retried"] == {} and len(session["cluster"]["workers_used"]) >= 1
    assert "ntk-harness run: 6 passed" in cluster.stderr.splitlines()

    local, cluster = _both(case_dir)   # the tables: the same text, in the same order
    assert local.returncode == 0 and cluster.returncode == 0, explain(cluster) + explain(local)
    assert without_timings(cluster.stdout) == without_timings(local.stdout)
    assert cluster.stdout.splitlines()[-1] == "ntk-harness run: 6 passed"
    assert "the cases run on the Dask cluster tcp://127.0.0.1:" in cluster.stderr


DIES_ONCE = textwrap.dedent("""
    import os
    import pathlib
    import signal

    from harness.ntk.jacobian import jacobian_ntk

    MARKER = pathlib.Path({marker!r})


    def ntk(f, params, x1, x2):
        # the first call anywhere kills its own worker process, as a crash or the OOM killer would
        if not MARKER.exists():
            MARKER.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return jacobian_ntk(f, params, x1, x2)
""")


def test_a_worker_killed_mid_run_is_rescheduled_and_the_run_says_so(case_dir, distributed_installed):
    marker = case_dir / "died_once"
    (case_dir / "dies_once.py").write_text(DIES_ONCE.format(marker=str(marker)))
    cluster = ntk_harness(case_dir, "run", "mycases", "--json", "--ntk-implementation", "dies_once:ntk",
                          "--ntk-cluster", "local:2")
    assert marker.exists(), "no worker ran the implementation"
    assert cluster.returncode == 0, explain(cluster)
    lines = cluster.stderr.splitlines()
    again = [line for line in lines if ": run 2 times by Dask (run again after worker tcp://" in line
             and line.endswith(" died while running it)")]
    assert len(again) == 1, cluster.stderr
    # a case waiting behind it on the same worker is moved, not run again, and said so
    moved = [line for line in lines if ": run once by Dask (moved to another worker after worker tcp://" in line]
    assert len(lines) == 1 + len(again) + len(moved) + 1, cluster.stderr   # the cluster's line, these, the summary
    assert lines[-1] == "ntk-harness run: 6 passed; 1 case run again after a worker died", lines[-1]
    theirs = document.ResultsDocument.from_json(json.loads(cluster.stdout))
    nodeid = again[0].split(": ")[1]
    assert theirs.sessions[0]["cluster"]["retried"] == {nodeid: 1}
    assert theirs.complete and len(theirs.records) == 6
    local = ntk_harness(case_dir, "run", "mycases", "--json", "--ntk-implementation", "dies_once:ntk")
    assert local.returncode == 0, explain(local)    # the marker exists: nobody dies
    comparison = compare(document.ResultsDocument.from_json(json.loads(local.stdout)), theirs)
    assert comparison.equal and comparison.records == 6, comparison


SLOW = textwrap.dedent("""
    [[case]]
    name = "slow"
    kind = "dispersion"
    implementation = "slow_ntk:slow"

    [case.network]
    width = 8
    depth = 3
    sigma_w2 = 2.0

    [case.sampling]
    networks = 20
""")

SLOW_NTK = textwrap.dedent("""
    import pathlib
    import time

    from harness.ntk.jacobian import jacobian_ntk


    def slow(f, params, x1, x2):
        pathlib.Path({marker!r}).touch()   # the test interrupts once the case is here
        time.sleep(600)
        return jacobian_ntk(f, params, x1, x2)
""")


def _default_sigint() -> None:
    """In the child: SIGINT back to its default (a background job inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_the_finished_records_as_a_local_run_does(case_dir, distributed_installed):
    """One worker, so the three small cases finish before the slow one starts; Ctrl-C (SIGINT to
    the whole process group, as a terminal sends it) once the slow case is running."""
    marker = case_dir / "inside_slow"
    folder = case_dir / "mycases"
    (folder / "agreement.toml").unlink()
    (folder / "zz_slow.toml").write_text(SLOW)
    (case_dir / "slow_ntk.py").write_text(SLOW_NTK.format(marker=str(marker)))
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "mycases", "--json", "--ntk-cluster",
                                "local:1"], cwd=case_dir, env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), f"the run never reached the slow case (exit {process.poll()})"
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "ntk-harness run: 3 passed; interrupted", err
    assert "Traceback" not in err, err
    kept = document.ResultsDocument.from_json(json.loads(out))
    assert kept.complete is False
    assert sorted(r.case for r in kept.records) == ["small[chaotic-w8-L3-s3]", "small[eoc-w8-L3-s2]",
                                                    "small[ordered-w8-L3-s1]"]
    assert all(r.outcome == "passed" for r in kept.records)
