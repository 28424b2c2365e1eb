"""Claim 3 (the NTK may stay constant during training only in the ordered phase), regime by regime.

Each regime is a phase-comparison training case (``[case.phases] sigma_w2 = [1.0, 2.0, 2.2]``):
the same architecture and training at the three sigma_w^2 of the paper. This script builds
the case from the table :data:`REGIMES`, runs it through the harness's own runner (the
numbers are exactly those a case file with the same keys gives), with a seed of your choice
(calibration runs use seeds OTHER than the case files' seed 0), and prints:

- per phase: the relative change of the probe NTK (output trace) at the last checkpoint, per
  network and as a geometric mean with its 95% interval; the NTK's scale |Theta_0|_F and
  |Theta_T|_F; the absolute change |Theta_T - Theta_0|_F; the alignment (shape); the training
  loss (at 0 and T) and test accuracy; where the trained weights sit in the phase diagram
  (sw2_T: effective sigma_w^2 of the hidden-to-hidden layers, sb2_T: mean squared hidden
  bias; :func:`harness.training.experiment.effective_variances`) and how much of the inputs'
  differences reaches the last hidden layer at 0 and T (sig0, sigT;
  :func:`harness.training.experiment.signal_propagation`);
- the claim-3 tests (one-sided Welch on logs, level 0.05) at the last checkpoint and, with
  ``--every-checkpoint``, at every checkpoint (the training-length ablation read off one run).

Usage (one torch thread; the machine is shared)::

    OMP_NUM_THREADS=1 nice -n 10 python docs/measurements/scripts/claim3_regimes.py adam-pixels --seed 1000
    python docs/measurements/scripts/claim3_regimes.py --list

``--out DIR`` writes each run's record (results.json format, probe matrices dropped) to
``DIR/<regime>-seed<seed>.json``; ``--networks``, ``--steps`` override the regime's.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

#: Paper-like checkpoints (the paper's: 0, 1, 10, 20, 50, 100, 200, ..., 1000, 1200, 1500, 1700, 2000, 2500, 3000).
PAPER_CHECKPOINTS = [0, 1, 10, 20, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1500, 1700, 2000,
                     2500, 3000]


def _checkpoints(steps: int) -> list[int]:
    return [t for t in PAPER_CHECKPOINTS if t <= steps] + ([steps] if steps not in PAPER_CHECKPOINTS else [])


def regime(width=64, depth=8, parametrization="standard", optimizer="adam", learning_rate=1e-4, steps=2000,
           batch_size=100000, normalization="pixels", networks=4, probe_per_class=3, label="",
           quantity="relative_change", checkpoints=None):
    network = dict(depth=depth, width=width, input_dim=64, output_dim=10, parametrization=parametrization)
    training = dict(optimizer=optimizer, learning_rate=learning_rate, steps=steps, batch_size=batch_size,
                    normalization=normalization, networks=networks, probe_per_class=probe_per_class,
                    checkpoints=checkpoints or _checkpoints(steps))
    return dict(network=network, training=training,
                phases=dict(sigma_w2=[1.0, 2.0, 2.2], regime=label, quantity=quantity))


#: The ablation set. Base: the paper's training (standard parametrization, full-batch Adam at
#: 1e-4, pixels / max, MSE, 10 outputs) at CPU size (width 64, depth 8: lambda = 0.125).
REGIMES = {
    "adam-pixels": regime(label="paper's training (Adam 1e-4, pixels)"),
    "adam-unit-norm": regime(normalization="unit_norm", label="Adam 1e-4, unit-norm inputs"),
    "sgd-pixels": regime(optimizer="sgd", learning_rate=0.01, label="full-batch SGD 0.01, pixels"),
    "sgd-unit-norm": regime(optimizer="sgd", learning_rate=0.2, normalization="unit_norm",
                            label="full-batch SGD 0.2, unit norm"),
    "ntk-adam-pixels": regime(parametrization="ntk", label="NTK parametrization, Adam 1e-4, pixels"),
    "ntk-sgd-pixels": regime(parametrization="ntk", optimizer="sgd", learning_rate=0.5,
                             label="NTK parametrization, full-batch SGD 0.5, pixels"),
    "ntk-sgd-unit-norm": regime(parametrization="ntk", optimizer="sgd", learning_rate=5.0, normalization="unit_norm",
                                label="NTK parametrization, full-batch SGD 5, unit norm"),
    "adam-pixels-w32": regime(width=32, depth=4, label="Adam 1e-4, pixels, width 32 (lambda 0.125)"),
    "adam-pixels-w128": regime(width=128, depth=16, steps=1000, label="Adam 1e-4, pixels, width 128 (lambda 0.125)"),
    "adam-pixels-L16": regime(width=64, depth=16, steps=1000, label="Adam 1e-4, pixels, depth 16 at width 64"),
    # the default suite's cases (cases/training/claim3.toml): width 32, depth 8, 3 networks per phase
    "small-adam-pixels-T300": regime(width=32, networks=3, steps=300, label="paper's training, 300 steps"),
    "small-adam-pixels-T20": regime(width=32, networks=3, steps=20, label="paper's training, first 20 steps"),
    "small-sgd-pixels-T300": regime(width=32, networks=3, steps=300, optimizer="sgd", learning_rate=0.01,
                                    label="full-batch SGD 0.01, pixels, 300 steps"),
    "small-sgd-unit-norm-T1000": regime(width=32, networks=3, steps=1000, optimizer="sgd", learning_rate=0.2,
                                        normalization="unit_norm", label="full-batch SGD 0.2, unit norm, 1000 steps"),
    "small-ntk-sgd-unit-norm-T300": regime(width=32, networks=3, steps=300, parametrization="ntk", optimizer="sgd",
                                           learning_rate=5.0, normalization="unit_norm",
                                           label="NTK parametrization, full-batch SGD 5, unit norm, 300 steps"),
    "small-adam-pixels-T20-4": regime(width=32, networks=4, steps=20, label="paper's training, first 20 steps"),
    "small-adam-unit-norm-T300": regime(width=32, networks=3, steps=300, normalization="unit_norm",
                                        label="Adam 1e-4, unit norm, 300 steps"),
    "small-ntk-sgd-pixels-T300": regime(width=32, networks=3, steps=300, parametrization="ntk", optimizer="sgd",
                                        learning_rate=0.5, label="NTK parametrization, full-batch SGD 0.5, pixels"),
    "small-ntk-adam-pixels-T300": regime(width=32, networks=3, steps=300, parametrization="ntk",
                                         label="NTK parametrization, Adam 1e-4, pixels"),
    # the regime of constancy.toml (SGD 0.5, batch 128, unit norm, width 64, depth 8, 300 steps, 4 networks)
    **{f"constancy-{q}": regime(optimizer="sgd", learning_rate=0.5, batch_size=128, normalization="unit_norm",
                                steps=300, checkpoints=[0, 100, 300], quantity=q,
                                label=f"constancy.toml's SGD, {q.replace('_', ' ')}")
       for q in ("relative_change", "misalignment", "block_ratio_growth")},
}


def to_toml(name: str, spec: dict, seed: int, networks: int | None, steps: int | None) -> str:
    spec = json.loads(json.dumps(spec))
    if networks:
        spec["training"]["networks"] = networks
    if steps:
        spec["training"]["steps"] = steps
        spec["training"]["checkpoints"] = _checkpoints(steps)
    spec["training"]["seed"] = seed

    def value(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = ["[[case]]", f'name = "{name}"', 'kind = "training"']
    for section in ("network", "training", "phases"):
        lines.append(f"[case.{section}]")
        lines += [f"{k} = {value(v)}" for k, v in spec[section].items()]
    return "\n".join(lines) + "\n"


def geometric(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def report(record, every_checkpoint: bool) -> None:
    from harness.training import metrics

    r = record.result
    print(f"case {record.case}: outcome {record.outcome}; {record.timing.total_seconds:.0f} s "
          f"(training {record.timing.training_seconds:.0f} s, NTK {record.timing.ntk_seconds:.1f} s)")
    if r.phases is None:
        for check in record.checks:
            print(f"  {'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail[:300]}")
        return
    experiments = r.phase_experiments()
    print(f"{'phase':>8} {'s_w2':>5} {'rel.change (geo mean [95%])':>30} {'|Th0|':>9} {'|ThT|':>9} "
          f"{'|dTh|':>9} {'align':>6} {'loss0':>7} {'lossT':>7} {'acc':>5} {'sw2_T':>6} {'sb2_T':>7} {'sig0':>8} {'sigT':>8}  per network")
    for v, e in zip(r.phases.values, experiments):
        norm0 = geometric(e.series["ntk_norm"][0])
        normT = geometric(e.series["ntk_norm"][-1])
        change = geometric([c * n for c, n in zip(e.final("relative_change"), e.series["ntk_norm"][0])])
        align = sum(e.final("alignment")) / len(e.final("alignment"))
        loss0 = sum(e.series["train_loss"][0]) / r.networks
        lossT = sum(e.final("train_loss")) / r.networks
        acc = sum(e.final("test_accuracy")) / r.networks
        gain = geometric(e.final("sigma_w2_effective")) if "sigma_w2_effective" in e.series else float("nan")
        bias = (sum(e.final("sigma_b2_effective")) / r.networks) if "sigma_b2_effective" in e.series else float("nan")
        sig0, sigT = ((geometric(e.series["signal_propagation"][0]), geometric(e.final("signal_propagation")))
                      if "signal_propagation" in e.series else (float("nan"), float("nan")))
        print(f"{v.phase:>8} {v.sigma_w2:5g} {str(v.value.value)[:6]:>8} [{v.value.interval.low:.3g}, "
              f"{v.value.interval.high:.3g}]{'':>6} {norm0:9.3g} {normT:9.3g} {change:9.3g} {align:6.3f} "
              f"{loss0:7.4f} {lossT:7.4f} {acc:5.3f} {gain:6.3f} {bias:7.2g} {sig0:8.2g} {sigT:8.2g}  {[round(x, 3) for x in v.per_network]}")
    for t in r.phases.tests:
        print(f"  ordered/{t['other_phase']}: ratio {t['ratio']:.3g}, one-sided 95% bounds [{t['lower']:.3g}, "
              f"{t['upper']:.3g}], p = {t['p_value']:.3g}, {t['degrees_of_freedom']:.1f} dof -> {t['verdict']}")
    print(f"  claim 3 {'HOLDS' if r.phases.holds else 'FAILS'} at step {r.steps}")
    if every_checkpoint:
        ordered = [e for v, e in zip(r.phases.values, experiments) if v.phase == "ordered"][0]
        others = [(v, e) for v, e in zip(r.phases.values, experiments) if v.phase != "ordered"]
        print("  by checkpoint: step: geo-mean ordered / eoc / chaotic; ratios ordered/other [upper bound]; claim")
        for c, step in enumerate(ordered.checkpoints):
            if step == 0:
                continue
            o = [max(x, 1e-300) for x in ordered.series["relative_change"][c]]
            parts, holds = [], True
            for v, e in others:
                test = metrics.welch_ratio_test(o, [max(x, 1e-300) for x in e.series["relative_change"][c]], 0.05)
                holds = holds and test.smaller
                parts.append(f"{test.ratio:.3g} [{test.upper:.3g}] {'<' if test.smaller else ('>' if test.larger else '?')}")
            means = " / ".join(f"{geometric([max(x, 1e-300) for x in e.series['relative_change'][c]]):.3g}"
                               for _, e in [(None, ordered)] + others)
            print(f"    {step:5d}: {means}; {'; '.join(parts)}; {'holds' if holds else 'fails'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("regimes", nargs="*")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--networks", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--every-checkpoint", action="store_true")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list or not args.regimes:
        for name, spec in REGIMES.items():
            print(f"{name}: {spec['phases']['regime']}")
        return 0
    import torch

    from harness.cases.schema import load_case_file
    from harness.kinds.training import KIND
    from harness.options import RunOptions
    from harness.runner import run_case

    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1")))
    for name in args.regimes:
        text = to_toml(name, REGIMES[name], args.seed, args.networks, args.steps)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{name}.toml"
            path.write_text(text)
            (case,) = load_case_file(path, {"training": KIND})
            started = time.perf_counter()
            record = run_case(case, RunOptions(timeout_seconds=0))
        print(f"=== {name} (seed {args.seed}): {REGIMES[name]['phases']['regime']}; wall {time.perf_counter() - started:.0f} s")
        report(record, args.every_checkpoint)
        sys.stdout.flush()
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            data = record.to_record()
            data["result"]["probe_ntk"] = None
            for e in data["result"]["experiments"]:
                e["eigenvalues"] = []
            (args.out / f"{name}-seed{args.seed}.json").write_text(json.dumps(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
