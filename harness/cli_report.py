"""``ntk-harness report``: (re)write a report from results files without recomputing.

    ntk-harness report RESULTS.json [RESULTS2.json ...] --out DIR
                       [--baseline OLD/results.json] [--benchmarks BENCH.json ...] [--title TEXT]

Several inputs are merged (shards of one sweep, from one machine or many): records are
united by case id and a case present twice must have identical seeded results
(:func:`harness.records.document.merge`). Exit status 0 on success, 2 on bad input (one line
on stderr, ``ntk-harness report: error: ...``).
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

_PROG = "ntk-harness report"


def add_parser(subparsers) -> None:
    """Add the ``report`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "report", help="write report.md, figures and a merged results.json from results files (no recomputation)",
        description="Merge results.json files (e.g. shards run on several machines) and write a report.")
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json", help="results files to merge")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="report directory to (re)write")
    parser.add_argument("--baseline", type=Path, default=None, metavar="OLD.json", help="earlier results.json to compare with")
    parser.add_argument("--benchmarks", type=Path, nargs="+", default=[], metavar="BENCH.json",
                        help="pytest-benchmark JSON files (--benchmark-json) to include")
    parser.add_argument("--title", default="ntk-harness report", help="title of report.md")
    parser.add_argument("--gzip", action="store_true",
                        help="write the merged records as results.json.gz (reports to commit; read back by every "
                             "command that reads results.json)")


def main(args) -> int:
    """Run ``ntk-harness report``; returns the exit status (0, or 2 for bad input)."""
    from harness.checks_at_start import StartError, check_writable_dir
    from harness.records import document as document_module
    from harness.report import benchmarks as benchmarks_module
    from harness.report.writer import ReportInterrupted, write_report

    try:
        check_writable_dir(args.out, "--out")
        documents = [document_module.load(path) for path in args.results]
        merged = document_module.merge(documents, [str(p) for p in args.results])
        baseline = document_module.load(args.baseline) if args.baseline else None
        for path in args.benchmarks:
            known = {b.get("fullname") or b.get("name") for b in merged.benchmarks}
            merged.benchmarks += [b for b in benchmarks_module.load(path)
                                  if (b.get("fullname") or b.get("name")) not in known]
            merged.benchmark_sources.append(str(path))
    except (StartError, document_module.ResultsFormatError, document_module.MergeConflict,
            benchmarks_module.BenchmarkFormatError) as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        written = write_report(args.out, merged, baseline=baseline,
                               baseline_path=str(args.baseline) if args.baseline else None, title=args.title,
                               gzip_results=args.gzip)
    except ReportInterrupted as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 130
    from harness.records.base import OUTCOMES

    counts = Counter(r.outcome for r in merged.records)
    outcomes = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o])
    print(f"{len(merged.records)} cases ({outcomes or 'none'}) from {len(documents)} file(s) -> {args.out} "
          f"({', '.join(written)})")
    return 0
