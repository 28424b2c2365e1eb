"""Compare two results documents record by record, every seeded value counted.

``harness.records.document.conflict`` is the verdict (the keys the seeds determine: kind,
outcome, checks, result; timings aside; floats equal up to a relative 1e-9 of rounding);
this module also counts the values it compared and how many were bit-identical, so a
claim "every statistic equal" comes with its size. As a script::

    python tests/cluster/records_compare.py LOCAL.json CLUSTER.json
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from harness.records import document as document_module


@dataclass
class Comparison:
    records: int = 0
    values: int = 0
    identical: int = 0
    rounding: int = 0
    conflicts: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.conflicts and not self.missing

    def __str__(self) -> str:
        text = (f"{self.records} records, {self.values} seeded values compared (timings aside): "
                f"{self.identical} identical, {self.rounding} equal up to rounding (relative "
                f"{document_module.ROUNDING:g}), {self.values - self.identical - self.rounding} different")
        if self.missing:
            text += f"; missing on one side: {', '.join(self.missing)}"
        if self.conflicts:
            text += "; different: " + "; ".join(self.conflicts)
        return text


def _leaves(value, path=""):
    if isinstance(value, dict):
        for key in sorted(value):
            if key == "seconds" or key.endswith("_seconds"):
                continue
            yield from _leaves(value[key], f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def compare(a: document_module.ResultsDocument, b: document_module.ResultsDocument) -> Comparison:
    """Every record of ``a`` against the record of ``b`` with its node id, and back."""
    ours = {r.nodeid: r for r in a.records}
    theirs = {r.nodeid: r for r in b.records}
    result = Comparison(missing=sorted(set(ours) ^ set(theirs)))
    for nodeid in sorted(set(ours) & set(theirs)):
        result.records += 1
        difference = document_module.conflict(ours[nodeid], theirs[nodeid])
        if difference:
            result.conflicts.append(f"{nodeid}: {difference}")
        ra, rb = ours[nodeid].to_record(), theirs[nodeid].to_record()
        for key in document_module.DETERMINED:
            left, right = dict(_leaves(ra.get(key), key)), dict(_leaves(rb.get(key), key))
            result.values += len(left)
            for path, value in left.items():
                other = right.get(path)
                if _same(value, other):
                    result.identical += 1
                elif (isinstance(value, float) and isinstance(other, float)
                      and abs(value - other) <= document_module.ROUNDING * max(abs(value), abs(other))):
                    result.rounding += 1
    return result


if __name__ == "__main__":
    comparison = compare(document_module.load(sys.argv[1]), document_module.load(sys.argv[2]))
    print(comparison)
    sys.exit(0 if comparison.equal else 1)
