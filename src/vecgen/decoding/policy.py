"""The policy types of the decode engine: what a row policy is asked and what it answers.

A row policy is the scheduler of its row. Before each step :meth:`RowPolicy.next_input` says what the row does (a
:class:`Mode`: sample from the logits with a sampler and a mixing rule; a token id: feed it; None: done); after a
sampled step :meth:`RowPolicy.observe` sees the step (:class:`Observation`) and answers with an :class:`Action`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from ..config import SamplingConfig
from .mixing import MixingConfig


class Action(str, Enum):
    """What a policy does with its row's sampled step."""

    feed = "feed"  #: feed the step's vector (the mixture, or the hidden state)
    feed_token = "feed_token"  #: feed the step's token one-hot (e.g. an end-of-thinking marker the trace wrote)
    retry = "retry"  #: feed nothing from this step; ask ``next_input`` again (a forced token, or done)
    done = "done"  #: the row is finished and leaves the batch; nothing is fed


@dataclass(frozen=True)
class Mode:
    """How a row's next input comes from its logits.

    Attributes:
        phase: name of the phase in records (``"generate"``, ``"think"``, ``"answer"``, ...).
        sampling: temperature / top_k / top_p / min_p of the distribution.
        mixing: the mixing rule (``onehot`` = ordinary decoding).
        stream: random stream; each stream has its own generator seeded with the ``sampling.seed`` of
            the first mode that uses it, so e.g. thinking and answering draw from separate streams.
    """

    phase: str
    sampling: SamplingConfig
    mixing: MixingConfig
    stream: str = "main"


@dataclass(frozen=True)
class Observation:
    """What a policy sees of its row's sampled step.

    Attributes:
        step: engine step (0-based).
        token: the step's discrete token (sampled, or the mixture's top-1).
        entropy: nats, of the untruncated ``softmax(logits / T)`` (Soft Thinking's H, used by Cold Stop).
        mix_entropy: nats, of the mixture weights (0 for one-hot).
    """

    step: int
    token: int
    entropy: float
    mix_entropy: float


class RowPolicy(Protocol):
    """The per-row scheduler (see the module docstring)."""

    def next_input(self) -> Mode | int | None:
        """Before a step: a :class:`Mode` (sample), a token id (feed it; no sampling), or None (done)."""
        ...

    def observe(self, obs: Observation) -> Action:
        """After a sampled step of this row: what to feed (:class:`Action`)."""
        ...

    def max_inputs(self) -> int:
        """An upper bound on the inputs (vectors and forced tokens) this row feeds after its prompt; the
        engine checks prompt + this bound against the model's context before the first step."""
        ...


__all__ = ["Action", "Mode", "Observation", "RowPolicy"]
