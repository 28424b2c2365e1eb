"""Every number two runs of the same cases share, compared: is a refactoring number-preserving?

    python docs/measurements/scripts/compare_numbers.py BEFORE/results.json AFTER/results.json [--tolerance 1e-12]

Records are matched by case id. For each pair, every numeric leaf of the record (the checks,
by name, and the typed result) is compared where both runs have it, after mapping the keys
that were renamed (``differential.networks`` -> ``differential.rechecked``, ``reference`` ->
``reference_implementation``, a check's ``reference`` -> ``target``, ``implementation`` ->
``implementation_spec``) and the training records' new layout (the phases' series moved from
``experiments`` to ``phases.values[i].series``). Times, hosts and versions are left out.
Prints the number of values compared, how many differ beyond the tolerance (relative), the
largest relative difference and where, and the keys present in only one run.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

SKIP = {"timing", "wall_seconds", "environment", "seconds", "training_seconds", "ntk_seconds",
        "implementation_seconds", "reference_seconds", "sessions"}
RENAMES = {"networks@differential": "rechecked", "reference@differential": "reference_implementation",
           "reference@checks": "target", "implementation@record": "implementation_spec",
           "implementation@implementations": "implementation_spec"}


def _read(path: str) -> dict:
    text = Path(path).read_bytes()
    if text[:2] == b"\x1f\x8b":
        import gzip

        text = gzip.decompress(text)
    return {r["case"]: r for r in json.loads(text)["records"]}


def _normalize(value, context: str = "record"):
    """The value with renamed keys mapped to their new names and skipped keys dropped."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in SKIP:
                continue
            out[RENAMES.get(f"{key}@{context}", key)] = _normalize(
                item, key if key in ("differential", "implementations", "checks") else context)
        return out
    if isinstance(value, list):
        return [_normalize(item, context) for item in value]
    return value


def _training(record: dict) -> dict:
    """A training record with the phases' series where the new layout keeps them."""
    result = record.get("result") or {}
    phases = result.get("phases")
    if phases and "claims" not in phases:   # the old layout: series in experiments, one measure
        by_sigma = {e["sigma_w2"]: e for e in result.get("experiments", [])}
        phases["values"] = [{**by_sigma.get(v["sigma_w2"], {}), "phase": v["phase"]} for v in phases["values"]]
        phases.pop("tests", None)
        result["experiments"] = [e for e in result.get("experiments", [])
                                 if e["sigma_w2"] not in {v["sigma_w2"] for v in phases["values"]}]
    return record


def _checks(record: dict) -> dict:
    return {c["name"]: c for c in record.get("checks") or []}


def _leaves(value, path: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if value in ("inf", "-inf"):
        return float(value)
    return None


def compare(before: dict, after: dict, tolerance: float) -> dict:
    compared, differing, worst, only = 0, [], (0.0, ""), set()
    for case in sorted(set(before) & set(after)):
        a, b = (_normalize(_training(json.loads(json.dumps(r)))) for r in (before[case], after[case]))
        for side in ("result", "checks"):
            left = a.get(side) if side == "result" else _checks(a)
            right = b.get(side) if side == "result" else _checks(b)
            lv, rv = dict(_leaves(left)), dict(_leaves(right))
            only |= {f"{side}.{k.split('[')[0]}" for k in set(lv) ^ set(rv)}
            for key in set(lv) & set(rv):
                x, y = _number(lv[key]), _number(rv[key])
                if x is None or y is None:
                    continue
                compared += 1
                if x == y or (math.isnan(x) and math.isnan(y)):
                    continue
                scale = max(abs(x), abs(y))
                relative = abs(x - y) / scale if scale else abs(x - y)
                if relative > worst[0]:
                    worst = (relative, f"{case} {side}.{key}: {x!r} vs {y!r}")
                if relative > tolerance:
                    differing.append(f"{case} {side}.{key}: {x!r} vs {y!r}")
    return {"cases": len(set(before) & set(after)), "only_before": sorted(set(before) - set(after)),
            "only_after": sorted(set(after) - set(before)), "compared": compared, "differing": differing,
            "worst": worst, "keys_in_one_run": sorted(only)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tolerance", type=float, default=1e-12)
    args = parser.parse_args()
    found = compare(_read(args.before), _read(args.after), args.tolerance)
    print(f"cases in both runs: {found['cases']} (only before: {len(found['only_before'])}, only after: "
          f"{len(found['only_after'])})")
    print(f"numbers compared: {found['compared']}; differing by more than {args.tolerance:g} relative: "
          f"{len(found['differing'])}")
    print(f"largest relative difference: {found['worst'][0]:.3g} ({found['worst'][1] or 'none'})")
    for line in found["differing"][:20]:
        print(f"  {line}")
    print(f"keys present in one run only ({len(found['keys_in_one_run'])}): "
          + ", ".join(found["keys_in_one_run"][:40]))


if __name__ == "__main__":
    main()
