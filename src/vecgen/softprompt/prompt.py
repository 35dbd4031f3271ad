"""Soft prompts: ``n`` learnable input vectors in the model's embedding space (prompt tuning).

Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning",
arXiv 2104.08691) prepends ``n`` trainable vectors to the input embeddings of a frozen model. Here the
vectors are a ``(n, d)`` float32 :class:`torch.nn.Parameter` and enter the model as a vector segment
of a prompt (``[ids, (n, d) tensor, ids]``, see :func:`vecgen.decoding.build_batch`), so generation
(:func:`vecgen.decoding.generate`) and training use the same input path.

Placements (:class:`Placement`):

* ``prefix`` — before everything, chat template included: PEFT's ``PromptTuningConfig`` placement.
  :meth:`SoftPrompt.to_peft` builds the equivalent PEFT model; the unit tests check that both give the
  same logits.
* ``in-turn`` — inside the user turn of the chat template, right before the question
  (``<|im_start|>user\\n`` *[soft prompt]* ``question<|im_end|>...``). PEFT cannot place vectors there.
  Without a chat template the prompt is ``Question: {q}\\nAnswer:`` and in-turn vectors sit after
  ``Question:``.

Initialisation (:class:`InitMethod`):

* ``text`` — embeddings of an initialisation text's tokens, repeated or truncated to ``n`` (PEFT's
  ``TEXT`` rule);
* ``vocab`` — embeddings of ``n`` tokens sampled uniformly from the real vocabulary (rows
  ``< n_real_vocab``, special tokens excluded; PEFT's ``SAMPLE_VOCAB`` samples every row, padding rows
  included, which is why ours is separate);
* ``random`` — Gaussian at the embedding scale: per coordinate, the mean and standard deviation of the
  real-token rows of ``E`` (PEFT's ``RANDOM`` is N(0, 1), far from the embedding scale of Qwen's
  ~0.02-per-coordinate rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from ..decoding.metrics import embedding_index, token_text, vector_metrics
from ..errors import ConfigError
from ..models import LoadedModel
from ..models.chat import render_chat

#: Marker placed in the user message to find where the in-turn vectors go; never reaches the model.
_MARK = "[[vecgen-soft-prompt]]"
#: Default initialisation text (``--init text``).
DEFAULT_INIT_TEXT = "Solve the problem and answer with only the final answer."
#: Default system message of chat prompts.
DEFAULT_SYSTEM = "You are a helpful assistant."


class Placement(str, Enum):
    """Where the soft prompt goes: ``prefix`` (before everything) or ``in-turn`` (inside the user turn)."""

    PREFIX = "prefix"
    IN_TURN = "in-turn"


class InitMethod(str, Enum):
    """How the vectors are initialised: ``text``, ``vocab`` (sampled real tokens) or ``random``."""

    TEXT = "text"
    VOCAB = "vocab"
    RANDOM = "random"


@dataclass(frozen=True)
class PromptParts:
    """A question prompt split where in-turn vectors go.

    Attributes:
        head: token ids before the soft prompt's in-turn position (chat: system turn and user-turn
            header; plain: ``Question:``).
        tail: token ids after it (the question, end of turn, assistant header / ``\\nAnswer:``).
    """

    head: list[int]
    tail: list[int]

    @property
    def ids(self) -> list[int]:
        """The whole prompt without a soft prompt."""
        return self.head + self.tail


def prompt_parts(lm: LoadedModel, question: str, *, chat: bool, system: str | None = DEFAULT_SYSTEM) -> PromptParts:
    """Token ids of the prompt for ``question``, split at the in-turn position.

    Head and tail are tokenized separately, so the tokens are the same with and without a soft prompt
    and for both placements.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel`.
        question: the task text.
        chat: render with the tokenizer's chat template (one user turn, non-thinking mode).
        system: system message of chat prompts (None: the template's default).

    Raises:
        ConfigError: empty question.
        NoChatTemplateError: ``chat=True`` with a tokenizer without a chat template.
    """
    if not question.strip():
        raise ConfigError("empty question")
    if not chat:
        return PromptParts(lm.encode("Question:"), lm.encode(f" {question}\nAnswer:"))
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": _MARK + question}]
    text = render_chat(lm.tokenizer, messages)
    if text.count(_MARK) != 1:  # pragma: no cover - a template that rewrites user content
        raise ConfigError("the chat template altered the user message; use --placement prefix or --no-chat-template")
    head, tail = text.split(_MARK)
    return PromptParts(lm.encode(head), lm.encode(tail))


def target_ids(lm: LoadedModel, answer: str, *, chat: bool) -> list[int]:
    """Token ids the model should produce for ``answer``: its tokens then the end token.

    Chat: ``answer`` + the tokenizer's eos (``<|im_end|>`` for Qwen Instruct, the end of the assistant
    turn). Plain: ``" " + answer`` (after ``Answer:``) + eos. The end token is part of the target so the
    model learns to stop.
    """
    eos = lm.tokenizer.eos_token_id
    ids = lm.encode(answer if chat else f" {answer}")
    return ids + ([int(eos)] if eos is not None else [])


def assemble(parts: PromptParts, vectors: torch.Tensor | None, placement: Placement | str) -> list[Any]:
    """A prompt for :func:`vecgen.decoding.build_batch`: a list of segments.

    Args:
        parts: the question prompt.
        vectors: ``(n, d)`` soft prompt, or None (no soft prompt: the plain token prompt).
        placement: ``prefix`` → ``[vectors, head + tail]``; ``in-turn`` → ``[head, vectors, tail]``.
    """
    if vectors is None:
        return [parts.ids]
    if Placement(placement) is Placement.PREFIX:
        return [vectors, parts.ids]
    return [parts.head, vectors, parts.tail]


class SoftPrompt(torch.nn.Module):
    """``n`` learnable input vectors.

    Attributes:
        vectors: ``(n, d)`` float32 parameter (cast to the model's dtype when fed).
    """

    def __init__(self, vectors: torch.Tensor):
        super().__init__()
        if vectors.dim() != 2 or vectors.shape[0] < 1:
            raise ConfigError(f"a soft prompt needs shape (n >= 1, d); got {tuple(vectors.shape)}")
        self.vectors = torch.nn.Parameter(vectors.detach().to(torch.float32).clone())

    @property
    def n_tokens(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.vectors.shape[1])

    def forward(self) -> torch.Tensor:
        """The vectors ``(n, d)`` float32."""
        return self.vectors

    # ------------------------------------------------------------ initialisation

    @classmethod
    def create(
        cls,
        lm: LoadedModel,
        n_tokens: int = 8,
        init: InitMethod | str = InitMethod.TEXT,
        *,
        text: str = DEFAULT_INIT_TEXT,
        seed: int = 0,
    ) -> "SoftPrompt":
        """A soft prompt of ``n_tokens`` vectors for ``lm`` (see the module docstring for the rules).

        Raises:
            ConfigError: ``n_tokens < 1``, an unknown init method, or an empty init text.
        """
        if n_tokens < 1:
            raise ConfigError(f"soft_tokens={n_tokens}: allowed range is >= 1")
        try:
            init = InitMethod(init)
        except ValueError:
            raise ConfigError(f"unknown init {init!r}; choose text, vocab or random") from None
        E = lm.embedding.detach()
        generator = torch.Generator().manual_seed(int(seed))
        if init is InitMethod.TEXT:
            ids = lm.encode(text)
            if not ids:
                raise ConfigError("empty --init-text")
            ids = (ids * (n_tokens // len(ids) + 1))[:n_tokens]  # PEFT's TEXT rule
            vectors = lm.embed(torch.tensor([ids]))[0]
        elif init is InitMethod.VOCAB:
            special = set(getattr(lm.tokenizer, "all_special_ids", []) or [])
            pool = torch.tensor([i for i in range(lm.n_real_vocab) if i not in special])
            picked = pool[torch.randint(len(pool), (n_tokens,), generator=generator)]
            vectors = lm.embed(picked[None])[0]
        else:
            real = E[: lm.n_real_vocab].float()  # (V_real, d)
            mean, std = real.mean(0), real.std(0)  # (d,), (d,)
            noise = torch.randn(n_tokens, E.shape[1], generator=generator)  # (n, d)
            vectors = mean.cpu() + std.cpu() * noise
        return cls(vectors.detach().float().cpu()).to(lm.device)

    # ------------------------------------------------------------ prompts

    def segments(self, parts: PromptParts, placement: Placement | str) -> list[Any]:
        """The prompt segments with this soft prompt placed (see :func:`assemble`)."""
        return assemble(parts, self.vectors, placement)

    # ------------------------------------------------------------ PEFT interoperability

    def peft_config(self) -> Any:
        """The equivalent ``peft.PromptTuningConfig`` (prefix placement, causal LM)."""
        from peft import (  # lazy: peft takes several seconds to import
            PromptTuningConfig,
            PromptTuningInit,
            TaskType,
        )

        return PromptTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=self.n_tokens,
            token_dim=self.hidden_size,
            prompt_tuning_init=PromptTuningInit.RANDOM,
        )

    def to_peft(self, model: Any) -> Any:
        """Wrap ``model`` (a transformers causal LM) as a PEFT prompt-tuning model holding these vectors.

        The result computes exactly what the ``prefix`` placement computes: PEFT concatenates the
        virtual-token embeddings before the input embeddings. Note that PEFT injects into ``model``.
        """
        from peft import get_peft_model  # lazy: peft takes several seconds to import

        peft_model = get_peft_model(model, self.peft_config())
        weight = peft_model.prompt_encoder["default"].embedding.weight
        with torch.no_grad():
            weight.copy_(self.vectors.to(weight.device, weight.dtype))
        return peft_model

    @classmethod
    def from_peft(cls, peft_model: Any, adapter: str = "default") -> "SoftPrompt":
        """The soft prompt stored in a PEFT prompt-tuning model."""
        return cls(peft_model.prompt_encoder[adapter].embedding.weight.detach().cpu())


def describe_vectors(lm: LoadedModel, vectors: torch.Tensor, k: int = 5) -> list[dict[str, Any]]:
    """What each soft-prompt vector is near: the ``k`` nearest real tokens by cosine, its norm and its
    L2 distance to the nearest real token embedding (both also relative to the mean real-token norm).

    Uses :mod:`vecgen.decoding.metrics` (search over rows ``< n_real_vocab`` only).

    Args:
        lm: the model the vectors belong to.
        vectors: ``(n, d)``.
        k: neighbours per vector.

    Returns:
        One dict per vector: ``index``, ``norm``, ``relative_norm``, ``manifold_distance``,
        ``relative_manifold_distance``, ``nearest`` (list of ``{"id", "token", "cosine"}``).
    """
    vectors = vectors.detach().float()
    ids, cos = embedding_index(lm).nearest(vectors, k, "cosine")  # (n, k) each
    out = []
    for i, m in enumerate(vector_metrics(lm, vectors)):
        out.append({
            "index": i,
            "norm": m.norm,
            "relative_norm": m.relative_norm,
            "manifold_distance": m.manifold_distance,
            "relative_manifold_distance": m.relative_manifold_distance,
            "nearest": [{"id": int(t), "token": token_text(lm.tokenizer, int(t)), "cosine": float(c)}
                        for t, c in zip(ids[i].tolist(), cos[i].tolist())],
        })
    return out
