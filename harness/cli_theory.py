"""``ntk-harness theory``: reference predictions for one configuration, no network is built.

    ntk-harness theory --width N --depth L --sigma-w2 S [--input-dim D] [--no-bias]
                       [--samples S] [--alpha A] [--json]

Prints the phase, lambda = L/n, the exact finite-width mean, second moment and dispersion
of Theta(x, x) (unit-norm input, zero-bias-initialized ReLU net), the asymptotic
dispersion and, with ``--samples``, the calibrated acceptance intervals of every statistic
at that sample size.  Bad input: message on stderr, exit status 2, no traceback.
Imports ``reference`` only.
"""

from __future__ import annotations

import json
import math
import sys

import reference

_PROG = "ntk-harness theory"


def add_parser(subparsers) -> None:
    """Add the ``theory`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "theory", help="reference predictions (phase, exact moments, asymptotic dispersion, acceptance intervals)",
        description="Reference theory for the diagonal NTK Theta(x, x) of a ReLU net at initialization.")
    parser.add_argument("--width", type=int, required=True, help="hidden width n (every hidden layer)")
    parser.add_argument("--depth", type=int, required=True, help="number of hidden layers L")
    parser.add_argument("--sigma-w2", type=float, required=True, help="weight variance sigma_w^2 (W ~ N(0, sigma_w^2/fan_in))")
    parser.add_argument("--input-dim", type=int, default=None, help="input dimension n_0 (default: width)")
    parser.add_argument("--no-bias", action="store_true", help="biases are not trainable parameters")
    parser.add_argument("--samples", type=int, default=None, help="sample size S: also print acceptance intervals")
    parser.add_argument("--alpha", type=float, default=1e-3, help="false-alarm rate per interval (default 1e-3)")
    parser.add_argument("--sigma-b2", type=float, default=0.0,
                        help="bias variance at init (default 0; > 0 leaves the exact law: phase and infinite-width only)")
    parser.add_argument("--activation", default="relu",
                        help="relu (default), tanh, erf, linear; non-relu: mean-field phase only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration replicates (default 0)")
    parser.add_argument("--cache-dir", default=None, help="cache acceptance intervals in this folder (default: no cache)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _finite(value: float):
    return value if math.isfinite(value) else None


def predictions(args) -> dict:
    """The JSON object printed by ``--json`` (raises ValueError for bad input)."""
    width = int(args.width)
    depth = int(args.depth)
    if width < 1:
        raise ValueError(f"--width must be an integer >= 1 (got {width})")
    if depth < 1:
        raise ValueError(f"--depth must be an integer >= 1 (got {depth})")
    if not (args.sigma_w2 > 0 and math.isfinite(args.sigma_w2)):
        raise ValueError(f"--sigma-w2 must be a finite number > 0 (got {args.sigma_w2})")
    input_dim = width if args.input_dim is None else int(args.input_dim)
    if input_dim < 1:
        raise ValueError(f"--input-dim must be an integer >= 1 (got {input_dim})")
    if args.samples is not None and args.samples < 2:
        raise ValueError(f"--samples must be an integer >= 2 (got {args.samples})")
    if not (0.0 < args.alpha < 1.0):
        raise ValueError(f"--alpha must be in the open interval (0, 1) (got {args.alpha})")
    trainable_bias = not args.no_bias
    sigma_b2 = getattr(args, "sigma_b2", 0.0)
    activation = getattr(args, "activation", "relu")
    if not (sigma_b2 >= 0 and math.isfinite(sigma_b2)):
        raise ValueError(f"--sigma-b2 must be a finite number >= 0 (got {sigma_b2})")
    widths = (input_dim,) + (width,) * depth
    lam = reference.depth_to_width((width,) * depth)
    try:
        law = reference.ExactLaw(widths, args.sigma_w2, trainable_bias=trainable_bias, sigma_b2=sigma_b2,
                                 activation=activation)
    except reference.NotApplicable as exc:
        if args.samples is not None:
            raise ValueError(f"--samples needs the exact law, which does not apply here: {exc}") from None
        return {
            "phase": reference.phase_of(args.sigma_w2, sigma_b2, activation),
            "depth_to_width": lam, "width": width, "depth": depth, "input_dim": input_dim,
            "sigma_w2": args.sigma_w2, "sigma_b2": sigma_b2, "activation": activation,
            "trainable_bias": trainable_bias,
            "chi_1": reference.chi_1(args.sigma_w2, sigma_b2, activation),
            "variance_fixed_point": _finite(reference.variance_fixed_point(args.sigma_w2, sigma_b2, activation)),
            "exact": None, "asymptotic": None,
            "infinite_width": ({"mean": _finite(reference.infinite_width_ntk(
                1.0, 1.0, 1.0, widths, args.sigma_w2, sigma_b2=sigma_b2, trainable_bias=trainable_bias))}
                if activation == "relu" else None),
            "not_applicable": str(exc),
        }
    log_mean, log_second = law.log_mean_second_moment()
    out = {
        "phase": reference.phase_of(args.sigma_w2),
        "depth_to_width": lam,
        "width": width,
        "depth": depth,
        "input_dim": input_dim,
        "sigma_w2": args.sigma_w2,
        "trainable_bias": trainable_bias,
        "exact": {
            "mean": _finite(law.mean()),
            "second_moment": _finite(law.second_moment()),
            "dispersion": law.dispersion(),
            "log_mean": log_mean,
            "log_second_moment": log_second,
        },
        "asymptotic": {
            "dispersion": reference.asymptotic_dispersion(
                lam, args.sigma_w2, trainable_bias, input_scale=width / input_dim),
        },
        "infinite_width": {"mean": _finite(reference.infinite_width_ntk(
            1.0, 1.0, 1.0, law.widths, args.sigma_w2, trainable_bias=trainable_bias))},
    }
    if args.samples is not None:
        intervals = reference.acceptance_intervals(law, args.samples, args.alpha, seed=args.seed,
                                                   cache_dir=getattr(args, "cache_dir", None))
        out["samples"] = args.samples
        out["alpha"] = args.alpha
        out["acceptance"] = {name: [lo, _finite(hi)] for name, (lo, hi) in intervals.items()}
    return out


def _table(result: dict) -> str:
    from tabulate import tabulate

    if result.get("exact") is None:
        rows = [("phase (mean-field)", result["phase"]), ("chi_1", f"{result['chi_1']:.6g}"),
                ("variance fixed point q*", "inf" if result["variance_fixed_point"] is None
                 else f"{result['variance_fixed_point']:.6g}"),
                ("depth_to_width (lambda = L/n)", f"{result['depth_to_width']:.6g}")]
        if result["infinite_width"] is not None:
            rows.append(("infinite-width E[Theta] (Jacot)", f"{result['infinite_width']['mean']:.6g}"))
        rows.append(("exact / asymptotic law", "not applicable: " + result["not_applicable"]))
        return tabulate(rows, headers=("quantity", "value"), disable_numparse=True)

    rows = [
        ("phase", result["phase"]),
        ("depth_to_width (lambda = L/n)", result["depth_to_width"]),
        ("widths", f"n_0={result['input_dim']}, n={result['width']}, L={result['depth']}"),
        ("trainable biases", "yes" if result["trainable_bias"] else "no"),
        ("exact E[Theta]", result["exact"]["mean"]),
        ("exact E[Theta^2]", result["exact"]["second_moment"]),
        ("exact dispersion E[Theta^2]/E[Theta]^2", result["exact"]["dispersion"]),
        ("asymptotic dispersion (n, L -> inf, L/n fixed)", result["asymptotic"]["dispersion"]),
        ("infinite-width E[Theta] (Jacot)", result["infinite_width"]["mean"]),
    ]
    rows = [(name, f"{value:.6g}" if isinstance(value, float) else ("n/a (overflow)" if value is None else value))
            for name, value in rows]
    text = tabulate(rows, headers=("quantity", "value"), disable_numparse=True)
    if "acceptance" in result:
        acc = [(name, lo, hi) for name, (lo, hi) in result["acceptance"].items()]
        text += (f"\n\nacceptance intervals at S={result['samples']}, alpha={result['alpha']:g} "
                 "(each; exact sampling distribution of the estimator)\n")
        text += tabulate(acc, headers=("statistic", "low", "high"), floatfmt=".6g")
    return text


def main(args) -> int:
    """Run ``ntk-harness theory``; returns the exit status (0, or 2 for bad input)."""
    try:
        result = predictions(args)
    except ValueError as exc:   # includes reference.NotApplicable
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_table(result))
    return 0
