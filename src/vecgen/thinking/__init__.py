"""Soft thinking vs discrete chain-of-thought: runners, Cold Stop, prompts, evaluation (answers are checked
by :mod:`vecgen.benchmarks_data.checkers`).

* :mod:`.runner` — ``direct`` / ``cot`` / ``soft`` as one batched two-phase loop on the decode loop;
* :mod:`.coldstop` — Cold Stop (entropy below τ for L consecutive steps);
* :mod:`.markers` — end-of-thinking marker detection on the top-1 trace;
* :mod:`.prompts` — prompts per model style (``</think>`` thinking models, text-marker Instruct models);
* :mod:`.evaluate` — batched benchmark runs with resumable JSONL records, summary, report, plot.
"""

from .coldstop import ColdStop
from .markers import EndMarker
from .prompts import DEFAULT_TEXT_MARKER, PromptStyle, build_prompt, prompt_style
from .runner import SOFT_THINKING_SAMPLING, Method, StopReason, ThinkConfig, ThinkOutput, run_thinking
from .stats import PairedComparison, paired_comparison, wilson_interval

__all__ = [
    "DEFAULT_TEXT_MARKER",
    "SOFT_THINKING_SAMPLING",
    "ColdStop",
    "EndMarker",
    "Method",
    "PairedComparison",
    "PromptStyle",
    "StopReason",
    "ThinkConfig",
    "ThinkOutput",
    "build_prompt",
    "paired_comparison",
    "prompt_style",
    "run_thinking",
    "wilson_interval",
]
