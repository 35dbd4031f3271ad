"""A reader run (``vecgen reader train`` / ``eval``) as library calls: generate the examples, train the LoRA adapter
with atomic checkpoints and bit-identical resume, evaluate it against the base model and every translation
method, write the run folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from ..checkpoints import (
    check_model_identity,
    model_identity,
    rng_states,
    set_rng_states,
)
from ..config import changed_settings
from ..decoding.translate import CHAT_METHODS, get_method
from ..errors import ConfigError
from ..models import LoadedModel
from ..reports import RunWriter
from .reader import (
    TrainState,
    add_lora,
    check_target_modules,
    continuation_kl,
    load_lora_state,
    load_reader,
    lora_state,
    read_back,
    save_reader,
    train_reader,
    translation_scores,
)
from .reader_data import (
    ReaderConfig,
    ReaderExample,
    cut_prompts,
    examples_digest,
    format_target,
    make_examples,
    parse_reading,
    score_reading,
    source_texts,
    summarize_scores,
)
from .report import reader_figure, reader_report

log = logging.getLogger("vecgen.reader")

#: The translation methods the reader is compared with (``instruction`` and ``selfie`` only with a chat template):
#: vecgen's frames and the published training-free readers, Patchscopes' identity prompt and SelfIE.
BASELINE_METHODS = ("nearest", "direct", "completion", "fewshot", "instruction", "patchscope", "selfie")


def reader_methods(lm: LoadedModel, methods: Sequence[str] | None = None) -> list[str]:
    """The translation methods to compare: ``methods``, or :data:`BASELINE_METHODS` (the chat-template methods only
    with a chat template)."""
    if methods is not None:
        return list(methods)
    return [m for m in BASELINE_METHODS if m not in CHAT_METHODS or lm.has_chat_template]


def check_methods_names(methods: Sequence[str] | None) -> None:
    """Raises ConfigError for an unknown translation method (before any model loads)."""
    for m in methods or ():
        get_method(m)


def identity_name(spec: str) -> str:
    """How a model spec is stored in a reader checkpoint: a local path made absolute, any other spec as given."""
    p = Path(spec).expanduser()
    return str(p.resolve()) if p.exists() else spec


def check_checkpoint_model(saved: dict[str, Any], model: str) -> None:
    """Raises ConfigError when the reader ``saved`` was trained on another model than ``model`` (by name, before
    loading; the embedding values are checked after, :func:`~vecgen.checkpoints.check_model_identity`)."""
    if saved["model"]["name"] != identity_name(model):
        raise ConfigError(f"{saved['path']} is a reader of {saved['model']['name']}, not of {model}; pass --model "
                          f"{saved['model']['name']}")


def check_resume(saved: dict[str, Any], cfg: ReaderConfig, model: str) -> None:
    """Raises ConfigError when a resumed run's model or settings differ from its checkpoint's."""
    if saved["model"]["name"] != identity_name(model):
        raise ConfigError(f"{saved['path']} was trained on {saved['model']['name']}, not {model}; pass --model "
                          f"{saved['model']['name']}")
    diff = changed_settings(saved["config"], cfg.model_dump(mode="json"))
    if diff:
        raise ConfigError(f"the checkpoint was trained with other settings ({'; '.join(diff)}); a resumed run keeps "
                          "its settings")


def _bars(show: bool) -> Any:
    if not show:
        return nullcontext(None)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), transient=True)


def evaluate_reader(lm: LoadedModel, peft_model: Any, examples: Sequence[ReaderExample], methods: Sequence[str],
                    writer: RunWriter | None = None, *, progress: bool = True) -> dict[str, Any]:
    """The base model (adapter off: the reader prompt and each translation method) against the trained reader on
    ``examples``: exact match, top-2 accuracy, weight MAE, and the KL of the model's own continuation with vs without
    the adapter. With ``writer``, one record per example and reader goes to ``eval_records.jsonl``."""
    table: dict[str, Any] = {}
    with _bars(progress) as bar:
        for label, adapter_on in (("base", False), ("reader", True)):
            task = None if bar is None else bar.add_task(f"reading back ({label})", total=len(examples), info="")
            hook = None if bar is None else (lambda n, t=task: bar.update(t, completed=n))
            with nullcontext() if adapter_on else peft_model.disable_adapter():
                outs = read_back(lm, examples, on_batch=hook)
            rows = []
            for e, o in zip(examples, outs):
                sc = score_reading(e, parse_reading(o))
                rows.append(sc)
                if writer is not None:
                    writer.append_record({"reader": label, "prompt": e.prompt, "n": e.n, "target": format_target(e),
                                          "output": o, **sc}, "eval_records.jsonl")
            table[label] = summarize_scores(rows)
        with peft_model.disable_adapter():
            table["translations"] = translation_scores(lm, examples, methods)
    table["continuation_kl"] = continuation_kl(lm, peft_model, examples)
    return table


@dataclass
class ReaderRun:
    """A reader run's result: the evaluation table, the training state (losses), the timing and sizes."""

    table: dict[str, Any]
    state: TrainState
    training: dict[str, Any] = field(default_factory=dict)


def train_run(lm: LoadedModel, cfg: ReaderConfig, writer: RunWriter, *, methods: Sequence[str] | None = None, saved: dict[str, Any] | None = None,
              progress: bool = True) -> ReaderRun:
    """Train a reader in ``writer``'s run folder (``checkpoint.pt`` every ``checkpoint_every`` steps, atomically;
    ``saved``: the checkpoint to resume, bit-identically), write ``reader.pt``, evaluate it and write the results.

    Raises:
        ConfigError: a fresh run into a folder holding one; examples that differ from the checkpoint's; the
            checkpoint of another model.
        UnsupportedError: a model LoRA cannot wrap (not transformers).
    """
    if saved is None and writer.path("checkpoint.pt").exists():
        raise ConfigError(f"{writer.dir} already holds a reader run; resume it with --resume or choose another "
                          "--run-name")
    if saved is not None:
        check_model_identity(saved["model"], lm, where=saved["path"])
    check_target_modules(lm, cfg)  # before minutes of data generation
    start = time.perf_counter()
    status = Console(stderr=True).status("generating concept tokens for the training and held-out examples")
    with status if progress else nullcontext():
        train_set = make_examples(lm, cut_prompts(source_texts("gsm8k"), cfg.train_examples, cfg.seed), cfg,
                                  seed=cfg.seed)
        eval_set = make_examples(lm, cut_prompts(source_texts("arena"), cfg.eval_examples, cfg.seed + 1), cfg,
                                 seed=cfg.seed + 1)
    data_s = time.perf_counter() - start
    digest = examples_digest(train_set)
    peft_model = add_lora(lm, cfg)
    state, opt_state = TrainState(), None
    if saved is not None:
        if saved["train_digest"] != digest:
            raise ConfigError(f"{saved['path']}: the training examples differ from the checkpoint's (changed vecgen "
                              "or model?); start a new run")
        load_lora_state(peft_model, saved["lora"])
        state = TrainState(int(saved["step"]), list(saved["losses"]))
        opt_state = saved["optimizer"]
        set_rng_states(saved["rng"])
    n_params = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)

    def payload(st: TrainState, optimizer: Any) -> dict[str, Any]:
        return {"lora": lora_state(peft_model), "optimizer": optimizer.state_dict(), "rng": rng_states(),
                "step": st.step, "losses": list(st.losses), "config": cfg.model_dump(mode="json"),
                "model": model_identity(lm), "train_digest": digest,
                "trainable_parameters": n_params}

    t0 = time.perf_counter()
    with _bars(progress) as bar:
        task = None if bar is None else bar.add_task("training", total=cfg.epochs * cfg.steps_per_epoch,
                                                     completed=state.step, info="")
        try:
            state, optimizer = train_reader(
                lm, peft_model, train_set, cfg, state=state, optimizer_state=opt_state,
                on_step=None if bar is None else (lambda s: bar.update(task, completed=s.step,
                                                                       info=f"loss {s.losses[-1]:.3f}")),
                checkpoint=lambda s, o: save_reader(writer.path("checkpoint.pt"), payload(s, o)))
        except KeyboardInterrupt:
            log.warning("interrupted; the last checkpoint is intact: resume with `vecgen reader train --resume "
                        "--run-name %s`", writer.dir.name)
            raise
    train_s = time.perf_counter() - t0
    final = payload(state, optimizer)
    final.pop("optimizer")  # the trained reader: adapter, settings, model identity, losses (no optimizer state)
    save_reader(writer.path("reader.pt"), final)
    writer.path("eval_records.jsonl").unlink(missing_ok=True)
    t1 = time.perf_counter()
    table = evaluate_reader(lm, peft_model, eval_set, reader_methods(lm, methods), writer, progress=progress)
    run = ReaderRun(table, state, {"data_s": data_s, "train_s": train_s, "eval_s": time.perf_counter() - t1,
                                   "trainable_parameters": n_params, "steps": state.step})
    write_reader(writer, lm, cfg, run)
    return run


def eval_run(lm: LoadedModel, saved: dict[str, Any], writer: RunWriter, *, eval_examples: int | None = None,
             source: str = "arena", seed: int = 1, methods: Sequence[str] | None = None,
             progress: bool = True) -> ReaderRun:
    """Evaluate the reader checkpoint ``saved`` (:func:`~vecgen.probes.reader.load_reader`) on held-out examples of
    ``source`` (``arena`` or ``gsm8k``) and write the results into ``writer``'s run folder.

    Raises:
        ConfigError: a bad source or count; the checkpoint of another model (by embedding values).
    """
    if source not in ("arena", "gsm8k"):
        raise ConfigError(f"source {source!r}: choose arena or gsm8k", param="source")
    if eval_examples is not None and eval_examples < 1:
        raise ConfigError(f"eval_examples={eval_examples}: must be >= 1", param="eval_examples")
    check_model_identity(saved["model"], lm, where=saved["path"])
    cfg = ReaderConfig.create(**saved["config"])
    peft_model = add_lora(lm, cfg)
    load_lora_state(peft_model, saved["lora"])
    examples = make_examples(lm, cut_prompts(source_texts(source), eval_examples or cfg.eval_examples, seed), cfg,
                             seed=seed)
    t0 = time.perf_counter()
    table = evaluate_reader(lm, peft_model, examples, reader_methods(lm, methods), writer, progress=progress)
    state = TrainState(int(saved["step"]), list(saved["losses"]))
    run = ReaderRun(table, state, {"eval_s": time.perf_counter() - t0, "steps": state.step,
                                   "checkpoint": str(saved["path"])})
    write_reader(writer, lm, cfg, run)
    return run


def write_reader(writer: RunWriter, lm: LoadedModel, cfg: ReaderConfig, run: ReaderRun) -> None:
    """``results.json`` (evaluation and training), ``loss.png`` and ``report.md``."""
    losses = run.state.losses
    tail = losses[-10:]
    training = {**run.training, "first_loss": losses[0] if losses else None,
                "last10_mean_loss": sum(tail) / len(tail) if tail else None, "losses": losses}
    desc = lm.describe()
    writer.write_results({"evaluation": run.table, "training": training}, model=desc,
                         settings=cfg.model_dump(mode="json"))
    if losses:
        writer.save_figure(reader_figure(losses), "loss.png")
    writer.write_report(reader_report(run.table, training, desc))


def reader_lines(run: ReaderRun, *, trained: bool) -> list[str]:
    """The console summary of a reader run."""
    table = run.table
    lines = []
    for label in ("base", "reader"):
        t = table[label]
        lines.append(f"{label}: exact match {t['exact_match']['k']}/{t['exact_match']['n']}, top-2 accuracy "
                     f"{100 * t['top2_accuracy']['share']:.0f}%, weight MAE {t['weight_mae']:.3f}")
    best = max(table["translations"].items(), key=lambda kv: kv[1]["exact_match"]["share"])
    lines.append(f"best translation method: {best[0]} ({best[1]['exact_match']['k']}/{best[1]['exact_match']['n']} "
                 f"exact); KL of the model's own continuation with vs without the adapter "
                 f"{table['continuation_kl']['kl']['mean']:.4f} nats")
    if trained and run.state.losses:
        lines.append(f"training loss {run.state.losses[0]:.3f} → {run.state.losses[-1]:.3f} over {run.state.step} "
                     "steps")
    return lines


__all__ = ["BASELINE_METHODS", "ReaderRun", "check_checkpoint_model", "check_methods_names", "check_resume",
           "eval_run", "evaluate_reader", "identity_name", "load_reader", "reader_lines", "reader_methods",
           "train_run", "write_reader"]
