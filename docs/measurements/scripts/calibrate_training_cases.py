"""Calibration runs of a training case file with OTHER seeds than the file's own.

Every bound of a training case that theory does not give is set from these runs, never from
the runs the case itself makes (its ``seed``, default 0). This script loads a case file,
replaces ``[case.training] seed`` by ``--seed`` in every expanded case, runs each through the
harness's runner and prints, per case and phase, what a bound needs: for every quantity at
the last checkpoint the mean, the standard deviation over networks and the 95% t-interval;
the depth-trend and width-scaling fits; the claim-3 tests of a phase comparison; and each
check's verdict under the file's current bounds.

Usage (one torch thread; the machine is shared)::

    OMP_NUM_THREADS=1 nice -n 10 python docs/measurements/scripts/calibrate_training_cases.py \\
        cases/training/constancy.toml --seed 1000
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

SHOWN = ("relative_change", "misalignment", "alignment", "block_ratio_growth", "train_loss", "test_accuracy")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_file", type=Path)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("-k", dest="select", default="", help="run only cases whose id contains this text")
    args = parser.parse_args(argv)
    import os

    import torch

    from harness.cases.schema import load_case_file
    from harness.kinds.training import KIND
    from harness.options import RunOptions
    from harness.runner import run_case

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    for case in load_case_file(args.case_file, {"training": KIND}):
        if args.select not in case.id:
            continue
        training = dataclasses.replace(case.sections.training, seed=args.seed)
        case = dataclasses.replace(case, sections={**case.sections, "training": training})
        started = time.perf_counter()
        record = run_case(case, RunOptions(timeout_seconds=0))
        print(f"=== {case.id} with seed {args.seed}: {time.perf_counter() - started:.0f} s, outcome {record.outcome}")
        r = record.result
        for experiment in r.experiments:
            label = f"L={experiment.depth} n={experiment.width}" + (
                f" sigma_w2={experiment.sigma_w2:g}" if experiment.sigma_w2 is not None else "")
            cells = []
            for q in SHOWN:
                if q not in experiment.series:
                    continue
                v = np.asarray(experiment.final(q), dtype=float)
                half = 3.182 * v.std(ddof=1) / np.sqrt(v.size) if v.size == 4 else float("nan")
                cells.append(f"{q} {v.mean():.4g} sd {v.std(ddof=1):.3g}" + (
                    f" [{v.mean() - half:.4g}, {v.mean() + half:.4g}]" if v.size == 4 else ""))
            print(f"  {label}: " + "; ".join(cells))
        for name, fit in (("depth trend", r.depth_trend), ("width scaling", r.width_scaling)):
            if fit is not None:
                print(f"  {name} of {fit.quantity}: slope {fit.slope:.4g} [{fit.interval.low:.4g}, "
                      f"{fit.interval.high:.4g}] ({fit.points} points)")
        if r.phases is not None:
            for t in r.phases.tests:
                print(f"  claim 3 ordered/{t['other_phase']}: ratio {t['ratio']:.3g} [{t['lower']:.3g}, "
                      f"{t['upper']:.3g}] p = {t['p_value']:.3g} -> {t['verdict']}")
        for check in record.checks:
            print(f"  {'PASS' if check.passed else 'FAIL'} {check.name}: measured {check.measured} "
                  f"{tuple(float(x) for x in check.measured_interval) if check.measured_interval else ''}"
                  + ("" if check.passed else f"\n      {check.detail[:400]}"))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
