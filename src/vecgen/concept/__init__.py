"""The concept-token experiment (``vecgen concept``): :mod:`.run` runs it, :mod:`.records` holds its typed
records, :mod:`.report` presents them (console, ``report.md``, figure, files)."""

from .records import ConceptRecord, ConceptVector
from .report import (
    comparison_markdown,
    concept_figure,
    concept_report,
    format_prompt_records,
    format_vector_line,
    translation_display,
    write_outputs,
)
from .run import (
    CONCEPT_SAMPLING_DEFAULTS,
    DEFAULT_N,
    DEFAULT_PROMPTS,
    ConceptConfig,
    ConceptRun,
    all_methods,
    methods_for,
    run_concept,
    run_prompt,
    total_steps,
)

__all__ = [
    "CONCEPT_SAMPLING_DEFAULTS",
    "DEFAULT_N",
    "DEFAULT_PROMPTS",
    "ConceptConfig",
    "ConceptRecord",
    "ConceptRun",
    "ConceptVector",
    "all_methods",
    "comparison_markdown",
    "concept_figure",
    "concept_report",
    "format_prompt_records",
    "format_vector_line",
    "methods_for",
    "run_concept",
    "run_prompt",
    "total_steps",
    "translation_display",
    "write_outputs",
]
