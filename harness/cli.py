"""``ntk-harness``: the command line.

    ntk-harness theory  --width N --depth L --sigma-w2 S [...]        reference predictions only
    ntk-harness measure --width N --depth L --sigma-w2 S --networks S [...]   one dispersion case, inline
    ntk-harness run PATH [PATH ...] [-m EXPR] [--json]             case files outside pytest
    ntk-harness report RESULTS.json [...] --out DIR                 merge results, write a report

``measure`` and ``run`` take the run options of :mod:`harness.options` (``--ntk-device``,
``--ntk-dtype``, ``--ntk-implementation``, ``--ntk-cache-dir``, ``--ntk-memory-budget``,
``--ntk-timeout``, ``--ntk-resume``), the same as pytest's, and run every case through
:func:`harness.runner.run_case`, the runner the pytest plugin uses. ``run --json`` prints a
results document (the format of results.json) that ``ntk-harness report`` reads.

Exit status: 0 all checks passed (skipped cases, as in pytest, do not fail the run; the
summary line counts them), 1 a check failed or a case could not run, 2 bad input
(a one-line message naming the argument or key; no traceback), 130 interrupted.
Like ``python -m pytest``, the current directory is on the import path, so
``--ntk-implementation my_ntk:my_ntk`` finds ``./my_ntk.py``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

from harness import options as options_module

TOP_LEVEL_FLAGS = ("-h", "--help")


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and ONE line, ``<prog>: error: <message>``.

    argparse's own error() prints the usage block first; here the line points to ``--help``
    instead. Subparsers are built with this class too (argparse passes it on)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ntk-harness",
                     description="Validate and benchmark neural tangent kernels against finite-width theory.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{theory,measure,run,report}")

    from harness import cli_report, cli_theory

    cli_theory.add_parser(sub)
    cli_report.add_parser(sub)

    measure = sub.add_parser("measure", help="measure one configuration and check it against the exact law")
    measure.add_argument("--width", type=int, required=True, help="hidden width n")
    measure.add_argument("--depth", type=int, required=True, help="number of hidden layers L")
    measure.add_argument("--sigma-w2", type=float, required=True, help="weight variance sigma_w^2")
    measure.add_argument("--networks", type=int, required=True, help="number of random networks S")
    measure.add_argument("--input-dim", type=int, default=None, help="input dimension (default: width)")
    measure.add_argument("--no-bias", action="store_true", help="biases are not trainable parameters")
    measure.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo run")
    measure.add_argument("--alpha", type=float, default=1e-3, help="false-alarm rate of the case (default 1e-3)")
    measure.add_argument(
        "--inner-products", type=float, nargs="+", default=[1.0], metavar="C",
        help="cosines <x0, x>/|x0||x| of the off-diagonal inputs (default: 1.0, the diagonal only)")
    measure.add_argument("--json", action="store_true", help="print the results document (JSON) instead of tables")
    options_module.add_to_argparse(measure)

    run = sub.add_parser("run", help="run case files (or folders of them) outside pytest")
    run.add_argument("paths", nargs="+", type=Path, help="case files or folders")
    run.add_argument("-m", dest="markexpr", default=None, metavar="EXPR",
                     help="run only cases whose markers match this pytest marker expression (e.g. 'quick and not "
                          "training'); cases marked paper run only when EXPR names paper")
    run.add_argument("--json", action="store_true", help="print the results document (JSON) instead of tables")
    run.add_argument("--ntk-cluster", dest="ntk_cluster", default=None, metavar="ADDRESS",
                     help="run the cases as tasks on a Dask cluster: local:N (N worker processes on this machine) or "
                          "tcp://HOST:PORT (a running scheduler); needs the cluster extra (docs/cluster.md)")
    options_module.add_to_argparse(run)
    return parser


def _options(args) -> options_module.RunOptions:
    from harness import checks_at_start
    from harness.report.progress import terminal_progress

    options = options_module.run_options(lambda name: getattr(args, name, None))
    checks_at_start.check_options(options, explicit_cache=True)
    options.progress = None if args.json else terminal_progress("Monte Carlo")
    return options


def _document(records, started: float, complete: bool, argv):
    from harness.records.document import ResultsDocument
    from harness.report.environment import environment

    session = {
        "command": ["ntk-harness"] + list(argv), "cwd": os.getcwd(),
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "wall_seconds": time.time() - started, "exitstatus": None, "shard": None, "workers": None,
        "environment": environment(),
    }
    return ResultsDocument(records=records, sessions=[session], complete=complete)


def _run_and_print(case, options, as_json: bool, root: Path):
    """Run one case; a bug of the harness in it (an unexpected exception) is printed with its
    traceback and recorded as an error, and the run goes on with the other cases."""
    import traceback

    from harness.records import CaseRecord
    from harness.report.environment import environment
    from harness.runner import nodeid_of, run_case
    from harness.verdict import format_record

    start = time.perf_counter()
    nodeid = nodeid_of(case, root)
    try:
        record = run_case(case, options, nodeid=nodeid)
    except Exception as exc:   # not a user error (those come back as records): say it loudly
        traceback.print_exc(file=sys.stderr)
        record = CaseRecord(case=case.id, kind=case.kind, nodeid=nodeid, source=nodeid.rsplit("::", 1)[0],
                            outcome="error", error=f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
    record.wall_seconds = time.perf_counter() - start
    record.environment = environment()
    if not as_json:
        print(format_record(record), flush=True)
        print(flush=True)
    return record


def _nothing_unexpected(record) -> bool:
    """Passed, failed as a strict expected failure, or skipped (as in pytest, a skipped case,
    e.g. one the implementation says it does not support, does not fail the run)."""
    return record.passed or record.outcome == "skipped"


def _measure(args, argv) -> int:
    from harness.cases.schema import assign_ids, expand_case
    from harness.kinds import KINDS

    started = time.time()
    raw = {
        "name": "measure", "kind": "dispersion",
        "network": {"width": args.width, "depth": args.depth, "sigma_w2": args.sigma_w2,
                    "trainable_bias": not args.no_bias},
        "inputs": {"kind": "correlated", "inner_products": args.inner_products},
        "sampling": {"networks": args.networks, "seed": args.seed},
        "expect": {"theories": ["exact"], "false_alarm_rate": args.alpha},
    }
    if args.input_dim is not None:
        raw["network"]["input_dim"] = args.input_dim
    cases = assign_ids(expand_case(raw, Path("<command line>"), 0, KINDS), KINDS)
    options = _options(args)
    record = _run_and_print(cases[0], options, args.json, Path.cwd())
    if args.json:
        print(_document([record], started, True, argv).dumps(), end="")
    return 0 if _nothing_unexpected(record) else 1


def _collect_files(paths: list[Path]) -> list[Path]:
    from harness.cases.schema import CaseError, is_case_file

    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.toml") if is_case_file(p))
        elif path.exists():
            files.append(path)
        else:
            raise CaseError(path, "no such file or folder")
    return files


def _marker_filter(expression: str | None):
    """A predicate on a case's marker set, from a pytest ``-m`` expression (pytest's own parser)."""
    if not expression:
        return lambda markers: "paper" not in markers
    from _pytest.mark.expression import Expression

    try:
        compiled = Expression.compile(expression)
    except Exception as exc:  # pytest's ParseError: say which expression
        raise options_module.OptionError(f"-m: not a valid marker expression {expression!r}: {exc}") from None
    names_paper = "paper" in expression

    def matches(markers: set[str]) -> bool:
        if "paper" in markers and not names_paper:
            return False
        try:
            return compiled.evaluate(lambda name, **kwargs: name in markers)
        except TypeError:  # pytest < 8.3: the matcher takes the name only
            return compiled.evaluate(lambda name: name in markers)

    return matches


#: Exit status when the selection is empty (pytest's "no tests collected").
NOTHING_SELECTED = 5


def _run(args, argv) -> int:
    from harness.cases.schema import CaseError, load_case_file
    from harness.kinds import KINDS, markers

    started = time.time()
    options = _options(args)
    selected = _marker_filter(args.markexpr)
    records, bad_files, interrupted = [], [], False
    root = Path.cwd()
    found = 0
    cluster = None
    if args.ntk_cluster is not None:   # Dask is imported only here (docs/cluster.md)
        from harness import cluster as cluster_module

        cluster = cluster_module.start(args.ntk_cluster, options, as_json=args.json, root=root)
    try:
        for path in _collect_files(args.paths):
            try:
                cases = load_case_file(path, KINDS, known_markers=markers())
                found += len(cases)
            except CaseError as exc:
                print(f"ntk-harness run: error: {exc}", file=sys.stderr, flush=True)
                bad_files.append(str(path))
                continue
            for case in cases:
                if selected(set(case.markers) | set(KINDS[case.kind].markers)):
                    if cluster is None:
                        records.append(_run_and_print(case, options, args.json, root))
                    else:
                        cluster.submit(case)
        if cluster is not None:
            records = cluster.records()
    except KeyboardInterrupt:
        interrupted = True
        if cluster is not None:
            records = cluster.finished()
    finally:
        if cluster is not None:
            cluster.close()
    if not records and not bad_files and not interrupted:   # pytest's exit status 5: nothing ran
        print(f"ntk-harness run: error: -m {args.markexpr!r} selects none of the {found} cases; the markers are "
              f"{', '.join(sorted(markers()))}" if args.markexpr else
              f"ntk-harness run: error: no cases in {' '.join(args.paths)}", file=sys.stderr)
        return NOTHING_SELECTED
    document = _document(records, started, not interrupted, argv)
    if cluster is not None:
        document.sessions[0].update(cluster.session())
    if args.json:
        print(document.dumps(), end="")
    counts = {}
    for record in records:
        counts[record.outcome] = counts.get(record.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no cases"
    if bad_files:
        summary += f"; {len(bad_files)} invalid case file(s): {', '.join(bad_files)}"
    if cluster is not None:
        for line in cluster.report_lines():
            print(line, file=sys.stderr if args.json else sys.stdout)
        summary += cluster.summary_suffix()
    if interrupted:
        summary += "; interrupted"
    print(f"ntk-harness run: {summary}", file=sys.stderr if args.json else sys.stdout)
    if interrupted:
        return 130
    if bad_files:
        return 2
    return 0 if all(_nothing_unexpected(r) for r in records) else 1


def _unknown_leading_flag(argv: list[str]) -> str | None:
    """A flag before the command that is not the parser's own (argparse would only say a
    command is required)."""
    for token in argv:
        if not token.startswith("-"):
            return None
        if token not in TOP_LEVEL_FLAGS:
            return token
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like python -m pytest: ./my_ntk.py is importable
    parser = build_parser()
    unknown = _unknown_leading_flag(argv)
    if unknown is not None:
        parser.error(f"unrecognized argument {unknown!r}; options go after the command: "
                     "ntk-harness {theory,measure,run,report} [OPTIONS]")
    args = parser.parse_args(argv)
    for warning in options_module.deprecated_spellings(argv):
        print(f"ntk-harness: {warning}", file=sys.stderr)
    from harness.cases.schema import CaseError
    from harness.checks_at_start import StartError

    try:
        code = _dispatch(args, argv)
        sys.stdout.flush()   # a reader that went away shows here, inside the handlers, not at exit
        return code
    except (CaseError, StartError, options_module.OptionError) as exc:
        print(f"ntk-harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ntk-harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (ntk-harness theory ... | head): stop quietly; point stdout at
        # devnull so that the interpreter's final flush does not raise again (Python's own recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _dispatch(args, argv: list[str]) -> int:
    if args.command == "theory":
        from harness import cli_theory

        return cli_theory.main(args)
    if args.command == "report":
        from harness import cli_report

        return cli_report.main(args)
    if args.command == "measure":
        return _measure(args, argv)
    if args.command == "run":
        return _run(args, argv)
    build_parser().error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
