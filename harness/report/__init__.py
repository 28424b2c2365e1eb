"""Benchmark reports: results.json, report.md and figures from case records.

The names under which a case item hands its record to the report (through pytest's
``user_properties``, which pytest-xdist carries from workers to the controller).
"""
RECORD = "ntk_harness_record"
ENVIRONMENT = "ntk_harness_environment"
