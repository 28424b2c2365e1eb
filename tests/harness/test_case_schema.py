"""Case files: strict validation with messages naming file, case and key; sweeps; ids."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.cases.schema import CaseError, FieldError, is_case_file
from harness.cases.schema import load_case_file as _load
from harness.kinds import KINDS


def load_case_file(path):
    return _load(path, KINDS)

GOOD = """
[[case]]
name = "demo"
kind = "dispersion"

[case.network]
width = 8
depth = [2, 4]
sigma_w2 = [1.0, 2.0, 3.0]

[case.inputs]
inner_products = [1.0, 0.5]

[case.sampling]
networks = 10
"""


def write(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_sweeps_expand_to_the_cartesian_product_with_readable_ids(tmp_path):
    cases = load_case_file(write(tmp_path, GOOD))
    assert len(cases) == 6
    ids = [KINDS[c.kind].case_id(c) for c in cases]
    assert ids == [
        "ordered-w8-L2-s1", "eoc-w8-L2-s2", "chaotic-w8-L2-s3",
        "ordered-w8-L4-s1", "eoc-w8-L4-s2", "chaotic-w8-L4-s3",
    ]
    assert cases[1].sweep == {"network.depth": 2, "network.sigma_w2": 2.0}
    assert cases[0].sections.network.architecture().widths == (8, 8, 8)


def test_a_list_of_lists_sweeps_a_list_valued_key(tmp_path):
    text = GOOD.replace("width = 8\ndepth = [2, 4]", "hidden_widths = [[8, 8], [8, 16, 8]]")
    cases = load_case_file(write(tmp_path, text))
    assert [c.sections.network.architecture().hidden_widths for c in cases[::3]] == [(8, 8), (8, 16, 8)]
    assert [c.id for c in cases[::3]] == ["demo[ordered-w8-L2-s1]", "demo[ordered-w8-16-L3-s1]"]


@pytest.mark.parametrize(
    "old, new, key, expected",
    [
        ("width = 8", "width = 0", "network.width", "expected a value >= 1, got 0"),
        ("width = 8", 'width = "8"', "network.width", "expected an integer, got string '8'"),
        ("width = 8", "width = 8\nsigma_b2 = -0.5", "network.sigma_b2", "expected a value >= 0, got -0.5"),
        ("networks = 10", "networks = 1", "sampling.networks", "expected a value >= 2, got 1"),
        ("networks = 10", "networks = 10\nnetworkz = 3", "sampling.networkz", "unknown key; expected one of"),
        ("width = 8", "width = 8\nsigma_b2 = inf", "network.sigma_b2", "expected a finite number, got inf"),
        ("width = 8", "width = 8\nsigma_b2 = nan", "network.sigma_b2", "expected a finite number, got nan"),
        ("sigma_w2 = [1.0, 2.0, 3.0]", "sigma_w2 = inf", "network.sigma_w2", "expected a finite number"),
        ("width = 8", "width = 8\nactivation = \"gelu\"", "network.activation", "expected one of 'relu'"),
        ("sigma_w2 = [1.0, 2.0, 3.0]", "sigma_w2 = [1.0, -2.0]", "network.sigma_w2", "expected a value > 0"),
        ("sigma_w2 = [1.0, 2.0, 3.0]", "", "network.sigma_w2", "required key is missing"),
        ('kind = "dispersion"', 'kind = "dispersal"', "kind", "expected one of"),
        ("[case.inputs]", "[case.input]", "input", "unknown key or section"),
        ("inner_products = [1.0, 0.5]", "inner_products = [1.0, 0.5, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8]",
         "inputs.inner_products", "need input_dim >= 9"),
    ],
)
def test_bad_values_fail_with_file_case_and_key(tmp_path, old, new, key, expected):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(CaseError) as info:
        load_case_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "case 'demo'" in message
    assert f"key {key!r}" in message
    assert expected in message


def test_the_exact_reference_covers_every_activation_but_the_asymptotic_one_only_relu(tmp_path):
    # the exact joint law (Gaussian conditioning) applies to tanh and to sigma_b2 > 0
    tanh = load_case_file(write(tmp_path, GOOD.replace("width = 8", 'width = 8\nactivation = "tanh"')))
    assert len(tanh) == 6 and tanh[0].id.startswith("demo[tanh-")
    text = GOOD.replace("width = 8", "width = 8\nsigma_b2 = 0.1") + (
        '\n[case.expect]\ntheories = ["asymptotic"]\n[case.expect.tolerance]\nordered = 0.1\neoc = 0.1\nchaotic = 0.1\n')
    with pytest.raises(CaseError, match="asymptotic theory holds for ReLU networks with sigma_b2 = 0"):
        load_case_file(write(tmp_path, text))


def test_a_case_entry_that_is_not_a_table_is_reported(tmp_path):
    with pytest.raises(CaseError, match=r"\[\[case\]\] entry 1 must be a table"):
        load_case_file(write(tmp_path, "case = [1]"))


def test_statistics_are_listed_once(tmp_path):
    path = write(tmp_path, GOOD + '\n[case.expect]\nstatistics = ["mean", "mean"]\n')
    with pytest.raises(CaseError, match="key 'expect.statistics': expected each entry once"):
        load_case_file(path)


def test_invalid_toml_and_missing_cases_are_reported(tmp_path):
    with pytest.raises(CaseError, match="not valid TOML"):
        load_case_file(write(tmp_path, "[[case]\nname = 1"))
    with pytest.raises(CaseError, match="unknown top-level key"):
        load_case_file(write(tmp_path, 'title = "x"\n[[case]]\nname = "a"\nkind = "dispersion"'))


def test_case_files_are_recognised_by_their_case_tables(tmp_path):
    assert is_case_file(write(tmp_path, GOOD))
    assert not is_case_file(write(tmp_path, "[tool.x]\na = 1", name="other.toml"))
    # another project's files: [[case]] tables without a kind, broken TOML without case tables
    assert not is_case_file(write(tmp_path, '[[case]]\nname = "x"\nwidth = 3', name="config.toml"))
    assert not is_case_file(write(tmp_path, "[tool\n", name="broken_other.toml"))
    # a broken case file is still recognized, so that its error is shown
    assert is_case_file(write(tmp_path, '[[case]\nkind = "dispersion"\n', name="broken.toml"))


def test_field_errors_carry_the_key_and_the_reason():
    error = FieldError("network.width", "expected a value >= 1, got 0")
    assert (error.key, error.reason) == ("network.width", "expected a value >= 1, got 0")
    assert str(error) == "network.width: expected a value >= 1, got 0"


def test_huge_sizes_are_refused_without_allocating(tmp_path):
    text = GOOD.replace("width = 8", "width = 100000").replace("depth = [2, 4]", "depth = 100")
    with pytest.raises(CaseError, match=r"key 'network.width': one network's NTK needs about 43.7 TiB"):
        load_case_file(write(tmp_path, text))   # from the sizes: no inputs and no network are built


def test_two_cases_of_one_id_are_refused_naming_both(tmp_path):
    """Two [[case]] tables of one name and the same parameters were suffixed -2 silently; now refused."""
    with pytest.raises(CaseError) as info:
        load_case_file(write(tmp_path, GOOD + GOOD))
    message = str(info.value)
    assert "key 'name'" in message and "two cases have the id 'demo[ordered-w8-L2-s1]'" in message
    assert "[[case]] tables 1 and 2" in message
    # tables of one name that differ in their parameters are one sweep written in two tables: fine
    cases = load_case_file(write(tmp_path, GOOD + GOOD.replace("width = 8", "width = 16")))
    assert len({c.id for c in cases}) == len(cases) == 12
    # sweep points the id does not tell apart (a swept seed) are refused too, naming both points
    seeds = GOOD.replace("[case.sampling]\n", "[case.sampling]\nseed = [1, 2]\n")
    with pytest.raises(CaseError, match=r"the sweep points .*seed.*: 1.* and .*seed.*: 2"):
        load_case_file(write(tmp_path, seeds))


def test_the_key_reference_in_docs_is_current():
    """docs/case-keys.md is rendered from the section dataclasses, the one source of the keys."""
    from harness.cases.keys import render

    path = Path(__file__).resolve().parents[2] / "docs" / "case-keys.md"
    assert path.read_text(encoding="utf-8") == render(KINDS), \
        "docs/case-keys.md is stale: run python -m harness.cases.keys > docs/case-keys.md"
