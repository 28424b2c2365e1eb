"""Case files: their schema, their sections and how they are loaded and expanded."""
from harness.cases.schema import Case, CaseError, load_case_file, is_case_file

__all__ = ["Case", "CaseError", "load_case_file", "is_case_file"]
