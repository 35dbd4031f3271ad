"""Results: the run writer (JSON with config and versions, JSONL records, Markdown report, plots)."""

from .writer import (
    RunWriter,
    compress_records,
    default_run_name,
    environment_info,
    interrupted_runs,
    validate_run_name,
)

__all__ = ["RunWriter", "compress_records", "default_run_name", "environment_info", "interrupted_runs", "validate_run_name"]
