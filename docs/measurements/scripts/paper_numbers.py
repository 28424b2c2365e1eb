"""The tables of docs/paper.md, from the committed paper-size reports (no recomputation).

    python docs/measurements/scripts/paper_numbers.py [REPORTS_DIR]      # default reports/paper
    python docs/measurements/scripts/paper_numbers.py --write docs/paper.md [REPORTS_DIR]

Reads ``dispersion/results.json.gz`` (the 784-point sweep, cases/dispersion/depth_sweep.toml
``paper-depth-sweep``) and ``training/results.json.gz`` (cases/training/paper.toml) and prints
markdown: the sweep's verdicts, the diagonal's dispersion measured against the exact
finite-width value per sigma_w^2 and depth, claim 2 on the exact law the sweep verifies, the
Fig. 4 rows at t = 0 and the last checkpoint, and claim 3 on every measure.
``--write`` replaces the marked sections of docs/paper.md (``<!-- paper_numbers: NAME -->`` ...
``<!-- paper_numbers: end -->``) with it; tests/test_paper_doc.py checks that the page shows
exactly this output.
"""
from __future__ import annotations

import math
import re
import sys
from collections import defaultdict
from pathlib import Path

from harness.records.document import load
from harness.kinds.training.result import MEASURE_LABELS
from harness.records.format import fmt

SHOWN_DEPTHS = (1, 10, 25, 49)
PHASE_NAMES = {"ordered": "ordered", "eoc": "EOC", "chaotic": "chaotic"}


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + [
        "| " + " | ".join(row) + " |" for row in rows]


def dispersion_section(path: Path) -> list[str]:
    records = [r for r in load(path).records if r.kind == "dispersion" and r.result is not None]
    by_sigma: dict[float, dict[int, object]] = defaultdict(dict)
    for record in records:
        a = record.result.architecture
        by_sigma[a.sigma_w2][a.depth] = record
    checks = defaultdict(lambda: [0, 0])
    for record in records:
        for check in record.checks:
            family = re.sub(r" on \d+ of its networks", " on its rechecked networks", check.name)
            checks[family][0 if check.passed else 1] += 1
    outcomes = defaultdict(int)
    for record in records:
        outcomes[record.outcome] += 1
    worst = max((r.result.differential for r in records if r.result.differential is not None),
                key=lambda d: d.max_relative_error / d.rtol)
    networks = sum(r.result.networks for r in records)
    lines = [f"{len(records)} points ({len(by_sigma)} values of sigma_w^2 x "
             f"{len({d for v in by_sigma.values() for d in v})} depths), {networks:,} networks; outcomes: "
             + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) + ".", ""]
    lines += _table(["check", "passed", "failed"], [[name, str(p), str(f)] for name, (p, f) in sorted(checks.items())])
    lines += ["", f"Largest differential error over the sweep: {worst.max_relative_error:.3g} "
                  f"(its float32 tolerance {worst.rtol:.3g}; {worst.worst}).", ""]
    headers = ["σ_w²", "phase"] + [f"L = {d}: measured [band] / exact" for d in SHOWN_DEPTHS] + [
        "depths inside the band", "exact growth per unit λ (L 10..49)"]
    rows = []
    for sigma in sorted(by_sigma):
        depths = by_sigma[sigma]
        cells = []
        for depth in SHOWN_DEPTHS:
            record = depths.get(depth)
            if record is None:
                cells.append("")
                continue
            entry = record.result.entries[0]
            band = entry.sampling_band["dispersion"]
            low, high = band.low, band.high
            cells.append(f"{fmt(entry.statistics['dispersion'].value, 3)} [{fmt(low, 3)}, {fmt(high, 3)}] / "
                         f"{fmt(entry.exact_dispersion, 3)}")
        inside = sum(1 for r in depths.values() if _inside_band(r.result.entries[0]))
        fit = [(r.result.architecture.depth_to_width, math.log(r.result.entries[0].exact_dispersion))
               for d, r in depths.items() if d >= 10]
        growth = f"x{math.exp(_slope(fit)):.3g}" if len(fit) >= 2 else ""
        phase = PHASE_NAMES.get(next(iter(depths.values())).phase, "")
        rows.append([f"{sigma:g}", phase] + cells + [f"{inside} of {len(depths)}", growth])
    lines += _table(headers, rows)
    return lines


def _inside_band(entry) -> bool:
    band = entry.sampling_band["dispersion"]
    return band.low <= entry.statistics["dispersion"].value <= band.high


def _slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def training_section(path: Path) -> list[str]:
    record = next(r for r in load(path).records if r.kind == "training" and r.result.phases is not None)
    result = record.result
    last = result.checkpoints[-1]
    lines = [f"`{record.case}`: {record.outcome}, {result.networks} networks per phase, checkpoints "
             f"{result.checkpoints[0]}..{last}.", ""]
    headers = ["σ_w²", "phase", "Θ_c/Θ_d at t = 0", f"Θ_c/Θ_d at t = {last}", "Θ_n/Θ_d at t = 0",
               f"Θ_n/Θ_d at t = {last}", f"train loss at t = {last}", "test accuracy"]
    rows = []
    for value in result.phases.values:
        s = value.series

        def cell(name: str, t: int) -> str:
            values, bars = s[name][t], s[name + "_error"][t]
            others = ", ".join(fmt(v, 3) for v in values[1:])
            return f"{fmt(values[0], 3)} ± {fmt(bars[0], 2)} ({others})"

        rows.append([f"{value.sigma_w2:g}", PHASE_NAMES[value.phase], cell("class_block_over_diagonal", 0),
                     cell("class_block_over_diagonal", -1), cell("off_class_over_diagonal", 0),
                     cell("off_class_over_diagonal", -1),
                     ", ".join(f"{v:.2g}" for v in s["train_loss"][-1]),
                     ", ".join(f"{v:.3f}" for v in s["test_accuracy"][-1])])
    lines += _table(headers, rows)
    lines += ["", "Network 0 ± the paper's error bar (the mean within-block standard deviation, resp. the "
                  "off-class standard deviation, over the mean diagonal); in brackets the other networks.", ""]
    headers = ["measure", "ordered", "EOC", "chaotic", "ordered / EOC", "ordered / chaotic", "claim 3"]
    rows = []
    for claim in result.phases.claims:
        values = [f"{fmt(e.value, 3)} [{fmt(e.interval.low, 3)}, {fmt(e.interval.high, 3)}]" for e in claim.values]
        tests = [f"{t.ratio:.3g} [{t.lower:.3g}, {t.upper:.3g}] {t.verdict}" for t in claim.tests]
        verdict = "holds" if claim.holds else ("reversed" if any(t.verdict == "larger" for t in claim.tests)
                                               else "not resolved")
        rows.append([MEASURE_LABELS.get(claim.quantity, claim.quantity).replace("|", "\\|"), *values, *tests,
                     verdict + (" (strict xfail)" if claim.expected_failure else "")])
    lines += _table(headers, rows)
    return lines


def sections(directory: str | Path = "reports/paper") -> dict[str, str]:
    """The printed sections by name, each the text between its marker and the end marker."""
    root = Path(directory)
    return {"dispersion": "\n".join(dispersion_section(root / "dispersion" / "results.json.gz")),
            "training": "\n".join(training_section(root / "training" / "results.json.gz"))}


def marked(name: str, text: str) -> str:
    return f"<!-- paper_numbers: {name} -->\n{text}\n<!-- paper_numbers: end -->"


def replace_sections(page: str, printed: dict[str, str]) -> str:
    """``page`` with every marked section replaced by the printed one; a missing marker is an error."""
    for name, text in printed.items():
        pattern = re.compile(rf"<!-- paper_numbers: {name} -->\n.*?<!-- paper_numbers: end -->", re.S)
        if not pattern.search(page):
            raise SystemExit(f"no '<!-- paper_numbers: {name} -->' ... '<!-- paper_numbers: end -->' section")
        page = pattern.sub(lambda _: marked(name, text), page, count=1)
    return page


def main(argv: list[str]) -> None:
    if argv[:1] == ["--write"]:
        page = Path(argv[1])
        printed = sections(*argv[2:])
        page.write_text(replace_sections(page.read_text(encoding="utf-8"), printed), encoding="utf-8")
        return
    for name, text in sections(*argv).items():
        print(marked(name, text))


if __name__ == "__main__":
    main(sys.argv[1:])
