"""Comparison with an earlier results.json (``--ntk-report-baseline OLD/results.json``).

Three questions, answered per case (node id):

- which cases changed verdict (pass -> fail, fail -> pass), and which are new or gone;
- which statistics changed. Each kind's result names its statistics with intervals
  (:meth:`KindResult.statistics`). When both runs used the same seed the networks are the
  same (paired comparison): any relative change beyond floating-point rounding
  (:data:`ROUNDING`) is real and is listed with its size, however small. With different
  seeds the comparison is unpaired: a statistic is listed when the new value lies outside
  the old 95% interval or the old value outside the new one;
- which benchmarks got slower: same benchmark (``fullname``) in both, fastest round slower
  by more than ``slowdown`` (default 10%) relative to the baseline.
"""
from __future__ import annotations

import math

from tabulate import tabulate

from harness.records.document import ROUNDING, ResultsDocument
from harness.records.format import fmt, fmt_interval, verdict



def _relative_change(new: float, old: float) -> float:
    if new == old:
        return 0.0
    scale = max(abs(old), abs(new))
    return abs(new - old) / scale if scale > 0 else math.inf


def compare(new: ResultsDocument, old: ResultsDocument, slowdown: float = 0.10) -> dict:
    """Differences between two results documents (new against old)."""
    old_by = {r.key: r for r in old.records}
    new_by = {r.key: r for r in new.records}
    verdicts, moved = [], []
    for key in sorted(set(old_by) & set(new_by)):
        a, b = old_by[key], new_by[key]
        if verdict(a) != verdict(b):
            verdicts.append({"case": key, "old": verdict(a), "new": verdict(b)})
        if a.result is None or b.result is None:
            continue
        paired = a.seed is not None and a.seed == b.seed
        old_stats, new_stats = a.result.statistics(), b.result.statistics()
        for name in sorted(set(old_stats) & set(new_stats)):
            o, n = old_stats[name], new_stats[name]
            if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (o.value, n.value)):
                continue
            change = _relative_change(n.value, o.value)
            if paired:
                changed = change > ROUNDING
            else:
                changed = not (o.interval.low <= n.value <= o.interval.high) or not (
                    n.interval.low <= o.value <= n.interval.high)
            if changed:
                moved.append({"case": key, "statistic": name, "paired": paired, "old": o.value,
                              "old_interval": o.interval.to_record(), "new": n.value,
                              "new_interval": n.interval.to_record(), "relative_change": change})
    old_bench = {b.get("fullname") or b.get("name"): b for b in old.benchmarks}
    slower = []
    for b in new.benchmarks:
        name = b.get("fullname") or b.get("name")
        if name in old_bench:
            before, after = float(old_bench[name]["stats"].get("min") or 0), float(b["stats"].get("min") or 0)
            if before > 0 and after / before > 1 + slowdown:
                slower.append({"benchmark": name, "old_min": before, "new_min": after, "ratio": after / before})
    return {
        "verdict_changes": verdicts,
        "moved_statistics": moved,
        "new_cases": sorted(set(new_by) - set(old_by)),
        "missing_cases": sorted(set(old_by) - set(new_by)),
        "slower_benchmarks": sorted(slower, key=lambda s: -s["ratio"]),
        "slowdown_threshold": slowdown,
        "rounding": ROUNDING,
        "compared_cases": len(set(old_by) & set(new_by)),
        "compared_benchmarks": sum(1 for b in new.benchmarks if (b.get("fullname") or b.get("name")) in old_bench),
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
        rows = [[m["case"], m["statistic"], "same networks" if m["paired"] else "other networks",
                 f"{fmt(m['old'])} {fmt_interval(m['old_interval'])}", f"{fmt(m['new'])} {fmt_interval(m['new_interval'])}",
                 f"{m['relative_change']:.3g}"] for m in c["moved_statistics"]]
        lines += ["### Statistics that changed", "",
                  f"Same seed (same networks): any relative change above {c['rounding']:g} (floating-point "
                  "rounding) is listed. Other seeds: a change beyond either run's 95% interval.", "",
                  tabulate(rows, headers=["case", "statistic", "compared on", "baseline [95% CI]", "now [95% CI]",
                                          "relative change"], tablefmt="github", disable_numparse=True), ""]
    else:
        lines += ["No statistic changed (same seeds: beyond rounding; other seeds: beyond the 95% intervals).", ""]
    if c["slower_benchmarks"]:
        rows = [[s["benchmark"], fmt(s["old_min"] * 1e3), fmt(s["new_min"] * 1e3), f"{s['ratio']:.3g}x"]
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
