"""One thinking method on free questions: what :meth:`vecgen.Model.think` runs.

Each question is asked with the prompt ``vecgen think`` uses for its answer type (:func:`build_prompt`: the
model's chat template, a step-by-step request ending with the end-of-thinking marker), then thought about with the
method and answered greedily, all questions in batches on the decode engine. Settings and defaults are
``vecgen think``'s (:func:`~vecgen.thinking.runner.method_configs`): ``soft`` thinks with Soft Thinking's
concept-token sampling (temperature 0.6, top_p 0.95, top_k 30, min_p 0.001, ``max_topk`` 10; Zhang et al. 2025),
320 thinking steps at most, Cold Stop τ = 0.01 nats over L = 48 steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..benchmarks_data import ANSWER_TYPES, Task
from ..config import SamplingConfig
from ..decoding.engine import check_context
from ..decoding.mixing import MixingConfig
from ..errors import ConfigError
from ..models import LoadedModel
from .prompts import build_prompt, prompt_style
from .records import TRACE_TOP_K
from .runner import ThinkConfig, ThinkOutput, method_configs, run_thinking, think_budget
from .settings import CONCEPT_FIELDS, parse_methods


def think(
    lm: LoadedModel,
    questions: Sequence[str | Task],
    *,
    method: str = "soft",
    answer_type: str = "numeric",
    sampling: SamplingConfig | None = None,
    mixing: MixingConfig | None = None,
    concept: dict[str, Any] | None = None,
    marker: str | None = None,
    batch_size: int = 8,
    max_think_tokens: int | None = None,
    max_answer_tokens: int | None = None,
    cold_stop_tau: float | None = None,
    cold_stop_steps: int | None = None,
    **method_settings: int | float | bool | str,
) -> list[ThinkOutput]:
    """Think about each question with one method, then answer.

    Args:
        lm: the model.
        questions: question texts (asked for an answer of ``answer_type``) or :class:`~vecgen.benchmarks_data.Task`
            objects (their own answer type and options).
        method: a registered thinking method (:func:`~vecgen.thinking.methods.method_names`).
        answer_type: ``numeric``, ``choice``, ``yesno`` or ``exact``: what the prompt asks for (text questions).
        sampling: the discrete sampler of ``cot`` thinking and of the answer (default greedy).
        mixing: the thinking rule of ``soft`` (default ``soft``, ``max_topk`` 10).
        concept: overrides of ``soft``'s concept-token sampling (``temperature``, ``top_p``, ``top_k``, ``min_p``).
        marker: the end-of-thinking text marker (default: ``</think>`` for thinking models, else ``"Answer:"``).
        batch_size: questions decoded together (>= 1).
        max_think_tokens, max_answer_tokens, cold_stop_tau, cold_stop_steps: budgets (320, 24 tokens) and Cold Stop
            (0.01 nats, 48 steps); None = the default.
        method_settings: the method's own settings (:class:`~vecgen.thinking.methods.MethodSettings` fields).

    Returns:
        One :class:`~vecgen.thinking.runner.ThinkOutput` per question (answer, trace and its per-step weights,
        stop reason, token counts), in order.

    Raises:
        ConfigError: an unknown method or answer type, a bad setting (its name given), an empty question.
        ContextLengthError: a question that does not fit the model with the thinking budget (before any step).
    """
    if answer_type not in ANSWER_TYPES:
        raise ConfigError(f"answer_type={answer_type!r}: choose one of {', '.join(ANSWER_TYPES)}", param="answer_type")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: allowed range is >= 1", param="batch_size")
    cfg = think_config(method, sampling=sampling, mixing=mixing, concept=concept, max_think_tokens=max_think_tokens,
                       max_answer_tokens=max_answer_tokens, cold_stop_tau=cold_stop_tau,
                       cold_stop_steps=cold_stop_steps, **method_settings)
    name = cfg.method
    tasks = []
    for i, q in enumerate(questions):
        if isinstance(q, Task):
            tasks.append(q)
        elif not isinstance(q, str) or not q.strip():
            raise ConfigError(f"question {i + 1} is empty; give the text of a question", param="questions")
        else:
            tasks.append(Task(id=str(i), question=q, answer="", answer_type=answer_type))
    style = prompt_style(lm, marker)
    end = style.end_marker(lm.tokenizer)
    direct = not cfg.spec.thinks
    prompts = [lm.encode(build_prompt(lm, t, style, direct=direct)) for t in tasks]
    check_context(lm, [len(p) for p in prompts], [think_budget(cfg, end)] * len(prompts),
                  names=[f"question {i + 1}" for i in range(len(prompts))])
    outs = run_thinking(lm, prompts, cfg, end, trace_top_k=TRACE_TOP_K, max_batch=batch_size)  # continuous batching
    for out, task in zip(outs, tasks):
        out.method, out.question = name, task.question
    return outs


def think_config(method: str = "soft", *, sampling: SamplingConfig | None = None, mixing: MixingConfig | None = None,
                 concept: dict[str, Any] | None = None, **settings: Any) -> ThinkConfig:
    """The :class:`~vecgen.thinking.runner.ThinkConfig` :func:`think` (and ``vecgen serve``'s thinking requests) run:
    ``method_configs`` with greedy ``sampling`` by default, the ``soft`` rule, ``concept`` overrides of Soft Thinking's
    concept-token sampling, and further ``ThinkConfig`` fields in ``settings``.

    Raises:
        ConfigError: an unknown method, concept field or setting (named), a value out of range.
    """
    name = parse_methods([method], param="method")[0]
    unknown = sorted(set(concept or {}) - set(CONCEPT_FIELDS))
    if unknown:
        raise ConfigError(f"concept: unknown field {unknown[0]!r}; choose from: {', '.join(CONCEPT_FIELDS)}",
                          param="concept")
    return method_configs([name], discrete=sampling or SamplingConfig(max_new_tokens=1),
                          mixing=mixing or MixingConfig(rule="soft"), concept=concept, **settings)[name]


__all__ = ["think", "think_config"]
