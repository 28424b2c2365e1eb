"""The quick suite (``cases -m quick``, about 40 cases) through ``--ntk-cluster local:2``,
every seeded value against a local run's. Two full runs take minutes on a small machine, so
it runs when ``NTK_HARNESS_CLUSTER_QUICK_SUITE=1`` (skipped with that reason otherwise); the
small case files of test_local_cluster.py check the same on every run of the tests."""
from __future__ import annotations

import json
import os

import pytest
from cluster_support import ROOT, explain, ntk_harness
from records_compare import compare

from harness.records import document

ENABLE = "NTK_HARNESS_CLUSTER_QUICK_SUITE"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get(ENABLE) != "1", reason=f"two runs of the quick suite take minutes: set {ENABLE}=1")
def test_the_quick_suite_through_a_local_cluster_equals_a_local_run(distributed_installed):
    local = ntk_harness(ROOT, "run", "cases", "-m", "quick", "--json", timeout=3600)
    cluster = ntk_harness(ROOT, "run", "cases", "-m", "quick", "--json", "--ntk-cluster", "local:2", timeout=3600)
    assert local.returncode == 0 and cluster.returncode == 0, explain(cluster) + explain(local)
    comparison = compare(document.ResultsDocument.from_json(json.loads(local.stdout)),
                         document.ResultsDocument.from_json(json.loads(cluster.stdout)))
    print(comparison)
    assert comparison.equal and comparison.records >= 40, comparison
