"""``report.md``: the run's tables (tabulate, GitHub markdown), grouped by kind and phase.

Sections: the run (command, hosts, versions, wall time, pass counts), one table per
(kind, phase) made by the kind's result type (:func:`harness.kinds.result_types`; this
module knows none of their fields), the failed checks with their reasons, the expected
failures with theirs, the figures, the implementation benchmarks, and the comparison with a
baseline.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from tabulate import tabulate

from harness.constants import PHASE_NAMES
from harness.kinds import result_types
from harness.records import CaseRecord
from harness.records.format import by_case
from harness.records.document import ResultsDocument
from harness.records.format import fmt, fmt_with_interval, verdict

PHASE_ORDER = {"ordered": 0, "eoc": 1, "chaotic": 2}


def _table(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def grouped(records: list[CaseRecord]) -> dict[str, dict[str, list[CaseRecord]]]:
    """``{kind: {phase: [records]}}``; records without a phase fall under ``"-"``."""
    groups: dict[str, dict[str, list[CaseRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[record.kind][record.phase or "-"].append(record)
    return groups


def _phase_sorted(phases):
    return sorted(phases, key=lambda p: (PHASE_ORDER.get(p, 9), p))


def _counts(records) -> Counter:
    return Counter(verdict(r) for r in records)


def run_section(document: ResultsDocument) -> list[str]:
    records = document.records
    counts = _counts(records)
    lines = ["## The run", ""]
    if not document.complete:
        lines += ["**The run was interrupted: this report covers the cases that finished.**", ""]
    rows = []
    for session in document.sessions:
        env = session.get("environment", {})
        rows.append([
            session.get("started", ""), f"`{' '.join(session.get('command', []))}`", session.get("shard") or "",
            fmt(session.get("workers")), fmt(session.get("wall_seconds"), 4), env.get("hostname", ""),
            f"torch {env.get('torch')}, numpy {env.get('numpy')}, ntk-harness {env.get('ntk-harness')}",
        ])
    if rows:
        lines += [_table(rows, ["started (UTC)", "command", "shard", "workers", "wall time (s)", "host", "versions"]), ""]
    devices = sorted({str(r.device) for r in records if r.device})
    parts = [f"{counts.get('pass', 0)} passed", f"{counts.get('FAIL', 0)} failed"]
    for key, word in (("ERROR", "errors"), ("xfail", "expected failures"), ("XPASS", "unexpected passes"),
                      ("skip", "skipped")):
        if counts.get(key):
            parts.append(f"{counts[key]} {word}")
    lines.append(f"{len(records)} cases: {', '.join(parts)}" + (f"; devices: {', '.join(devices)}" if devices else "")
                 + ".")
    lines.append("")
    summary = []
    for kind, phases in sorted(grouped(records).items()):
        for phase in _phase_sorted(phases):
            group = phases[phase]
            c = _counts(group)
            seconds = sum(r.wall_seconds or r.timing.total_seconds for r in group)
            summary.append([kind, phase, len(group), c.get("pass", 0) + c.get("xfail", 0),
                            c.get("FAIL", 0) + c.get("ERROR", 0) + c.get("XPASS", 0), fmt(seconds, 4)])
    if summary:
        lines += [_table(summary, ["kind", "phase", "cases", "passed (incl. expected failures)", "failed",
                                   "case time (s)"]), ""]
    return lines


def _generic_rows(records) -> tuple[list[str], list[list[str]]]:
    headers = ["case", "checks passed", "first failed check", "verdict"]
    rows = []
    for r in records:
        failed = next((c.name for c in r.checks if not c.passed), r.error or "")
        rows.append([r.case, f"{sum(c.passed for c in r.checks)}/{len(r.checks)}", failed, verdict(r)])
    return headers, rows


def cases_section(records: list[CaseRecord]) -> list[str]:
    lines = []
    for kind, phases in sorted(grouped(records).items()):
        lines += [f"## {kind} cases", ""]
        result_type = result_types().get(kind)
        for phase in _phase_sorted(phases):
            group = sorted(phases[phase], key=by_case)
            if phase != "-":
                lines += [f"### {PHASE_NAMES.get(phase, phase)}", ""]
            with_result = [r for r in group if r.result is not None]
            without = [r for r in group if r.result is None]
            if result_type is not None and with_result:
                headers, rows = result_type.table(with_result)
                lines += [_table(rows, headers), ""]
            if without:
                headers, rows = _generic_rows(without)
                lines += [_table(rows, headers), ""]
        if result_type is not None:
            everything = [r for group in phases.values() for r in group if r.result is not None]
            for title, text, headers, rows in result_type.summaries(everything):
                lines += [f"### {title}", ""] + ([text, ""] if text else []) + [_table(rows, headers), ""]
    return lines


def failures_section(records: list[CaseRecord]) -> list[str]:
    lines, expected = [], []
    for r in sorted(records, key=lambda r: r.key):
        if r.outcome == "error":
            lines.append(f"- `{r.key}`: could not run: {r.error}")
            continue
        if r.outcome == "skipped":
            continue
        target = expected if r.outcome == "xfailed" else lines
        for c in r.checks:
            if not c.passed:
                detail = f" — {c.detail}" if c.detail else ""
                target.append(f"- `{r.case}`: {c.name}: measured {fmt_with_interval(c.measured, c.measured_interval)}, "
                              f"accepted {c.expected}{detail}")
        if r.outcome == "xpassed":
            lines.append(f"- `{r.case}`: expected to fail ({r.expected_failure}) but every check passed")
    out = (["## Failed checks and errors", ""] + lines + [""]) if lines else []
    reasons = [f"- `{r.case}`: {r.expected_failure}" for r in sorted(records, key=lambda r: r.key)
               if r.outcome == "xfailed"]
    if reasons:
        out += ["## Expected failures (claims measured not to hold here)", "", *reasons, "",
                "The failing checks behind them:", "", *expected, ""]
    return out


def benchmarks_section(benchmarks: list[dict]) -> list[str]:
    if not benchmarks:
        return []
    by_group: dict[str, list[dict]] = defaultdict(list)
    for b in benchmarks:
        by_group[b.get("group") or "-"].append(b)
    rows = []
    for group in sorted(by_group):
        entries = sorted(by_group[group], key=lambda b: float(b["stats"].get("min") or 0))
        fastest = float(entries[0]["stats"].get("min") or 0)
        for b in entries:
            s = b["stats"]
            extra = b.get("extra_info") or {}
            memory = _peak_memory(extra)
            rows.append([group, b.get("name", ""), fmt(float(s.get("min")) * 1e3), fmt(float(s.get("mean")) * 1e3),
                         fmt(float(s.get("stddev") or 0) * 1e3, 3), fmt(s.get("rounds")),
                         f"{float(s.get('min')) / fastest:.3g}x" if fastest > 0 else "", memory])
    return ["## Implementation benchmarks (pytest-benchmark)", "",
            "Fastest round (least disturbed by other load), mean and standard deviation in milliseconds; "
            "\"vs fastest\" is the time relative to the fastest entry of the group; peak memory where the "
            "benchmark measured it: of the tensors one call creates (tensors), or of the whole process (RSS).", "",
            _table(rows, ["group", "benchmark", "min (ms)", "mean (ms)", "stddev (ms)", "rounds", "vs fastest",
                          "peak memory"]), ""]


def _peak_memory(extra: dict) -> str:
    """A benchmark's peak memory as it measured it: ``peak_memory_bytes`` (the tensors of one
    call, tests/benchmarks/test_bench_models.py) or ``peak_rss_mib`` (the process)."""
    if extra.get("peak_memory_bytes") is not None:
        return f"{float(extra['peak_memory_bytes']) / 2**10:.1f} KiB (tensors)"
    if extra.get("peak_rss_mib") is not None:
        return f"{float(extra['peak_rss_mib']):.0f} MiB (RSS)"
    return ""


def render(document: ResultsDocument, figures: list[tuple[str, str]], skipped: list[str],
           comparison_lines: list[str], title: str = "ntk-harness report", results: str = "results.json") -> str:
    """The whole report.md. ``figures``: (file name, caption); ``skipped``: why a figure is absent."""
    records = document.records
    lines = [f"# {title}", "",
             "Measured NTK statistics against finite-width theory (Seleznova & Kutyniok, ICML 2022). "
             "Intervals in brackets are 95% confidence intervals of the measured statistic (Student t for means, "
             "percentile bootstrap otherwise); \"accepted\" is the calibrated acceptance interval of the exact "
             "finite-width law at the case's share of its false-alarm rate: a correct NTK lands outside it with "
             "at most that probability. \"detectable scale c\": the factors c < 1 and c > 1 at which a kernel "
             f"scaled by c is caught with probability 0.9. The machine-readable records are in `{results}`.", ""]
    lines += run_section(document)
    lines += cases_section(records)
    lines += failures_section(records)
    if figures or skipped:
        lines += ["## Figures", ""]
        for name, caption in figures:
            lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
        for reason in skipped:
            lines.append(f"- not drawn: {reason}")
        if skipped:
            lines.append("")
    lines += benchmarks_section(document.benchmarks)
    lines += comparison_lines
    return "\n".join(lines).rstrip() + "\n"
