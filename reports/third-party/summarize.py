"""Tables of reports/third-party/README.md from results files (results.json or .json.gz).

    python reports/third-party/summarize.py NAME=path/to/results.json[.gz] [...]

For each NAME (an adapter and suite, e.g. ``backpack quick``): the count of each outcome, then
every failed or errored case with its failed checks and each diagnosis line (the lines of a
failed check's detail that start with "It " or "The "), and every skip reason once.
"""
from __future__ import annotations

import collections
import gzip
import json
import sys
from pathlib import Path


def load(path: str) -> dict:
    raw = Path(path).read_bytes()
    return json.loads(gzip.decompress(raw) if path.endswith(".gz") else raw)


def summarize(name: str, document: dict) -> list[str]:
    records = document["records"]
    counts = collections.Counter(r["outcome"] for r in records)
    lines = [f"### {name}", "", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), ""]
    for record in records:
        if record["outcome"] not in ("failed", "error"):
            continue
        lines.append(f"- `{record['case']}` ({record['kind']}, {record['outcome']})")
        for check in record.get("checks") or []:
            if check["passed"]:
                continue
            detail = check.get("detail") or ""
            first = detail.splitlines()[0] if detail else ""
            lines.append(f"  - FAIL {check['name']}: measured {check.get('measured')}, {first[:300]}")
            for hint in detail.splitlines()[1:]:
                if hint.startswith(("It ", "The ")):
                    lines.append(f"    - diagnosis: {hint[:600]}")
        if record.get("error") and record["outcome"] != "skipped":
            lines.append(f"  - error: {str(record['error'])[:400]}")
    reasons = collections.Counter(r.get("error") or "" for r in records
                                  if r["outcome"] == "skipped")
    for reason, n in reasons.items():
        lines.append(f"- skipped ({n}): {str(reason)[:600]}")
    return lines + [""]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    out = []
    for item in argv[1:]:
        name, _, path = item.partition("=")
        out += summarize(name, load(path))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
