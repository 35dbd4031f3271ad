"""Results: the run writer (JSON with config and versions, JSONL records, Markdown report, plots)."""

from .writer import (
    RunWriter,
    default_run_name,
    environment_info,
    interrupted_runs,
    validate_run_name,
)

__all__ = ["RunWriter", "default_run_name", "environment_info", "interrupted_runs", "validate_run_name"]
