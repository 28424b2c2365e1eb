"""The KS table of the exact joint law against real torch networks, one row per configuration.

Recomputes the module fixture of ``tests/reference/test_reference_joint.py`` (13 configurations:
relu/tanh/erf/linear, biases on, off and frozen, n0 != n, |x| != 1, widths 4..32, two outputs,
duplicate and zero inputs; every distinct entry of the 3 x 3 matrix, 2000 networks against 2000
exact draws per two-sample KS test) and prints the smallest and median p-value per
configuration against the Bonferroni threshold of the whole table, then the uniformity test
of all p-values together.

    OMP_NUM_THREADS=1 python docs/measurements/scripts/joint_law_ks_table.py
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "tests" / "reference"), str(ROOT)]

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import test_reference_joint as joint  # noqa: E402

fixture = getattr(joint.ks_table, "__pytest_wrapped__", None)
table = (fixture.obj if fixture else joint.ks_table.__wrapped__)()
size = joint._table_size(table)
print(f"| configuration | KS tests | smallest p | median p | Bonferroni threshold {joint.ALPHA / size:.1e} |")
print("|---|---|---|---|---|")
every = []
for name, rows in table.items():
    p = [row[2] for row in rows]
    every += p
    verdict = "pass" if min(p) > joint.ALPHA / size else "FAIL"
    print(f"| {name} | {len(p)} | {min(p):.3g} | {np.median(p):.3f} | {verdict} |")
uniform = stats.kstest(every, "uniform", alternative="greater").pvalue
print(f"all {len(every)} p-values against U(0,1), one-sided KS: p = {uniform:.3f}")
