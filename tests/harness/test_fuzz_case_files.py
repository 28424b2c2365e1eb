"""Property-based fuzz of case files: every outcome is valid cases, or ONE line naming the file
(and the key, when the problem has one); never another exception, never a traceback.

hypothesis starts from a valid case table of each kind (dispersion, agreement, training) and
mutates it: drops keys and sections, adds unknown keys, sets values of the wrong type, NaN,
infinities, -0.0, subnormals, huge and negative integers, strings (with newlines), lists
(sweeps, some of them empty or too long to expand), nested tables. The table is written as
TOML (a small writer below: tomllib only reads) and loaded with :func:`harness.kinds.load_cases`.

A few of the valid files (a deterministic subset, sizes clamped to width <= 8, depth <= 3,
networks <= 20, training steps <= 3) also run through :func:`harness.runner.run_case`: the record's outcome must be
a named one (passed, failed, error, or the x-variants of an expected failure) with a one-line
error, whatever the values (sigma_w2 = 1e308 overflows the NTK: a failed check, not a crash).

Budget: 200 examples, derandomized (the same examples on every run), no deadline, at most 3
runs per base case; about 10 s on 2 shared CPU cores, most of it in the runs. (Run with
``max_examples=4000, derandomize=False`` while changing the schema or a kind's validate.)
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
import tempfile
import types
import typing
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cases.schema import Case, CaseError, section_fields
from harness.kinds import KINDS, load_cases
from harness.options import RunOptions

BASES = {
    "dispersion": {
        "name": "fuzz", "kind": "dispersion",
        "network": {"width": 4, "depth": 2, "sigma_w2": 2.0},
        "inputs": {"inner_products": [1.0, 0.5]},
        "sampling": {"networks": 8, "seed": 1},
        "expect": {"theories": ["exact"], "statistics": ["mean", "log_mean"], "goodness_of_fit": False},
    },
    "agreement": {
        "name": "fuzz", "kind": "agreement", "implementation": "jacobian",
        "network": {"width": 4, "depth": 2, "sigma_w2": 2.0, "output_dim": 2},
        "agreement": {"networks": 2, "inputs": 3, "other_inputs": 2, "call_shapes": ["cross", "self"]},
    },
    "training": {
        "name": "fuzz", "kind": "training",
        "network": {"width": 4, "depth": 2, "sigma_w2": 2.0, "input_dim": 64, "output_dim": 10},
        "training": {"learning_rate": 0.1, "steps": 2, "networks": 2, "probe_per_class": 2, "checkpoints": [0, 2]},
        "expect": {"eoc": {"train_loss_at_most": 10.0}},
    },
    "dispersion-references": {
        "name": "fuzz", "kind": "dispersion",
        "network": {"hidden_widths": [4, 3], "sigma_w2": 1.0, "input_dim": 3},
        "inputs": {"kind": "random", "count": 2, "norm": 2.0},
        "sampling": {"networks": 8, "dtype": "float32"},
        "expect": {"theories": ["asymptotic", "infinite-width"],
                   "tolerance": {"ordered": 9.0, "eoc": 9.0, "chaotic": 9.0},
                   "mean_tolerance": {"ordered": 9.0, "eoc": 9.0, "chaotic": 9.0}},
    },
    "training-trends": {
        "name": "fuzz", "kind": "training",
        "network": {"width": 4, "depth": 2, "sigma_w2": 2.0, "input_dim": 32, "output_dim": 3},
        "training": {"learning_rate": 0.1, "steps": 2, "networks": 2, "probe_per_class": 2,
                     "dataset": "teacher_student", "classes": 3, "dataset_size": 60, "optimizer": "adam"},
        "depth_trend": {"depths": [1, 2]},
        "scaling": {"width_values": [2, 4], "depth_to_width": 0.5},
        "expect": {"eoc": {"depth_slope_not_above": 100.0, "width_exponent_not_below": -100.0}},
    },
}
TOP_LEVEL = ("name", "kind", "markers", "implementation", "description", "expected_failure")
OUTCOMES = {"passed", "failed", "error", "xfailed", "xpassed"}
#: At most this many runs per base case in one session (a guard on time; the runs are chosen
#: by the examples themselves, see ``run`` in the test).
MAX_RUNS_PER_BASE = 3


# ----------------------------------------------------------------------------- TOML writer
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and every control character escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def _table(lines: list[str], path: list[str], table: dict) -> None:
    for key, value in table.items():
        if not isinstance(value, dict):
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            lines.append("")
            lines.append("[" + ".".join(toml_key(k) for k in path + [key]) + "]")
            _table(lines, path + [key], value)


def toml_case_file(cases: list[dict]) -> str:
    """``[[case]]`` tables; sub-tables as ``[case.<section>...]`` headers, tables inside lists inline."""
    lines: list[str] = []
    for case in cases:
        lines.append("[[case]]")
        _table(lines, ["case"], case)
        lines.append("")
    return "\n".join(lines) + "\n"


def test_the_toml_writer_round_trips():
    import tomllib

    table = {"name": 'a "b"\n\x7f', "kind": "x", "n": -0.0, "f": [math.inf, -math.inf, 5e-324, 1e308, 10**30],
             "network": {"w": 3, "deep": {"x": [{"a": 1}, [True, "t"]], "é k": 1.5}}, "empty": {}}
    parsed = tomllib.loads(toml_case_file([table]))["case"][0]
    assert math.isnan(tomllib.loads("x = " + toml_value(math.nan))["x"])
    assert math.copysign(1.0, parsed.pop("n")) == -1.0
    table.pop("n")
    assert parsed == table


def test_the_base_cases_are_valid_and_clamping_keeps_them_valid(tmp_path):
    for label, case in BASES.items():
        for table in (case, clamped(case)):
            path = tmp_path / f"{label}.toml"
            path.write_text(toml_case_file([table]), encoding="utf-8")
            assert load_cases(path), label


# ----------------------------------------------------------------------------- strategies
def _base_type(annotation):
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _section_fields(cls, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], typing.Any, dict]]:
    """Every key path of a section dataclass (nested sections included), its type and metadata."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        base = _base_type(hints[f.name])
        out.append((prefix + (f.name,), base, dict(f.metadata)))
        if dataclasses.is_dataclass(base):
            out += _section_fields(base, prefix + (f.name,))
    return out


def plausible(annotation, metadata: dict):
    """Values the schema's own metadata allows (choices, bounds), extremes included; the rules
    across fields may still refuse them."""
    if metadata.get("choices"):
        choices = list(metadata["choices"])
        if typing.get_origin(annotation) is list:
            return st.lists(st.sampled_from(choices), min_size=1, max_size=len(choices), unique=True)
        return st.sampled_from(choices)
    low = metadata.get("min", metadata.get("min_exclusive"))
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        start = 0 if low is None else math.ceil(low + (1 if "min_exclusive" in metadata else 0))
        return st.integers(start, start + 6)
    if annotation is float:
        extremes = [0.5, 1.0, 2.0, 3.0, 0.05, 1e-300, 5e-324, 1e308] if low is not None and low >= 0 else \
            [0.5, -0.5, 0.0, 2.0, -2.0, 1e308, -1e308]
        high = metadata.get("max", metadata.get("max_exclusive"))
        ok = [v for v in extremes if (low is None or v > low or ("min" in metadata and v == low))
              and (high is None or v < high or ("max" in metadata and v == high))]
        return st.sampled_from(ok or [low])
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return st.lists(plausible(item, metadata), min_size=metadata.get("min_length", 0), max_size=3)
    if annotation is str:
        return NAMES
    return st.dictionaries(st.sampled_from(["a", "width"]), SCALARS, max_size=2)   # free-form tables


# section keys first: hypothesis leans towards the first entries of sampled_from
FIELDS = {
    kind: {path: (annotation, metadata) for name, (cls, _optional) in section_fields(spec).items()
           for path, annotation, metadata in _section_fields(cls, (name,))}
    for kind, spec in KINDS.items() if kind in {base["kind"] for base in BASES.values()}
}
KEY_PATHS = {kind: list(FIELDS[kind]) + [(name,) for name in section_fields(KINDS[kind])] + [(key,) for key in TOP_LEVEL]
             for kind in FIELDS}

NAMES = st.sampled_from(["", "relu", "tanh", "erf", "float32", "float64", "cpu", "cuda:7", "banana", "exact",
                         "asymptotic", "infinite-width", "digits", "mnist", "teacher_student", "adam", "sgd", "ntk",
                         "standard", "jacobian", "structured", "nosuch:fn", "json:dumps", "ordered", "random",
                         "correlated", "mean", "dispersion", "relative_change", "quick", "paper", "line\nbreak"])
TEXT = st.text(alphabet="ab _-.:/\n\"\\é\x00\x7f", max_size=8)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e-300, 1e308, -1.0, 0.5, 1.0, 2.0, 1e6]),
)
# integers up to 10^30 (beyond 64 bits; integers beyond the float range are a known schema bug,
# tests/harness/test_bad_inputs.py::test_integers_beyond_the_float_range_are_a_case_error)
INTEGERS = st.one_of(
    st.integers(-3, 70),
    st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64, 10**18, 10**30, 100000, 10**12]),
)
SCALARS = st.one_of(st.booleans(), INTEGERS, FLOATS, NAMES, TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["a", "width", "ordered", "x y"]), children, max_size=3)),
    max_leaves=6,
)


def _get(table: dict, path: tuple[str, ...]):
    for key in path[:-1]:
        table = table.get(key) if isinstance(table, dict) else None
    return table if isinstance(table, dict) else None


@st.composite
def mutated_case(draw, base: str):
    """The base case ``base`` with 1 to 4 mutations; returns (table, list of (action, path))."""
    case = copy.deepcopy(BASES[base])
    kind = case["kind"]
    mutations = []
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["plausible", "value", "plausible-sweep", "value", "sweep", "drop", "unknown",
                                       "table", "long-sweep"]))
        path = draw(st.sampled_from(list(FIELDS[kind]) if action.startswith("plausible") else KEY_PATHS[kind]))
        if action == "unknown":
            path = path[:-1] + (draw(st.sampled_from(["widht", "sigma-w2", "extra", "é", "case"])),)
        parent = _get(case, path)
        if parent is None:   # the path runs through a value that is no table (an earlier mutation)
            continue
        key = path[-1]
        if action == "drop":
            parent.pop(key, None)
        elif action.startswith("plausible"):
            if dataclasses.is_dataclass(FIELDS[kind][path][0]):
                continue
            values = plausible(*FIELDS[kind][path])
            parent[key] = draw(st.lists(values, min_size=1, max_size=3) if action.endswith("sweep") else values)
        elif action in ("value", "unknown"):
            parent[key] = draw(VALUES)
        elif action == "sweep":
            parent[key] = draw(st.lists(SCALARS, max_size=4))
        elif action == "long-sweep":   # 3 x 101 x ... sweep points: beyond MAX_EXPANDED_CASES only with another
            parent[key] = list(range(1, 102))
        else:
            parent[key] = draw(st.dictionaries(st.sampled_from(["a", "ordered", "width"]), SCALARS, max_size=2))
        mutations.append((action, path))
    return case, mutations


# ----------------------------------------------------------------------------- runs
def _clamp_number(value, high):
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return max(min(value, high), 1) if value > high else value
    if isinstance(value, list):
        return [_clamp_number(v, high) for v in value]
    return value


def clamped(case: dict) -> dict:
    """The same case at a size that runs in about a second: widths <= 8, depth <= 3, networks
    <= 20, training steps <= 3; sweeps are clamped value by value."""
    case = copy.deepcopy(case)
    limits = {
        "network": {"width": 8, "depth": 3, "hidden_widths": 8, "input_dim": 8, "output_dim": 3},
        "sampling": {"networks": 20},
        "inputs": {"count": 4},
        "agreement": {"networks": 3, "inputs": 4, "other_inputs": 3},
        "training": {"steps": 3, "networks": 2, "probe_per_class": 2, "dataset_size": 200, "classes": 4,
                     "checkpoints": 3, "eigenvalues": 3},
        "depth_trend": {"depths": 3},
        "scaling": {"width_values": 8, "depth": 3},
    }
    if case.get("kind") == "training":   # the dataset fixes input_dim and output_dim
        limits["network"].pop("input_dim")
        limits["network"].pop("output_dim")
    for section, keys in limits.items():
        table = case.get(section)
        if not isinstance(table, dict):
            continue
        for key, high in keys.items():
            if key in table:
                table[key] = _clamp_number(table[key], high)
        if section == "network" and isinstance(table.get("hidden_widths"), list):
            widths = table["hidden_widths"]
            table["hidden_widths"] = widths[:3] if widths and not isinstance(widths[0], list) else [
                w[:3] if isinstance(w, list) else w for w in widths]
            if "depth" in table and isinstance(table["hidden_widths"], list) and table["hidden_widths"]:
                if not isinstance(table["hidden_widths"][0], list):
                    table["depth"] = len(table["hidden_widths"])
    scaling = case.get("scaling")
    if isinstance(scaling, dict) and "depth" not in scaling and "width_values" in scaling:
        scaling["depth"] = 1
    return case


_RUNS = {base: 0 for base in BASES}


def run_and_check(path: Path, case: Case, cache: Path) -> None:
    from harness.runner import run_case

    record = run_case(case, RunOptions(cache_dir=cache, timeout_seconds=60))
    assert record.outcome in OUTCOMES, record.outcome
    if record.outcome == "error":
        assert record.error and "\n" not in record.error, record.error
    for check in record.checks:
        assert check.name


# ----------------------------------------------------------------------------- the property
@settings(max_examples=200, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzzed_case_files_load_or_fail_with_one_line(data):
    base = data.draw(st.sampled_from(sorted(BASES)), label="base")
    case, mutations = data.draw(mutated_case(base), label="case")
    kind = BASES[base]["kind"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_text(toml_case_file([case]), encoding="utf-8")
        try:
            cases = load_cases(path)
        except CaseError as exc:
            message = str(exc)
            assert "\n" not in message and "\r" not in message, message
            assert message.startswith(f"{path}: "), message
            assert "not valid TOML" not in message, message   # the writer's own check
            if exc.key is not None:
                assert f"key {exc.key!r}" in message, message
            # a mutated value inside a section is always reported with a key
            if mutations and all(len(p) > 1 for _, p in mutations) and "expand to" not in message:
                assert exc.key is not None, message
            return
        assert cases and all(isinstance(c, Case) and c.kind == kind and c.id for c in cases)
        assert len({c.id for c in cases}) == len(cases)
        # a few valid files also run, at a clamped size (chosen by the example: shrinks like it)
        if data.draw(st.integers(0, 3), label="run") != 0 or _RUNS[base] >= MAX_RUNS_PER_BASE:
            return
        small = Path(folder) / "small.toml"
        small.write_text(toml_case_file([clamped(case)]), encoding="utf-8")
        try:
            runnable = load_cases(small)
        except CaseError:
            return   # clamping made it invalid (e.g. more inputs than the clamped input_dim)
        _RUNS[base] += 1
        run_and_check(small, runnable[0], Path(folder) / "cache")
