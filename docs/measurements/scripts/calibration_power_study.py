"""Design study: per-check calibration cost and power against a scale error, for quick cases.

Sections (each prints markdown; docs/measurements/calibration_and_power.md holds the output):

    python docs/measurements/scripts/calibration_power_study.py tradeoff   # R, m, delta and power
    python docs/measurements/scripts/calibration_power_study.py timing     # calibration time before/after
    python docs/measurements/scripts/calibration_power_study.py null       # former construction, 10^5 null sets
    python docs/measurements/scripts/calibration_power_study.py null-counts  # every check, new construction
    python docs/measurements/scripts/calibration_power_study.py design     # candidate quick cases
    python docs/measurements/scripts/calibration_power_study.py verify     # the recommended sets

Everything is seeded.  Times are wall-clock on the machine it runs on (the 2-core CI box,
shared), so they move with the load; the cost model (layer-draws) does not.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

from reference import ExactLaw  # noqa: E402
from reference.acceptance import (STATISTICS, _estimates, acceptance_intervals, calibration_layer_draws,  # noqa: E402
                                  map_replicates, replicate_count, tail_exceedance_probability)
from reference.power import minimum_detectable_scale  # noqa: E402

FALSE_ALARM_RATE = 1e-3
CHECKS = 5                                   # log_mean, mean, dispersion, log_variance + KS
ALPHA_CHECK = FALSE_ALARM_RATE / CHECKS      # 2e-4 per check, 1e-4 per tail
REFERENCE_SEED = 11                          # quick.toml's sampling seed (the KS reference's seed)
Z90 = stats.norm.ppf(0.9)
PHASES = [(1.0, True), (2.0, True), (3.0, True), (1.0, False), (2.0, False), (3.0, False)]


def timed(function):
    start = time.perf_counter()
    out = function()
    return out, time.perf_counter() - start


def timed_cpu(function):
    """(result, wall s, process CPU s): on a busy machine CPU / wall shows what the threads got."""
    start, cpu = time.perf_counter(), time.process_time()
    out = function()
    return out, time.perf_counter() - start, time.process_time() - cpu


def load():
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- tradeoff
def tradeoff():
    a = ALPHA_CHECK / 2
    print(f"Per-tail level a = {a:g} (alpha_check = {ALPHA_CHECK:g}).  E[mass] = m / (R + 1) is the expected null")
    print("tail mass beyond the interval end; z its normal quantile; 'S for equal power' is")
    print("((z + z_0.9) / (z_1 + z_0.9))^2 relative to m = 1, delta = 1e-3 (normal approximation of the")
    print("estimator); 'cost' = R * S relative to the same.\n")
    base = None
    rows = []
    for delta in (1e-2, 1e-3, 1e-4, None):
        for m in ((1, 2, 5, 10, 30) if delta == 1e-3 else (1,)):
            r = replicate_count(ALPHA_CHECK, delta=delta, m=m)
            mass = m / (r + 1)
            z = stats.norm.isf(mass)
            rows.append((delta, m, r, mass, z))
            if delta == 1e-3 and m == 1:
                base = (r, z)
    print("| delta | m | R | P(tail > a) | E[mass] / a | z | S for equal power | cost R*S |")
    print("|---|---|---|---|---|---|---|---|")
    for delta, m, r, mass, z in rows:
        s_rel = ((z + Z90) / (base[1] + Z90)) ** 2
        exceed = tail_exceedance_probability(r, m, a)
        label = "former (none)" if delta is None else f"{delta:g}"
        print(f"| {label} | {m} | {r:,} | {exceed:.2g} | {mass / a:.3f} | {z:.2f} | {s_rel:.3f} | "
              f"{r * s_rel / base[0]:.2f} |")


# ---------------------------------------------------------------------------- timing
def _former_module():
    """reference/acceptance.py as of the commit before this change (git show), imported as
    reference._acceptance_former so its relative imports resolve."""
    source = subprocess.run(["git", "-C", ROOT, "show", "1346924:reference/acceptance.py"], check=True,
                            capture_output=True, text=True).stdout
    handle, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(handle, "w") as out:
        out.write(source)
    spec = importlib.util.spec_from_file_location("reference._acceptance_former", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(path)
    return module


def timing():
    former = _former_module()
    print(f"({load()} at start)\n")
    print("| configuration | construction | R | layer-draws | threads | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for widths, samples in (((16,) * 9, 400), ((64,) * 5, 400)):
        law = ExactLaw(widths, 2.0)
        label = f"n={widths[1]} L={len(widths) - 1} S={samples} EOC bias"
        r_old, m_old = former.replicate_count(law, samples, ALPHA_CHECK)
        _, t, cpu = timed_cpu(lambda: former.acceptance_intervals(law, samples, ALPHA_CHECK))
        print(f"| {label} | before (exchangeable, m={m_old}) | {r_old:,} | {r_old * samples * len(widths):.2e} | 1 | "
              f"{t:.1f} | {cpu:.1f} |")
        for threads in (1, 2):
            r = replicate_count(ALPHA_CHECK)
            _, t, cpu = timed_cpu(lambda: acceptance_intervals(law, samples, ALPHA_CHECK, threads=threads))
            print(f"| {label} | after (tolerance, m=1, delta=1e-3) | {r:,} | {r * samples * len(widths):.2e} | "
                  f"{threads} | {t:.1f} | {cpu:.1f} |")
        r = replicate_count(ALPHA_CHECK, delta=None)
        _, t, cpu = timed_cpu(lambda: acceptance_intervals(law, samples, ALPHA_CHECK, delta=None, threads=2))
        print(f"| {label} | after, former construction (delta=None) | {r:,} | {r * samples * len(widths):.2e} | 2 | "
              f"{t:.1f} | {cpu:.1f} |")
    print(f"\n({load()} at end)")


# ---------------------------------------------------------------------------- null
def null(seeds=12, sets=100_000):
    """Former construction (delta=None, m=1) at calibration seeds 0..seeds-1 and the new one at
    seed 0, on 10^5 null data sets per configuration (same draws as the slow test)."""
    samples, widths = 400, (16,) * 9
    bound = int(stats.binom.isf(1e-6, sets, ALPHA_CHECK / 2))
    configurations = [(1.0, True), (2.0, True), (3.0, True), (2.0, False)]
    print(f"10^5 null data sets per configuration, S = {samples}, width 16, depth 8; per-tail share "
          f"{ALPHA_CHECK / 2:g}, bound {bound} (binomial, test false-alarm rate 1e-6).\n")
    print("| configuration | construction | seed | max tail count | tail | calibrations over the bound |")
    print("|---|---|---|---|---|---|")
    over = total = 0
    for index, (sigma_w2, bias) in enumerate(configurations):
        law = ExactLaw(widths, sigma_w2, trainable_bias=bias)
        values = map_replicates(law, samples, sets, lambda x: _estimates(x, STATISTICS), entropy=[2022, index])
        label = f"sigma_w2={sigma_w2:g} {'bias' if bias else 'no bias'}"

        def worst(intervals):
            counts = {(s, t): int(np.sum(values[s] < lo) if t == "low" else np.sum(values[s] > hi))
                      for s, (lo, hi) in intervals.items() for t in ("low", "high")}
            key = max(counts, key=counts.get)
            return counts[key], f"{key[0]} {key[1]}"

        count, where = worst(acceptance_intervals(law, samples, ALPHA_CHECK))
        print(f"| {label} | tolerance (new) | 0 | {count} | {where} | {int(count > bound)}/1 |")
        exceeded = []
        for seed in range(seeds):
            count, where = worst(acceptance_intervals(law, samples, ALPHA_CHECK, seed=seed, delta=None))
            exceeded.append(count > bound)
            if seed == 0 or count > bound:
                print(f"| {label} | former (R = 9,999) | {seed} | {count} | {where} | |")
        over += sum(exceeded)
        total += len(exceeded)
        print(f"| {label} | former, seeds 0..{seeds - 1} | | | | {sum(exceeded)}/{len(exceeded)} |")
    print(f"\nFormer construction: {over} of {total} calibrations exceed the bound in some tail.")



def null_counts(sets=100_000):
    """Every check's false-alarm count on the slow test's 10^5 null data sets per configuration
    (same seeds), against the cached new intervals (seed 0) and the KS check at alpha_check."""
    from reference.acceptance import goodness_of_fit_critical_distance, reference_sample
    from reference.power import _ks_scale_range, _ks_thresholds
    samples, widths = 400, (16,) * 9
    stat_bound = int(stats.binom.isf(1e-6, sets, ALPHA_CHECK / 2))
    ks_bound = int(stats.binom.isf(1e-6, sets, ALPHA_CHECK))
    configurations = [(1.0, True), (2.0, True), (3.0, True), (2.0, False)]
    print("| configuration | check | tail | count | bound | rate |")
    print("|---|---|---|---|---|---|")
    for index, (sigma_w2, bias) in enumerate(configurations):
        law = ExactLaw(widths, sigma_w2, trainable_bias=bias)
        reference = reference_sample(law, 200_000, REFERENCE_SEED)
        lower, upper = _ks_thresholds(reference, samples,
                                      goodness_of_fit_critical_distance(samples, ALPHA_CHECK, reference.size))

        def statistics(x):
            out = _estimates(x, STATISTICS)
            low, high = _ks_scale_range(x, lower, upper)
            out["ks_rejects"] = ~((low <= 1.0) & (1.0 <= high))
            return out

        values = map_replicates(law, samples, sets, statistics, entropy=[2022, index])
        intervals = acceptance_intervals(law, samples, ALPHA_CHECK)
        label = f"sigma_w2={sigma_w2:g} {'bias' if bias else 'no bias'}"
        for s, (lo, hi) in intervals.items():
            for tail, count in (("low", int(np.sum(values[s] < lo))), ("high", int(np.sum(values[s] > hi)))):
                print(f"| {label} | {s} | {tail} | {count} | {stat_bound} | {count / sets:.1e} |")
        count = int(values["ks_rejects"].sum())
        print(f"| {label} | KS (goodness_of_fit) | - | {count} | {ks_bound} | {count / sets:.1e} |", flush=True)


# ---------------------------------------------------------------------------- design
# Network cost per network (3 inputs) -- ESTIMATES, not measurements: the brief's figures for
# (64, 4) and (16, 8); others scaled per layer from the (16, 8) figure (0.125 ms a layer), and
# (64, 2) as half of (64, 4).
NETWORK_MS = {(16, 8): 1.0, (16, 4): 0.5, (32, 4): 0.5, (64, 4): 0.3, (64, 2): 0.15}
SHAPES = [(16, 8), (16, 4), (32, 4), (64, 4), (64, 2)]
SIMULATE_LIMIT = 6e8     # layer-draws: calibrations larger than this are predicted, not run


def _round_up(x, step=50):
    return int(step * math.ceil(x / step))


def design(ns_per_layer_draw=None):
    r_new, r_old = replicate_count(ALPHA_CHECK), replicate_count(ALPHA_CHECK, delta=None)
    z_new, z_old = stats.norm.isf(1 / (r_new + 1)), stats.norm.isf(1 / (r_old + 1))
    rng = np.random.default_rng(2024)
    source = "given"
    if ns_per_layer_draw is None:     # measured here, 2 threads, to predict what is not run
        law = ExactLaw((16,) * 9, 2.0)
        _, t = timed(lambda: acceptance_intervals(law, 400, 2e-3, threads=2))
        ns_per_layer_draw = t / calibration_layer_draws(law, 400, 2e-3) * 1e9
        source = "measured now"
    print(f"({load()} at start.)  "
          f"Cost model: {ns_per_layer_draw:.1f} ns per layer-draw with 2 threads ({source}); "
          f"R = {r_new:,} (new), {r_old:,} (former).\n")
    print("Table A (all candidates): sd of log Theta (200,000 exact draws) and the S that the normal")
    print("approximation of log_mean needs for c = 1.1 at power 0.9: S = ((z_end + z_0.9) sd / log 1.1)^2,")
    print(f"z_end = {z_new:.2f} (new: expected end at 1/(R+1)) or {z_old:.2f} (former).  Calibration time")
    print("predicted by the cost model, network time from the estimates in the script.\n")
    print("| n | L | sigma_w2 | bias | sd log | S new | S former | calibration s (new, 2 threads) | "
          "networks s (est.) |")
    print("|---|---|---|---|---|---|---|---|---|")
    plan = []
    for shape in SHAPES:
        n, depth = shape
        for sigma_w2, bias in PHASES:
            law = ExactLaw((n,) * (depth + 1), sigma_w2, trainable_bias=bias)
            x = law.sample(200_000, rng)
            sd = float(np.log(x[x > 0]).std())
            s_new = _round_up(((z_new + Z90) * sd / math.log(1.1)) ** 2)
            s_old = _round_up(((z_old + Z90) * sd / math.log(1.1)) ** 2)
            calibration = calibration_layer_draws(law, s_new, ALPHA_CHECK) * ns_per_layer_draw * 1e-9
            networks = s_new * NETWORK_MS[shape] * 1e-3
            print(f"| {n} | {depth} | {sigma_w2:g} | {'yes' if bias else 'no'} | {sd:.3f} | {s_new} | {s_old} | "
                  f"{calibration:.1f} | {networks:.2f} |")
            plan.append((shape, sigma_w2, bias, law, s_new))
    print("\nTable B (simulated): the case as the harness runs it -- 4 statistics + KS, false-alarm rate 1e-3,")
    print("calibration seed 0, KS reference seed 11 -- minimum detectable c at power 0.9 (20,000 null data")
    print("sets; Monte Carlo error of c below 0.002) with the new intervals and with the former ones;")
    print("calibration wall time measured with an empty cache and 2 threads.  Rows whose calibration would")
    print(f"exceed {SIMULATE_LIMIT:.0e} layer-draws are not run; for (16, 8) the current S = 400 is run instead.\n")
    print("| n | L | sigma_w2 | bias | S | c low new | c high new | c low former | c high former | "
          "calibration s | power sim s | networks s (est.) | meets [0.9, 1.1] |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape, sigma_w2, bias, law, s_new in plan:
        candidates = [s_new]
        if shape == (16, 8):
            candidates = [400]
        for samples in candidates:
            if calibration_layer_draws(law, samples, ALPHA_CHECK) > SIMULATE_LIMIT:
                print(f"| {shape[0]} | {shape[1]} | {sigma_w2:g} | {'yes' if bias else 'no'} | {samples} | "
                      "not run | | | | | | | |")
                continue
            for attempt in range(3):
                intervals, t_cal = timed(lambda: acceptance_intervals(law, samples, ALPHA_CHECK, threads=2))
                new, t_pow = timed(lambda: minimum_detectable_scale(
                    law, samples, intervals, goodness_of_fit_level=ALPHA_CHECK, reference_seed=REFERENCE_SEED,
                    threads=2))
                former_intervals = acceptance_intervals(law, samples, ALPHA_CHECK, delta=None, threads=2)
                old = minimum_detectable_scale(law, samples, former_intervals, goodness_of_fit_level=ALPHA_CHECK,
                                               reference_seed=REFERENCE_SEED, delta=None, threads=2)
                ok = 0.9 <= new.low and new.high <= 1.1
                print(f"| {shape[0]} | {shape[1]} | {sigma_w2:g} | {'yes' if bias else 'no'} | {samples} | "
                      f"{new.low:.3f} | {new.high:.3f} | {old.low:.3f} | {old.high:.3f} | {t_cal:.1f} | "
                      f"{t_pow:.1f} | {samples * NETWORK_MS[shape] * 1e-3:.2f} | {'yes' if ok else 'no'} |",
                      flush=True)
                if ok or shape == (16, 8):
                    break
                # not there yet: grow S by the normal-approximation ratio (log c scales as 1/sqrt(S))
                worst = max(math.log(new.high) / math.log(1.1), math.log(new.low) / math.log(0.9))
                samples = _round_up(samples * worst ** 2 * 1.02)
                if calibration_layer_draws(law, samples, ALPHA_CHECK) > SIMULATE_LIMIT:
                    break
    print(f"\n({load()} at end.)")


# ---------------------------------------------------------------------------- verify
RECOMMENDED = {
    "A: width 64, depth 4": ((64, 4), {(1.0, True): 150, (2.0, True): 500, (3.0, True): 650, (1.0, False): 850,
                                       (2.0, False): 850, (3.0, False): 850}),
    "B: width 64, depth 2": ((64, 2), {(1.0, True): 120, (2.0, True): 250, (3.0, True): 300, (1.0, False): 350,
                                       (2.0, False): 350, (3.0, False): 350}),
    "C: width 64, depth 2, one S": ((64, 2), {(1.0, True): 350, (2.0, True): 350, (3.0, True): 350,
                                              (1.0, False): 350, (2.0, False): 350, (3.0, False): 350}),
}


def verify(ns_per_layer_draw=None):
    """Power at exactly c = 0.9 and c = 1.1 of each recommended case (20,000 null data sets; the
    case as the harness runs it), its calibration time (empty cache, 2 threads), and the spread of
    the detectable c over calibration seeds 0..4 for set B (the m = 1 end is random)."""
    print(f"({load()} at start.)\n")
    print("| set | sigma_w2 | bias | S | power at c = 0.9 | power at c = 1.1 | c low | c high | "
          "layer-draws | calibration s (measured) | calibration s (model) | power sim s | networks s (est.) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    totals = {}
    for name, (shape, sizes) in RECOMMENDED.items():
        n, depth = shape
        total = [0.0, 0.0, 0.0, 0.0]
        for (sigma_w2, bias), samples in sizes.items():
            law = ExactLaw((n,) * (depth + 1), sigma_w2, trainable_bias=bias)
            draws = calibration_layer_draws(law, samples, ALPHA_CHECK)
            intervals, t_cal = timed(lambda: acceptance_intervals(law, samples, ALPHA_CHECK, threads=2))
            found, t_pow = timed(lambda: minimum_detectable_scale(
                law, samples, intervals, goodness_of_fit_level=ALPHA_CHECK, reference_seed=REFERENCE_SEED, threads=2))
            power, se = found.power_curve(np.array([0.9, 1.1]))
            model = draws * (ns_per_layer_draw or 25.0) * 1e-9
            networks = samples * NETWORK_MS[shape] * 1e-3
            for i, value in enumerate((t_cal, model, t_pow, networks)):
                total[i] += value
            print(f"| {name} | {sigma_w2:g} | {'yes' if bias else 'no'} | {samples} | {power[0]:.3f} +- {se[0]:.3f} | "
                  f"{power[1]:.3f} +- {se[1]:.3f} | {found.low:.3f} | {found.high:.3f} | {draws:.2e} | {t_cal:.1f} | "
                  f"{model:.1f} | {t_pow:.1f} | {networks:.2f} |", flush=True)
        totals[name] = total
    print("\n| set | calibration s (measured) | calibration s (model, idle) | power sims s (measured) | "
          "networks s (est.) |")
    print("|---|---|---|---|---|")
    for name, total in totals.items():
        print(f"| {name} | {total[0]:.1f} | {total[1]:.1f} | {total[2]:.1f} | {total[3]:.2f} |")
    print("\nSet B, detectable c over calibration seeds 0..4 (power 0.9):\n")
    print("| sigma_w2 | bias | S | c low (seeds 0..4) | c high (seeds 0..4) |")
    print("|---|---|---|---|---|")
    (n, depth), sizes = RECOMMENDED["B: width 64, depth 2"]
    for (sigma_w2, bias), samples in sizes.items():
        if not bias and sigma_w2 != 1.0:
            continue        # without biases the law is the same up to scale for every sigma_w2
        law = ExactLaw((n,) * (depth + 1), sigma_w2, trainable_bias=bias)
        lows, highs = [], []
        for seed in range(5):
            intervals = acceptance_intervals(law, samples, ALPHA_CHECK, seed=seed, threads=2)
            found = minimum_detectable_scale(law, samples, intervals, goodness_of_fit_level=ALPHA_CHECK,
                                             reference_seed=REFERENCE_SEED, threads=2)
            lows.append(found.low)
            highs.append(found.high)
        print(f"| {sigma_w2:g} | {'yes' if bias else 'no (any sigma_w2)'} | {samples} | "
              f"{' '.join(f'{x:.3f}' for x in lows)} | {' '.join(f'{x:.3f}' for x in highs)} |", flush=True)
    print(f"\n({load()} at end.)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=["tradeoff", "timing", "null", "null-counts", "design", "verify"])
    parser.add_argument("--ns-per-layer-draw", type=float, default=None,
                        help="design: cost model for predicted calibration times (default: measure now)")
    args = parser.parse_args()
    if args.section in ("design", "verify"):
        {"design": design, "verify": verify}[args.section](args.ns_per_layer_draw)
    else:
        {"tradeoff": tradeoff, "timing": timing, "null": null, "null-counts": null_counts}[args.section]()


if __name__ == "__main__":
    main()
