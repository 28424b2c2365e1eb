"""When does claim 3 stop holding, and what is the ordered network doing then?

Reads the records written by ``claim3_regimes.py --out DIR`` and prints, per regime: the last
checkpoint at which the claim holds (ordered relative change significantly smaller than
every other phase's, one-sided Welch on logs at 0.05) before it is reversed, the
first checkpoint at which it is reversed (ordered significantly LARGER than every other
phase), and, at those steps, the ordered networks' mean training loss, their NTK's growth
|Theta_t|_F / |Theta_0|_F and (when recorded) how much of the inputs' differences reaches
their last hidden layer (signal_propagation, at 0 and at the step). The training loss of the
best input-independent predictor on digits is 0.090 (predict every class's frequency); the
zero output gives 0.100.

Usage::

    python docs/measurements/scripts/claim3_crossover.py /tmp/claim3-records/*.json
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))


def geometric(values):
    return math.exp(sum(math.log(max(v, 1e-300)) for v in values) / len(values))


def main(paths) -> int:
    from harness.records import CaseRecord
    from harness.training import metrics

    print(f"{'regime':<32} {'holds until':>11} {'reversed at':>11} {'loss(0)':>8} {'loss@hold':>9} "
          f"{'loss@rev':>8} {'|Th|x@rev':>9} {'sig0':>8} {'sig@rev':>8}")
    for path in paths:
        record = CaseRecord.from_record(json.loads(Path(path).read_text()))
        r = record.result
        experiments = r.phase_experiments()
        ordered = next(e for v, e in zip(r.phases.values, experiments) if v.phase == "ordered")
        others = [e for v, e in zip(r.phases.values, experiments) if v.phase != "ordered"]
        verdicts = []
        for c, step in enumerate(ordered.checkpoints):
            if step == 0:
                continue
            tests = [metrics.welch_ratio_test(_pos(ordered.series["relative_change"][c]),
                                              _pos(e.series["relative_change"][c]), 0.05) for e in others]
            verdicts.append((c, step, all(t.smaller for t in tests), all(t.larger for t in tests)))
        reversed_at = next(((c, step) for c, step, _, rev in verdicts if rev), None)
        before = [v for v in verdicts if reversed_at is None or v[1] < reversed_at[1]]
        holds_until = next(((c, step) for c, step, holds, _ in reversed(before) if holds), None)

        def loss(c):
            return sum(ordered.series["train_loss"][c]) / len(ordered.series["train_loss"][c])

        growth = (geometric(ordered.series["ntk_norm"][reversed_at[0]]) / geometric(ordered.series["ntk_norm"][0])
                  if reversed_at else float("nan"))
        signal = ordered.series.get("signal_propagation")
        sig0 = geometric(signal[0]) if signal else float("nan")
        sig_rev = geometric(signal[reversed_at[0]]) if signal and reversed_at else float("nan")
        name = Path(path).stem
        print(f"{name:<32} {holds_until[1] if holds_until else '-':>11} {reversed_at[1] if reversed_at else '-':>11} "
              f"{loss(0):8.4f} {loss(holds_until[0]) if holds_until else float('nan'):9.4f} "
              f"{loss(reversed_at[0]) if reversed_at else float('nan'):8.4f} {growth:9.3g} {sig0:8.2g} {sig_rev:8.2g}")
    return 0


def _pos(values):
    return [max(v, 1e-300) for v in values]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
