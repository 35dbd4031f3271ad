"""A trained reader: a LoRA adapter (PEFT) that teaches the model to read its own concept tokens back.

The seeds end with "models write concept tokens but cannot read them"; Soft Tokens, Hard Truths and SofT-GRPO
report that soft inputs help only after training. This asks the smallest version of that question: can a
few hundred thousand LoRA parameters make the model *say* what a concept token holds?

**Data** (generated, never shipped): a prompt, ``N`` = ``n_min``…``n_max`` concept tokens generated after it (the
``soft`` rule, temperature 1, top-``mixture_top_k`` weights: the ``vecgen concept`` defaults, deterministic), and
as target the top-1 tokens' text plus, per concept token, its 3 largest weights::

    text: " is located in"
    1. " is" 62 | " was" 21 | "," 5
    2. ...

(token strings are JSON strings, weights in whole percent — short targets train faster; :mod:`.reader_data`). The
reader sees ``Concept tokens:⟨v₁⟩…⟨v_N⟩\\nRead them:\\n`` and is trained with teacher forcing on the target.
Training prompts are GSM8K questions cut after a random word; held-out prompts are the arena's questions
(cut the same way): a different source.

**Metrics** on held-out examples: top-1 sequence exact match, per-position accuracy of the top-2 token, mean
absolute error of the 3 recovered weights per position (a missing weight counts as 0) — for the base model
with the reader prompt, for each existing translation method (top-1 exact match on its first ``N`` tokens), and
for the trained reader; and ``KL(p_base ‖ p_reader)`` of the next token after prompt + concept tokens *without*
the reader prompt (does the adapter change the model's own continuation?).

**Training** is deterministic (fixed data order from the seed, no dropout) and checkpointed atomically every
``checkpoint_every`` steps (adapter, AdamW state, RNG, step, losses); a resumed run ends bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..backends.contract import Prompt, segments
from ..checkpoints import load_checkpoint, save_checkpoint
from ..decoding import generate
from ..decoding.translate import translate
from ..errors import ConfigError
from ..models import LoadedModel
from ..scoring import teacher_forced_loss
from .common import kl, mean_ci, next_logprobs, share_ci
from .reader_data import (
    FORMAT,
    ReaderConfig,
    ReaderExample,
    reader_segments,
    target_ids,
)


def add_lora(lm: LoadedModel, config: ReaderConfig) -> Any:
    """Wrap ``lm.model`` with a fresh LoRA adapter (PEFT; injected in place, so ``lm.backend`` runs it too).
    The seed fixes the adapter's initial values. Returns the PEFT model.

    Raises:
        UnsupportedError: a model that is not a transformers PyTorch model (llama.cpp, vecgen's reference model).
        ConfigError: target modules the model does not have.
    """
    from peft import (  # lazy: peft takes several seconds to import
        LoraConfig,
        get_peft_model,
    )

    model = lm.require_transformers(READER_LORA)
    model.requires_grad_(False)
    torch.manual_seed(config.seed)
    cfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,  # type: ignore[arg-type]  # PEFT takes floats lora_dropout=0.0,
                     target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, cfg)
    except ValueError as exc:
        raise ConfigError(f"LoRA target modules {config.target_modules}: {exc}".splitlines()[0]) from None


#: What the reader trains, for :meth:`~vecgen.models.LoadedModel.require_transformers`'s message.
READER_LORA = "the reader's LoRA adapter (PEFT)"


def check_target_modules(lm: LoadedModel, config: ReaderConfig) -> None:
    """Check, before any data is generated, that LoRA can wrap ``lm`` and that every name of
    ``config.target_modules`` matches a layer of it (PEFT's rule: the module's full name, or its last components).

    Raises:
        UnsupportedError: not a transformers PyTorch model.
        ConfigError: a name that matches no layer (the model's layer names are listed).
    """
    model = lm.require_transformers(READER_LORA)
    names = [n for n, m in model.named_modules() if n and not list(m.children()) and hasattr(m, "weight")]
    for target in config.target_modules:
        if not any(n == target or n.endswith("." + target) for n in names):
            leaves = sorted({n.rsplit(".", 1)[-1] for n in names if not n.rsplit(".", 1)[-1].isdigit()})
            raise ConfigError(f"target_modules: {target!r} matches no layer of {lm.name}; its layers are named "
                              f"{', '.join(leaves)}", param="target_modules")


def batch_loss(lm: LoadedModel, examples: Sequence[ReaderExample]) -> torch.Tensor:
    """Teacher-forced cross-entropy of the targets after the reader prompts, nats per target token
    (:func:`vecgen.scoring.teacher_forced_loss`: one left-padded batch, the generation path)."""
    return teacher_forced_loss(lm, [reader_segments(lm, e) for e in examples], [target_ids(lm, e) for e in examples],
                               what="a reader training sequence (concept tokens + target)")


def epoch_order(config: ReaderConfig, epoch: int) -> list[int]:
    """The training examples' order in ``epoch`` (seeded shuffle)."""
    order = list(range(config.train_examples))
    random.Random(config.seed * 1000 + epoch).shuffle(order)
    return order


def lora_state(peft_model: Any) -> dict[str, torch.Tensor]:
    from peft import (
        get_peft_model_state_dict,  # lazy: peft takes several seconds to import
    )

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}


def load_lora_state(peft_model: Any, state: dict[str, torch.Tensor]) -> None:
    from peft import (
        set_peft_model_state_dict,  # lazy: peft takes several seconds to import
    )

    set_peft_model_state_dict(peft_model, state)


def save_reader(path: Any, payload: dict[str, Any]) -> Any:
    """Write a reader checkpoint atomically (tensors, dicts, numbers, strings only)."""
    return save_checkpoint(path, payload, fmt=FORMAT)


def load_reader(path: Any) -> dict[str, Any]:
    """Read a reader checkpoint (a file, or a run folder holding ``reader.pt`` or ``checkpoint.pt``).

    Raises:
        ConfigError: missing, unreadable, or not a vecgen reader checkpoint.
    """
    return load_checkpoint(path, fmt=FORMAT, what="reader checkpoint", names=("reader.pt", "checkpoint.pt"))


# ------------------------------------------------------------------------------------------- training


@dataclass
class TrainState:
    """Where training stands: optimizer steps done and the loss of each (nats per target token)."""

    step: int = 0
    losses: list[float] = field(default_factory=list)


def train_reader(lm: LoadedModel, peft_model: Any, examples: Sequence[ReaderExample], config: ReaderConfig, *,
                 state: TrainState | None = None, optimizer_state: dict[str, Any] | None = None,
                 stop_after: int | None = None, on_step: Callable[[TrainState], None] | None = None,
                 checkpoint: Callable[[TrainState, Any], None] | None = None) -> tuple[TrainState, Any]:
    """Train the adapter: ``epochs × steps_per_epoch`` AdamW steps over ``examples`` in :func:`epoch_order`.

    Args:
        lm, peft_model: the model and its adapter (:func:`add_lora`). examples: ``config.train_examples`` examples.
        state, optimizer_state: continue from a checkpoint (RNG states are restored by the caller).
        stop_after: stop after this many steps in total (tests interrupt a run this way).
        on_step: called after every step. checkpoint: called with ``(state, optimizer)`` every
            ``checkpoint_every`` steps and at the end.

    Returns:
        ``(state, optimizer)``.
    """
    if len(examples) != config.train_examples:
        raise ConfigError(f"{len(examples)} examples for train_examples={config.train_examples}")
    state = state or TrainState()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    total = config.epochs * config.steps_per_epoch
    end = total if stop_after is None else min(total, stop_after)
    peft_model.train()
    try:
        while state.step < end:
            epoch, k = divmod(state.step, config.steps_per_epoch)
            order = epoch_order(config, epoch)
            batch = [examples[i] for i in order[k * config.batch_size : (k + 1) * config.batch_size]]
            optimizer.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss = batch_loss(lm, batch)
                loss.backward()
            optimizer.step()
            state.step += 1
            state.losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(state)
            if checkpoint is not None and (state.step % config.checkpoint_every == 0 or state.step == end):
                checkpoint(state, optimizer)
    finally:
        peft_model.eval()
    return state, optimizer


# ------------------------------------------------------------------------------------------ evaluation


def read_back(lm: LoadedModel, examples: Sequence[ReaderExample], *, batch_size: int = 16,
              on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy reader outputs (up to the longest target plus 4 tokens, stopping at the model's stop tokens)."""
    budget = max(len(target_ids(lm, e)) for e in examples) + 4
    outs: list[str] = []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            gen = generate(lm, [reader_segments(lm, e) for e in chunk], max_new_tokens=budget)
            outs += [gen.text(r, lm.tokenizer) for r in range(len(chunk))]
            if on_batch is not None:
                on_batch(len(outs))
    return outs


def translation_scores(lm: LoadedModel, examples: Sequence[ReaderExample], methods: Sequence[str]) -> dict[str, Any]:
    """Top-1 sequence exact match of each existing translation method: its first ``N`` tokens equal the concept
    tokens' top-1 tokens (``nearest``: its ``N`` nearest tokens)."""
    out = {}
    with torch.no_grad():
        res = translate(lm, [e.vectors.to(lm.backend.device, lm.backend.dtype) for e in examples], methods)
    for m in methods:
        out[m] = {"exact_match": share_ci([r[m].token_ids[: e.n] == e.top1_ids() for r, e in zip(res, examples)])}
    return out


def continuation_kl(lm: LoadedModel, peft_model: Any, examples: Sequence[ReaderExample]) -> dict[str, Any]:
    """``KL(p_base ‖ p_reader)`` (nats) of the next token after each example's prompt + concept tokens (no reader
    prompt), and the share whose most likely next token is unchanged."""
    prompts: list[Prompt] = [segments(lm.encode(e.prompt), e.vectors.to(lm.backend.device, lm.backend.dtype))
                             for e in examples]
    with peft_model.disable_adapter():
        base = next_logprobs(lm, prompts)
    tuned = next_logprobs(lm, prompts)
    kls = kl(base, tuned).tolist()
    return {"kl": mean_ci(kls), "same_argmax": share_ci((base.argmax(-1) == tuned.argmax(-1)).tolist()),
            "per_example": kls}


__all__ = ["TrainState", "add_lora", "batch_loss", "continuation_kl", "epoch_order", "load_lora_state", "load_reader",
           "lora_state", "read_back", "save_reader", "train_reader", "translation_scores"]
