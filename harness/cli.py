"""``ntk-harness``: the command line.

    ntk-harness theory  --width N --depth L --sigma-w2 S [...]   reference predictions only
    ntk-harness measure --width N --depth L --sigma-w2 S --samples S [...]   one case, inline
    ntk-harness run PATH [PATH ...]                               case files outside pytest
    ntk-harness report RESULTS.json [...] --out DIR               merge results, write a report

Exit status: 0 all checks passed, 1 a check failed, 2 bad input (message, no traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.cases.schema import CaseError, expand_case, is_case_file, load_case_file
from harness.kinds.base import RunOptions
from harness.verdict import dumps, format_outcome, outcome_record


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and a one-line message (its default)."""


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="auto (default: CUDA if present, else CPU), cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default=None, choices=("float64", "float32"), help="compute dtype")
    parser.add_argument("--ntk-impl", default=None, metavar="SPEC", help="NTK implementation: built-in name or package.module:function")
    parser.add_argument("--cache-dir", default=".ntk-harness-cache", help="cache of calibrated intervals (default .ntk-harness-cache)")
    parser.add_argument("--memory-budget", type=int, default=512, metavar="MIB", help="memory budget per chunk in MiB (default 512)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _options(args) -> RunOptions:
    from harness.report.progress import terminal_progress

    return RunOptions(
        device=args.device,
        dtype=args.dtype,
        implementation=args.ntk_impl,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        memory_budget_bytes=args.memory_budget * 2**20,
        progress=None if args.json else terminal_progress("Monte Carlo"),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ntk-harness", description="Validate and benchmark neural tangent kernels against finite-width theory.")
    sub = parser.add_subparsers(dest="command", required=True)

    from harness import cli_report, cli_theory

    cli_theory.add_parser(sub)
    cli_report.add_parser(sub)

    measure = sub.add_parser("measure", help="measure one configuration and check it against the exact law")
    measure.add_argument("--width", type=int, required=True, help="hidden width n")
    measure.add_argument("--depth", type=int, required=True, help="number of hidden layers L")
    measure.add_argument("--sigma-w2", type=float, required=True, help="weight variance sigma_w^2")
    measure.add_argument("--samples", type=int, required=True, help="number of random networks S")
    measure.add_argument("--input-dim", type=int, default=None, help="input dimension (default: width)")
    measure.add_argument("--no-bias", action="store_true", help="biases are not trainable parameters")
    measure.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo run")
    measure.add_argument("--alpha", type=float, default=1e-3, help="false-alarm rate of the case (default 1e-3)")
    measure.add_argument(
        "--inner-products", type=float, nargs="+", default=[1.0], metavar="C",
        help="cosines <x0, x>/|x0||x| of the off-diagonal inputs (default: 1.0, the diagonal only)",
    )
    _add_run_options(measure)

    run = sub.add_parser("run", help="run case files (or folders of them) outside pytest")
    run.add_argument("paths", nargs="+", type=Path, help="case files or folders")
    run.add_argument("-m", "--markers", default=None, help="run only cases carrying this marker")
    _add_run_options(run)
    return parser


def _run_case(case, options, as_json: bool) -> tuple[bool, dict]:
    from harness.kinds import KINDS

    kind = KINDS[case.kind]
    case_id = f"{case.name}[{kind.case_id(case)}]"
    outcome = kind.run(case, options)
    record = outcome_record(case_id, case.kind, outcome)
    if not as_json:
        print(format_outcome(case_id, outcome))
        print()
    return outcome.passed, record


def _measure(args) -> int:
    from harness.kinds import KINDS

    start = time.perf_counter()
    raw = {
        "name": "measure",
        "kind": "dispersion",
        "network": {"width": args.width, "depth": args.depth, "sigma_w2": args.sigma_w2, "trainable_bias": not args.no_bias},
        "inputs": {"kind": "correlated", "inner_products": args.inner_products},
        "sampling": {"samples": args.samples, "seed": args.seed},
        "expect": {"reference": ["exact"], "false_alarm_rate": args.alpha},
    }
    if args.input_dim is not None:
        raw["network"]["input_dim"] = args.input_dim
    (case,) = expand_case(raw, Path("<command line>"), 0, KINDS)
    passed, record = _run_case(case, _options(args), args.json)
    record["timing"]["total_seconds"] = time.perf_counter() - start
    if args.json:
        print(dumps(record))
    return 0 if passed else 1


def _collect_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.toml") if is_case_file(p))
        elif path.exists():
            files.append(path)
        else:
            raise CaseError(path, "no such file or folder")
    return files


def _run(args) -> int:
    options = _options(args)
    records, status = [], 0
    for path in _collect_files(args.paths):
        try:
            cases = load_case_file(path)
        except CaseError as exc:
            print(f"ntk-harness run: error: {exc}", file=sys.stderr)
            status = 2
            continue
        for case in cases:
            from harness.kinds import KINDS

            markers = set(case.markers) | set(KINDS[case.kind].markers)
            if args.markers and args.markers not in markers:
                continue
            if not args.markers and "paper" in markers:
                continue  # as under pytest: paper-size cases only when asked
            passed, record = _run_case(case, options, args.json)
            records.append(record)
            if not passed and status == 0:
                status = 1
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        passed = sum(r["passed"] for r in records)
        print(f"{passed} passed, {len(records) - passed} failed")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "theory":
            from harness import cli_theory

            return cli_theory.main(args)
        if args.command == "report":
            from harness import cli_report

            return cli_report.main(args)
        if args.command == "measure":
            return _measure(args)
        if args.command == "run":
            return _run(args)
    except (CaseError, ValueError) as exc:
        print(f"ntk-harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ntk-harness {args.command}: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
