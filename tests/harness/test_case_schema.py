"""Case files: strict validation with messages naming file, case and key; sweeps; ids."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.cases.schema import CaseError, is_case_file, load_case_file
from harness.kinds import KINDS

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
samples = 10
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
    assert cases[0].sections["network"].architecture().widths == (8, 8, 8)


def test_a_list_of_lists_sweeps_a_list_valued_key(tmp_path):
    text = GOOD.replace("width = 8\ndepth = [2, 4]", "widths = [[8, 8], [8, 16, 8]]")
    cases = load_case_file(write(tmp_path, text))
    assert [c.sections["network"].hidden_widths for c in cases[::3]] == [(8, 8), (8, 16, 8)]


@pytest.mark.parametrize(
    "old, new, key, expected",
    [
        ("width = 8", "width = 0", "network.width", "expected a value >= 1, got 0"),
        ("width = 8", 'width = "8"', "network.width", "expected an integer, got string '8'"),
        ("width = 8", "width = 8\nsigma_b2 = -0.5", "network.sigma_b2", "expected a value >= 0, got -0.5"),
        ("samples = 10", "samples = 1", "sampling.samples", "expected a value >= 2, got 1"),
        ("samples = 10", "samples = 10\nsamplez = 3", "sampling.samplez", "unknown key; expected one of"),
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


def test_exact_reference_refuses_configurations_outside_its_assumptions(tmp_path):
    path = write(tmp_path, GOOD.replace("width = 8", 'width = 8\nactivation = "tanh"'))
    with pytest.raises(CaseError, match=r"no reference applies \(all three need ReLU\)"):
        load_case_file(path)
    path = write(tmp_path, GOOD.replace("width = 8", "width = 8\nsigma_b2 = 0.1"))
    with pytest.raises(CaseError, match="sigma_b2 0.1\\); only the infinite-width reference applies"):
        load_case_file(path)


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
    assert not is_case_file(write(tmp_path, GOOD, name="pyproject.toml"))
    assert is_case_file(write(tmp_path, "[[case]\n", name="broken.toml"))  # so its error is shown
