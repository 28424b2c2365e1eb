"""``results.schema.json``, generated from the record types (``python -m harness.records.schema``).

The JSON Schema of a results file is not written by hand: every record is a dataclass
(:mod:`harness.records.serialize`), and this module turns the types into the schema, so the
two cannot drift. ``tests/report`` checks that the published file equals what this module
generates and validates every shipped results file against it. Only what is not a record
type is stated here: the document's envelope, a session (the front end's description of a
process) and a pytest-benchmark entry (pytest-benchmark's own format, of which the report
reads ``name`` and ``stats``).

    python -m harness.records.schema          # print the schema
    python -m harness.records.schema --write  # write harness/records/results.schema.json
"""
from __future__ import annotations

import json
import sys

from harness.records.base import OUTCOMES, SCHEMA_VERSION, CaseRecord
from harness.records.serialize import dataclass_schema, def_name

SESSION = {
    "description": "one process that wrote records: its command line, times, shard, workers and environment",
    "type": "object", "required": ["command", "started", "environment"],
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}}, "cwd": {"type": "string"},
        "started": {"type": "string"}, "finished": {"type": "string"}, "wall_seconds": {"type": "number"},
        "exitstatus": {"type": ["integer", "null"]}, "shard": {"type": ["string", "null"]},
        "workers": {"type": ["integer", "null"]}, "run_directory": {"type": "string"},
        "environment": {"type": "object"},
    },
}
BENCHMARK = {
    "description": "a pytest-benchmark entry (its own format; the report reads name and stats)",
    "type": "object", "required": ["name", "stats"],
    "properties": {"name": {"type": "string"}, "stats": {"type": "object", "required": ["min", "mean"]}},
}


def result_types() -> dict:
    """kind name -> result type, from the kinds' registry (:func:`harness.kinds.result_types`)."""
    from harness.kinds import result_types as registered

    return registered()


def generate() -> dict:
    """The schema of a results file (draft 2020-12)."""
    defs: dict[str, dict] = {}
    record = dataclass_schema(CaseRecord, defs)
    properties = record["properties"]
    properties["schema_version"] = {"const": SCHEMA_VERSION}
    properties["passed"] = {"type": "boolean", "description": "nothing unexpected: passed, or xfailed as declared"}
    properties["result"] = {"type": ["object", "null"], "description": "the kind's typed result (see allOf)"}
    properties["outcome"] = {"enum": list(OUTCOMES)}
    properties["phase"] = {"enum": ["ordered", "eoc", "chaotic", None]}
    properties["case"] = {"type": "string", "minLength": 1}
    record["required"] = ["schema_version"] + record["required"] + ["passed"]
    branches = []
    for kind, result_type in result_types().items():
        dataclass_schema(result_type, defs)   # fills defs with the result and the types it is made of
        name = def_name(result_type)
        defs[name] = dataclass_schema(result_type, defs)
        branches.append({"if": {"properties": {"kind": {"const": kind}, "result": {"type": "object"}}},
                         "then": {"properties": {"result": {"$ref": f"#/$defs/{name}"}}}})
    branches.append({"if": {"properties": {"outcome": {"const": "error"}}},
                     "then": {"properties": {"error": {"type": "string"}}}})
    record["properties"]["kind"] = {"type": "string", "description": "a kind's name, or 'invalid' for a case "
                                                                     "file that failed validation"}
    record["allOf"] = branches
    defs["record"] = record
    defs["session"] = SESSION
    defs["benchmark"] = BENCHMARK
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/ntk-harness/ntk-harness/harness/records/results.schema.json",
        "title": f"ntk-harness results.json (schema_version {SCHEMA_VERSION})",
        "description": ("What pytest --ntk-report-dir, ntk-harness run --json and ntk-harness report write; generated "
                        "from the record types by python -m harness.records.schema. Non-finite numbers are written "
                        "as null (NaN) or the strings \"inf\" / \"-inf\"."),
        "type": "object",
        "required": ["format", "schema_version", "complete", "sessions", "records", "benchmarks"],
        "properties": {
            "format": {"const": "ntk-harness-results"}, "schema_version": {"const": SCHEMA_VERSION},
            "complete": {"type": "boolean",
                         "description": "false when the run was interrupted; the records are the cases that finished"},
            "sessions": {"type": "array", "items": {"$ref": "#/$defs/session"}},
            "records": {"type": "array", "items": {"$ref": "#/$defs/record"}},
            "benchmarks": {"type": "array", "items": {"$ref": "#/$defs/benchmark"}},
            "benchmark_sources": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }


def text() -> str:
    return json.dumps(generate(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> None:
    if "--write" in argv:
        from harness.records.document import SCHEMA_PATH

        SCHEMA_PATH.write_text(text(), encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}")
    else:
        sys.stdout.write(text())


if __name__ == "__main__":
    main(sys.argv[1:])
