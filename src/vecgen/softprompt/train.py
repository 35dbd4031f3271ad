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

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..benchmarks_data.arena import (
    brief,
    heldout_set,
    questions_digest,
    training_item,
    training_schedule,
)
from ..benchmarks_data.checkers import check_answer
from ..checkpoints import (
    check_model_identity,
    load_checkpoint,
    model_identity,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from ..decoding.engine import check_context
from ..errors import ConfigError
from ..io import atomic_write_text
from ..models import LoadedModel
from ..reports import RunWriter
from ..scoring import teacher_forced_loss
from .config import TrainConfig
from .evaluate import arena_parts, evaluate, progress_bars, respond
from .prompt import (
    Placement,
    PromptParts,
    SoftPrompt,
    assemble,
    describe_vectors,
    target_ids,
)
from .report import learning_curves_figure, report_markdown

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- the gradient step


def answer_loss(
    lm: LoadedModel, vectors: torch.Tensor, parts: PromptParts, target: Sequence[int], placement: Placement | str
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
    lm: LoadedModel, soft: SoftPrompt, optimizer: torch.optim.Optimizer, parts: PromptParts, target: Sequence[int],
    placement: Placement | str,
) -> float:
    """One Adam step on the soft prompt for one (prompt, answer) pair; returns the loss before the step.

    The model's weights are frozen (``requires_grad_(False)``) so only ``soft.vectors`` receives a gradient.
    """
    lm.require_module("soft-prompt training").requires_grad_(False)
    optimizer.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = answer_loss(lm, soft.vectors, parts, target, placement)
        loss.backward()
    optimizer.step()
    return float(loss.detach())


# ---------------------------------------------------------------- the run


def _checkpoint_payload(state: dict[str, Any], soft: SoftPrompt, optimizer: Any, config: TrainConfig,
                        lm: LoadedModel) -> dict[str, Any]:
    return {
        "soft_prompt": soft.vectors.detach().cpu().clone(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_states(),
        "config": config.model_dump(mode="json"),
        "model": model_identity(lm),
        **state,
    }


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


def _summary(state: dict[str, Any], soft: SoftPrompt, lm: LoadedModel, config: TrainConfig, finished: bool) -> dict[str, Any]:
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


def _write_outputs(writer: RunWriter, state: dict[str, Any], soft: SoftPrompt, lm: LoadedModel, config: TrainConfig,
                   finished: bool) -> dict[str, Any]:
    summary = _summary(state, soft, lm, config, finished)
    writer.write_results(summary, model=lm.describe())
    writer.save_figure(learning_curves_figure(summary, config.families), "learning_curves.png")
    writer.write_report(report_markdown(summary, config, lm.describe()))
    return summary


def _truncate_jsonl(writer: RunWriter, filename: str, last_episode: int) -> None:
    path = writer.path(filename)
    if not path.exists():
        return
    keep = [r for r in writer.read_records(filename) if int(r.get("episode", 0)) <= last_episode]
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))


EpisodeCallback = Callable[[int, dict[str, Any]], None]


def train(
    lm: LoadedModel,
    config: TrainConfig,
    writer: RunWriter,
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
    lm.require_module("soft-prompt training").requires_grad_(False)
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
        state: dict[str, Any] = {k: ckpt[k] for k in ("episode", "log", "evals", "baseline", "eval_seconds")}
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

    with progress_bars(show_progress) as progress:
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
                baseline = state["baseline"] = run_eval(False, "baseline (no soft prompt)")
                log.info("baseline (no soft prompt): held-out accuracy %.1f%%", 100 * baseline["accuracy"])
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
                parts = arena_parts(lm, item, config)
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


