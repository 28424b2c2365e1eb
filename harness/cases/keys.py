"""Every key of every case file section, as a markdown reference (docs/case-keys.md).

The section dataclasses are the one source of the keys, their types, defaults, allowed
values and descriptions; this module renders them, and a test checks that
docs/case-keys.md is the current rendering::

    python -m harness.cases.keys > docs/case-keys.md
"""
from __future__ import annotations

import dataclasses
import typing

from harness.cases.schema import CASE_KEYS, _describe, _fields, _strip_optional


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("``", "`")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "**required**"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]"
    if dataclasses.is_dataclass(value):
        return "(table)"
    return str(value)


def _rules(metadata) -> str:
    parts = []
    if "choices" in metadata:
        parts.append(" \\| ".join(str(c) for c in metadata["choices"]))
    for key, symbol in (("min", ">="), ("min_exclusive", ">"), ("max", "<="), ("max_exclusive", "<")):
        if key in metadata:
            parts.append(f"{symbol} {metadata[key]:g}" if isinstance(metadata[key], float) else f"{symbol} {metadata[key]}")
    if "min_length" in metadata:
        parts.append(f"at least {metadata['min_length']} entries")
    return "; ".join(parts)


def _section_rows(cls, prefix: str) -> list[str]:
    rows = []
    for name, (f, annotation) in _fields(cls).items():
        base, _ = _strip_optional(annotation)
        key = f"{prefix}.{name}"
        if dataclasses.is_dataclass(base):
            rows.append(f"| `{key}` | sub-table [case.{key}] | {_default(f)} | | {_escape(f.metadata.get('doc', ''))} |")
            rows += _section_rows(base, key)
            continue
        rows.append(f"| `{key}` | {_describe(annotation).removeprefix('a ').removeprefix('an ')} | {_default(f)} | "
                    f"{_rules(f.metadata)} | {_escape(f.metadata.get('doc', ''))} |")
    return rows


def render(kinds) -> str:
    """The markdown reference of every kind's sections and keys."""
    lines = ["# Case file keys", "",
             "Generated from the section dataclasses (`python -m harness.cases.keys > docs/case-keys.md`); "
             "a test checks it is current. A list given for a scalar key (or a list of lists for a list key) "
             "is a sweep. Every number must be finite.", "",
             "## Every case", "", "| key | meaning |", "|---|---|"]
    lines += [f"| `{key}` | {_escape(text)} |" for key, text in CASE_KEYS.items()]
    lines.append("")
    from harness.cases.schema import section_fields

    for name, kind in kinds.items():
        import sys

        summary = (sys.modules[type(kind).__module__].__doc__ or "").strip().splitlines()
        lines += [f"## kind = \"{name}\"", "", _escape(summary[0]) if summary else ""]
        lines += ["", "| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for section, (cls, optional) in section_fields(kind).items():
            marker = " (optional section)" if optional else ""
            lines.append(f"| **[case.{section}]**{marker} | | | | {_escape((cls.__doc__ or '').strip().splitlines()[0])} |")
            lines += _section_rows(cls, section)
        lines.append("")
    return "\n".join(line for line in lines).rstrip() + "\n"


def main() -> None:
    from harness.kinds import KINDS

    print(render(KINDS), end="")


if __name__ == "__main__":
    main()
