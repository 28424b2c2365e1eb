"""Which quick cases catch each broken implementation, and why.

For every broken implementation named on the command line (default: the bugs of the power
issue, the classic ones and the model ones in ``tests/ntk/broken.py`` and
``tests/ntk/broken_models.py``) this runs

    pytest cases -m quick --ntk-implementation tests.ntk.broken:NAME --ntk-report-dir OUT/NAME

in a subprocess, reads the run's ``results.json`` and prints one row per implementation: how
many quick cases failed, of which kinds, and the first failed check of each failing file with
its detail. A broken implementation is caught "for the right reason" when its expected phrase
(``BROKEN`` / ``BROKEN_ON_MODELS``) is in a failed check of a case it is meant to fail.

    OMP_NUM_THREADS=1 python docs/measurements/scripts/broken_vs_quick.py --out /tmp/broken
    python docs/measurements/scripts/broken_vs_quick.py wrong_at_depth output_sum --out /tmp/broken
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests.ntk.broken import BROKEN  # noqa: E402
from tests.ntk.broken_models import BROKEN_ON_MODELS  # noqa: E402

POWER_ISSUE = ["wrong_at_depth", "wrong_off_diagonal", "wrong_for_single_input", "wrong_for_square_cross",
               "wrong_derivative_at_zero", "drops_biases", "output_sum"]


def run_one(name: str, out: Path) -> dict:
    module = "tests.ntk.broken_models" if name in BROKEN_ON_MODELS else "tests.ntk.broken"
    report_dir = out / name
    command = [sys.executable, "-m", "pytest", "cases", "-m", "quick", "-q", "-p", "no:cacheprovider",
               "--ntk-implementation", f"{module}:{name}", "--ntk-report-dir", str(report_dir)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    document = json.loads((report_dir / "latest" / "results.json").read_text())
    records = document["records"]
    failed = [r for r in records if r["outcome"] in ("failed", "error")]
    phrase = BROKEN_ON_MODELS[name][1] if name in BROKEN_ON_MODELS else BROKEN.get(name, "")
    target = BROKEN_ON_MODELS[name][0] if name in BROKEN_ON_MODELS else None
    reasons = []
    right = False
    for record in failed:
        bad = [c for c in record["checks"] if not c["passed"]]
        text = " ".join(f"{c['name']} {c['detail']}" for c in bad) + " " + (record.get("error") or "")
        on_target = target is None or target in record["case"]
        if phrase and phrase in text and on_target:
            right = True
        first = bad[0] if bad else None
        reasons.append((record["case"], first["name"] if first else "error",
                        (first["detail"] if first else record.get("error") or "")[:140]))
    return {"name": name, "exit": done.returncode, "wall": wall, "cases": len(records), "failed": len(failed),
            "kinds": Counter(r["kind"] for r in failed), "right_reason": right, "phrase": phrase,
            "reasons": reasons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=POWER_ISSUE + list(BROKEN_ON_MODELS))
    parser.add_argument("--out", type=Path, required=True, help="report directories, one per implementation")
    parser.add_argument("--examples", type=int, default=2, help="failed cases listed per implementation")
    args = parser.parse_args()
    rows = [run_one(name, args.out) for name in args.names]
    print("| implementation | quick cases failed | kinds | expected phrase found | exit | wall s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(row["kinds"].items()))
        print(f"| `{row['name']}` | {row['failed']} / {row['cases']} | {kinds} | "
              f"{'yes' if row['right_reason'] else 'NO'} (`{row['phrase']}`) | {row['exit']} | {row['wall']:.0f} |")
    for row in rows:
        print(f"\n{row['name']}:")
        for case, check, detail in row["reasons"][: args.examples]:
            print(f"  {case}: {check}: {detail}")


if __name__ == "__main__":
    main()
