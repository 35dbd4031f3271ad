"""The LoRA reader's data: examples (a prompt, its concept tokens, their top weights), the target text the reader
learns to write, parsing and scoring what it writes, and its settings (:class:`ReaderConfig`).

The target format, per concept token its 3 largest weights in whole percent (token strings are JSON strings)::

    text: " is located in"
    1. " is" 62 | " was" 21 | "," 5
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..benchmarks_data.arena import FAMILIES, arena_prompt, heldout_set
from ..benchmarks_data.gsm8k import load_gsm8k
from ..config import format_validation_error
from ..decoding import generate
from ..decoding.metrics import token_text
from ..errors import ConfigError
from ..models import LoadedModel
from .common import concept_settings, share_ci

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
        try:
            cfg = cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "reader config")) from None
        if cfg.n_min > cfg.n_max:
            raise ConfigError(f"n_min={cfg.n_min} > n_max={cfg.n_max}: give 1 <= n_min <= n_max")
        if not cfg.target_modules or any(not m.strip() for m in cfg.target_modules):
            raise ConfigError("target_modules: give module names, e.g. q_proj,v_proj")
        if cfg.batch_size > cfg.train_examples:
            raise ConfigError(f"batch_size={cfg.batch_size} is larger than train_examples={cfg.train_examples}: an "
                              "optimizer step cannot use more examples than there are; give at most "
                              f"{cfg.train_examples}", param="batch_size")
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
        return [t.question for t in load_gsm8k("shipped")]
    if source == "arena":
        return [arena_prompt(it) for it in heldout_set(0, 40 * len(FAMILIES), list(FAMILIES))]
    raise ConfigError(f"unknown reader data source {source!r}; choose gsm8k or arena")


def make_examples(lm: LoadedModel, prompts: Sequence[str], config: ReaderConfig, *, seed: int,
                  batch_size: int = 32) -> list[ReaderExample]:
    """Generate ``N`` concept tokens after each prompt (``N`` drawn from ``[n_min, n_max]`` with ``seed``).

    One ``n_max``-step run per prompt serves every ``N``: its first ``N`` vectors are those of an ``N``-step run.
    """
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
    pos = sum(r["positions"] for r in rows)
    top2 = sum(r["top2_correct"] for r in rows)
    return {"examples": len(rows), "exact_match": share_ci([r["exact"] for r in rows]),
            "top2_accuracy": share_ci([True] * top2 + [False] * (pos - top2)),
            "weight_mae": sum(r["weight_abs_error"] for r in rows) / max(1, sum(r["weights"] for r in rows))}


def reader_segments(lm: LoadedModel, ex: ReaderExample) -> list[Any]:
    """The reader's prompt: ``[ids("Concept tokens:"), vectors (N, d), ids("\\nRead them:\\n")]``."""
    return [lm.encode(READER_PREFIX), ex.vectors.to(lm.backend.device, lm.backend.dtype), lm.encode(READER_SUFFIX)]


def target_ids(lm: LoadedModel, ex: ReaderExample) -> list[int]:
    """The target's token ids, ending with the model's first stop token."""
    return lm.encode(format_target(ex)) + [lm.stop_token_ids()[0]]


__all__ = ["FORMAT", "READER_PREFIX", "READER_SUFFIX", "ReaderConfig", "ReaderExample", "Reading", "cut_prompts",
           "examples_digest", "format_target", "make_examples", "parse_reading", "reader_segments", "score_reading",
           "source_texts", "summarize_scores", "target_ids"]
