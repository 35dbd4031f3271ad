"""The concept-token experiment (``vecgen concept``): :mod:`.tokens` makes concept tokens (:class:`ConceptTokens`,
what :meth:`vecgen.Model.concept` returns), :mod:`.run` runs the seeds' protocol, :mod:`.records` holds its typed
records, :mod:`.report` presents them (console, ``report.md``, figure, files, the viewer's data)."""

from ..config import CONCEPT_SAMPLING_DEFAULTS, DEFAULT_PROMPTS
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
    DEFAULT_N,
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
    "ConceptTokens",
    "TokenWeight",
    "ConceptVector",
    "all_methods",
    "comparison_markdown",
    "concept_figure",
    "concept_report",
    "concept_tokens",
    "format_prompt_records",
    "format_vector_line",
    "methods_for",
    "run_concept",
    "run_prompt",
    "total_steps",
    "translation_display",
    "write_outputs",
]
