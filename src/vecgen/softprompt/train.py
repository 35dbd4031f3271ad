"""Online soft-prompt learning on the reasoning arena.

Each episode: take the next task of the training schedule, let the model answer it greedily with the
soft prompt (:func:`vecgen.decoding.generate`, the soft prompt as a vector segment of the prompt),
check and log the answer, then take one Adam step on the reference answer (teacher forcing,
cross-entropy on the answer tokens and the end token only; the model's weights are frozen, only the
soft prompt ``(n, d)`` gets gradients). Every ``eval_interval`` episodes the held-out set is answered
(overall and per-family accuracy) and a checkpoint is written atomically; ``resume=True`` continues
from it with the same data order and optimizer state, so losses equal those of an uninterrupted run.
A baseline row — the same held-out set without a soft prompt — is computed once per run.

Outputs (through :class:`vecgen.reports.RunWriter`, folder ``runs/<name>/``): ``results.json``
(config, curves, per-family accuracy, baseline, episodes/s and the generation / gradient-step time
split), ``learning_curves.png``, ``report.md``, ``records.jsonl`` (one line per episode),
``eval_records.jsonl`` (one line per held-out answer), ``checkpoint.pt`` (latest) and
``checkpoints/ep<N>.pt`` (one per evaluation).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import SEED_MAX, SamplingConfig, format_validation_error
from ..decoding import build_batch, generate
from ..decoding.engine import check_context
from ..backends import accepts_logits_to_keep
from ..errors import ConfigError
from ..io import atomic_write_text
from ..benchmarks_data import Task
from ..benchmarks_data.checkers import check_answer
from .arena import FAMILIES, arena_prompt, brief, heldout_set, training_item, training_schedule
from .checkpoint import (
    check_model_identity,
    load_checkpoint,
    model_identity,
    questions_digest,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from .prompt import (
    DEFAULT_INIT_TEXT,
    DEFAULT_SYSTEM,
    InitMethod,
    Placement,
    PromptParts,
    SoftPrompt,
    assemble,
    describe_vectors,
    prompt_parts,
    target_ids,
)

log = logging.getLogger(__name__)

_ALLOWED = {
    "episodes": ">= 1",
    "eval_interval": ">= 1 (and <= episodes)",
    "soft_tokens": ">= 1",
    "lr": "> 0",
    "eval_size": ">= 1",
    "difficulty": "1, 2 or 3",
    "eval_batch_size": ">= 1",
    "placement": "prefix or in-turn",
    "init": "text, vocab or random",
}


class TrainConfig(BaseModel):
    """Configuration of a soft-prompt run (validated; bad values raise :class:`ConfigError` via :meth:`create`).

    Attributes:
        model: model spec for :func:`vecgen.models.load_model`.
        episodes: training episodes (one task, one answer, one gradient step each).
        eval_interval: evaluate and checkpoint every this many episodes (<= episodes).
        soft_tokens: number of soft-prompt vectors ``n``.
        lr: Adam learning rate (> 0).
        chat_template: render prompts with the chat template (else ``Question: ...\\nAnswer:``).
        placement: ``prefix`` or ``in-turn``.
        init: ``text``, ``vocab`` or ``random``; ``init_text`` for ``text``.
        system: system message of chat prompts.
        seed: seeds the arena (held-out set, schedule) and the initialisation.
        eval_size: held-out items (round-robin over families).
        difficulty: arena difficulty 1–3.
        families: task families (default: all registered).
        max_new_tokens: answer length limit in tokens.
        eval_batch_size: prompts per batch when answering the held-out set.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = "default"
    episodes: int = Field(80, ge=1, le=1_000_000)
    eval_interval: int = Field(20, ge=1)
    soft_tokens: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    chat_template: bool = True
    placement: Placement = Placement.PREFIX
    init: InitMethod = InitMethod.TEXT
    init_text: str = DEFAULT_INIT_TEXT
    system: str | None = DEFAULT_SYSTEM
    seed: int = Field(0, ge=0, le=SEED_MAX)
    eval_size: int = Field(60, ge=1, le=100_000)
    difficulty: int = Field(1, ge=1, le=3)
    families: list[str] = Field(default_factory=lambda: list(FAMILIES))
    max_new_tokens: int = Field(24, ge=1)
    eval_batch_size: int = Field(8, ge=1)

    @field_validator("model")
    @classmethod
    def _absolute_model_path(cls, value: str) -> str:
        """A local folder or file is stored by its absolute path, so a checkpoint names it from anywhere."""
        from ..models import find_entry

        path = Path(value).expanduser()
        if find_entry(value) is None and path.exists():
            return str(path.resolve())
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> "TrainConfig":
        if self.eval_interval > self.episodes:
            raise ValueError(f"eval_interval={self.eval_interval} is larger than episodes={self.episodes}; "
                             "give --eval-interval <= --episodes")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"unknown task families {unknown or '(none given)'}; choose from: {', '.join(FAMILIES)}")
        if self.init is InitMethod.TEXT and not self.init_text.strip():
            raise ValueError("init_text is empty; give --init-text or another --init")
        return self

    @classmethod
    def create(cls, **values: Any) -> "TrainConfig":
        """Validate ``values`` (``None`` values are dropped, i.e. take the default).

        Raises:
            ConfigError: one message naming every invalid field and its allowed range.
        """
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(_format(exc)) from None


def _format(exc: ValidationError) -> str:
    model_level = [e for e in exc.errors() if not e.get("loc")]
    if model_level:
        return "invalid soft-prompt config: " + "; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in model_level)
    return format_validation_error(exc, "soft-prompt config", _ALLOWED)


# ---------------------------------------------------------------- answering and evaluation


def respond(lm: Any, prompts: Sequence[Any], *, max_new_tokens: int) -> list[str]:
    """Greedy answers (decoded, special tokens removed) for prompts made of segments."""
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    result = generate(lm, prompts, sampling=sampling, record_top_k=1)
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


def evaluate(
    lm: Any,
    items: Sequence[Task],
    soft: SoftPrompt | None,
    config: TrainConfig,
    *,
    on_batch: Callable[[int], None] | None = None,
    processes: Any = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer ``items`` greedily, with the soft prompt or (``soft=None``) without.

    With ``processes`` (:class:`~vecgen.parallel.Processes`, a data-parallel run) batch ``b`` of
    ``config.eval_batch_size`` items is answered by process ``b mod N`` and every process gets all rows back
    (in item order), so the summary is the one-process summary.

    Returns:
        ``(summary, rows)``: summary ``{"accuracy", "correct", "n", "per_family": {name: {...}}}``;
        one row per item (family, index, question, answer, response, extracted, correct).
    """
    from ..evaluation import answer_tasks

    vectors = None if soft is None else soft.vectors.detach()

    def answer(batch: list[Task]) -> list[tuple[str, None]]:
        prompts = [assemble(_parts(lm, it, config), vectors, config.placement) for it in batch]
        return [(r, None) for r in respond(lm, prompts, max_new_tokens=config.max_new_tokens)]

    order = {id(it): i for i, it in enumerate(items)}
    indexed: list[tuple[int, dict[str, Any]]] = []
    for a in answer_tasks(items, {"soft_prompt" if soft is not None else "baseline": answer},
                          batch_size=config.eval_batch_size, processes=processes,
                          on_batch=None if on_batch is None else (lambda _run, n: on_batch(n))):
        indexed.append((order[id(a.task)], {**brief(a.task), "response": a.text, "extracted": a.verdict.pred,
                                            "correct": a.verdict.correct}))
    if processes is not None and processes.count > 1:
        from accelerate.utils import gather_object

        indexed = gather_object(indexed)
    rows = [row for _, row in sorted(indexed, key=lambda x: x[0])]
    return _accuracy_table(rows, config.families), rows


def _parts(lm: Any, item: Task, config: TrainConfig) -> PromptParts:
    return prompt_parts(lm, arena_prompt(item), chat=config.chat_template, system=config.system)


# ---------------------------------------------------------------- the gradient step


def target_logits(lm: Any, prompts: Sequence[Sequence[Any]], targets: Sequence[Sequence[int]], *,
                  what: str | None = None) -> torch.Tensor:
    """Teacher-forced logits at the target positions: one left-padded batch of ``[*prompts[i], targets[i]]`` built
    by :func:`vecgen.decoding.build_batch` (the same path as generation), positions from 0 after each row's padding,
    one forward pass keeping only the last ``K + 1`` positions (``logits_to_keep``).

    Args:
        prompts: each a list of segments (token ids or ``(n, d)`` vectors; gradients flow into the vectors).
        targets: token ids per row.
        what: the sequences' name in a context-length error; None: the caller fits rows to the context itself.

    Returns:
        ``(B, K, V)`` float32, ``K = max len(targets)``: position ``k`` of row ``b`` predicts that row's target
        token at ``k``; row ``b``'s targets are its last ``len(targets[b])`` positions.

    Raises:
        ContextLengthError: a row longer than the model's context (with ``what``).
    """
    targets = [list(t) for t in targets]
    batch = build_batch(lm, [[*p, t] for p, t in zip(prompts, targets)])
    mask = batch.attention_mask  # (B, T)
    if what is not None:
        check_context(lm, mask.sum(-1).tolist(), [0] * len(targets), names=[what] * len(targets))
    positions = (mask.cumsum(-1) - 1).clamp_min(0)  # (B, T)
    K = max(len(t) for t in targets)  # targets sit at the end of each left-padded row
    kwargs = {"logits_to_keep": K + 1} if accepts_logits_to_keep(lm.model) else {}
    inputs = {"input_ids": batch.input_ids} if batch.inputs_embeds is None else {"inputs_embeds": batch.inputs_embeds}
    out = lm.model(**inputs, attention_mask=mask, position_ids=positions, use_cache=False, **kwargs)
    return out.logits[:, -(K + 1) : -1].float()  # the position before each target token predicts it


def teacher_forced_loss(lm: Any, prompts: Sequence[Sequence[Any]], targets: Sequence[Sequence[int]], *,
                        what: str = "a training sequence") -> torch.Tensor:
    """Teacher-forced cross-entropy of each ``targets[i]`` after ``prompts[i]``, in nats per target token (averaged
    over every target token of the batch); the logits are :func:`target_logits`'.

    Args:
        prompts: each a list of segments (token ids or ``(n, d)`` vectors; gradients flow into the vectors).
        targets: token ids per row (end token included).
        what: the sequences' name in a context-length error.

    Returns:
        Scalar float32 tensor.

    Raises:
        ContextLengthError: a row longer than the model's context.
    """
    targets = [list(t) for t in targets]
    logits = target_logits(lm, prompts, targets, what=what)  # (B, K, V)
    K = logits.shape[1]
    labels = torch.full((len(targets), K), -100, dtype=torch.long, device=logits.device)  # (B, K)
    for b, t in enumerate(targets):
        labels[b, K - len(t) :] = torch.tensor(t, device=logits.device)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)


def answer_loss(
    lm: Any, vectors: torch.Tensor, parts: PromptParts, target: Sequence[int], placement: Placement | str
) -> torch.Tensor:
    """Teacher-forced cross-entropy (nats per answer token) of ``target`` after the prompt
    ``assemble(parts, vectors, placement)`` (:func:`teacher_forced_loss` of one row).

    Args:
        vectors: ``(n, d)`` soft prompt (gradients flow into it).
        target: answer token ids (end token included), from :func:`target_ids`.

    Returns:
        Scalar float32 tensor.
    """
    return teacher_forced_loss(lm, [assemble(parts, vectors, placement)], [target],
                               what="a training sequence (soft prompt + question + answer)")


def training_step(
    lm: Any, soft: SoftPrompt, optimizer: torch.optim.Optimizer, parts: PromptParts, target: Sequence[int],
    placement: Placement | str,
) -> float:
    """One Adam step on the soft prompt for one (prompt, answer) pair; returns the loss before the step.

    The model's weights are frozen (``requires_grad_(False)``) so only ``soft.vectors`` receives a gradient.
    """
    lm.model.requires_grad_(False)
    optimizer.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = answer_loss(lm, soft.vectors, parts, target, placement)
        loss.backward()
    optimizer.step()
    return float(loss.detach())


# ---------------------------------------------------------------- the run


def _checkpoint_payload(state: dict[str, Any], soft: SoftPrompt, optimizer: Any, config: TrainConfig,
                        lm: Any) -> dict[str, Any]:
    return {
        "soft_prompt": soft.vectors.detach().cpu().clone(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_states(),
        "config": config.model_dump(mode="json"),
        "model": model_identity(lm),
        **state,
    }


def _check_resumable(saved: dict[str, Any], config: TrainConfig) -> None:
    from ..config import changed_settings

    ignore = ("episodes", "model")
    old = {k: v for k, v in TrainConfig.create(**saved).model_dump(mode="json").items() if k not in ignore}
    new = {k: v for k, v in config.model_dump(mode="json").items() if k not in ignore}
    diff = changed_settings(old, new)
    if diff:
        raise ConfigError(f"the checkpoint was trained with other settings ({'; '.join(diff)}); a resumed run keeps "
                          "its configuration (only --episodes may change)")


def resume_config(checkpoint: dict[str, Any], **overrides: Any) -> TrainConfig:
    """The configuration of a resumed run: the checkpoint's, with ``episodes`` (and ``model``) overridable.

    Raises:
        ConfigError: an override that differs from the checkpoint (other than episodes/model), or fewer
            episodes than already done.
    """
    saved = dict(checkpoint["config"])
    given = {k: v for k, v in overrides.items() if v is not None}
    config = TrainConfig.create(**{**saved, **given})
    _check_resumable(saved, config)
    if config.episodes < int(checkpoint["episode"]):
        raise ConfigError(f"episodes={config.episodes} is fewer than the {checkpoint['episode']} already done")
    return config


def _speed(log_rows: Sequence[dict[str, Any]], eval_seconds: float) -> dict[str, Any]:
    gen = sum(r["generate_s"] for r in log_rows)
    step = sum(r["step_s"] for r in log_rows)
    check = sum(r["check_s"] for r in log_rows)
    total = gen + step + check
    return {
        "episodes": len(log_rows),
        "episode_seconds": total,
        "episodes_per_s": len(log_rows) / total if total else None,
        "generation_s": gen,
        "gradient_step_s": step,
        "check_s": check,
        "generation_share": gen / total if total else None,
        "gradient_step_share": step / total if total else None,
        "eval_seconds": eval_seconds,
    }


def _summary(state: dict[str, Any], soft: SoftPrompt, lm: Any, config: TrainConfig, finished: bool) -> dict[str, Any]:
    evals = state["evals"]
    baseline = state["baseline"]
    per_family = {}
    for name in config.families:
        per_family[name] = {
            "baseline": baseline["per_family"].get(name, {}).get("accuracy"),
            "initial": evals[0]["per_family"].get(name, {}).get("accuracy") if evals else None,
            "final": evals[-1]["per_family"].get(name, {}).get("accuracy") if evals else None,
        }
    real = lm.embedding.detach()[: lm.n_real_vocab].float()
    return {
        "status": "finished" if finished else "running",
        "episodes_done": state["episode"],
        "baseline": baseline,
        "initial": evals[0] if evals else None,
        "final": evals[-1] if evals else None,
        "per_family": per_family,
        "curves": {
            "eval": [{k: e[k] for k in ("episode", "accuracy", "per_family")} for e in evals],
            "train": [{k: r[k] for k in ("episode", "family", "loss", "correct")} for r in state["log"]],
        },
        "speed": _speed(state["log"], state["eval_seconds"]),
        "soft_prompt": {
            "n_tokens": soft.n_tokens,
            "hidden_size": soft.hidden_size,
            "trainable_parameters": soft.vectors.numel(),
            "norms": soft.vectors.detach().norm(dim=-1).tolist(),
            "embedding_mean_norm": float(real.norm(dim=-1).mean()),
            # per vector: the 5 nearest real tokens by cosine, norm and off-manifold distance (the viewer shows them)
            "vectors": describe_vectors(lm, soft.vectors, 5),
        },
    }


def _write_outputs(writer: Any, state: dict[str, Any], soft: SoftPrompt, lm: Any, config: TrainConfig,
                   finished: bool) -> dict[str, Any]:
    from .report import learning_curves_figure, report_markdown

    summary = _summary(state, soft, lm, config, finished)
    writer.write_results(summary, model=lm.describe())
    writer.save_figure(learning_curves_figure(summary, config.families), "learning_curves.png")
    writer.write_report(report_markdown(summary, config, lm.describe()))
    return summary


def _truncate_jsonl(writer: Any, filename: str, last_episode: int) -> None:
    path = writer.path(filename)
    if not path.exists():
        return
    keep = [r for r in writer.read_records(filename) if int(r.get("episode", 0)) <= last_episode]
    import json

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))


def _progress(show: bool):
    if not show:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)


EpisodeCallback = Callable[[int, dict[str, Any]], None]


def train(
    lm: Any,
    config: TrainConfig,
    writer: Any,
    *,
    resume: bool = False,
    show_progress: bool = True,
    on_episode: EpisodeCallback | None = None,
) -> dict[str, Any]:
    """Run (or resume) online soft-prompt learning; write the run's files; return the summary.

    Args:
        lm: the loaded model (frozen here).
        config: the run configuration (on resume, from :func:`resume_config`).
        writer: a :class:`vecgen.reports.RunWriter` for the run folder.
        resume: continue from ``<run dir>/checkpoint.pt``.
        show_progress: show a rich progress bar.
        on_episode: called after each episode with ``(episode, record)``.

    Returns:
        The summary written to ``results.json`` (``results`` key).

    Raises:
        ConfigError: resume without a checkpoint, a fresh run into a folder that has one, a checkpoint
            of another model, or a changed arena.
        ContextLengthError: the soft prompt plus an answer cannot fit the model's context (checked first);
            a training sequence that does not fit (checked per step).
        KeyboardInterrupt: passed on; the last checkpoint stays intact.
    """
    lm.model.requires_grad_(False)
    check_context(lm, [config.soft_tokens], [config.max_new_tokens], names=["the soft prompt (--soft-tokens)"])
    ckpt_path = writer.path("checkpoint.pt")
    heldout = heldout_set(config.seed, config.eval_size, config.families, config.difficulty)
    schedule = training_schedule(config.seed, config.episodes, config.families, heldout, config.difficulty)
    digest = questions_digest(heldout)

    if resume:
        ckpt = load_checkpoint(ckpt_path)
        check_model_identity(ckpt["model"], lm)
        saved_schedule = [tuple(x) for x in ckpt["schedule"]]
        if ckpt["heldout_digest"] != digest or schedule[: len(saved_schedule)] != saved_schedule[: len(schedule)]:
            raise ConfigError(f"{ckpt_path}: the arena produces different tasks than when the checkpoint was written "
                              "(changed vecgen or reasoning-gym version?); start a new run")
        soft = SoftPrompt(ckpt["soft_prompt"]).to(lm.device)
        optimizer = torch.optim.Adam([soft.vectors], lr=config.lr)
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_states(ckpt["rng"])
        state = {k: ckpt[k] for k in ("episode", "log", "evals", "baseline", "eval_seconds")}
        _truncate_jsonl(writer, "records.jsonl", state["episode"])
        _truncate_jsonl(writer, "eval_records.jsonl", state["episode"])
        log.info("resuming %s at episode %d of %d", writer.dir, state["episode"], config.episodes)
    else:
        if ckpt_path.exists():
            raise ConfigError(f"{writer.dir} already holds a run (checkpoint.pt); resume it with --resume "
                              "or choose another --run-name")
        for name in ("records.jsonl", "eval_records.jsonl"):
            writer.path(name).unlink(missing_ok=True)
        soft = SoftPrompt.create(lm, config.soft_tokens, config.init, text=config.init_text, seed=config.seed)
        optimizer = torch.optim.Adam([soft.vectors], lr=config.lr)
        state = {"episode": 0, "log": [], "evals": [], "baseline": None, "eval_seconds": 0.0}

    def checkpoint() -> None:
        payload = {**state, "schedule": [list(x) for x in schedule[: config.episodes]], "heldout_digest": digest}
        data = _checkpoint_payload(payload, soft, optimizer, config, lm)
        save_checkpoint(ckpt_path, data)
        save_checkpoint(writer.path(f"checkpoints/ep{state['episode']:05d}.pt"), data)

    with _progress(show_progress) as progress:
        def run_eval(with_soft: bool, label: str) -> dict[str, Any]:
            task = None if progress is None else progress.add_task(label, total=len(heldout), info="")
            start = time.perf_counter()
            summary, rows = evaluate(lm, heldout, soft if with_soft else None, config,
                                     on_batch=None if task is None else (lambda n: progress.advance(task, n)))
            state["eval_seconds"] += time.perf_counter() - start
            if task is not None:
                progress.update(task, info=f"accuracy {summary['accuracy']:.0%}")
            for row in rows:
                writer.append_record({"episode": state["episode"], "soft_prompt": with_soft, **row},
                                     "eval_records.jsonl")
            return {"episode": state["episode"], **summary}

        try:
            if state["baseline"] is None:
                state["baseline"] = run_eval(False, "baseline (no soft prompt)")
                log.info("baseline (no soft prompt): held-out accuracy %.1f%%", 100 * state["baseline"]["accuracy"])
            if not state["evals"]:
                state["evals"].append(run_eval(True, "eval @ episode 0"))
                checkpoint()
                _write_outputs(writer, state, soft, lm, config, finished=False)
            task = None
            if progress is not None:
                task = progress.add_task("training", total=config.episodes, completed=state["episode"], info="")
            for ep in range(state["episode"], config.episodes):
                family, index = schedule[ep]
                item = training_item(config.seed, family, index, config.difficulty)
                parts = _parts(lm, item, config)
                t0 = time.perf_counter()
                response = respond(lm, [soft.segments(parts, config.placement)], max_new_tokens=config.max_new_tokens)[0]
                t1 = time.perf_counter()
                verdict = check_answer(item, response)
                t2 = time.perf_counter()
                loss = training_step(lm, soft, optimizer, parts, target_ids(lm, item.answer, chat=config.chat_template),
                                     config.placement)
                t3 = time.perf_counter()
                record = {"episode": ep + 1, **brief(item), "response": response, "extracted": verdict.pred,
                          "correct": verdict.correct, "loss": loss, "generate_s": t1 - t0, "check_s": t2 - t1,
                          "step_s": t3 - t2}
                state["log"].append(record)
                state["episode"] = ep + 1
                writer.append_record(record)
                if task is not None:
                    recent = state["log"][-20:]
                    progress.update(task, advance=1, info=f"loss {loss:.3f}  online acc (last 20) "
                                    f"{sum(r['correct'] for r in recent) / len(recent):.0%}")
                if on_episode is not None:
                    on_episode(ep + 1, record)
                if (ep + 1) % config.eval_interval == 0 or ep + 1 == config.episodes:
                    state["evals"].append(run_eval(True, f"eval @ episode {ep + 1}"))
                    log.info("episode %d: held-out accuracy %.1f%% (baseline %.1f%%)", ep + 1,
                             100 * state["evals"][-1]["accuracy"], 100 * state["baseline"]["accuracy"])
                    checkpoint()
                    if ep + 1 < config.episodes:
                        _write_outputs(writer, state, soft, lm, config, finished=False)
        except KeyboardInterrupt:
            last = state["evals"][-1]["episode"] if state["evals"] else None
            log.warning("interrupted at episode %d; the last checkpoint (episode %s) is intact: resume with "
                        "`vecgen softprompt train --resume --run-name %s`", state["episode"], last, writer.dir.name)
            raise
    return _write_outputs(writer, state, soft, lm, config, finished=True)


# ---------------------------------------------------------------- evaluating a checkpoint


def evaluate_checkpoint(
    lm: Any, checkpoint: dict[str, Any], *, show_progress: bool = True, processes: Any = None, **overrides: Any
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
    with _progress(show_progress) as progress:
        for label, prompt in (("soft_prompt", soft), ("baseline", None)):
            task = None if progress is None else progress.add_task(label.replace("_", " "), total=len(items), info="")
            summary, rows = evaluate(lm, items, prompt, config, processes=processes,
                                     on_batch=None if task is None else (lambda n, t=task: progress.advance(t, n)))
            out[label] = summary
            out.setdefault("rows", {})[label] = rows
    return out
