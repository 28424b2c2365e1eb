"""The per-measure expected failures of claim-3 cases, from a run's results (TOML to paste).

    python docs/measurements/scripts/claim3_expected_failures.py RESULTS.json [RESULTS.json ...]

For every phase-comparison case and every measure on which claim 3 did not hold, prints the
``[case.phases.expected_failures]`` line with the numbers the run measured (geometric means
over networks with their 95% intervals, and each ordered / other ratio with its one-sided
bounds and verdict). The measures, the checkpoint and the level are the case's own, fixed
before the run; this script only writes down what was measured.
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
    main(sys.argv[1:])
