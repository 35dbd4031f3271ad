"""Soft thinking vs discrete chain-of-thought: runners, Cold Stop, prompts, evaluation (answers are checked
by :mod:`vecgen.benchmarks_data.checkers`).

* :mod:`.runner` — ``direct`` / ``cot`` / ``soft`` / ``hidden`` as one row policy on the decode engine;
* :mod:`.coldstop` — Cold Stop (entropy below τ for L consecutive steps);
* :mod:`.markers` — end-of-thinking marker detection on the top-1 trace;
* :mod:`.prompts` — prompts per model style (``</think>`` thinking models, text-marker Instruct models);
* :mod:`.think` — :func:`think`: one method on free questions (``vecgen.Model.think``);
* :mod:`.settings` — an evaluation's validated settings; :mod:`.grid` — ablation grids;
* :mod:`.evaluate` — :func:`evaluate`: methods on benchmark items, resumable run folders, :class:`Evaluation`;
* :mod:`.records`, :mod:`.summary`, :mod:`.report` — typed records, summaries and paired tests, reports and the
  run viewer's data.
"""

from ..stats import PairedComparison, paired_comparison, wilson_interval
from .coldstop import ColdStop
from .evaluate import (  # vecgen.evaluate is .evaluate.evaluate (the module keeps its name)
    Evaluation,
    run_evaluation,
)
from .markers import EndMarker
from .prompts import DEFAULT_TEXT_MARKER, PromptStyle, build_prompt, prompt_style
from .records import ThinkRecord, TraceStep
from .runner import (
    SOFT_THINKING_SAMPLING,
    StopReason,
    ThinkConfig,
    ThinkOutput,
    run_thinking,
)
from .methods import MethodSettings, ThinkingMethod, get_method, method_names, register_method
from .settings import DEFAULT_METHODS, EvaluationSettings, parse_methods
from .summary import MethodPair, MethodSummary, PassAtK

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_TEXT_MARKER",
    "SOFT_THINKING_SAMPLING",
    "ColdStop",
    "EndMarker",
    "Evaluation",
    "EvaluationSettings",
    "MethodPair",
    "MethodSettings",
    "MethodSummary",
    "PairedComparison",
    "PassAtK",
    "PromptStyle",
    "StopReason",
    "ThinkConfig",
    "ThinkOutput",
    "ThinkRecord",
    "ThinkingMethod",
    "TraceStep",
    "build_prompt",
    "get_method",
    "method_names",
    "paired_comparison",
    "parse_methods",
    "prompt_style",
    "register_method",
    "run_evaluation",
    "run_thinking",
    "wilson_interval",
]
