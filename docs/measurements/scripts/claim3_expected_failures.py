"""The per-measure expected failures of claim-3 cases, from a run's results (TOML to paste).

    python docs/measurements/scripts/claim3_expected_failures.py RESULTS.json [RESULTS.json ...]
    python docs/measurements/scripts/claim3_expected_failures.py --apply CASES.toml RESULTS.json OUT.json

For every phase-comparison case and every measure on which claim 3 did not hold, prints the
``[case.phases.expected_failures]`` line with the numbers the run measured (geometric means
over networks with their 95% intervals, and each ordered / other ratio with its one-sided
bounds and verdict). The measures, the checkpoint and the level are the case's own, fixed
before the run; this script only writes down what was measured.

``--apply``: the records of a run made before its case file declared those reasons, judged
again against the case file's declarations (each measure's check and claim get its reason;
the outcome is decided as a run today would decide it: ``xfailed`` when every declared
measure failed and nothing else did). Nothing else of the record changes; the document's
sessions get an entry saying so. A declared measure the record does not have, or a case
the file does not have, is an error naming it.
"""
from __future__ import annotations

import sys

from harness.records.document import load
from harness.kinds.training.result import MEASURE_LABELS

PHASE_NAMES = {"ordered": "ordered", "eoc": "EOC", "chaotic": "chaotic"}


def reason(record, claim) -> str:
    r = record.result
    phases = r.phases
    verdicts = {t.verdict for t in claim.tests}
    how = "reversed" if "larger" in verdicts else "not resolved"
    values = [f"{PHASE_NAMES[v.phase]} {e.value:.3g} [{e.interval.low:.3g}, {e.interval.high:.3g}]"
              for v, e in zip(phases.values, claim.values)]
    tests = "; ".join(f"ordered/{PHASE_NAMES[t.other_phase]} {t.ratio:.3g}, one-sided bounds [{t.lower:.3g}, "
                      f"{t.upper:.3g}], {t.verdict}" for t in claim.tests)
    label = MEASURE_LABELS.get(claim.quantity, claim.quantity)
    return (f"claim 3 on {label} ({claim.quantity}) is {how} after {r.steps} steps: {values[0]} vs "
            f"{', '.join(values[1:])} (geometric means over {r.networks} networks, 95% intervals; {tests})")


def apply(case_file: str, results: str, out: str) -> None:
    import datetime
    from pathlib import Path

    from harness.cases.schema import load_case_file
    from harness.kinds import KINDS
    from harness.runner import decide_outcome

    cases = {c.id: c for c in load_case_file(case_file, KINDS)}
    document = load(results)
    for record in document.records:
        case = cases.get(record.case)
        if case is None:
            raise SystemExit(f"{case_file}: no case {record.case!r} (the record of {results})")
        declared = case.sections.phases.expected_failures if record.kind == "training" else {}
        claims = {c.quantity: c for c in (record.result.phases.claims if record.result.phases else [])}
        for quantity, reason in declared.items():
            if quantity not in claims:
                raise SystemExit(f"{case_file}: {record.case}: phases.expected_failures.{quantity}: "
                                 f"the record has no such measure (it has {', '.join(claims)})")
            claims[quantity].expected_failure = reason
            for check in record.checks:
                if check.name.startswith(f"claim 3: {quantity} "):
                    check.expected_failure = reason
        record.expected_failure = KINDS[record.kind].expected_failure(case)
        record.outcome = decide_outcome(record.checks, case_expected_failure=case.expected_failure)
        print(f"{record.case}: {record.outcome}")
    from harness.report.environment import environment

    document.sessions.append({"command": ["claim3_expected_failures.py", "--apply", case_file, results, out],
                              "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                              "environment": environment(),
                              "note": "expected failures of the case file attached after the run; "
                                      "measured values unchanged"})
    Path(out).write_text(document.dumps(), encoding="utf-8")


def main(paths: list[str]) -> None:
    for path in paths:
        for record in load(path).records:
            if record.kind != "training" or record.result is None or record.result.phases is None:
                continue
            failing = [c for c in record.result.phases.claims if not c.holds]
            print(f"# {record.case}: {record.outcome}")
            for claim in failing:
                print(f'{claim.quantity} = "{reason(record, claim)}"')


if __name__ == "__main__":
    if sys.argv[1:2] == ["--apply"]:
        if len(sys.argv) != 5:
            raise SystemExit("usage: claim3_expected_failures.py --apply CASES.toml RESULTS.json OUT.json")
        apply(*sys.argv[2:5])
    else:
        main(sys.argv[1:])
