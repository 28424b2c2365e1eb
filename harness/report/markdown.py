"""``report.md``: the run's tables (tabulate, GitHub markdown), grouped by kind and phase.

Sections: the run (command, hosts, versions, wall time, pass counts), one table per
(kind, phase) with measured values, their 95% intervals and what the reference predicted,
the failed checks with their reasons, the figures, the implementation benchmarks, and the
comparison with a baseline. Unknown kinds get a generic table (case, checks, verdict).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Callable

from tabulate import tabulate

from harness.report.formatting import as_float, interval, number, verdict, with_interval

PHASE_ORDER = {"ordered": 0, "eoc": 1, "chaotic": 2}
PHASE_NAMES = {"ordered": "ordered phase", "eoc": "edge of chaos", "chaotic": "chaotic phase"}


def _table(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _check(record: dict, prefix: str) -> dict | None:
    for check in record.get("checks") or []:
        if check.get("name", "").startswith(prefix):
            return check
    return None


def _dispersion_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["case", "n", "L", "λ = Σ1/n", "σ_w²", "bias", "S", "dispersion [95% CI]", "exact",
               "accepted (exact law)", "asymptotic", "mean Θ(x,x) [95% CI]", "exact mean", "KS p", "verdict"]
    rows = []
    for r in records:
        p, m, ref = r.get("parameters", {}), r.get("measured", {}), r.get("reference", {})
        intervals = m.get("intervals", {})
        exact = ref.get("exact", {})
        accepted = (ref.get("acceptance") or {}).get("dispersion")
        rows.append([
            r["case"], number(r.get("width")), number(r.get("depth")), number(ref.get("depth_to_width", p.get("depth_to_width")), 3),
            number(r.get("sigma_w2")), number(p.get("trainable_bias")), number(p.get("samples")),
            with_interval(m.get("dispersion"), intervals.get("dispersion")), number(exact.get("dispersion")),
            interval(accepted), number((ref.get("asymptotic") or {}).get("dispersion")),
            with_interval(m.get("mean"), intervals.get("mean")), number(exact.get("mean")),
            number(ref.get("goodness_of_fit_p"), 3), verdict(r),
        ])
    return headers, rows


def _training_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["case", "n", "L", "σ_w²", "steps", "seeds", "relative change [95% CI]", "alignment",
               "block ratio growth", "train loss", "test accuracy", "verdict"]
    rows = []
    for r in records:
        p, m = r.get("parameters", {}), r.get("measured", {})
        rows.append([
            r["case"], number(r.get("width")), number(r.get("depth")), number(r.get("sigma_w2")),
            number(p.get("steps")), number(p.get("seeds")),
            with_interval(m.get("relative_change"), m.get("relative_change_interval")),
            number(m.get("alignment")), number(m.get("block_ratio_growth")), number(m.get("train_loss")),
            number(m.get("test_accuracy"), 3), verdict(r),
        ])
    return headers, rows


def _agreement_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["case", "implementation", "dtype", "device", "checks passed", "max relative error", "rtol", "verdict"]
    rows = []
    for r in records:
        p, m = r.get("parameters", {}), r.get("measured", {})
        checks = r.get("checks") or []
        rows.append([
            r["case"], number(p.get("implementation")), number(p.get("dtype")), number(p.get("device")),
            f"{sum(bool(c.get('passed')) for c in checks)}/{len(checks)}",
            number(m.get("max_relative_error"), 3), number(p.get("rtol")), verdict(r),
        ])
    return headers, rows


def _generic_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["case", "checks passed", "first failed check", "verdict"]
    rows = []
    for r in records:
        checks = r.get("checks") or []
        failed = next((c.get("name", "") for c in checks if not c.get("passed")), "")
        rows.append([r["case"], f"{sum(bool(c.get('passed')) for c in checks)}/{len(checks)}", failed, verdict(r)])
    return headers, rows


ROWS: dict[str, Callable] = {"dispersion": _dispersion_rows, "training": _training_rows, "agreement": _agreement_rows}


def grouped(records: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """``{kind: {phase: [records]}}``; records without a phase fall under ``"-"``."""
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[record.get("kind") or "error"][record.get("phase") or "-"].append(record)
    return groups


def _phase_sorted(phases):
    return sorted(phases, key=lambda p: (PHASE_ORDER.get(p, 9), p))


def _sort_key(record: dict):
    return (str(record.get("case", "")).split("[")[0], as_float(record.get("sigma_w2")), as_float(record.get("width")),
            as_float(record.get("depth")), record.get("case", ""))


def run_section(document: dict) -> list[str]:
    records = document["records"]
    counts = Counter(verdict(r) for r in records)
    lines = ["## The run", ""]
    if not document.get("complete", True):
        lines += ["**The run was interrupted: this report covers the cases that finished.**", ""]
    rows = []
    for session in document.get("sessions", []):
        env = session.get("environment", {})
        rows.append([
            session.get("started", ""), f"`{' '.join(session.get('command', []))}`", session.get("shard") or "",
            number(session.get("workers")), number(session.get("wall_seconds"), 4), env.get("hostname", ""),
            f"torch {env.get('torch')}, numpy {env.get('numpy')}, ntk-harness {env.get('ntk-harness')}",
        ])
    if rows:
        lines += [_table(rows, ["started (UTC)", "command", "shard", "workers", "wall time (s)", "host", "versions"]), ""]
    devices = sorted({str(r.get("device")) for r in records if r.get("device")})
    lines.append(
        f"{len(records)} cases: {counts.get('pass', 0)} passed, {counts.get('FAIL', 0)} failed"
        + (f", {counts['ERROR']} errors" if counts.get("ERROR") else "")
        + (f"; devices: {', '.join(devices)}" if devices else "") + ".")
    lines.append("")
    summary = []
    for kind, phases in sorted(grouped(records).items()):
        for phase in _phase_sorted(phases):
            group = phases[phase]
            c = Counter(verdict(r) for r in group)
            seconds = sum(as_float(r.get("wall_seconds")) for r in group if r.get("wall_seconds") is not None)
            summary.append([kind, phase, len(group), c.get("pass", 0), c.get("FAIL", 0) + c.get("ERROR", 0),
                            number(seconds, 4)])
    if summary:
        lines += [_table(summary, ["kind", "phase", "cases", "passed", "failed", "case time (s)"]), ""]
    return lines


def cases_section(records: list[dict]) -> list[str]:
    lines = []
    for kind, phases in sorted(grouped(records).items()):
        lines += [f"## {kind} cases", ""]
        rows_of = ROWS.get(kind, _generic_rows)
        for phase in _phase_sorted(phases):
            group = sorted(phases[phase], key=_sort_key)
            if phase != "-":
                lines += [f"### {PHASE_NAMES.get(phase, phase)}", ""]
            headers, rows = rows_of(group)
            lines += [_table(rows, headers), ""]
    return lines


def failures_section(records: list[dict]) -> list[str]:
    lines = []
    for r in sorted(records, key=lambda r: r.get("nodeid") or r["case"]):
        if r.get("outcome") == "error":
            message = r.get("error_message") or ((r.get("error") or "").strip().splitlines() or [""])[-1]
            lines.append(f"- `{r.get('nodeid') or r['case']}`: error in {r.get('when', 'call')}: {message}")
            continue
        for c in r.get("checks") or []:
            if not c.get("passed"):
                detail = f" — {c['detail']}" if c.get("detail") else ""
                lines.append(
                    f"- `{r['case']}`: {c.get('name')}: measured {with_interval(c.get('measured'), c.get('measured_interval'))}, "
                    f"accepted {c.get('expected', '')}{detail}")
    return (["## Failed checks and errors", ""] + lines + [""]) if lines else []


def benchmarks_section(benchmarks: list[dict]) -> list[str]:
    if not benchmarks:
        return []
    by_group: dict[str, list[dict]] = defaultdict(list)
    for b in benchmarks:
        by_group[b.get("group") or "-"].append(b)
    rows = []
    for group in sorted(by_group):
        entries = sorted(by_group[group], key=lambda b: as_float(b["stats"].get("min")))
        fastest = as_float(entries[0]["stats"].get("min"))
        for b in entries:
            s = b["stats"]
            rows.append([group, b.get("name", ""), number(as_float(s.get("min")) * 1e3), number(as_float(s.get("mean")) * 1e3),
                         number(as_float(s.get("stddev")) * 1e3, 3), number(s.get("rounds")),
                         f"{as_float(s.get('min')) / fastest:.3g}x" if fastest > 0 else ""])
    return ["## Implementation benchmarks (pytest-benchmark)", "",
            "Fastest round (least disturbed by other load), mean and standard deviation in milliseconds; "
            "the last column is the time relative to the fastest entry of the group.", "",
            _table(rows, ["group", "benchmark", "min (ms)", "mean (ms)", "stddev (ms)", "rounds", "vs fastest"]), ""]


def render(document: dict, figures: list[tuple[str, str]], skipped: list[str], comparison_lines: list[str],
           title: str = "ntk-harness report") -> str:
    """The whole report.md. ``figures``: (file name, caption); ``skipped``: why a figure is absent."""
    records = document["records"]
    lines = [f"# {title}", "",
             "Measured NTK statistics against finite-width theory (Seleznova & Kutyniok, ICML 2022). "
             "Intervals are 95% (bootstrap or t) intervals of the measured statistic; \"accepted\" is the "
             "calibrated acceptance interval of the exact finite-width law at the case's share of its "
             "false-alarm rate. The machine-readable records are in `results.json`.", ""]
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
    lines += benchmarks_section(document.get("benchmarks", []))
    lines += comparison_lines
    return "\n".join(lines).rstrip() + "\n"
