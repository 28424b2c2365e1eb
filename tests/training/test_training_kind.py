"""The training kind: collection errors, verdicts, divergence, on tiny cases (seconds)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.cases.schema import CaseError, load_case_file
from harness.options import RunOptions
from harness.kinds.training import KIND

CASES = Path(__file__).resolve().parents[2] / "cases" / "training"

TINY = """
[[case]]
name = "tiny"
kind = "training"

[case.network]
sigma_w2 = {sigma_w2}
depth = 2
width = 8
input_dim = 64
output_dim = 10

[case.training]
optimizer = "{optimizer}"
learning_rate = {learning_rate}
steps = 20
batch_size = 32
probe_per_class = {probe_per_class}
networks = 3
checkpoints = [0, 10, 20]

[case.depth_trend]
depths = [1, 2]
quantity = "relative_change"

[case.scaling]
width_values = [4, 8]
depth_to_width = 0.25

[case.expect.eoc]
relative_change_at_least = {bound}
depth_slope_above = -1000.0
width_exponent_not_below = -1000.0
"""


def _load(tmp_path, **overrides):
    values = dict(sigma_w2=2.0, optimizer="sgd", learning_rate=0.5, probe_per_class=2, bound=0.0)
    values.update(overrides)
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(**values))
    return load_case_file(path, {"training": KIND})


def test_shipped_case_files_collect():
    ids = []
    for name in ("constancy", "width_scaling", "width_scaling_fixed_depth", "width_scaling_ntk", "paper"):
        for case in load_case_file(CASES / f"{name}.toml", {"training": KIND}):
            ids.append(KIND.case_id(case))
            assert {"ordered", "eoc", "chaotic"} >= {KIND.phase(case)}
    assert "eoc-w300-L20-s2-adam0.0001-T3000" in ids
    assert KIND.markers == ("training",)


def test_unknown_optimizer_fails_collection_with_the_allowed_names(tmp_path):
    with pytest.raises(CaseError, match="'sgd', 'adam'"):
        _load(tmp_path, optimizer="rmsprop")


def test_unknown_dataset_fails_collection_with_the_allowed_names(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TINY.format(sigma_w2=2.0, optimizer="sgd", learning_rate=0.5, probe_per_class=2, bound=0.0)
                    .replace('optimizer = "sgd"', 'optimizer = "sgd"\ndataset = "cifar"'))
    with pytest.raises(CaseError, match="'digits', 'mnist', 'teacher_student'"):
        load_case_file(path, {"training": KIND})


def test_probe_larger_than_data_fails_collection_with_the_sizes(tmp_path):
    with pytest.raises(CaseError) as info:
        _load(tmp_path, probe_per_class=500)
    assert "probe_per_class" in str(info.value) and "has only" in str(info.value)


def test_single_probe_per_class_fails_collection(tmp_path):
    with pytest.raises(CaseError, match="probe_per_class"):  # no within-class pairs for the block ratio
        _load(tmp_path, probe_per_class=1)


def test_wrong_output_dim_fails_collection(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TINY.format(sigma_w2=2.0, optimizer="sgd", learning_rate=0.5, probe_per_class=2, bound=0.0)
                    .replace("output_dim = 10", "output_dim = 1"))
    with pytest.raises(CaseError, match="output_dim"):
        load_case_file(path, {"training": KIND})


def test_run_passes_and_reports_series(tmp_path):
    (case,) = _load(tmp_path)
    assert KIND.case_id(case) == "eoc-w8-L2-s2-sgd0.5-T20"
    outcome = KIND.run(case, RunOptions(device="cpu"))
    names = [c.name for c in outcome.checks]
    assert outcome.passed, [(c.name, c.detail) for c in outcome.failed_checks]
    assert any("grows with depth" in n for n in names) and any("does not vanish with width" in n for n in names)
    result = outcome.result
    assert result.value("relative_change") > 0
    runs = {(e.depth, e.width) for e in result.experiments}
    assert runs == {(2, 8), (1, 8), (1, 4)}  # base reused by the trend and the scaling
    assert len(result.experiments[0].series["alignment"]) == 3  # one per checkpoint
    probe = result.probe_ntk  # for the report's NTK-matrix figure
    assert probe.labels == [c for c in range(10) for _ in range(2)]
    assert len(probe.initial) == len(probe.final) == 20 and len(probe.final[0]) == 20
    lo, hi = result.final["relative_change"].interval
    assert lo <= result.value("relative_change") <= hi
    assert result.depth_trend is not None and result.width_scaling is not None


def test_failed_level_check_prints_the_interval(tmp_path):
    (case,) = _load(tmp_path, bound=1e6)
    outcome = KIND.run(case, RunOptions(device="cpu"))
    (failed,) = outcome.failed_checks
    assert "relative_change" in failed.name
    assert "95% CI, 3 networks" in failed.detail and "per network" in failed.detail


def test_diverging_run_fails_with_step_and_learning_rate(tmp_path):
    (case,) = _load(tmp_path, learning_rate=1e8)
    outcome = KIND.run(case, RunOptions(device="cpu"))
    assert not outcome.passed
    (failed,) = outcome.failed_checks
    assert "diverged at step" in failed.detail and "learning_rate = 1e+08" in failed.detail
