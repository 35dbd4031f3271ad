"""Training sequences of every method in COCONUT's layout, and their batches.

One example is ``prefix`` (``question <bot>``, no loss), ``n`` thought slots (no loss: continuous thoughts for
``coconut``, ``<pause>`` tokens for ``pause``) and ``rest`` with a loss mask:

==========  ===================================================================================================
``nocot``   ``<eot> ### answer <eos>`` (loss on ``### answer <eos>``)
``cot``     ``steps <eot> ### answer <eos>`` (loss on all of it: the model learns to close its thinking)
``coconut`` stage k: ``n = c·min(k, len(steps))`` thoughts (``c·k`` with padding to the last stage), then
            ``<eot> steps[k:] ### answer <eos>`` (loss on all but ``<eot>``: Hao et al. 2024, their
            ``dataset.py``, mask the markers and the thoughts)
``pause``   the same, with ``<pause>`` tokens in the thought slots
==========  ===================================================================================================

A batch (:func:`collate`) left-pads the prefixes to one width ``P``, so that every example's thoughts start at
column ``P`` (``P .. P + n_i - 1``) and the continuous-thought forward (:func:`~vecgen.training.forward.thought_logits`)
fills the same columns of every row pass by pass; the rests are right-padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..benchmarks_data import Task
from ..models import ReasoningFormat

#: The label of a position without loss (PyTorch's ``ignore_index``).
IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One task's token pieces (ids), encoded once.

    Attributes:
        question: the question's ids; steps: each step's ids; answer: ``### answer``'s ids.
    """

    question: tuple[int, ...]
    steps: tuple[tuple[int, ...], ...]
    answer: tuple[int, ...]


@dataclass(frozen=True)
class Example:
    """One training sequence.

    Attributes:
        prefix: ``question <bot>`` ids (no loss).
        n_thoughts: thought slots after the prefix.
        rest: the ids after the thoughts; rest_loss: whether each has a loss.
    """

    prefix: tuple[int, ...]
    n_thoughts: int
    rest: tuple[int, ...]
    rest_loss: tuple[bool, ...]

    @property
    def length(self) -> int:
        return len(self.prefix) + self.n_thoughts + len(self.rest)


@dataclass(frozen=True)
class MarkerIds:
    """The marker token ids of a tokenizer (:func:`marker_ids`)."""

    bot: int
    eot: int
    pause: int
    eos: int
    pad: int


def marker_ids(tokenizer: Any, fmt: ReasoningFormat) -> MarkerIds:
    """The ids of ``fmt``'s markers and of eos / pad in ``tokenizer``.

    Raises:
        KeyError: a marker the tokenizer lacks (:func:`~vecgen.training.model.add_markers` adds them).
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in (fmt.bot, fmt.eot, fmt.pause) if t not in vocab]
    if missing:
        raise KeyError(missing[0])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return MarkerIds(vocab[fmt.bot], vocab[fmt.eot], vocab[fmt.pause], int(tokenizer.eos_token_id), int(pad))


def encode_task(tokenizer: Any, task: Task, fmt: ReasoningFormat) -> Encoded:
    """``task``'s pieces as ids, each step and the answer with a leading space (BPE tokenizers then encode them as
    they appear in running text)."""
    def ids(text: str) -> tuple[int, ...]:
        return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])

    return Encoded(ids(task.question.strip()), tuple(ids(" " + s) for s in task.steps),
                   ids(f" {fmt.answer_prefix} {task.answer}"))


def n_thoughts(method: str, stage: int, n_steps: int, c: int, *, pad_to_last_stage: bool, stages: int) -> int:
    """Thought slots of an example at ``stage`` (0 for ``nocot`` / ``cot``)."""
    if method not in ("coconut", "pause"):
        return 0
    return c * min(stage, stages) if pad_to_last_stage else c * min(stage, n_steps)


def build_example(enc: Encoded, ids: MarkerIds, method: str, *, stage: int = 0, c: int = 1,
                  pad_to_last_stage: bool = False, stages: int = 0) -> Example:
    """The training sequence of one encoded task (module docstring)."""
    prefix = (*enc.question, ids.bot)
    answer = (*enc.answer, ids.eos)
    if method == "nocot":
        return Example(prefix, 0, (ids.eot, *answer), (False,) + (True,) * len(answer))
    steps = [t for s in enc.steps for t in s]
    if method == "cot":
        rest = (*steps, ids.eot, *answer)
        return Example(prefix, 0, rest, (True,) * len(rest))
    n = n_thoughts(method, stage, len(enc.steps), c, pad_to_last_stage=pad_to_last_stage, stages=stages)
    kept = [t for s in enc.steps[min(stage, len(enc.steps)):] for t in s]
    rest = (ids.eot, *kept, *answer)
    return Example(prefix, n, rest, (False,) + (True,) * (len(rest) - 1))


@dataclass
class Batch:
    """A padded batch.

    Attributes:
        input_ids: ``(B, L)`` long; thought slots hold ``<pause>`` (the ``pause`` method feeds them; ``coconut``
            replaces them by hidden states).
        attention_mask: ``(B, L)`` long, 0 on padding.
        position_ids: ``(B, L)`` long, counting real tokens from 0.
        labels: ``(B, L)`` long, the token to predict at each position (:data:`IGNORE` where there is no loss),
            unshifted (position ``t``'s logits predict ``labels[:, t + 1]``).
        thought_mask: ``(B, L)`` bool, the thought slots.
        prefix_width: ``P``, the column of every row's first thought.
        max_thoughts: ``N``, the most thoughts of a row.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    thought_mask: torch.Tensor
    prefix_width: int
    max_thoughts: int

    def to(self, device: Any) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.position_ids.to(device),
                     self.labels.to(device), self.thought_mask.to(device), self.prefix_width, self.max_thoughts)

    @property
    def loss_tokens(self) -> int:
        """Positions with a loss."""
        return int((self.labels != IGNORE).sum())


def collate(examples: Sequence[Example], ids: MarkerIds) -> Batch:
    """Pad ``examples`` into a :class:`Batch` (prefixes left-padded, rests right-padded)."""
    width = max(len(e.prefix) for e in examples)
    length = max(width + e.n_thoughts + len(e.rest) for e in examples)
    b = len(examples)
    input_ids = torch.full((b, length), ids.pad, dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.long)
    labels = torch.full((b, length), IGNORE, dtype=torch.long)
    thoughts = torch.zeros((b, length), dtype=torch.bool)
    for i, e in enumerate(examples):
        start = width - len(e.prefix)
        row = [*e.prefix, *([ids.pause] * e.n_thoughts), *e.rest]
        end = start + len(row)
        input_ids[i, start:end] = torch.tensor(row)
        mask[i, start:end] = 1
        thoughts[i, width:width + e.n_thoughts] = True
        rest_at = width + e.n_thoughts
        for j, (tok, has_loss) in enumerate(zip(e.rest, e.rest_loss)):
            if has_loss:
                labels[i, rest_at + j] = tok
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return Batch(input_ids, mask, positions, labels, thoughts, width, max(e.n_thoughts for e in examples))


__all__ = ["Batch", "Encoded", "Example", "IGNORE", "MarkerIds", "build_example", "collate", "encode_task",
           "marker_ids", "n_thoughts"]
