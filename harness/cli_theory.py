"""``ntk-harness theory``: reference predictions for one configuration, no network is built.

    ntk-harness theory --width N --depth L --sigma-w2 S [--input-dim D] [--no-bias]
                       [--sigma-b2 B] [--activation relu|tanh|erf|linear]
                       [--inner-products C [C ...]] [--draws M] [--seed K]
                       [--networks S] [--alpha A] [--ntk-cache-dir DIR] [--json]

For a fully connected net (L hidden layers of width N, input dimension D, unit-norm inputs,
standard parametrization) it prints the phase, lambda = L/N and the moments of the NTK:

- ReLU with sigma_b2 = 0: the exact finite-width mean, second moment and dispersion of
  Theta(x, x) (:class:`reference.ExactLaw`, computed in log space: moments beyond the float64
  range are printed from their logs, ``1.23e+4567``, and are ``null`` in JSON next to their
  always-finite logs), the asymptotic dispersion (n, L -> inf, L/n fixed), the infinite-width
  mean and, with ``--networks``, the calibrated acceptance intervals of every statistic;
- any other activation or sigma_b2 > 0: the mean-field phase, chi_1 and q*, and the mean and
  dispersion of Theta(x, x) estimated from ``--draws`` exact draws of the joint law
  (:class:`reference.EntryLaw`), each with its Monte Carlo standard error;
- for every cosine c of ``--inner-products`` (any activation): the mean and dispersion of
  the off-diagonal entry Theta(x, y) with <x, y> = c, |x| = |y| = 1, from ``--draws`` exact
  draws of the joint law, with standard errors (and, for ReLU, the infinite-width mean).

Supported ranges: :data:`RANGES_HELP` (printed by ``--help`` too). Anything else exits with
status 2 and ONE line ``ntk-harness theory: error: --<flag>: expected ..., got ...``.

Monte Carlo draws: the entry with cosine c uses the generator seeded with ``(seed, bits of
c)``, so its numbers do not depend on which other entries are asked for. Errors are standard
errors (one standard deviation of the estimator: sd / sqrt(draws) for the mean, the delta
method for the dispersion); both need finite fourth moments and are themselves noisy for the
heavy-tailed laws at depth (:mod:`reference.joint`, section 6). Draws that overflow float64
leave the entry's moments ``null`` with the count of non-finite draws.

Imports ``reference`` (and numpy) only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np

import reference

_PROG = "ntk-harness theory"

ACTIVATIONS = ("relu", "tanh", "erf", "linear")
WIDTH_RANGE = (1, 10**6)
DEPTH_RANGE = (1, 10**5)
SIGMA_RANGE = (1e-6, 1e6)
NETWORKS_RANGE = (2, 10**6)
ALPHA_MIN = 1e-6
DRAWS_RANGE = (2, 10**7)
SEED_RANGE = (0, 2**63 - 1)
MAX_INNER_PRODUCTS = 20
#: Default number of Monte Carlo draws per entry (lowered to fit MC_MAX_SECONDS).
DEFAULT_DRAWS = 50_000
#: Largest estimated sampling time of all Monte Carlo entries together (seconds, one core).
MC_MAX_SECONDS = 60.0
#: Largest width x depth of a Monte Carlo: the sampler holds >= 16 draws of every neuron
#: (~50 bytes per neuron and draw for a pair of inputs), i.e. at most ~200 MB.
MC_MAX_NEURONS = 250_000
#: Largest estimated time of calibrating the acceptance intervals (seconds, one core).
CALIBRATION_MAX_SECONDS = 120.0


#: The supported ranges, as ``--help`` prints them (the checks: :func:`_checked` and the cost
#: estimates below).
RANGES_HELP = """\
    --width, --input-dim   integers in [1, 10^6]
    --depth                integers in [1, 10^5] (the exact law costs ~15 us per layer)
    --sigma-w2             a number in [1e-6, 1e6]
    --sigma-b2             0 or a number in [1e-6, 1e6] (0 with --no-bias)
    --inner-products       at most 20 cosines in [-1, 1]; |c| < 1 needs --input-dim >= 2
    --draws                an integer in [2, 10^7] (default 50,000), and at most ~60 s of
                           estimated sampling for all entries together (the default is
                           lowered to fit); a Monte Carlo needs width x depth <= 250,000
                           (the sampler holds 16 draws of every neuron at once)
    --networks             an integer in [2, 10^6], and at most ~120 s of estimated
                           calibration (about 14 / alpha data sets of S draws)
    --alpha                a number in [1e-6, 1)
    --seed                 an integer in [0, 2^63)"""


class BadArgument(ValueError):
    """A value outside its supported range: the message names the flag, the range and the value."""

    def __init__(self, flag: str, message: str):
        self.flag = flag
        super().__init__(f"{flag}: {message}")


def add_parser(subparsers) -> None:
    """Add the ``theory`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "theory", help="reference predictions (phase, exact moments, asymptotic dispersion, acceptance intervals)",
        description="Reference theory for the NTK Theta(x, y) of a fully connected net at initialization "
                    "(unit-norm inputs, standard parametrization).",
        epilog="supported ranges (anything else: exit status 2 and one line naming the flag):\n" + RANGES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, required=True, help="hidden width n (every hidden layer), 1 .. 10^6")
    parser.add_argument("--depth", type=int, required=True, help="number of hidden layers L, 1 .. 10^5")
    parser.add_argument("--sigma-w2", type=float, required=True,
                        help="weight variance sigma_w^2 (W ~ N(0, sigma_w^2/fan_in)), 1e-6 .. 1e6")
    parser.add_argument("--input-dim", type=int, default=None, help="input dimension n_0 (default: width), 1 .. 10^6")
    parser.add_argument("--no-bias", action="store_true", help="biases are not trainable parameters")
    parser.add_argument("--sigma-b2", type=float, default=0.0,
                        help="bias variance at init: 0 (default) or 1e-6 .. 1e6; > 0 leaves the closed-form "
                             "exact law (the moments then come from the Monte Carlo of the joint law)")
    parser.add_argument("--activation", default="relu",
                        help="relu (default), tanh, erf, linear; non-relu: mean-field phase and Monte Carlo moments")
    parser.add_argument("--inner-products", type=float, nargs="+", default=[], metavar="C",
                        help="cosines <x, y> of unit inputs (-1 .. 1, at most 20): the mean and dispersion of "
                             "Theta(x, y) from the Monte Carlo of the exact joint law, with standard errors")
    parser.add_argument("--draws", type=int, default=None, metavar="M",
                        help=f"Monte Carlo draws of the joint law per entry (default {DEFAULT_DRAWS}, fewer when "
                             f"the estimated time exceeds {MC_MAX_SECONDS:g} s; 2 .. 10^7)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the Monte Carlo draws and of the calibration replicates (default 0)")
    parser.add_argument("--networks", "--samples", type=int, default=None, dest="networks", metavar="S",
                        action=DeprecatedSpelling, old="--samples",
                        help="number of networks S: also print acceptance intervals (ReLU, sigma_b2 = 0; 2 .. 10^6); "
                             "--samples is its deprecated spelling")
    parser.add_argument("--alpha", type=float, default=1e-3,
                        help="false-alarm rate per interval (default 1e-3; 1e-6 .. <1)")
    parser.add_argument("--ntk-cache-dir", default=None, metavar="DIR",
                        help="cache acceptance intervals in this folder (default: no cache)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


class DeprecatedSpelling(argparse.Action):
    """Store the value; say once on stderr when the option was given by its deprecated spelling ``old``."""

    def __init__(self, option_strings, dest, old: str, **kwargs):
        self.old = old
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string == self.old:
            new = next(o for o in self.option_strings if o != self.old)
            sys.stderr.write(f"ntk-harness: {self.old} is deprecated and will be removed in the next release; "
                             f"use {new} (same meaning)\n")
        setattr(namespace, self.dest, values)


# ------------------------------------------------------------------------------ argument checks
def _integer(flag: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadArgument(flag, f"expected an integer in [{low}, {high}], got {value!r}")
    return value


def _number(flag: str, value, low: float, high: float, *, zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        (zero and value == 0) or low <= value <= high)
    if not ok:
        allowed = f"0 or a number in [{low:g}, {high:g}]" if zero else f"a number in [{low:g}, {high:g}]"
        raise BadArgument(flag, f"expected {allowed}, got {value!r}")
    return float(value) + 0.0   # -0.0 is 0


def _checked(args) -> dict:
    """Every argument in its supported range (module docstring); raises :class:`BadArgument`."""
    width = _integer("--width", args.width, *WIDTH_RANGE)
    depth = _integer("--depth", args.depth, *DEPTH_RANGE)
    input_dim = width if args.input_dim is None else _integer("--input-dim", args.input_dim, *WIDTH_RANGE)
    sigma_w2 = _number("--sigma-w2", args.sigma_w2, *SIGMA_RANGE)
    sigma_b2 = _number("--sigma-b2", args.sigma_b2, *SIGMA_RANGE, zero=True)
    activation = args.activation
    if activation not in ACTIVATIONS:
        raise BadArgument("--activation", f"expected one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    trainable_bias = not args.no_bias
    if not trainable_bias and sigma_b2 != 0:
        raise BadArgument("--sigma-b2", f"frozen biases (--no-bias) are zero; expected 0, got {sigma_b2!r}")
    inner_products = list(args.inner_products or [])
    if len(inner_products) > MAX_INNER_PRODUCTS:
        raise BadArgument("--inner-products",
                          f"expected at most {MAX_INNER_PRODUCTS} cosines, got {len(inner_products)}")
    for c in inner_products:
        _number("--inner-products", c, -1.0, 1.0)
        if abs(c) < 1 and input_dim < 2:
            raise BadArgument("--inner-products", f"the cosine {c!r} needs two independent inputs, i.e. "
                                                  f"--input-dim >= 2; expected -1 or 1 at input dimension 1")
    networks = None if args.networks is None else _integer("--networks", args.networks, *NETWORKS_RANGE)
    alpha = args.alpha
    if not (isinstance(alpha, (int, float)) and ALPHA_MIN <= alpha < 1):
        raise BadArgument("--alpha", f"expected a number in [{ALPHA_MIN:g}, 1), got {alpha!r}")
    draws = None if args.draws is None else _integer("--draws", args.draws, *DRAWS_RANGE)
    seed = _integer("--seed", args.seed, *SEED_RANGE)
    cache_dir = getattr(args, "ntk_cache_dir", None)
    if cache_dir is not None:
        _check_writable(cache_dir)
    return dict(width=width, depth=depth, input_dim=input_dim, sigma_w2=sigma_w2, sigma_b2=sigma_b2,
                activation=activation, trainable_bias=trainable_bias, inner_products=inner_products,
                networks=networks, alpha=float(alpha), draws=draws, seed=seed, cache_dir=cache_dir)


def _check_writable(directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ntk-harness-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadArgument("--ntk-cache-dir", f"expected a writable directory, got {directory!r} "
                                             f"({exc.strerror or exc})") from None


# ------------------------------------------------------------------------------ cost estimates
def _chunk(widths: tuple, inner_product: float, activation: str) -> int:
    """Draws per vectorized chunk of the sampler of one entry (:meth:`reference.JointLaw.chunk_size`)."""
    gram = [[1.0]] if inner_product == 1.0 else [[1.0, inner_product], [inner_product, 1.0]]
    return reference.JointLaw(widths, 2.0, gram, activation=activation).chunk_size()


def _sampling_seconds(draws: int, width: int, depth: int, chunk: int) -> float:
    """Estimated seconds of ``draws`` draws of one entry on one core (the pair path of
    :mod:`reference.joint`, measured at widths 1..1000 and depths 10..10^5: ~90 ns per neuron
    and draw, ~8 neurons' worth of overhead per layer and draw, ~100 us per layer and chunk)."""
    return 1e-7 * draws * depth * (width + 8) + 1e-4 * math.ceil(draws / chunk) * depth


def _monte_carlo_draws(values: dict, entries: list[float], widths: tuple, why: str) -> tuple[int, str | None]:
    """(draws per entry, a note when the default was lowered); raises :class:`BadArgument` when
    the Monte Carlo does not fit :data:`MC_MAX_NEURONS` or :data:`MC_MAX_SECONDS`."""
    width, depth = values["width"], values["depth"]
    neurons = width * depth
    if neurons > MC_MAX_NEURONS:
        raise BadArgument("--width", (
            f"the Monte Carlo of the exact joint law ({why}) holds 16 draws of every neuron at once; expected "
            f"width x depth <= {MC_MAX_NEURONS}, got {width} x {depth} = {neurons}"))
    chunks = [_chunk(widths, c, values["activation"]) for c in entries]

    def seconds(draws: int) -> float:
        return sum(_sampling_seconds(draws, width, depth, chunk) for chunk in chunks)

    if seconds(DRAWS_RANGE[0]) > MC_MAX_SECONDS:
        raise BadArgument("--depth", (
            f"the Monte Carlo of the exact joint law ({why}) needs about {seconds(DRAWS_RANGE[0]):.0f} s for the "
            f"smallest number of draws ({DRAWS_RANGE[0]}) at width {width}, depth {depth}; expected at most "
            f"{MC_MAX_SECONDS:g} s"))
    low, high = DRAWS_RANGE[0], DRAWS_RANGE[1]
    if seconds(low) > MC_MAX_SECONDS:
        raise BadArgument("--depth", (
            f"the Monte Carlo of the exact joint law ({why}) needs about {seconds(low):.0f} s for the smallest "
            f"number of draws ({low}) at width {values['width']}, depth {values['depth']}; expected at most "
            f"{MC_MAX_SECONDS:g} s"))
    while low < high:   # the most draws that fit MC_MAX_SECONDS (seconds() increases with draws)
        middle = (low + high + 1) // 2
        low, high = (middle, high) if seconds(middle) <= MC_MAX_SECONDS else (low, middle - 1)
    fits = low
    if values["draws"] is not None:
        if values["draws"] > fits:
            raise BadArgument("--draws", (
                f"expected at most {fits} draws per entry for {len(entries)} entries at width {width}, "
                f"depth {depth} (about {MC_MAX_SECONDS:g} s of sampling), got {values['draws']}"))
        return values["draws"], None
    if fits < DEFAULT_DRAWS:
        return fits, (f"the default {DEFAULT_DRAWS} draws lowered to {fits} to keep the sampling under "
                      f"about {MC_MAX_SECONDS:g} s; --draws chooses")
    return DEFAULT_DRAWS, None


def _check_calibration_cost(values: dict) -> None:
    """Refuse a calibration of acceptance intervals estimated to take more than
    :data:`CALIBRATION_MAX_SECONDS`: about 14 / alpha replicate data sets of S exact draws,
    ~80 ns per layer and draw (reference.acceptance)."""
    networks, depth, alpha = values["networks"], values["depth"], values["alpha"]
    per_sample = 8e-8 * depth * (14.0 / alpha)
    seconds = networks * per_sample
    if seconds > CALIBRATION_MAX_SECONDS:
        most = max(1, int(CALIBRATION_MAX_SECONDS / per_sample))
        allowed = (f"expected at most {most} at depth {depth} and alpha {alpha:g}" if most >= NETWORKS_RANGE[0]
                   else f"no number of networks fits at depth {depth} and alpha {alpha:g} (raise --alpha)")
        raise BadArgument("--networks", (
            f"calibrating the acceptance intervals would take about {seconds:.3g} s (more than "
            f"{CALIBRATION_MAX_SECONDS:g} s); {allowed}, got {networks}"))


# ------------------------------------------------------------------------------ numbers
def _finite(value):
    """A float, or None when it is not finite (JSON has no inf or NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _exp(log_value: float):
    """exp(log_value) when it is a normal float64 number, else None (the log is reported)."""
    if not math.isfinite(log_value) or not -708.0 < log_value < 709.7:
        return None
    return math.exp(log_value)


def format_from_log(log_value: float) -> str:
    """``exp(log_value)`` in scientific notation, beyond the float64 range too: ``1.23457e+4567``."""
    if log_value == -math.inf:
        return "0"
    if not math.isfinite(log_value):
        return "n/a"
    value = _exp(log_value)
    if value is not None:
        return f"{value:.6g}"
    decimal = log_value / math.log(10.0)
    exponent = math.floor(decimal)
    mantissa = 10.0 ** (decimal - exponent)
    if mantissa >= 9.999995:   # rounds up to 10.0000 in %.6g
        mantissa, exponent = 1.0, exponent + 1
    return f"{mantissa:.6g}e{exponent:+d}"


def _guarded(function, *arguments, **keywords):
    """A reference value, or None where float64 cannot hold it (overflow, underflow to 0/0)."""
    try:
        with np.errstate(all="ignore"):
            return _finite(function(*arguments, **keywords))
    except (ArithmeticError, FloatingPointError):
        return None


def _entry_seed(seed: int, inner_product: float) -> np.random.Generator:
    bits = struct.unpack("<Q", struct.pack("<d", float(inner_product) + 0.0))[0]   # -0.0 is 0.0
    return np.random.default_rng([seed, bits])


def _monte_carlo_entry(values: dict, widths: tuple, inner_product: float, draws: int) -> dict:
    """Mean and dispersion of Theta(x, y), <x, y> = c, |x| = |y| = 1, with standard errors."""
    law = reference.EntryLaw(widths, values["sigma_w2"], inner_product=inner_product,
                             sigma_b2=values["sigma_b2"], activation=values["activation"],
                             trainable_bias=values["trainable_bias"])
    with np.errstate(all="ignore"):
        theta = law.sample(draws, _entry_seed(values["seed"], inner_product))
    out = {"inner_product": inner_product, "mean": None, "mean_error": None, "dispersion": None,
           "dispersion_error": None, "second_moment": None, "second_moment_error": None}
    nonfinite = int(np.count_nonzero(~np.isfinite(theta)))
    if nonfinite:
        out["nonfinite_draws"] = nonfinite
        out["note"] = f"{nonfinite} of {draws} draws overflow float64; no moments"
        return out
    with np.errstate(all="ignore"):
        summary = reference.summarize_moments(theta)
    for key in ("mean", "mean_error", "dispersion", "dispersion_error", "second_moment", "second_moment_error"):
        out[key] = _finite(getattr(summary, key))
    if summary.mean == 0.0:
        out["note"] = "every draw is 0 (underflow); no dispersion"
    elif any(out[key] is None for key in ("mean_error", "dispersion", "dispersion_error", "second_moment")):
        out["note"] = "some moments exceed the float64 range (null)"
    return out


# ------------------------------------------------------------------------------ predictions
def predictions(args) -> dict:
    """The JSON object printed by ``--json`` (raises ValueError, e.g. :class:`BadArgument`, for bad input)."""
    values = _checked(args)
    width, depth, input_dim = values["width"], values["depth"], values["input_dim"]
    sigma_w2, sigma_b2, activation = values["sigma_w2"], values["sigma_b2"], values["activation"]
    trainable_bias, inner_products = values["trainable_bias"], values["inner_products"]
    widths = (input_dim,) + (width,) * depth
    closed_form = activation == "relu" and sigma_b2 == 0.0
    if values["networks"] is not None:
        if not closed_form:
            raise BadArgument("--networks", (
                "the acceptance intervals need the closed-form exact law (ReLU, sigma_b2 = 0); got activation "
                f"{activation!r}, sigma_b2 {sigma_b2:g}: only the infinite-width and Monte Carlo references apply"))
        _check_calibration_cost(values)
    monte_carlo = _monte_carlo_plan(values, widths, closed_form)
    off_diagonal = [_monte_carlo_entry(values, widths, c, monte_carlo["draws"]) for c in inner_products]
    out = {
        "phase": reference.phase_of(sigma_w2, sigma_b2, activation),
        "depth_to_width": reference.depth_to_width((width,) * depth), "width": width, "depth": depth,
        "input_dim": input_dim, "sigma_w2": sigma_w2, "sigma_b2": sigma_b2, "activation": activation,
        "trainable_bias": trainable_bias,
        "infinite_width": None if activation != "relu" else {
            "mean": _guarded(reference.infinite_width_ntk, 1.0, 1.0, 1.0, widths, sigma_w2, sigma_b2=sigma_b2,
                             trainable_bias=trainable_bias),
            "off_diagonal": [{"inner_product": c, "mean": _guarded(
                reference.infinite_width_ntk, c, 1.0, 1.0, widths, sigma_w2, sigma_b2=sigma_b2,
                trainable_bias=trainable_bias)} for c in inner_products]},
    }
    if closed_form:
        out.update(_closed_form(values, widths, off_diagonal, monte_carlo))
    else:
        out.update(_monte_carlo_only(values, widths, off_diagonal, monte_carlo))
    return out


def _monte_carlo_plan(values: dict, widths: tuple, closed_form: bool) -> dict | None:
    """Draws, seed and what the Monte Carlo of the joint law is, when an entry needs it."""
    activation = values["activation"]
    entries = list(values["inner_products"]) if closed_form else [1.0] + list(values["inner_products"])
    if not entries:
        return None
    why = ("for --inner-products" if closed_form else
           f"for activation {activation!r}" if activation != "relu" else "for --sigma-b2 > 0")
    draws, note = _monte_carlo_draws(values, entries, widths, why)
    plan = {"draws": draws, "seed": values["seed"],
            "errors": "standard errors: one standard deviation of the estimator (mean: sd / sqrt(draws); "
                      "dispersion: delta method)",
            "law": "reference.EntryLaw (exact joint law, Gaussian conditioning)"}
    if note:
        plan["note"] = note
    return plan


def _monte_carlo_only(values: dict, widths: tuple, off_diagonal: list, monte_carlo: dict) -> dict:
    """Away from ReLU with sigma_b2 = 0: the mean-field phase and the Monte Carlo of the exact joint law."""
    sigma_w2, sigma_b2, activation = values["sigma_w2"], values["sigma_b2"], values["activation"]
    diagonal = _monte_carlo_entry(values, widths, 1.0, monte_carlo["draws"])
    diagonal.pop("inner_product")
    return {
        "chi_1": _guarded(reference.chi_1, sigma_w2, sigma_b2, activation),
        "variance_fixed_point": _guarded(reference.variance_fixed_point, sigma_w2, sigma_b2, activation),
        "exact": {"method": "monte carlo", **diagonal, "off_diagonal": off_diagonal, "monte_carlo": monte_carlo},
        "asymptotic": None,
        "not_applicable": (
            "the closed-form exact moments (reference.ExactLaw), the asymptotic law and the acceptance "
            f"intervals hold for ReLU with sigma_b2 = 0 (got activation {activation!r}, sigma_b2 {sigma_b2:g}); "
            "the exact moments here are Monte Carlo estimates of the exact joint law"
            + ("" if activation == "relu" else ", and the infinite-width NTK is implemented for ReLU only")),
    }


def _closed_form(values: dict, widths: tuple, off_diagonal: list, monte_carlo: dict | None) -> dict:
    """ReLU with sigma_b2 = 0: the exact moments (log scale), the asymptotic dispersion, the intervals."""
    width, input_dim = values["width"], values["input_dim"]
    law = reference.ExactLaw(widths, values["sigma_w2"], trainable_bias=values["trainable_bias"])
    log_mean, log_second = law.log_mean_second_moment()
    log_dispersion = log_second - 2.0 * log_mean
    exact = {"method": "exact", "mean": _exp(log_mean), "second_moment": _exp(log_second),
             "dispersion": _exp(log_dispersion), "log_mean": log_mean, "log_second_moment": log_second,
             "log_dispersion": log_dispersion, "off_diagonal": off_diagonal}
    if monte_carlo is not None:
        exact["monte_carlo"] = monte_carlo
    out = {"exact": exact, "asymptotic": {"dispersion": _guarded(
        reference.asymptotic_dispersion, reference.depth_to_width(widths[1:]), values["sigma_w2"],
        values["trainable_bias"], input_scale=width / input_dim)}}
    if values["networks"] is not None:
        intervals = reference.acceptance_intervals(law, values["networks"], values["alpha"], seed=values["seed"],
                                                   cache_dir=values["cache_dir"])
        out.update(networks=values["networks"], alpha=values["alpha"],
                   acceptance={name: [_finite(lo), _finite(hi)] for name, (lo, hi) in intervals.items()})
    return out


# ------------------------------------------------------------------------------ table
def _with_error(value, error) -> str:
    if value is None:
        return "n/a"
    return f"{value:.6g}" if error is None else f"{value:.6g} +- {error:.2g}"


def _plain(value, missing: str = "n/a (beyond float64)") -> str:
    return missing if value is None else f"{value:.6g}"


def _off_diagonal_table(result: dict) -> str:
    from tabulate import tabulate

    exact = result["exact"]
    infinite = {e["inner_product"]: e["mean"] for e in (result["infinite_width"] or {}).get("off_diagonal", [])}
    rows = []
    for entry in exact["off_diagonal"]:
        row = [f"{entry['inner_product']:g}", _with_error(entry["mean"], entry["mean_error"]),
               _with_error(entry["dispersion"], entry["dispersion_error"])]
        if result["infinite_width"] is not None:
            row.append(_plain(infinite.get(entry["inner_product"])))
        rows.append(row)
    headers = ["<x,y>", "E[Theta(x,y)]", "dispersion"]
    if result["infinite_width"] is not None:
        headers.append("infinite-width E[Theta]")
    notes = [entry.get("note", "") for entry in exact["off_diagonal"]]
    if any(notes):
        headers.append("note")
        rows = [row + [note] for row, note in zip(rows, notes)]
    return tabulate(rows, headers=headers, disable_numparse=True)


def _monte_carlo_line(monte_carlo: dict) -> str:
    line = (f"Monte Carlo of the exact joint law (reference.EntryLaw): {monte_carlo['draws']} draws per entry, "
            f"seed {monte_carlo['seed']}; +- is one standard error (mean: sd/sqrt(draws); dispersion: delta method)")
    if "note" in monte_carlo:
        line += f"\n({monte_carlo['note']})"
    return line


def _table(result: dict) -> str:
    from tabulate import tabulate

    exact = result["exact"]
    widths = f"n_0={result['input_dim']}, n={result['width']}, L={result['depth']}"
    bias = "yes" if result["trainable_bias"] else "no"
    if exact["method"] == "monte carlo":
        rows = [("phase (mean-field)", result["phase"]), ("chi_1", _plain(result["chi_1"])),
                ("variance fixed point q*", _plain(result["variance_fixed_point"], "inf")),
                ("depth_to_width (lambda = L/n)", f"{result['depth_to_width']:.6g}"),
                ("widths", widths), ("activation", result["activation"]),
                ("sigma_b^2", f"{result['sigma_b2']:g}"), ("trainable biases", bias),
                ("E[Theta(x,x)] (Monte Carlo)", _with_error(exact["mean"], exact["mean_error"])),
                ("dispersion E[Theta^2]/E[Theta]^2 (Monte Carlo)",
                 _with_error(exact["dispersion"], exact["dispersion_error"]))]
        if "note" in exact:
            rows.append(("Monte Carlo note", exact["note"]))
        if result["infinite_width"] is not None:
            rows.append(("infinite-width E[Theta] (Jacot)", _plain(result["infinite_width"]["mean"])))
        rows.append(("closed-form exact / asymptotic law",
                     "not applicable (ReLU, sigma_b2 = 0 only): the moments above are Monte Carlo estimates"))
    else:
        rows = [("phase", result["phase"]),
                ("depth_to_width (lambda = L/n)", f"{result['depth_to_width']:.6g}"),
                ("widths", widths), ("trainable biases", bias),
                ("exact E[Theta]", format_from_log(exact["log_mean"])),
                ("exact E[Theta^2]", format_from_log(exact["log_second_moment"])),
                ("exact dispersion E[Theta^2]/E[Theta]^2", format_from_log(exact["log_dispersion"])),
                ("asymptotic dispersion (n, L -> inf, L/n fixed)", _plain(result["asymptotic"]["dispersion"])),
                ("infinite-width E[Theta] (Jacot)", _plain(result["infinite_width"]["mean"]))]
    text = tabulate(rows, headers=("quantity", "value"), disable_numparse=True)
    if exact["off_diagonal"]:
        text += "\n\noff-diagonal entries Theta(x, y), |x| = |y| = 1\n" + _off_diagonal_table(result)
    if exact.get("monte_carlo"):
        text += "\n\n" + _monte_carlo_line(exact["monte_carlo"])
    if "acceptance" in result:
        acc = [(name, _plain(lo, "-inf"), _plain(hi, "inf")) for name, (lo, hi) in result["acceptance"].items()]
        text += (f"\n\nacceptance intervals at S={result['networks']}, alpha={result['alpha']:g} "
                 "(each; exact sampling distribution of the estimator)\n")
        text += tabulate(acc, headers=("statistic", "low", "high"), disable_numparse=True)
    return text


def main(args) -> int:
    """Run ``ntk-harness theory``; returns the exit status (0, or 2 for bad input)."""
    try:
        with np.errstate(all="ignore"):   # overflow in the reference's float64 arithmetic shows as null / n/a
            result = predictions(args)
    except ValueError as exc:   # BadArgument; reference's own checks (reference.NotApplicable)
        print(f"{_PROG}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_table(result))
    return 0
