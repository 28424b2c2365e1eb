"""Strict validation and sweep expansion of declarative case files (TOML); torch-free.

A case file holds one or more ``[[case]]`` tables::

    [[case]]
    name = "phases"              # required; the prefix of every case id
    kind = "dispersion"          # required; one of the registered kinds (harness.kinds.KINDS)
    markers = ["quick"]          # optional pytest markers
    implementation = "jacobian"  # optional NTK implementation (name or module:function)
    description = "..."          # optional
    expected_failure = "..."     # optional: a claim measured not to hold here (strict xfail)
    timeout = 7200               # optional: this case's time limit in seconds when --ntk-timeout is not given

    [case.network]               # sections: each kind says which it takes
    depth = [2, 4, 8]            # a list for a scalar key is a sweep
    ...

Sections are dataclasses (:mod:`harness.cases.sections` and each kind's spec); a kind's
``sections`` is a dataclass with one field per section (its name the table's, its type the
section's), and a case's ``sections`` is an instance of it. A section typed ``X | None`` is
``None`` when the case does not give it. Field
annotations give the type (int, float, bool, str, list[int], list[float], list[str], dict,
``X | None`` or a nested section dataclass for a sub-table); ``field(metadata=...)`` may
give ``doc``, ``choices``, ``min``, ``min_exclusive``, ``max``, ``max_exclusive``,
``min_length``. Every number must be finite. A field without a default is required. A
section may define ``validate(self)`` raising :class:`FieldError` for rules across fields,
and a kind may define ``validate(case)`` for rules across sections.

Sweeps: a list given for a scalar key, or a list of lists for a list key, or a list value in a
free-form table (a model factory's keyword arguments), is a sweep axis;
the cartesian product of all axes (in file order) gives the expanded cases. Every value is
validated, so one bad value fails the whole file with a :class:`CaseError` that names the
file, the case, the key and what was expected.

This module imports neither torch nor any kind: the kinds are passed in (a mapping of
name -> kind spec with ``sections``, ``case_id(case)`` and optionally ``validate(case)``).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

CASE_KEYS = {
    "name": "a non-empty string",
    "kind": "the kind of check",
    "markers": "a list of pytest marker names",
    "implementation": "an NTK implementation: a built-in name or 'package.module:function'",
    "description": "a string",
    "expected_failure": "the reason the case is expected to fail (a claim measured not to hold here, with the numbers)",
    "timeout": "this case's time limit in seconds, used when --ntk-timeout is not given: a number > 0",
}

#: Sweeps larger than this are refused at collection (a typo like depth = range(10000) should
#: not produce ten thousand items).
MAX_EXPANDED_CASES = 10_000


class FieldError(ValueError):
    """A value that does not fit its key: ``key`` (dotted, e.g. ``network.width``) and ``reason``."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


class CaseError(ValueError):
    """A case file that cannot be used; the message names file, case and key."""

    def __init__(self, source: Path | str, message: str, case: str | None = None, key: str | None = None):
        self.source = str(source)
        self.case = case
        self.key = key
        self.reason = message
        where = self.source
        if case is not None:
            where += f": case {case!r}"
        if key is not None:
            where += f": key {key!r}"
        super().__init__(f"{where}: {message}")


@dataclass
class Case:
    """One expanded case: validated sections, its id and where it came from.

    ``id`` is ``name[readable-parameters]`` (the kind's ``case_id``), unique within its file
    (two cases of one id are refused, naming both); it is the pytest item name and the
    record's ``case``.
    ``sections``: the kind's typed sections (an instance of ``kind.sections``:
    ``case.sections.network``, ...). ``implementation_spec``: the case's ``implementation`` key,
    the implementation's spec as the user wrote it.
    """

    name: str
    kind: str
    sections: Any
    source: Path
    markers: list[str] = field(default_factory=list)
    implementation_spec: str | None = None
    description: str = ""
    sweep: dict[str, Any] = field(default_factory=dict)
    index: int = 0
    id: str = ""
    expected_failure: str | None = None
    timeout: float | None = None
    #: which [[case]] table of its file it expands (0-based)
    position: int = 0


# ---------------------------------------------------------------- type handling
def _strip_optional(annotation):
    """(base type, optional?) of ``X | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _is_list(annotation) -> bool:
    return typing.get_origin(annotation) is list


def _is_dict(annotation) -> bool:
    return annotation is dict or typing.get_origin(annotation) is dict


def _describe(annotation) -> str:
    base, _optional = _strip_optional(annotation)
    if _is_list(base):
        (item,) = typing.get_args(base)
        return f"a list of {_describe(item).removeprefix('a ').removeprefix('an ')}s"
    if dataclasses.is_dataclass(base) or _is_dict(base):
        return "a table"
    return {int: "an integer", float: "a finite number", bool: "a boolean (true/false)", str: "a string"}.get(
        base, str(base))


def _type_name(value) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "table"}.get(
        type(value), type(value).__name__)


def _convert_scalar(value, base, key: str):
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise FieldError(key, f"expected a finite number, got an integer of {len(str(value))} digits") from None
            if not math.isfinite(number):
                raise FieldError(key, f"expected a finite number, got {value!r}")
            return number
    elif base is str:
        if isinstance(value, str):
            return value
    raise FieldError(key, f"expected {_describe(base)}, got {_type_name(value)} {value!r}")


def _check_metadata(value, metadata, key: str) -> None:
    items = value if isinstance(value, list) else [value]
    choices = metadata.get("choices")
    for item in items:
        if choices is not None and item not in choices:
            raise FieldError(key, f"expected one of {', '.join(map(repr, choices))}, got {item!r}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if "min" in metadata and not item >= metadata["min"]:
                raise FieldError(key, f"expected a value >= {metadata['min']}, got {item!r}")
            if "min_exclusive" in metadata and not item > metadata["min_exclusive"]:
                raise FieldError(key, f"expected a value > {metadata['min_exclusive']}, got {item!r}")
            if "max" in metadata and not item <= metadata["max"]:
                raise FieldError(key, f"expected a value <= {metadata['max']}, got {item!r}")
            if "max_exclusive" in metadata and not item < metadata["max_exclusive"]:
                raise FieldError(key, f"expected a value < {metadata['max_exclusive']}, got {item!r}")
    if "min_length" in metadata and isinstance(value, list) and len(value) < metadata["min_length"]:
        raise FieldError(key, f"expected at least {metadata['min_length']} entries, got {len(value)}")


def _check_table_values(value, key: str):
    """A free-form table (``dict`` fields such as a model's keyword arguments): TOML values,
    every number finite."""
    if isinstance(value, dict):
        return {k: _check_table_values(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_check_table_values(v, key) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise FieldError(key, f"expected a finite number, got {value!r}")
    return value


@functools.lru_cache(maxsize=None)
def _fields(cls) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def build_section(cls, table: Any, key_prefix: str):
    """Validate one (already expanded) table against the section dataclass ``cls``; raises
    :class:`FieldError`."""
    if not isinstance(table, dict):
        raise FieldError(key_prefix, f"expected a table, got {_type_name(table)} {table!r}")
    fields = _fields(cls)
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise FieldError(f"{key_prefix}.{unknown[0]}", f"unknown key; expected one of: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, (f, annotation) in fields.items():
        key = f"{key_prefix}.{name}"
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise FieldError(key, f"required key is missing; expected {_describe(annotation)}")
            continue
        value = table[name]
        base, _optional = _strip_optional(annotation)
        if dataclasses.is_dataclass(base):
            kwargs[name] = build_section(base, value, key)
            continue
        if _is_dict(base):
            if not isinstance(value, dict):
                raise FieldError(key, f"expected a table, got {_type_name(value)} {value!r}")
            kwargs[name] = _check_table_values(value, key)
            continue
        if _is_list(base):
            if not isinstance(value, list):
                raise FieldError(key, f"expected {_describe(base)}, got {_type_name(value)} {value!r}")
            (item_type,) = typing.get_args(base)
            value = [_convert_scalar(v, item_type, key) for v in value]
        else:
            value = _convert_scalar(value, base, key)
        _check_metadata(value, f.metadata, key)
        kwargs[name] = value
    section = cls(**kwargs)
    validate = getattr(section, "validate", None)
    if validate is not None:
        validate()
    return section


def _sweep_axes(cls, table: dict, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], list]]:
    """The sweep axes of a section table: (path of keys, list of values)."""
    axes = []
    if not isinstance(table, dict):
        return axes
    fields = _fields(cls)
    for name, value in table.items():
        if name not in fields:
            continue  # reported by build_section with the allowed keys
        base, _ = _strip_optional(fields[name][1])
        if dataclasses.is_dataclass(base):
            axes += _sweep_axes(base, value, path + (name,))
        elif _is_dict(base):
            # a free-form table (a model factory's keyword arguments): a list value is a sweep
            # over that argument; a list argument itself is written as a list of one list
            if isinstance(value, dict):
                for argument, values in value.items():
                    if isinstance(values, list):
                        if not values:
                            raise FieldError(".".join(path + (name, argument)), "an empty list sweeps nothing")
                        axes.append((path + (name, argument), values))
        elif _is_list(base):
            if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
                axes.append((path + (name,), value))
        elif isinstance(value, list):
            if not value:
                raise FieldError(".".join(path + (name,)), f"an empty list sweeps nothing; expected {_describe(base)}")
            axes.append((path + (name,), value))
    return axes


def _set_path(table: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        table = table[key]
    table[path[-1]] = value


# ---------------------------------------------------------------- loading
_CASE_TABLE = re.compile(r"^\s*\[\[\s*case\s*\]", re.MULTILINE)
_KIND_KEY = re.compile(r"^\s*kind\s*=", re.MULTILINE)


def is_case_file(path: Path) -> bool:
    """Is ``path`` an ntk-harness case file?

    A ``.toml`` file whose top level holds ``[[case]]`` tables of which at least one has a
    ``kind`` key. A file that does not parse counts only if its text has both a
    ``[[case]]`` header and a ``kind =`` line (so that a broken case file is reported, and
    another project's broken TOML is left alone).
    """
    if path.suffix != ".toml":
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return bool(_CASE_TABLE.search(text) and _KIND_KEY.search(text))
    tables = data.get("case")
    return isinstance(tables, list) and any(isinstance(t, dict) and "kind" in t for t in tables)


def section_fields(kind) -> dict[str, tuple[type, bool]]:
    """A kind's sections: name -> (section dataclass, optional?), from the fields of ``kind.sections``."""
    return {f.name: _strip_optional(annotation) for f, annotation in
            ((f, _fields(kind.sections)[f.name][1]) for f in dataclasses.fields(kind.sections))}


def _case_name(raw, position: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name else f"#{position + 1}"


@dataclass
class TopLevel:
    """The validated top-level keys of one ``[[case]]`` table (:data:`CASE_KEYS`)."""

    name: str
    kind: str
    markers: list[str]
    implementation: str | None
    description: str
    expected_failure: str | None
    timeout: float | None


def _top_level(raw: Any, fail, kinds: Mapping[str, Any], source: Path, position: int) -> TopLevel:
    """The top-level keys of a ``[[case]]`` table, each checked; ``fail(message, key)`` makes the error."""
    if not isinstance(raw, dict):
        raise CaseError(source, f"[[case]] entry {position + 1} must be a table")
    for key in ("name", "kind"):
        if key not in raw:
            raise fail(f"required key is missing; expected {CASE_KEYS[key]}", key)
    if not isinstance(raw["name"], str) or not raw["name"].strip():
        raise fail(f"expected a non-empty string, got {raw['name']!r}", "name")
    kind_name = raw["kind"]
    if not isinstance(kind_name, str) or kind_name not in kinds:
        raise fail(f"expected one of {', '.join(map(repr, sorted(kinds)))}, got {kind_name!r}", "kind")
    markers = raw.get("markers", [])
    if not isinstance(markers, list) or not all(isinstance(m, str) and m.isidentifier() for m in markers):
        raise fail(f"expected {CASE_KEYS['markers']} (identifiers), got {markers!r}", "markers")
    implementation = raw.get("implementation")
    if implementation is not None and (not isinstance(implementation, str) or not implementation):
        raise fail(f"expected {CASE_KEYS['implementation']}, got {implementation!r}", "implementation")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail(f"expected a string, got {description!r}", "description")
    expected_failure = raw.get("expected_failure")
    if expected_failure is not None and (not isinstance(expected_failure, str) or not expected_failure.strip()):
        raise fail(f"expected {CASE_KEYS['expected_failure']}, got {expected_failure!r}", "expected_failure")
    timeout = raw.get("timeout")
    if timeout is not None:
        from harness.options import MAX_TIMEOUT_SECONDS

        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise fail(f"expected a number of seconds > 0 and <= {MAX_TIMEOUT_SECONDS:g} (this case's own time limit), "
                       f"got {timeout!r}", "timeout")
        timeout = float(timeout)
    return TopLevel(raw["name"], kind_name, list(markers), implementation, description, expected_failure, timeout)


def expand_case(raw: dict, source: Path, position: int, kinds: Mapping[str, Any]) -> list[Case]:
    """Validate one ``[[case]]`` table and expand its sweeps into cases (ids not yet set)."""
    label = _case_name(raw, position)

    def fail(message: str, key: str | None = None):
        return CaseError(source, message, case=label, key=key)

    top = _top_level(raw, fail, kinds, source, position)
    kind = kinds[top.kind]
    sections = {k: v for k, v in raw.items() if k not in CASE_KEYS}
    allowed = section_fields(kind)
    for name, table in sections.items():
        if name not in allowed:
            raise fail(
                f"unknown key or section for kind {top.kind!r}; expected one of: "
                f"{', '.join(sorted(set(CASE_KEYS) | set(allowed)))}", name)
        if not isinstance(table, dict):
            raise fail(f"expected a table [case.{name}], got {_type_name(table)}", name)
    axes: list[tuple[tuple[str, ...], list]] = []
    try:
        for name, (cls, _optional) in allowed.items():
            if name in sections:
                axes += _sweep_axes(cls, sections[name], (name,))
    except FieldError as exc:
        raise fail(exc.reason, exc.key) from None
    total = math.prod(len(values) for _, values in axes) if axes else 1
    if total > MAX_EXPANDED_CASES:
        raise fail(f"the sweeps expand to {total} cases, more than {MAX_EXPANDED_CASES}; split the file")
    combos = itertools.product(*[values for _, values in axes]) if axes else [()]
    return [_sweep_point(top, kind, sections, axes, combo, index, source, fail) for index, combo in enumerate(combos)]


def _sweep_point(top: TopLevel, kind, sections: dict, axes, combo, index: int, source: Path, fail) -> Case:
    """One case of the sweep: the sections with this point's values, built and validated."""
    concrete = copy.deepcopy(sections)
    sweep = {}
    for (path, _), value in zip(axes, combo):
        _set_path(concrete, path, value)
        sweep[".".join(path)] = value
    suffix = f" (in the sweep point {sweep})" if sweep else ""
    built = {}
    for name, (cls, optional) in section_fields(kind).items():
        if optional and name not in concrete:
            built[name] = None   # an optional section the case does not give
            continue
        try:
            built[name] = build_section(cls, concrete.get(name, {}), name)
        except FieldError as exc:
            raise fail(exc.reason + suffix, exc.key) from None
        except ValueError as exc:  # a rule without a key: the section names the file and case
            raise fail(f"{exc}{suffix}", name) from None
    case = Case(name=top.name, kind=top.kind, sections=kind.sections(**built), source=source, markers=top.markers,
                implementation_spec=top.implementation, description=top.description, sweep=sweep, index=index,
                expected_failure=top.expected_failure, timeout=top.timeout)
    validate = getattr(kind, "validate", None)
    if validate is not None:
        try:
            validate(case)
        except FieldError as exc:
            raise fail(exc.reason + suffix, exc.key) from None
        except ValueError as exc:
            raise fail(f"{exc}{suffix}") from None
    return case


def assign_ids(cases: list[Case], kinds: Mapping[str, Any], source: Path | str = "<cases>") -> list[Case]:
    """Set each case's ``id`` to ``name[kind.case_id(case)]``; two cases of one id are refused,
    naming both (two ``[[case]]`` tables of one name and the same parameters, or two points of
    one sweep that the id does not tell apart)."""
    seen: dict[str, Case] = {}
    for case in cases:
        case.id = f"{case.name}[{kinds[case.kind].case_id(case)}]"
        if case.id in seen:
            first = seen[case.id]
            where = (f"[[case]] tables {first.position + 1} and {case.position + 1} of the file"
                     if first.position != case.position else
                     f"the sweep points {first.sweep} and {case.sweep} of [[case]] table {case.position + 1}")
            raise CaseError(source, f"two cases have the id {case.id!r}: {where}; give them distinct names "
                                    "(or parameters that tell them apart)", case=case.name, key="name")
        seen[case.id] = case
    return cases


def load_case_file(path: str | Path, kinds: Mapping[str, Any], known_markers=None) -> list[Case]:
    """Parse, validate and expand every case of one file, with ids; raises :class:`CaseError`.

    Two cases of one id are refused, naming both positions (:func:`assign_ids`); tables that
    share a name but differ in the parameters the id shows stay distinct cases (the id tells
    them apart; ``cases/dispersion/quick.toml`` names all its tables ``quick``). ``known_markers``: the
    markers a case may carry (the harness's and, under pytest, those registered in its
    configuration); a case naming another is refused, naming the marker. None: not checked.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(path, f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(path, f"cannot read the file: {exc}") from None
    except ValueError as exc:   # e.g. an integer of more digits than Python converts
        raise CaseError(path, f"not valid TOML: {str(exc).splitlines()[0]}") from None
    unknown = sorted(set(data) - {"case"})
    if unknown:
        raise CaseError(path, "unknown top-level key; a case file holds only [[case]] tables", key=unknown[0])
    raw_cases = data.get("case")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise CaseError(path, "expected one or more [[case]] tables")
    cases: list[Case] = []
    for position, raw in enumerate(raw_cases):
        expanded = expand_case(raw, path, position, kinds)
        for case in expanded:
            case.position = position
        name = expanded[0].name
        if known_markers is not None:
            for marker in expanded[0].markers:
                if marker not in known_markers:
                    raise CaseError(path, f"unknown marker {marker!r}; expected one of "
                                          f"{', '.join(sorted(known_markers))} (register your own in pytest's "
                                          "'markers' setting)", case=name, key="markers")
        cases += expanded
    return assign_ids(cases, kinds, path)
