"""Comparison with an earlier results.json (``--report-baseline OLD/results.json``).

Three questions, answered per case id (``nodeid``):

- which cases changed verdict (pass -> fail, fail -> pass), and which are new or gone;
- which statistics moved beyond their intervals: a measured statistic with a 95% interval
  in both runs (``measured.intervals`` of dispersion cases; ``measured.<name>_interval``,
  e.g. the training ``relative_change_interval``) moved when the new value lies outside the
  old interval or the old value outside the new one. With identical seeds and code the
  values are identical; this flags real changes, not Monte Carlo noise of the same size;
- which benchmarks got slower: same benchmark (``fullname``) in both, fastest round
  slower by more than ``slowdown`` (default 10%) relative to the baseline.
"""
from __future__ import annotations

from tabulate import tabulate

from harness.report.formatting import as_float, interval, number, verdict
from harness.report.records import record_key


def _statistics(record: dict) -> dict[str, tuple[float, list]]:
    measured = record.get("measured") or {}
    found = {}
    for name, bounds in (measured.get("intervals") or {}).items():
        if name in measured and isinstance(bounds, list) and len(bounds) == 2:
            found[name] = (as_float(measured[name]), [as_float(b) for b in bounds])
    for key, bounds in measured.items():
        if key.endswith("_interval") and isinstance(bounds, list) and len(bounds) == 2:
            name = key[: -len("_interval")]
            if name in measured:
                found[name] = (as_float(measured[name]), [as_float(b) for b in bounds])
    return found


def compare(new: dict, old: dict, slowdown: float = 0.10) -> dict:
    """Differences between two results documents (new against old)."""
    old_by = {record_key(r): r for r in old["records"]}
    new_by = {record_key(r): r for r in new["records"]}
    verdicts, moved = [], []
    for key in sorted(set(old_by) & set(new_by)):
        a, b = old_by[key], new_by[key]
        if verdict(a) != verdict(b):
            verdicts.append({"case": key, "old": verdict(a), "new": verdict(b)})
        old_stats, new_stats = _statistics(a), _statistics(b)
        for name in sorted(set(old_stats) & set(new_stats)):
            (ov, oi), (nv, ni) = old_stats[name], new_stats[name]
            outside_old = not (oi[0] <= nv <= oi[1])
            outside_new = not (ni[0] <= ov <= ni[1])
            if outside_old or outside_new:
                moved.append({"case": key, "statistic": name, "old": ov, "old_interval": oi, "new": nv,
                              "new_interval": ni})
    old_bench = {b.get("fullname") or b.get("name"): b for b in old.get("benchmarks", [])}
    slower = []
    for b in new.get("benchmarks", []):
        name = b.get("fullname") or b.get("name")
        if name in old_bench:
            before, after = as_float(old_bench[name]["stats"].get("min")), as_float(b["stats"].get("min"))
            if before > 0 and after / before > 1 + slowdown:
                slower.append({"benchmark": name, "old_min": before, "new_min": after, "ratio": after / before})
    return {
        "verdict_changes": verdicts,
        "moved_statistics": moved,
        "new_cases": sorted(set(new_by) - set(old_by)),
        "missing_cases": sorted(set(old_by) - set(new_by)),
        "slower_benchmarks": sorted(slower, key=lambda s: -s["ratio"]),
        "slowdown_threshold": slowdown,
        "compared_cases": len(set(old_by) & set(new_by)),
        "compared_benchmarks": sum(1 for b in new.get("benchmarks", []) if (b.get("fullname") or b.get("name")) in old_bench),
    }


def markdown(comparison: dict, baseline_path: str) -> list[str]:
    c = comparison
    lines = ["## Comparison with the baseline", "",
             f"Baseline: `{baseline_path}`; {c['compared_cases']} cases and {c['compared_benchmarks']} benchmarks "
             f"in both runs; {len(c['new_cases'])} new, {len(c['missing_cases'])} missing.", ""]
    if c["verdict_changes"]:
        lines += ["### Changed verdicts", "",
                  tabulate([[v["case"], v["old"], v["new"]] for v in c["verdict_changes"]],
                           headers=["case", "baseline", "now"], tablefmt="github"), ""]
    else:
        lines += ["No case changed its verdict.", ""]
    if c["moved_statistics"]:
        rows = [[m["case"], m["statistic"], f"{number(m['old'])} {interval(m['old_interval'])}",
                 f"{number(m['new'])} {interval(m['new_interval'])}"] for m in c["moved_statistics"]]
        lines += ["### Statistics that moved beyond their intervals", "",
                  tabulate(rows, headers=["case", "statistic", "baseline [95% CI]", "now [95% CI]"], tablefmt="github",
                           disable_numparse=True), ""]
    else:
        lines += ["No statistic moved beyond its 95% interval.", ""]
    if c["slower_benchmarks"]:
        rows = [[s["benchmark"], number(s["old_min"] * 1e3), number(s["new_min"] * 1e3), f"{s['ratio']:.3g}x"]
                for s in c["slower_benchmarks"]]
        lines += [f"### Benchmarks slower by more than {c['slowdown_threshold']:.0%}", "",
                  tabulate(rows, headers=["benchmark", "baseline min (ms)", "now min (ms)", "ratio"], tablefmt="github",
                           disable_numparse=True), ""]
    elif c["compared_benchmarks"]:
        lines += [f"No benchmark got slower by more than {c['slowdown_threshold']:.0%}.", ""]
    for title, key in (("New cases", "new_cases"), ("Cases missing from this run", "missing_cases")):
        if c[key]:
            shown = c[key][:50]
            lines += [f"### {title}", ""] + [f"- `{k}`" for k in shown]
            if len(c[key]) > len(shown):
                lines.append(f"- ... and {len(c[key]) - len(shown)} more")
            lines.append("")
    return lines
