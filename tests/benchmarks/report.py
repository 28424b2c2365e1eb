"""Print a table of an NTK benchmark run saved with ``--benchmark-json``.

    python tests/benchmarks/report.py bench.json

One row per (grid point, implementation): the fastest round (the least disturbed by
other load on the machine), the mean, the FLOP estimate, the achieved GFLOP/s at the
fastest round, and the speed relative to ``jacobian`` and to ``autograd-loop`` at the
same point (> 1 means faster).
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict

from tabulate import tabulate


def rows(data: dict) -> list[list]:
    by_point: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if "implementation" not in info:
            continue  # another module's benchmark (tests/benchmarks holds others too)
        by_point[bench["group"]][info["implementation"]] = bench
    table = []
    for point in sorted(by_point, key=lambda g: [int("".join(c for c in part if c.isdigit()) or 0)
                                                 for part in g.split("-")[:4]]):
        benches = by_point[point]
        baseline = {name: benches[name]["stats"]["min"] for name in ("jacobian", "autograd-loop") if name in benches}
        for name, bench in sorted(benches.items(), key=lambda kv: kv[1]["stats"]["min"]):
            fastest = bench["stats"]["min"]
            flops = bench["extra_info"].get("flops")
            table.append([
                point, name, f"{fastest * 1e3:.3g}", f"{bench['stats']['mean'] * 1e3:.3g}",
                f"{flops:.3g}" if flops else "", f"{flops / fastest / 1e9:.3g}" if flops else "",
                f"{baseline['jacobian'] / fastest:.3g}x" if "jacobian" in baseline else "",
                f"{baseline['autograd-loop'] / fastest:.3g}x" if "autograd-loop" in baseline else "",
            ])
    return table


HEADERS = ["point", "implementation", "min ms", "mean ms", "FLOPs", "GFLOP/s", "vs jacobian", "vs autograd-loop"]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        data = json.load(handle)
    machine = data.get("machine_info", {})
    print(f"machine: {machine.get('cpu', {}).get('brand_raw', '?')}, python {machine.get('python_version', '?')}")
    print(tabulate(rows(data), headers=HEADERS, tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
