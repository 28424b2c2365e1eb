"""``--ntk-cluster``: the address, the missing extra, and Dask imported only when asked for.

These need no cluster (most need no Dask): the address is checked before anything starts."""
from __future__ import annotations

import sys

import pytest
from cluster_support import ntk_harness

from harness.cluster.address import ClusterAddress, parse_address
from harness.cluster.reruns import attempts, describe
from harness.options import OptionError


@pytest.mark.parametrize("text, expected", [
    ("local:1", ClusterAddress(local_workers=1)),
    ("local:12", ClusterAddress(local_workers=12)),
    ("tcp://127.0.0.1:8786", ClusterAddress(scheduler="tcp://127.0.0.1:8786")),
    ("tcp://node-07.cluster.example:41234", ClusterAddress(scheduler="tcp://node-07.cluster.example:41234")),
    ("tcp://[::1]:8786", ClusterAddress(scheduler="tcp://[::1]:8786")),
])
def test_the_two_forms_of_the_address_are_read(text, expected):
    assert parse_address(text) == expected
    assert str(parse_address(text)) == text


@pytest.mark.parametrize("text", ["local", "local:0", "local:-2", "local:two", "127.0.0.1:8786", "tcp://host",
                                  "tcp://host:0", "tcp://host:70000", "tls://host:8786", "", "slurm"])
def test_any_other_address_is_refused_naming_the_option_and_both_forms(text):
    with pytest.raises(OptionError) as caught:
        parse_address(text)
    message = str(caught.value)
    assert message.startswith("--ntk-cluster: expected local:N") and "tcp://HOST:PORT" in message
    assert message.endswith(f"got {text!r}")


@pytest.mark.parametrize("address", ["localhost:8786", "local:0"])
def test_a_bad_address_is_one_line_and_exit_status_2_before_anything_runs(case_dir, address):
    result = ntk_harness(case_dir, "run", "mycases", "--ntk-cluster", address)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("ntk-harness run: error: --ntk-cluster: expected local:N ("), line
    assert "tcp://HOST:PORT" in line and line.endswith(f"got {address!r}")


def test_a_scheduler_that_does_not_answer_is_one_line_and_exit_status_2(case_dir, distributed_installed):
    result = ntk_harness(case_dir, "run", "mycases", "--ntk-cluster", "tcp://127.0.0.1:9",
                         DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("ntk-harness run: error: --ntk-cluster: no Dask scheduler answered at "
                           "tcp://127.0.0.1:9 within 2s"), line
    assert "expected local:N" in line


MISSING_DASK = ("import sys; sys.modules['distributed'] = None  # import distributed raises ImportError\n"
                "from harness.cli import main; sys.exit(main(sys.argv[1:]))")


def test_without_dask_the_option_is_one_line_naming_the_extra(case_dir):
    import subprocess

    from cluster_support import environment

    result = subprocess.run([sys.executable, "-c", MISSING_DASK, "run", "mycases", "--ntk-cluster", "local:2"],
                            cwd=case_dir, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("ntk-harness run: error: --ntk-cluster needs Dask distributed, which is not installed")
    assert "pip install -e '.[cluster]'" in line


NO_DASK_IMPORTED = ("import sys\nfrom harness.cli import main\ncode = main(sys.argv[1:])\n"
                    "heavy = sorted(m for m in ('dask', 'distributed') if m in sys.modules)\n"
                    "print('imported:', heavy, file=sys.stderr); sys.exit(code)")


def test_a_run_without_the_option_never_imports_dask(case_dir):
    import subprocess

    from cluster_support import environment

    result = subprocess.run([sys.executable, "-c", NO_DASK_IMPORTED, "run", "mycases/dispersion.toml", "--json"],
                            cwd=case_dir, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stderr


def test_retries_are_counted_from_the_start_announcements_and_explained_by_the_departures():
    keys = {f"k{i}": f"a.toml::{name}" for i, name in enumerate("xyzwvu")}
    started = [(t, {"key": key, "worker": worker}) for t, key, worker in [
        (1, "k0", "tcp://w1"), (2, "k0", "tcp://w2"), (3, "k0", "tcp://w5"),   # x: lost twice while running
        (4, "k1", "tcp://w5"),                                                 # y: waited on w1, ran on w5
        (1, "k2", "tcp://w3"), (5, "k2", "tcp://w5"),                          # z: w3 left cleanly
        (6, "k3", "tcp://w5"), (7, "k3", "tcp://w6"),                          # w: twice, no departure
        (8, "k4", "tcp://w5"),                                                 # v: nothing happened
        (1, "k5", "tcp://w1"), (9, "k5", "tcp://w6"),                          # u: its result died with w1
        (9, "other", "tcp://w1")]]
    removed = [
        (1.0, {"action": "add-worker", "worker": "tcp://w1"}),
        (2.0, {"action": "remove-worker", "worker": "tcp://w1", "processing-tasks": {"k0", "k1", "x"},
               "lost-computed-tasks": {"k5"}, "expected": False}),
        (3.0, {"action": "remove-worker", "worker": "tcp://w2", "processing-tasks": ["k0"], "expected": False}),
        (4.0, {"action": "remove-worker", "worker": "tcp://w3", "processing-tasks": ["k2"], "expected": True}),
        (5.0, {"action": "remove-worker", "worker": "tcp://w4", "processing-tasks": [], "expected": False}),
        (6.0, "a message of another kind"),
    ]
    found = attempts(started, removed, keys)
    assert sorted(found) == ["a.toml::u", "a.toml::w", "a.toml::x", "a.toml::y", "a.toml::z"]
    x, y, z, w, u = (found[f"a.toml::{name}"] for name in "xyzwu")
    assert (x.retries, x.lost) == (2, [("tcp://w1", "running", True), ("tcp://w2", "running", True)])
    assert (y.retries, y.lost) == (0, [("tcp://w1", "waiting", True)])
    assert (z.retries, z.lost) == (1, [("tcp://w3", "running", False)])
    assert (w.retries, w.lost) == (1, [])
    assert (u.retries, u.lost) == (1, [("tcp://w1", "result", True)])
    assert describe("a.toml::x", x) == ("a.toml::x: run 3 times by Dask (run again after worker tcp://w1 died while "
                                        "running it; run again after worker tcp://w2 died while running it)")
    assert describe("a.toml::y", y) == ("a.toml::y: run once by Dask (moved to another worker after worker tcp://w1 "
                                        "died before it started there)")
    assert describe("a.toml::z", z) == ("a.toml::z: run 2 times by Dask (run again after worker tcp://w3 left the "
                                        "cluster while running it)")
    assert describe("a.toml::w", w) == "a.toml::w: run 2 times by Dask (no departure of its worker on record)"
    assert describe("a.toml::u", u) == ("a.toml::u: run 2 times by Dask (run again after worker tcp://w1 died "
                                        "holding its result)")
