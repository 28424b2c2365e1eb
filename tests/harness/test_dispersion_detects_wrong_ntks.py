"""The statistical checks alone (no agreement case) catch an NTK that misses a parameter group.

A kernel without the bias gradients or without the readout layer has a different law of Theta(x0, x0); the exact-law checks of one quick case must reject
it, while the correct implementations pass the same case. The case runs at a family-wise
false-alarm rate of 1e-3, so a correct implementation fails it with probability <= 1e-3
(and this seeded run is deterministic).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.kinds import load_cases as load_case_file
from harness.kinds import KINDS
from harness.options import RunOptions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def eoc_case():
    cases = load_case_file(ROOT / "cases" / "dispersion" / "quick.toml")
    (case,) = [c for c in cases if c.id == "quick-depth[eoc-w16-L8-s2]"]
    return case


@pytest.mark.parametrize("implementation", ["jacobian", "structured", "ntk-vector-products"])
def test_correct_implementations_pass(eoc_case, implementation, tmp_path):
    outcome = KINDS["dispersion"].run(eoc_case, RunOptions(implementation_spec=implementation, cache_dir=tmp_path))
    assert outcome.checks_passed, [c for c in outcome.checks if not c.passed]


# Not listed: dropping one of the 9 weight layers moves E[Theta] by ~5% at EOC, inside the
# calibrated interval at S = 400 (about +-30% for the mean there): the statistics have no
# power against it, which is why the quick suite also runs the agreement cases, where it
# fails entry by entry (tests/ntk).
@pytest.mark.parametrize("broken", ["drops_biases", "drops_readout"])
def test_a_missing_parameter_group_fails_the_exact_law(eoc_case, broken, tmp_path):
    outcome = KINDS["dispersion"].run(eoc_case, RunOptions(implementation_spec=f"tests.ntk.broken:{broken}", cache_dir=tmp_path))
    failed = {c.name for c in outcome.failed_checks}
    statistical = {name for name in failed if "differential" not in name}
    assert any("exact" in name for name in statistical), failed      # the statistics alone see it
    assert any("differential" in name for name in failed), failed    # and the differential check names it
    (differential,) = [c for c in outcome.failed_checks if "differential" in c.name]
    expected = {"drops_biases": "It equals the reference without every bias",
                "drops_readout": "It equals the reference without the readout layer"}[broken]
    assert f"\n{expected}" in differential.detail, differential.detail   # the agreement kind's diagnosis, own line


def test_an_all_nan_kernel_fails_the_finite_check_without_crashing(tmp_path):
    """Every reference family present, every sample NaN: the outcome says so, no exception."""
    (case,) = [c for c in load_case_file(ROOT / "cases" / "dispersion" / "infinite_width.toml")
               if KINDS[c.kind].case_id(c) == "eoc-w32-L2-s2"]
    outcome = KINDS["dispersion"].run(case, RunOptions(implementation_spec="tests.ntk.broken:returns_nan", cache_dir=tmp_path))
    failed = {c.name for c in outcome.failed_checks}
    assert "all NTK samples finite" in failed
    assert "mean Theta(x0, x) (infinite width)" in failed


def test_an_inner_product_of_one_is_x0_itself():
    from harness.cases.sections import InputsSection
    from harness.inputs import make_inputs

    x, cosines = make_inputs(InputsSection(inner_products=[1.0, 0.5, -1.0]), 8)
    assert x.shape == (3, 8)
    assert cosines == pytest.approx([1.0, 0.5, -1.0])


@pytest.mark.parametrize("case_id", ["smooth-quick[tanh-chaotic-w32-L2-s3-b0.05]",
                                     "smooth-quick[erf-ordered-w32-L2-s0.5-b0.05-ntk]"])
def test_a_ten_percent_scale_error_fails_the_joint_law_checks_of_smooth_cases(case_id, tmp_path):
    """Away from ReLU the statistics have power of their own: these cases record a detectable scale
    within 10% (power 0.9, a lower bound), and a kernel 10% too large fails a joint-law check,
    not only the differential check against jacobian (which could not help if jacobian regressed)."""
    (case,) = [c for c in load_case_file(ROOT / "cases" / "dispersion" / "smooth_activations.toml") if c.id == case_id]
    correct = KINDS["dispersion"].run(case, RunOptions(cache_dir=tmp_path))
    low, high = correct.result.minimum_detectable_scale
    assert correct.checks_passed and 1 / 1.1 < low < 1 < high < 1.1, (low, high)
    wrong = KINDS["dispersion"].run(case, RunOptions(implementation_spec="tests.ntk.broken:scaled_ten_percent",
                                                     cache_dir=tmp_path))
    statistical = [c.name for c in wrong.failed_checks if "differential" not in c.name]
    assert any("joint law" in name for name in statistical), [c.name for c in wrong.failed_checks]


@pytest.fixture(scope="module")
def powered_case():
    """A quick case that records its detectable scale (quick-depth has ``power = false``)."""
    (case,) = [c for c in load_case_file(ROOT / "cases" / "dispersion" / "quick.toml") if c.id == "quick[eoc-w64-L2-s2]"]
    return case


@pytest.mark.parametrize("implementation", ["jacobian", "tests.ntk.broken:drops_biases"])
def test_decided_and_full_calibrations_give_the_same_verdicts(powered_case, implementation, tmp_path):
    """--ntk-calibration decide (default) and full: every check the same verdict on the same
    networks; a passing calibrated check says on how many replicates it was decided instead of
    printing its interval; a failing one prints the full calibration's interval in both modes."""
    decided = KINDS["dispersion"].run(powered_case, RunOptions(implementation_spec=implementation,
                                                                cache_dir=tmp_path / "a"))
    full = KINDS["dispersion"].run(powered_case, RunOptions(implementation_spec=implementation, cache_dir=tmp_path / "b",
                                                        calibration="full"))
    assert [(c.name, c.passed) for c in decided.checks] == [(c.name, c.passed) for c in full.checks]
    calibrated = [(d, f) for d, f in zip(decided.checks, full.checks) if "calibrated interval" in d.name]
    assert calibrated
    for d, f in calibrated:
        assert f.accepted is not None and f.expected.startswith("[")
        if d.passed and all(x.passed for x, _ in calibrated):
            assert d.accepted is None and "decided on" in d.expected, d.expected
        else:
            assert d.accepted == f.accepted and d.expected == f.expected
    low, high = decided.result.minimum_detectable_scale.low, decided.result.minimum_detectable_scale.high
    assert 0 < low < 1 < high
    if all(d.passed for d, _ in calibrated):
        assert "normal approximation" in decided.result.detectable_scale_method
    else:
        assert decided.result.minimum_detectable_scale == full.result.minimum_detectable_scale


def test_a_bad_calibration_mode_is_one_line_naming_the_option():
    from harness.options import OptionError, run_options

    values = {"ntk_memory_budget": "512", "ntk_calibration": "fast"}
    with pytest.raises(OptionError, match=r"--ntk-calibration: expected decide or full, got 'fast'"):
        run_options(values.get)
