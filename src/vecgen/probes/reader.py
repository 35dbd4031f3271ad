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

(token strings are JSON strings, weights in whole percent — short targets train faster; :func:`format_target` /
:func:`parse_reading`). The
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

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

READER_PREFIX = "Concept tokens:"
READER_SUFFIX = "\nRead them:\n"
#: Reader checkpoint format tag.
FORMAT = "vecgen-reader/1"


class ReaderConfig(BaseModel):
    """Settings of a reader run (validated before any model is loaded).

    Attributes:
        train_examples, eval_examples: generated examples (train: GSM8K cuts; eval: arena questions, cut).
        n_min, n_max: concept tokens per example (uniform). mixture_top_k: mixture size (soft rule, T = 1).
        epochs: passes over the training examples. batch_size: examples per optimizer step.
        lr: AdamW learning rate. lora_r, lora_alpha: LoRA rank and scale (``alpha / r``).
        target_modules: the linear layers that get an adapter (attention projections by default).
        checkpoint_every: optimizer steps between checkpoints. seed: data order and example cuts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    train_examples: int = Field(480, ge=1)
    eval_examples: int = Field(60, ge=1)
    n_min: int = Field(2, ge=1)
    n_max: int = Field(6, ge=1)
    mixture_top_k: int = Field(10, ge=3)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(4, ge=1)
    lr: float = Field(5e-4, gt=0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    checkpoint_every: int = Field(20, ge=1)
    seed: int = 0

    @classmethod
    def create(cls, **values: Any) -> "ReaderConfig":
        """Validate; raises :class:`ConfigError` with one clear message (``n_min > n_max`` included)."""
        from ..config import format_validation_error

        try:
            cfg = cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "reader config")) from None
        if cfg.n_min > cfg.n_max:
            raise ConfigError(f"n_min={cfg.n_min} > n_max={cfg.n_max}: give 1 <= n_min <= n_max")
        if not cfg.target_modules:
            raise ConfigError("target_modules: give at least one module name, e.g. q_proj")
        return cfg

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.train_examples // self.batch_size)


# ------------------------------------------------------------------------------------------------ data


@dataclass
class ReaderExample:
    """One example: the prompt, ``N`` concept tokens ``(N, d)`` float32 and their 3 largest weights."""

    prompt: str
    vectors: torch.Tensor
    top_ids: list[list[int]]
    top_texts: list[list[str]]
    top_weights: list[list[float]]

    @property
    def n(self) -> int:
        return len(self.top_ids)

    def top1_ids(self) -> list[int]:
        return [t[0] for t in self.top_ids]


def cut_prompts(texts: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` prompts: texts taken in a seeded random order (cycling), each cut after a random word (at least 3
    words kept, at least one removed when possible)."""
    rng = random.Random(seed)
    order = list(range(len(texts)))
    rng.shuffle(order)
    out = []
    for i in range(count):
        words = texts[order[i % len(order)]].split()
        keep = rng.randint(min(3, len(words)), max(min(3, len(words)), len(words) - 1))
        out.append(" ".join(words[:keep]))
    return out


def source_texts(source: str) -> list[str]:
    """Question texts of a data source: ``gsm8k`` (the shipped test split) or ``arena`` (every arena family's
    held-out questions, 40 per family)."""
    if source == "gsm8k":
        from ..benchmarks_data.gsm8k import load_gsm8k

        return [t.question for t in load_gsm8k("shipped")]
    if source == "arena":
        from ..softprompt.arena import FAMILIES, arena_prompt, heldout_set

        return [arena_prompt(it) for it in heldout_set(0, 40 * len(FAMILIES), list(FAMILIES))]
    raise ConfigError(f"unknown reader data source {source!r}; choose gsm8k or arena")


def make_examples(lm: Any, prompts: Sequence[str], config: ReaderConfig, *, seed: int,
                  batch_size: int = 32) -> list[ReaderExample]:
    """Generate ``N`` concept tokens after each prompt (``N`` drawn from ``[n_min, n_max]`` with ``seed``).

    One ``n_max``-step run per prompt serves every ``N``: its first ``N`` vectors are those of an ``N``-step run.
    """
    from ..decoding import generate
    from ..decoding.metrics import token_text
    from .common import concept_settings

    rng = random.Random(seed)
    ns = [rng.randint(config.n_min, config.n_max) for _ in prompts]
    t1, soft = concept_settings(config.mixture_top_k)
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk = list(prompts[i : i + batch_size])
        gen = generate(lm, [lm.encode(p) for p in chunk], sampling=t1, mixing=soft, max_new_tokens=config.n_max,
                       stop_ids=[], keep_vectors=True, record_top_k=3)
        for r, p in enumerate(chunk):
            n = ns[i + r]
            ids = [s.mix_ids[r].tolist() for s in gen.steps[:n]]
            ws = [[round(float(w) * 100) / 100 for w in s.mix_weights[r].tolist()] for s in gen.steps[:n]]
            out.append(ReaderExample(p, gen.vectors(r)[:n].float().cpu(), ids,
                                     [[token_text(lm.tokenizer, t) for t in row] for row in ids], ws))
    return out


def examples_digest(examples: Sequence[ReaderExample]) -> str:
    """sha256 of the examples' prompts and top tokens (detects changed data on resume)."""
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps([e.prompt, e.top_ids]).encode())
    return h.hexdigest()


def format_target(ex: ReaderExample) -> str:
    """The reader's target text (see the module docstring)."""
    lines = ["text: " + json.dumps("".join(t[0] for t in ex.top_texts), ensure_ascii=False)]
    for i, (texts, ws) in enumerate(zip(ex.top_texts, ex.top_weights), 1):
        lines.append(f"{i}. " + " | ".join(f"{json.dumps(t, ensure_ascii=False)} {round(100 * w)}"
                                         for t, w in zip(texts, ws)))
    return "\n".join(lines)


_ENTRY = re.compile(r'"((?:[^"\\]|\\.)*)" (\d+)')
_LINE = re.compile(r"^(\d+)\. (.*)$")


@dataclass
class Reading:
    """What a reader wrote, parsed: ``positions[i]`` = ``[(token text, weight), ...]`` for concept token ``i + 1``."""

    text: str | None
    positions: list[list[tuple[str, float]]] = field(default_factory=list)


def parse_reading(output: str) -> Reading:
    """Parse :func:`format_target`'s format; anything unparseable is left out (never raises)."""
    text = None
    positions: dict[int, list[tuple[str, float]]] = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("text: ") and text is None:
            try:
                value = json.loads(line[6:])
                text = value if isinstance(value, str) else None
            except ValueError:
                pass
            continue
        m = _LINE.match(line)
        if not m:
            continue
        entries = []
        for s, w in _ENTRY.findall(m.group(2)):
            try:
                entries.append((json.loads(f'"{s}"'), int(w) / 100))
            except ValueError:
                continue
        positions.setdefault(int(m.group(1)), entries)
    n = max(positions) if positions else 0
    return Reading(text, [positions.get(i, []) for i in range(1, n + 1)])


def score_reading(ex: ReaderExample, reading: Reading) -> dict[str, Any]:
    """``exact`` (all N top-1 tokens right, no extra position), ``top2_correct`` / ``positions``, ``weight_abs_error``
    (sum over N × 3 weights; a missing one counts as 0) and ``weights`` (N × 3)."""
    got = reading.positions
    exact = len(got) == ex.n and all(g and g[0][0] == t[0] for g, t in zip(got, ex.top_texts))
    top2 = sum(1 for i, t in enumerate(ex.top_texts) if i < len(got) and len(got[i]) > 1 and got[i][1][0] == t[1])
    err = 0.0
    for i, ws in enumerate(ex.top_weights):
        for r, w in enumerate(ws):
            pred = got[i][r][1] if i < len(got) and r < len(got[i]) else 0.0
            err += abs(pred - w)
    return {"exact": bool(exact), "top2_correct": top2, "positions": ex.n, "weight_abs_error": err,
            "weights": sum(len(w) for w in ex.top_weights)}


def summarize_scores(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Exact match (Wilson 95%), top-2 accuracy per position (Wilson over positions), weight MAE."""
    from .common import share_ci

    pos = sum(r["positions"] for r in rows)
    top2 = sum(r["top2_correct"] for r in rows)
    return {"examples": len(rows), "exact_match": share_ci([r["exact"] for r in rows]),
            "top2_accuracy": share_ci([True] * top2 + [False] * (pos - top2)),
            "weight_mae": sum(r["weight_abs_error"] for r in rows) / max(1, sum(r["weights"] for r in rows))}


# --------------------------------------------------------------------------------------------- the model


def reader_segments(lm: Any, ex: ReaderExample) -> list[Any]:
    """The reader's prompt: ``[ids("Concept tokens:"), vectors (N, d), ids("\\nRead them:\\n")]``."""
    return [lm.encode(READER_PREFIX), ex.vectors.to(lm.backend.device, lm.backend.dtype), lm.encode(READER_SUFFIX)]


def target_ids(lm: Any, ex: ReaderExample) -> list[int]:
    """The target's token ids, ending with the model's first stop token."""
    return lm.encode(format_target(ex)) + [lm.stop_token_ids()[0]]


def add_lora(lm: Any, config: ReaderConfig) -> Any:
    """Wrap ``lm.model`` with a fresh LoRA adapter (PEFT; injected in place, so ``lm.backend`` runs it too).
    The seed fixes the adapter's initial values. Returns the PEFT model.

    Raises:
        ConfigError: a llama.cpp model, or target modules the model does not have.
    """
    from peft import LoraConfig, get_peft_model

    if getattr(lm, "model", None) is None or getattr(lm.backend, "name", "") != "transformers":
        raise ConfigError("the reader trains a LoRA adapter on the transformers backend; use --backend transformers")
    lm.model.requires_grad_(False)
    torch.manual_seed(config.seed)
    cfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                     target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(lm.model, cfg)
    except ValueError as exc:
        raise ConfigError(f"LoRA target modules {config.target_modules}: {exc}".splitlines()[0]) from None


def batch_loss(lm: Any, examples: Sequence[ReaderExample]) -> torch.Tensor:
    """Teacher-forced cross-entropy of the targets after the reader prompts, nats per target token
    (:func:`vecgen.softprompt.train.teacher_forced_loss`: one left-padded batch, the generation path)."""
    from ..softprompt.train import teacher_forced_loss

    return teacher_forced_loss(lm, [reader_segments(lm, e) for e in examples], [target_ids(lm, e) for e in examples],
                               what="a reader training sequence (concept tokens + target)")


def epoch_order(config: ReaderConfig, epoch: int) -> list[int]:
    """The training examples' order in ``epoch`` (seeded shuffle)."""
    order = list(range(config.train_examples))
    random.Random(config.seed * 1000 + epoch).shuffle(order)
    return order


def lora_state(peft_model: Any) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}


def load_lora_state(peft_model: Any, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(peft_model, state)


def save_reader(path: Any, payload: dict[str, Any]) -> Any:
    """Write a reader checkpoint atomically (tensors, dicts, numbers, strings only)."""
    from ..softprompt.checkpoint import save_checkpoint

    return save_checkpoint(path, payload, fmt=FORMAT)


def load_reader(path: Any) -> dict[str, Any]:
    """Read a reader checkpoint (a file, or a run folder holding ``reader.pt`` or ``checkpoint.pt``).

    Raises:
        ConfigError: missing, unreadable, or not a vecgen reader checkpoint.
    """
    from ..softprompt.checkpoint import load_checkpoint

    return load_checkpoint(path, fmt=FORMAT, what="reader checkpoint", names=("reader.pt", "checkpoint.pt"))


# ------------------------------------------------------------------------------------------- training


@dataclass
class TrainState:
    """Where training stands: optimizer steps done and the loss of each (nats per target token)."""

    step: int = 0
    losses: list[float] = field(default_factory=list)


def train_reader(lm: Any, peft_model: Any, examples: Sequence[ReaderExample], config: ReaderConfig, *,
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


def read_back(lm: Any, examples: Sequence[ReaderExample], *, batch_size: int = 16,
              on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy reader outputs (up to the longest target plus 4 tokens, stopping at the model's stop tokens)."""
    from ..decoding import generate

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


def translation_scores(lm: Any, examples: Sequence[ReaderExample], methods: Sequence[str]) -> dict[str, Any]:
    """Top-1 sequence exact match of each existing translation method: its first ``N`` tokens equal the concept
    tokens' top-1 tokens (``nearest``: its ``N`` nearest tokens)."""
    from ..decoding.translate import translate
    from .common import share_ci

    out = {}
    with torch.no_grad():
        res = translate(lm, [e.vectors.to(lm.backend.device, lm.backend.dtype) for e in examples], methods)
    for m in methods:
        out[m] = {"exact_match": share_ci([r[m].token_ids[: e.n] == e.top1_ids() for r, e in zip(res, examples)])}
    return out


def continuation_kl(lm: Any, peft_model: Any, examples: Sequence[ReaderExample]) -> dict[str, Any]:
    """``KL(p_base ‖ p_reader)`` (nats) of the next token after each example's prompt + concept tokens (no reader
    prompt), and the share whose most likely next token is unchanged."""
    from .common import kl, mean_ci, next_logprobs, share_ci

    prompts = [[lm.encode(e.prompt), e.vectors.to(lm.backend.device, lm.backend.dtype)] for e in examples]
    with peft_model.disable_adapter():
        base = next_logprobs(lm, prompts)
    tuned = next_logprobs(lm, prompts)
    kls = kl(base, tuned).tolist()
    return {"kl": mean_ci(kls), "same_argmax": share_ci((base.argmax(-1) == tuned.argmax(-1)).tolist()),
            "per_example": kls}


__all__ = ["FORMAT", "READER_PREFIX", "READER_SUFFIX", "ReaderConfig", "ReaderExample", "Reading", "TrainState",
           "add_lora", "batch_loss", "continuation_kl", "cut_prompts", "epoch_order", "examples_digest",
           "format_target", "load_lora_state", "load_reader", "lora_state", "make_examples", "parse_reading",
           "read_back", "reader_segments", "save_reader", "score_reading", "source_texts", "summarize_scores",
           "target_ids", "train_reader", "translation_scores"]
