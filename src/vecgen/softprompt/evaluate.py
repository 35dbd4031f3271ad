"""Answering the arena with a soft prompt (or without one): greedy answers, checked per family, and the held-out
accuracy of a saved checkpoint next to the same model without it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from accelerate.utils import gather_object
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..benchmarks_data import Task
from ..benchmarks_data.arena import arena_prompt, brief, heldout_set
from ..checkpoints import check_model_identity
from ..config import SamplingConfig
from ..decoding import generate
from ..evaluation import answer_tasks
from ..models import LoadedModel
from ..parallel import Processes
from .config import TrainConfig
from .prompt import PromptParts, SoftPrompt, assemble, prompt_parts


def respond(lm: LoadedModel, prompts: Sequence[Any], *, max_new_tokens: int, max_batch: int | None = None) -> list[str]:
    """Greedy answers (decoded, special tokens removed) for prompts made of segments; ``max_batch``: continuous
    batching through that many rows (:func:`~vecgen.decoding.generate`)."""
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    result = generate(lm, prompts, sampling=sampling, record_top_k=1, max_batch=max_batch)
    return [result.text(row, lm.tokenizer) for row in range(len(prompts))]


def _accuracy_table(rows: Sequence[dict[str, Any]], families: Sequence[str]) -> dict[str, Any]:
    per_family = {}
    for name in families:
        mine = [r for r in rows if r["family"] == name]
        if mine:
            hits = sum(r["correct"] for r in mine)
            per_family[name] = {"accuracy": hits / len(mine), "correct": hits, "n": len(mine)}
    hits = sum(r["correct"] for r in rows)
    return {"accuracy": hits / max(len(rows), 1), "correct": hits, "n": len(rows), "per_family": per_family}


def progress_bars(show: bool) -> Any:
    """A rich progress display for a run's phases (a null context when ``show`` is False)."""
    if not show:
        return contextlib.nullcontext(None)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)


def evaluate(
    lm: LoadedModel,
    items: Sequence[Task],
    soft: SoftPrompt | None,
    config: TrainConfig,
    *,
    on_batch: Callable[[int], None] | None = None,
    processes: Processes | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer ``items`` greedily, with the soft prompt or (``soft=None``) without.

    Items are answered in chunks of :data:`~vecgen.evaluation.CHUNK_BATCHES` × ``config.eval_batch_size``,
    continuously batched through ``config.eval_batch_size`` rows. With ``processes`` (:class:`~vecgen.parallel.Processes`, a data-parallel run)
    chunk ``b`` is answered by process ``b mod N`` and every process gets all rows back
    (in item order), so the summary is the one-process summary.

    Returns:
        ``(summary, rows)``: summary ``{"accuracy", "correct", "n", "per_family": {name: {...}}}``;
        one row per item (family, index, question, answer, response, extracted, correct).
    """
    vectors = None if soft is None else soft.vectors.detach()

    def answer(batch: list[Task]) -> list[tuple[str, None]]:
        prompts = [assemble(arena_parts(lm, it, config), vectors, config.placement) for it in batch]
        return [(r, None) for r in respond(lm, prompts, max_new_tokens=config.max_new_tokens,
                                           max_batch=config.eval_batch_size)]

    order = {id(it): i for i, it in enumerate(items)}
    indexed: list[tuple[int, dict[str, Any]]] = []
    for a in answer_tasks(items, {"soft_prompt" if soft is not None else "baseline": answer},
                          batch_size=config.eval_batch_size, continuous=True, processes=processes,
                          on_batch=None if on_batch is None else (lambda _run, n: on_batch(n))):
        indexed.append((order[id(a.task)], {**brief(a.task), "response": a.text, "extracted": a.verdict.pred,
                                            "correct": a.verdict.correct}))
    if processes is not None and processes.count > 1:
        indexed = gather_object(indexed)
    rows = [row for _, row in sorted(indexed, key=lambda x: x[0])]
    return _accuracy_table(rows, config.families), rows


def arena_parts(lm: LoadedModel, item: Task, config: TrainConfig) -> PromptParts:
    """The prompt parts of an arena item in a run's prompt format (chat template or not, system message)."""
    return prompt_parts(lm, arena_prompt(item), chat=config.chat_template, system=config.system)


def _advance(progress: Any, task: Any) -> Callable[[int], None] | None:
    """A progress callback advancing ``task`` by the items each batch answered (None without a display)."""
    if progress is None or task is None:
        return None
    return lambda n: progress.advance(task, n)


def evaluate_checkpoint(
    lm: LoadedModel, checkpoint: dict[str, Any], *, show_progress: bool = True, processes: Processes | None = None, **overrides: Any
) -> dict[str, Any]:
    """Held-out accuracy of a checkpoint's soft prompt and of the same model without it.

    Args:
        checkpoint: from :func:`load_checkpoint`.
        processes: share the items over a data-parallel run (see :func:`evaluate`).
        overrides: ``eval_size``, ``seed``, ``difficulty``, ``max_new_tokens``, ``eval_batch_size`` (None =
            the checkpoint's).

    Returns:
        ``{"config", "episode", "soft_prompt": summary, "baseline": summary, "rows": {...}}``.

    Raises:
        ConfigError: the checkpoint belongs to another model, or an invalid override.
    """
    check_model_identity(checkpoint["model"], lm)
    allowed = {"eval_size", "seed", "difficulty", "max_new_tokens", "eval_batch_size"}
    given = {k: v for k, v in overrides.items() if k in allowed and v is not None}
    config = TrainConfig.create(**{**checkpoint["config"], **given})
    soft = SoftPrompt(checkpoint["soft_prompt"]).to(lm.device)
    items = heldout_set(config.seed, config.eval_size, config.families, config.difficulty)
    out: dict[str, Any] = {"config": config.model_dump(mode="json"), "episode": int(checkpoint["episode"])}
    with progress_bars(show_progress) as progress:
        for label, prompt in (("soft_prompt", soft), ("baseline", None)):
            task = None if progress is None else progress.add_task(label.replace("_", " "), total=len(items), info="")
            summary, rows = evaluate(lm, items, prompt, config, processes=processes,
                                     on_batch=_advance(progress, task))
            out[label] = summary
            out.setdefault("rows", {})[label] = rows
    return out


__all__ = ["arena_parts", "evaluate", "evaluate_checkpoint", "progress_bars", "respond"]
