"""Benchmark reports: results.json, report.md and figures from case records."""
