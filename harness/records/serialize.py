"""One generic path between typed records and JSON: written, read and described by type hints.

Every record type is a dataclass; its field annotations are the one description of its
format. Three functions follow them:

- :func:`write` -> plain JSON values (``{field: value}`` in declaration order; NaN as ``null``,
  +-inf as ``"inf"``/``"-inf"``, tuples as lists, int dict keys as strings);
- :func:`read` (annotation, JSON value) -> the typed value, raising :class:`RecordError` that
  names the dotted key and what was expected;
- :func:`schema` (annotation) -> its JSON Schema (draft 2020-12), with one ``$defs`` entry
  per dataclass, so that ``results.schema.json`` is generated (:mod:`harness.records.schema`)
  and cannot drift from the types.

Annotations understood: ``float`` (``None`` reads as NaN), ``int``, ``str``, ``bool``,
``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, ``dict[int, X]``, untyped
``dict`` / ``list`` (free JSON), ``typing.Any``, and dataclasses. A dataclass may define
``record_schema()`` and ``from_record`` together when its JSON form is not an object of its
fields (:class:`~harness.records.base.Interval` is ``[low, high]``). Field metadata
``schema={...}`` adds JSON Schema keywords (``enum``, ``minimum``); ``record=False`` leaves a
field out of the record (derived state).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any


class RecordError(ValueError):
    """A record that cannot be read; the message names the key and what was expected."""


def number(value: Any) -> float | None:
    """A JSON number (or the strings "inf", "-inf", "nan") as a float; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(f"expected a number, got boolean {value!r}")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise RecordError(f"expected a number, got string {value!r}") from None
    if isinstance(value, (int, float)):
        return float(value)
    raise RecordError(f"expected a number, got {type(value).__name__} {value!r}")


@functools.lru_cache(maxsize=None)
def fields_of(cls) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """The recorded fields of dataclass ``cls`` with their resolved annotations."""
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.metadata.get("record", True))


def write(value: Any) -> Any:
    """``value`` as plain JSON values (see the module docstring)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(type(value), "record_schema"):
            return write(value.to_record())
        return {f.name: write(getattr(value, f.name)) for f, _ in fields_of(type(value))}
    if isinstance(value, dict):
        return {str(k): write(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [write(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):   # numpy.float64 too (a float subclass): written as a plain float
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return write(value.item())
    if hasattr(value, "to_record") and callable(value.to_record):
        return write(value.to_record())
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to a record")


def _optional(annotation) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        raise TypeError(f"unsupported union in a record: {annotation}")
    return annotation, False


def read(annotation, value: Any, key: str = "record") -> Any:
    """The typed value of ``annotation`` from its JSON form; :class:`RecordError` names ``key``."""
    base, optional = _optional(annotation)
    if value is None and optional:
        return None
    origin = typing.get_origin(base)
    try:
        if base is Any or base is dict and origin is None or base is list and origin is None:
            return value
        if base is float:
            found = number(value)
            return math.nan if found is None else found
        if base is bool:
            if not isinstance(value, bool):
                raise RecordError(f"expected a boolean, got {value!r}")
            return value
        if base is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
                raise RecordError(f"expected an integer, got {value!r}")
            return int(value)
        if base is str:
            if not isinstance(value, str):
                raise RecordError(f"expected a string, got {value!r}")
            return value
        if origin in (list, tuple):
            if not isinstance(value, list):
                raise RecordError(f"expected a list, got {type(value).__name__} {value!r:.80}")
            item = typing.get_args(base)[0]
            items = [read(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
            return items if origin is list else tuple(items)
        if origin is dict:
            if not isinstance(value, dict):
                raise RecordError(f"expected an object, got {type(value).__name__} {value!r:.80}")
            key_type, item = typing.get_args(base)
            return {(int(k) if key_type is int else k): read(item, v, f"{key}.{k}") for k, v in value.items()}
        if dataclasses.is_dataclass(base):
            if hasattr(base, "record_schema"):
                return base.from_record(value)
            return read_dataclass(base, value, key)
    except RecordError as exc:
        if str(exc).startswith("key "):
            raise
        raise RecordError(f"key {key!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise RecordError(f"key {key!r}: {type(exc).__name__}: {exc}") from None
    raise TypeError(f"unsupported annotation in a record: {annotation}")


def read_dataclass(cls, value: Any, key: str = "record"):
    """An instance of dataclass ``cls`` from a JSON object of its fields; a missing field takes
    its default, a missing field without one is an error naming it."""
    if not isinstance(value, dict):
        raise RecordError(f"key {key!r}: expected an object ({cls.__name__}), got {type(value).__name__} "
                          f"{value!r:.80}")
    kwargs = {}
    for f, annotation in fields_of(cls):
        if f.name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"key {key + '.' + f.name!r}: required, missing")
            continue
        kwargs[f.name] = read(annotation, value[f.name], f"{key}.{f.name}")
    return cls(**kwargs)


class Record:
    """Mixin of the record dataclasses: ``to_record()`` and ``from_record(value)`` by their fields."""

    def to_record(self) -> dict:
        return write(self)

    @classmethod
    def from_record(cls, value: Any):
        return read_dataclass(cls, value, cls.__name__)


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


NUMBER = {"description": "a JSON number, null for NaN, or \"inf\" / \"-inf\"",
          "anyOf": [{"type": "number"}, {"type": "null"}, {"enum": ["inf", "-inf"]}]}


def schema(annotation, defs: dict[str, dict]) -> dict:
    """The JSON Schema of ``annotation``'s JSON form; dataclasses go into ``defs`` by name."""
    base, optional = _optional(annotation)
    out = _schema(base, defs)
    if optional:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _schema(base, defs: dict[str, dict]) -> dict:
    origin = typing.get_origin(base)
    if base is Any:
        return {}
    if base is dict and origin is None:
        return {"type": "object"}
    if base is list and origin is None:
        return {"type": "array"}
    if base is float:
        defs.setdefault("number", NUMBER)
        return _ref("number")
    if base is bool:
        return {"type": "boolean"}
    if base is int:
        return {"type": "integer"}
    if base is str:
        return {"type": "string"}
    if origin in (list, tuple):
        return {"type": "array", "items": schema(typing.get_args(base)[0], defs)}
    if origin is dict:
        key_type, item = typing.get_args(base)
        out = {"type": "object", "additionalProperties": schema(item, defs)}
        if key_type is int:
            out["propertyNames"] = {"pattern": "^-?[0-9]+$"}
        return out
    if isinstance(base, type) and issubclass(base, Record) and not dataclasses.is_dataclass(base):
        return {"type": "object"}   # an abstract record (a kind's result): its type is chosen by the record
    if dataclasses.is_dataclass(base):
        name = def_name(base)
        if name not in defs:
            defs[name] = {}   # recursion guard
            defs[name] = dataclass_schema(base, defs)
        return _ref(name)
    raise TypeError(f"unsupported annotation in a record: {base}")


def def_name(cls) -> str:
    """``EntryResult`` -> ``entry_result``, ``ProbeNTK`` -> ``probe_ntk``: the ``$defs`` key of a dataclass."""
    import re

    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls.__name__).lower()


def dataclass_schema(cls, defs: dict[str, dict]) -> dict:
    """The object schema of dataclass ``cls``: every recorded field a property and required
    (:func:`write` writes every field; :func:`read_dataclass` is lenient and takes a missing
    field's default), nothing else allowed."""
    if hasattr(cls, "record_schema"):
        return cls.record_schema(defs)
    properties, required = {}, []
    for f, annotation in fields_of(cls):
        prop = schema(annotation, defs)
        extra = f.metadata.get("schema")
        if extra:
            prop = {"allOf": [prop, extra]} if "$ref" in prop or "anyOf" in prop else {**prop, **extra}
        doc = f.metadata.get("doc")
        if doc:
            prop = {"description": doc, **prop} if "$ref" not in prop else {"description": doc, "allOf": [prop]}
        properties[f.name] = prop
        required.append(f.name)
    out = {"type": "object", "properties": properties, "additionalProperties": False}
    if cls.__doc__:
        out = {"description": " ".join(cls.__doc__.split("\n\n")[0].split()), **out}
    if required:
        out["required"] = required
    return out
