"""The power of the quick dispersion cases against a scale error Theta -> c Theta, before and after.

    python docs/measurements/scripts/power_table.py [RESULTS.json]

"before": the previous quick suite (width 16, depth 8, 400 networks, all four statistics and
KS at a false-alarm rate of 1e-3, the former calibration: R + 1 = ceil(2 / alpha), one fixed
seed), computed here from the exact law; "after": the current cases/dispersion/quick.toml,
read from the records of a run (RESULTS.json: a results.json or `ntk-harness run --json`
output) or, without one, computed the way the harness computes it. Prints one row per case:
the factors c < 1 and c > 1 caught with probability 0.9, and whether [0.9, 1.1] is covered.
"""
import json
import sys
import tempfile

from reference import ExactLaw, case_minimum_detectable_scale


def row(name, low, high):
    covered = "yes" if low >= 0.9 and high <= 1.1 else "no"
    return f"| {name} | {low:.4f} | {high:.4f} | {covered} |"


print("| case | c below 1 caught w.p. 0.9 | c above 1 caught w.p. 0.9 | 10% caught w.p. >= 0.9 |")
print("|---|---|---|---|")
with tempfile.TemporaryDirectory() as cache:
    for bias in (True, False):
        for sigma_w2, phase in ((1.0, "ordered"), (2.0, "eoc"), (3.0, "chaotic")):
            law = ExactLaw((16,) * 9, sigma_w2, trainable_bias=bias)
            found = case_minimum_detectable_scale(law, 400, 1e-3, cache_dir=cache, delta=None, reference_seed=11,
                                                  replicates=4000)
            print(row(f"before: quick[{phase}-w16-L8-s{sigma_w2:g}{'' if bias else '-nobias'}], 400 networks",
                      found.low, found.high))
    if len(sys.argv) > 1:
        records = json.load(open(sys.argv[1]))["records"]
        for record in sorted(records, key=lambda r: r["case"]):
            result = record.get("result") or {}
            scale = result.get("minimum_detectable_scale")
            if record["kind"] == "dispersion" and scale:
                print(row(f"after: {record['case']}, {result['networks']} networks", scale[0], scale[1]))
