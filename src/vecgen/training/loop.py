"""The training loop of ``vecgen train``: ``nocot``, ``cot``, ``coconut`` (Hao et al. 2024's curriculum) and ``pause``
(the same curriculum with a learned pause token) on one model, with a run folder like every vecgen run.

Per epoch ``e`` the stage is ``min(e // epochs_per_stage, stages)`` (:meth:`TrainSettings.stage_of`); a new stage
starts a new AdamW optimizer (COCONUT resets it per stage). The data order, the stage mixing and torch's seed of each
epoch derive from ``(seed, epoch)`` alone, so a run resumed from the checkpoint of epoch ``e`` continues exactly as
if it had not stopped (bit-identical weights; tested).

Run folder (``runs/<name>/``):

* ``checkpoints/epoch-NNNN/`` — the last epoch's and the best epoch's checkpoints (Hugging Face folders with the
  tokenizer, ``vecgen_reasoning.json``, ``optimizer.pt``, ``state.json``), each written atomically;
* ``history.jsonl`` — one line per epoch: stage, mean train loss (nats per token), dev accuracy, seconds;
* ``model/`` — the best checkpoint (highest dev accuracy; for ``coconut`` / ``pause`` among the last stage's epochs),
  what ``vecgen.load(RUN)`` and ``vecgen think --model RUN`` load;
* ``results.json``, ``report.md``, ``train.png`` — the settings, versions, curves and the final dev accuracy of
  ``model/`` with its Wilson interval.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..benchmarks_data import Task, check_answer
from ..errors import ConfigError
from ..io import atomic_directory, atomic_torch_save, atomic_write_json, read_jsonl
from ..models import LoadedModel, ReasoningFormat, adapter_for, count_real_vocab
from ..models.loader import quiet_weight_bars
from ..stats import wilson_interval
from ..thinking.think import think
from .forward import sequence_loss, thought_logits
from .model import add_markers, scratch_model
from .sequences import Encoded, MarkerIds, build_example, collate, encode_task, marker_ids
from .settings import TrainSettings, check_steps, dev_spec, load_dev_data, load_train_data

log = logging.getLogger(__name__)

#: Settings a resume may change (everything else must match the run's own).
RESUMABLE_CHANGES = ("epochs", "dev_limit")
#: Context positions a scratch model has at least (GPT-2's 1,024: room for ``vecgen think``'s default budgets).
MIN_POSITIONS = 1024


@dataclass
class EpochRecord:
    """One line of ``history.jsonl``.

    Attributes:
        epoch: 0-based; stage: the curriculum stage; loss: mean train loss (nats per labelled token);
        dev_accuracy: on the first ``dev_limit`` dev items (None without); dev_n: those items; seconds: wall time.
    """

    epoch: int
    stage: int
    loss: float
    dev_accuracy: float | None
    dev_n: int
    seconds: float
    steps: int


@dataclass
class TrainResult:
    """What :func:`train` returns (and ``results.json`` holds under ``results``).

    Attributes:
        history: every epoch's :class:`EpochRecord`.
        best_epoch: the epoch of ``model/``.
        dev: the final dev evaluation of ``model/``: ``accuracy``, ``correct``, ``n``, ``ci95``, ``method``,
            ``n_thoughts``, ``mean_generated_tokens``.
        seconds: training wall time (this process; a resumed run adds its earlier epochs' seconds).
        train_items, parameters: the training set size and the model's parameter count.
        run_dir: the run folder (set by :func:`vecgen.train`).
    """

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    dev: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    train_items: int = 0
    parameters: int = 0
    run_dir: str | None = None


def format_at(s: TrainSettings, stage: int) -> ReasoningFormat:
    """The :class:`ReasoningFormat` of a checkpoint of ``s`` saved at ``stage``: ``c · stage`` thoughts (``c ·
    stages`` once the last stage is reached)."""
    n = s.c * min(stage, s.stages) if s.latent else 0
    return ReasoningFormat(method=s.method, n_thoughts=n, thoughts_per_step=s.c, stages=s.stages if s.latent else 0,
                           stage=stage)


def as_loaded(model: Any, tokenizer: Any, fmt: ReasoningFormat, name: str = "training") -> LoadedModel:
    """A :class:`~vecgen.models.LoadedModel` over an in-memory model (the engine answers dev items with it)."""
    rows = model.get_input_embeddings().weight.shape[0]
    param = next(model.parameters())
    return LoadedModel(name=name, source="local", path=None, model=model, tokenizer=tokenizer,
                       adapter=adapter_for(model.config), n_real_vocab=count_real_vocab(tokenizer, rows),
                       device=param.device, dtype=param.dtype, reasoning=fmt)


def answer_budgets(encoded: Sequence[Encoded], ids: MarkerIds, s: TrainSettings, stage: int) -> tuple[int, int]:
    """``(max_think_tokens, max_answer_tokens)`` that hold every dev item's trained continuation at ``stage``, with
    4 tokens of headroom: the steps for ``cot``; the thoughts for ``coconut`` / ``pause``; the answer (with the
    steps a stage below the last still writes out)."""
    think = 1
    answer = s.max_answer_tokens
    for enc in encoded:
        ex = build_example(enc, ids, s.method, stage=stage, c=s.c, pad_to_last_stage=s.pad_to_last_stage,
                           stages=s.stages)
        if s.method == "cot":
            think = max(think, sum(len(x) for x in enc.steps) + 4)
            answer = max(answer, len(enc.answer) + 4)
        else:
            think = max(think, ex.n_thoughts)
            answer = max(answer, len(ex.rest) + 4)
    return think, answer


def evaluate_dev(model: Any, tokenizer: Any, fmt: ReasoningFormat, tasks: Sequence[Task], s: TrainSettings,
                 encoded: Sequence[Encoded], ids: MarkerIds, *, batch_size: int = 16) -> dict[str, Any]:
    """Greedy answers of ``tasks`` through the decode engine with the checkpoint's own method; accuracy with its
    Wilson interval."""
    if not tasks:
        return {"accuracy": None, "correct": 0, "n": 0}
    was_training = model.training
    model.eval()
    try:
        lm = as_loaded(model, tokenizer, fmt)
        think_tokens, answer_tokens = answer_budgets(encoded, ids, s, fmt.stage)
        settings: dict[str, Any] = {"n_thoughts": fmt.n_thoughts} if fmt.method in ("coconut", "pause") else {}
        with torch.no_grad():
            outs = think(lm, list(tasks), method=fmt.thinking_method, batch_size=batch_size,
                         max_think_tokens=think_tokens, max_answer_tokens=answer_tokens, cold_stop_steps=0,
                         **settings)
    finally:
        model.train(was_training)
    verdicts = [check_answer(t, o.answer).correct for t, o in zip(tasks, outs)]
    correct = sum(verdicts)
    lo, hi = wilson_interval(correct, len(tasks))
    return {"accuracy": correct / len(tasks), "correct": correct, "n": len(tasks), "ci95": [lo, hi],
            "method": fmt.thinking_method, "n_thoughts": fmt.n_thoughts,
            "mean_generated_tokens": sum(o.generated_tokens for o in outs) / len(outs),
            "mean_think_steps": sum(o.think_tokens for o in outs) / len(outs),
            "verdicts": verdicts}


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    root = run_dir / "checkpoints"
    out = []
    for p in root.glob("epoch-*") if root.is_dir() else ():
        tail = p.name.removeprefix("epoch-")
        if tail.isdigit() and (p / "state.json").is_file():
            out.append((int(tail), p))
    return sorted(out)


def _saved_settings(s: TrainSettings) -> dict[str, Any]:
    return s.model_dump(mode="json", exclude=set(RESUMABLE_CHANGES))


def check_resume(run_dir: Path, s: TrainSettings) -> tuple[int, Path] | None:
    """The last checkpoint of the run in ``run_dir`` and check that ``s`` continues it (only
    :data:`RESUMABLE_CHANGES` may differ). None: the run has no checkpoint yet.

    Raises:
        ConfigError: a setting that differs (named, both values), or a checkpoint of another model or tokenizer.
    """
    found = _checkpoints(run_dir)
    if not found:
        return None
    epoch, path = found[-1]
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    saved, now = state["settings"], _saved_settings(s)
    for key in now:
        if saved.get(key) != now[key]:
            raise ConfigError(f"--resume: {key} was {saved.get(key)!r} in {run_dir}, now {now[key]!r}; resume with the "
                              f"run's own settings (only {', '.join(RESUMABLE_CHANGES)} may change)", param=key)
    return epoch, path


def _new_optimizer(model: Any, s: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.lr,
                             weight_decay=s.weight_decay)


def _save_checkpoint(target: Path, model: Any, tokenizer: Any, fmt: ReasoningFormat, optimizer: Any,
                     state: dict[str, Any]) -> None:
    with atomic_directory(target) as tmp, quiet_weight_bars():
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        fmt.save(tmp)
        atomic_torch_save(optimizer.state_dict(), tmp / "optimizer.pt")
        atomic_write_json(tmp / "state.json", state)


def _stage_of_example(s: TrainSettings, stage: int, rng: random.Random) -> int:
    if s.stage_mix > 0 and rng.random() < s.stage_mix:
        return rng.randint(0, stage)
    return stage


def train(
    s: TrainSettings,
    writer: Any,
    *,
    base: LoadedModel | None = None,
    resume: bool = False,
    show_progress: bool = True,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    data: tuple[list[Task], list[Task]] | None = None,
    device: str = "auto",
    group: Any = None,
) -> TrainResult:
    """Train ``s.method`` and write the run folder (module docstring).

    Args:
        s: the settings.
        writer: the run's :class:`~vecgen.reports.RunWriter` (entered).
        base: the pretrained model for ``s.model != "scratch"`` (loaded by the caller with the transformers
            backend); None for a scratch model.
        resume: continue from the run folder's last checkpoint.
        show_progress: a progress bar over the epoch's batches.
        on_epoch: called after each epoch's checkpoint is written (tests interrupt runs here).
        data: ``(train, dev)`` tasks already loaded by :func:`load_data` (None: loaded here).
        device: where a scratch or resumed model trains (``auto``: CUDA when available); a ``base`` model stays
            where it was loaded.
        group: the data-parallel group (:func:`vecgen.parallel.processes`; None: one process). Each process takes
            every ``count``-th sequence of each global batch (``batch_size`` sequences, the same batches as one
            process); its loss is its share of the global batch's per-token mean (its summed token losses over the
            global batch's labelled tokens) and the gradients are summed over the processes before each step, so
            the steps are one process's up to float summation order. The main process evaluates and writes the
            checkpoints; the others wait for it.

    Returns:
        The :class:`TrainResult` (also written to ``results.json``).

    Raises:
        ConfigError: bad data for the method (:func:`~vecgen.training.settings.load_train_data`), a resume that does
            not match the run, a pretrained model on another backend than transformers.
    """
    run_dir = Path(writer.dir)
    train_tasks, dev_tasks = data if data is not None else load_data(s)
    rank, world = (group.index, group.count) if group is not None else (0, 1)
    main = rank == 0
    start_epoch, optimizer_state, history = 0, None, []
    resumed = check_resume(run_dir, s) if resume else None
    fmt0 = format_at(s, 0)
    if resumed is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        epoch, path = resumed
        with quiet_weight_bars():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).train()
        tokenizer = AutoTokenizer.from_pretrained(path)
        start_epoch = epoch + 1
        optimizer_state = torch.load(path / "optimizer.pt", weights_only=True)
        history = [EpochRecord(**r) for r in read_jsonl(run_dir / "history.jsonl")][:start_epoch]
    elif s.model == "scratch":
        longest = max(len(t.question.split()) * 2 + 64 for t in [*train_tasks, *dev_tasks])
        model, tokenizer = scratch_model([*train_tasks, *dev_tasks], fmt0, layers=s.layers, hidden=s.hidden,
                                         heads=s.heads, max_length=max(MIN_POSITIONS - 64, longest), seed=s.seed)
    else:
        if base is None or base.model is None:
            raise ConfigError("a pretrained --model trains on the transformers backend; load it with "
                              "--backend transformers", param="model")
        model, tokenizer = base.model, base.tokenizer  # type: ignore[assignment]  # any transformers tokenizer
        add_markers(model, tokenizer, fmt0)
        model.float().train().requires_grad_(True)
    if base is None:
        from ..devices import resolve_device

        model.to(resolve_device(device))
    try:
        ids = marker_ids(tokenizer, fmt0)
    except KeyError as exc:
        raise ConfigError(f"the checkpoint's tokenizer lacks the marker {exc.args[0]!r}; it is not a checkpoint of "
                          "vecgen train", param="model") from None
    scale = float(adapter_for(model.config).embed_scale(model.config))
    encoded = [encode_task(tokenizer, t, fmt0) for t in train_tasks]
    dev_eval = dev_tasks[: s.dev_limit]
    dev_encoded = [encode_task(tokenizer, t, fmt0) for t in dev_tasks]
    unk = tokenizer.unk_token_id
    if unk is not None and s.model == "scratch":
        bad = next((t for t, e in zip(dev_tasks, dev_encoded) if unk in e.question), None)
        if bad is not None:
            log.warning("dev item %s has words the training data lacks (read as <unk>)", bad.id)
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    result = TrainResult(history=history, train_items=len(train_tasks),
                         parameters=sum(p.numel() for p in model.parameters()))
    result.seconds = sum(h.seconds for h in history)
    optimizer, opt_stage = None, None
    progress = _progress(show_progress and main)
    with progress as bars:
        epoch_bar = bars.add_task("epochs", total=s.epochs, completed=start_epoch, info="") if bars else None
        for epoch in range(start_epoch, s.epochs):
            t0 = time.perf_counter()
            stage = s.stage_of(epoch)
            if optimizer is None or stage != opt_stage:
                optimizer, opt_stage = _new_optimizer(model, s), stage
                if optimizer_state is not None and s.stage_of(start_epoch - 1) == stage:
                    optimizer.load_state_dict(optimizer_state)
                optimizer_state = None
            torch.manual_seed(s.seed * 100_003 + epoch)
            order = list(range(len(encoded)))
            random.Random(f"{s.seed}-{epoch}-order").shuffle(order)
            mix = random.Random(f"{s.seed}-{epoch}-mix")
            total_loss, total_tokens, steps = 0.0, 0, 0
            batch_bar = bars.add_task(f"epoch {epoch + 1} (stage {stage})", total=len(order), info="") if bars else None
            for b0 in range(0, len(order), s.batch_size):
                chunk = order[b0:b0 + s.batch_size]
                stages_of = [_stage_of_example(s, stage, mix) for _ in chunk]  # drawn for the whole global batch
                mine = list(range(len(chunk)))[rank::world]
                examples = [build_example(encoded[chunk[j]], ids, s.method, stage=stages_of[j], c=s.c,
                                          pad_to_last_stage=s.pad_to_last_stage, stages=s.stages) for j in mine]
                if not examples:  # a last global batch smaller than the group: this process has no share
                    examples = [build_example(encoded[chunk[0]], ids, s.method, stage=stages_of[0], c=s.c,
                                              pad_to_last_stage=s.pad_to_last_stage, stages=s.stages)]
                    weight = 0.0
                else:
                    weight = 1.0
                if limit is not None and max(e.length for e in examples) > limit:
                    raise ConfigError(f"a training sequence has {max(e.length for e in examples)} tokens, more than "
                                      f"the model's {limit} positions", param="train_data")
                batch = collate(examples, ids).to(next(model.parameters()).device)
                logits = thought_logits(model, batch, continuous=s.method == "coconut", embed_scale=scale)
                n_tok = int(batch.loss_tokens * weight)
                global_tok = _all_sum(float(n_tok), world)
                loss_sum = sequence_loss(logits, batch.labels, reduction="sum") * weight
                loss = loss_sum / max(global_tok, 1.0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if world > 1:
                    _all_reduce_grads(model)
                    loss_value = _all_sum(float(loss.item()), world)
                else:
                    loss_value = float(loss.item())
                if s.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm)
                optimizer.step()
                if not math.isfinite(loss_value):
                    raise ConfigError(f"epoch {epoch}: the training loss is {loss_value}; lower --lr "
                                      "(or set --max-grad-norm)", param="lr")
                total_loss += loss_value * global_tok
                total_tokens += int(global_tok)
                steps += 1
                if bars:
                    bars.update(batch_bar, advance=len(chunk), info=f"loss {total_loss / max(total_tokens, 1):.3f}")
            if bars:
                bars.remove_task(batch_bar)
            fmt = format_at(s, stage)
            dev: dict[str, Any] = {"accuracy": None, "n": 0}
            if main:
                dev = evaluate_dev(model, tokenizer, fmt, dev_eval, s, dev_encoded[: len(dev_eval)], ids)
            rec = EpochRecord(epoch=epoch, stage=stage, loss=total_loss / max(total_tokens, 1),
                              dev_accuracy=dev["accuracy"], dev_n=int(dev["n"]), seconds=time.perf_counter() - t0,
                              steps=steps)
            history.append(rec)
            best = best_epoch(history, s)
            state = {"epoch": epoch, "stage": stage, "settings": _saved_settings(s), "record": asdict(rec)}
            if main:
                _save_checkpoint(run_dir / "checkpoints" / f"epoch-{epoch:04d}", model, tokenizer, fmt, optimizer,
                                 state)
                _rewrite_history(run_dir, history)
                _prune(run_dir, keep={epoch, best})
            if group is not None:
                group.wait()
            result.seconds += rec.seconds
            if bars:
                acc = "-" if rec.dev_accuracy is None else f"{rec.dev_accuracy:.0%}"
                bars.update(epoch_bar, advance=1, info=f"stage {stage} loss {rec.loss:.3f} dev {acc}")
            if on_epoch is not None:
                on_epoch(rec)
    result.history = history
    result.best_epoch = best_epoch(history, s)
    if main:
        result.dev = finish(run_dir, s, dev_tasks, result)
    if group is not None:
        group.wait()
    return result


def _all_sum(value: float, world: int) -> float:
    """``value`` summed over the group's processes (itself alone)."""
    if world <= 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def _all_reduce_grads(model: Any) -> None:
    """Sum every parameter's gradient over the group (one flat buffer per dtype)."""
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    at = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[at:at + n].view_as(p.grad))
        at += n


def load_data(s: TrainSettings) -> tuple[list[Task], list[Task]]:
    """The training and dev tasks of ``s``, checked for what the method needs (before any model loads).

    Raises:
        ConfigError: as :func:`~vecgen.training.settings.load_train_data`, and dev items without steps.
    """
    train_tasks = load_train_data(s)
    dev_tasks = load_dev_data(s)
    if dev_tasks and s.method != "nocot":
        check_steps(dev_tasks, s.model_copy(update={"pad_to_last_stage": True}), what=f"dev_data {dev_spec(s)}")
    return train_tasks, dev_tasks


def best_epoch(history: Sequence[EpochRecord], s: TrainSettings) -> int | None:
    """The epoch whose checkpoint becomes ``model/``: the highest dev accuracy (the later epoch on ties), among the
    last stage's epochs for ``coconut`` / ``pause`` when any reached it; the last epoch without dev items."""
    if not history:
        return None
    pool = [h for h in history if h.stage == s.stages] if s.latent else list(history)
    pool = pool or list(history)
    if all(h.dev_accuracy is None for h in pool):
        return pool[-1].epoch
    return max(pool, key=lambda h: (h.dev_accuracy or 0.0, h.epoch)).epoch


def _rewrite_history(run_dir: Path, history: Sequence[EpochRecord]) -> None:
    from ..io import atomic_write_text

    atomic_write_text(run_dir / "history.jsonl", "".join(json.dumps(asdict(h)) + "\n" for h in history))


def _prune(run_dir: Path, keep: set[int | None]) -> None:
    for epoch, path in _checkpoints(run_dir):
        if epoch not in keep:
            shutil.rmtree(path, ignore_errors=True)


def finish(run_dir: Path, s: TrainSettings, dev_tasks: Sequence[Task], result: TrainResult) -> dict[str, Any]:
    """Copy the best checkpoint to ``model/`` (without its optimizer state), evaluate it on every dev item, and
    return the evaluation (``results.json``, ``report.md`` and ``train.png`` are the caller's)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    found = dict(_checkpoints(run_dir))
    if result.best_epoch is None or result.best_epoch not in found:
        return {}
    source = found[result.best_epoch]
    with atomic_directory(run_dir / "model") as tmp:
        for f in source.iterdir():
            if f.name != "optimizer.pt":
                shutil.copy2(f, tmp / f.name)
    with quiet_weight_bars():
        model = AutoModelForCausalLM.from_pretrained(run_dir / "model", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    fmt = ReasoningFormat.read(run_dir / "model")
    assert fmt is not None
    fmt0 = format_at(s, 0)
    ids = marker_ids(tokenizer, fmt0)
    encoded = [encode_task(tokenizer, t, fmt0) for t in dev_tasks]
    dev = evaluate_dev(model, tokenizer, fmt, dev_tasks, s, encoded, ids)
    dev["epoch"] = result.best_epoch
    dev["data"] = dev_spec(s)
    return dev


def _progress(show: bool) -> Any:
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not show:
        return contextlib.nullcontext(None)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)


__all__ = ["EpochRecord", "MIN_POSITIONS", "RESUMABLE_CHANGES", "TrainResult", "answer_budgets", "as_loaded",
           "best_epoch", "check_resume", "evaluate_dev", "finish", "format_at", "load_data", "train"]
