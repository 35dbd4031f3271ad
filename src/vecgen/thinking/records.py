"""The typed records of a thinking run: one :class:`ThinkRecord` per item, method (or grid combination) and sample,
a line of ``records.jsonl``; they stay objects until the writer turns them into JSON."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..benchmarks_data import Task, check_answer
from .runner import ThinkOutput

#: Largest weights recorded per thinking step in ``records.jsonl`` (``ThinkRecord.steps``; the run viewer
#: shows them on hover). With 5, the shipped 100-item, three-method GSM8K run's records take 6.1 MB.
TRACE_TOP_K = 5


@dataclass
class TraceStep:
    """One thinking step of a record (a line of ``steps`` in ``records.jsonl``).

    Attributes:
        token: the step's trace token (the top-1 for ``soft``), decoded on its own.
        entropy: nats, of the untruncated distribution (Cold Stop's H). mix_entropy: nats, of the fed mixture.
        top: up to :data:`TRACE_TOP_K` ``[token, weight]`` pairs, largest first: the fed mixture's weights
            for ``soft``, the model's distribution for ``cot`` / ``hidden`` (greedy: ``softmax(logits)``).
        mode: what fed the step: ``"latent"`` (its concept token or hidden state) or ``"explicit"`` (its token);
            None in records written before modes were recorded.
    """

    token: str
    entropy: float
    mix_entropy: float
    top: list[tuple[str, float]]
    mode: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> "TraceStep":
        return cls(token=data["token"], entropy=data["entropy"], mix_entropy=data["mix_entropy"],
                   top=[(str(t), float(w)) for t, w in data["top"]], mode=data.get("mode"))


@dataclass
class ThinkRecord:
    """One item answered by one method: a line of ``records.jsonl`` (field names are the JSON keys).

    Attributes:
        method, id, question, reference: the method's name, the item and its final answer.
        trace: the decoded top-1 thinking trace. forced: the decoded forced marker tokens.
        answer: the answer-phase text. pred: the extracted answer (None: no answer found). correct: pred == reference.
        stop_reason: why thinking ended (:class:`~vecgen.thinking.runner.StopReason` value).
        think_tokens, answer_tokens, tokens: thinking steps, answer tokens, their sum.
        mean_entropy, mean_mix_entropy: nats, over thinking steps (None without thinking).
        seconds: this item's share of its batch's wall time. batch_seconds, batch_size: the batch's.
        steps: one :class:`TraceStep` per thinking step (empty for ``direct``, and in records written before
            steps were recorded).
        sample: the sample index of a ``--samples k`` run (0..k-1), else None. seed: that sample's per-item seed.
        latent_steps: thinking steps fed a concept token or hidden state (the rest of ``think_tokens`` fed tokens);
            None in records written before it was recorded.
        score: partial credit in [0, 1] where the item's checker gives it (reasoning-gym items), else None.
    """

    method: str
    id: str
    question: str
    reference: str
    trace: str
    forced: str
    answer: str
    pred: str | None
    correct: bool
    stop_reason: str
    think_tokens: int
    answer_tokens: int
    tokens: int
    mean_entropy: float | None
    mean_mix_entropy: float | None
    seconds: float
    batch_seconds: float
    batch_size: int
    steps: list[TraceStep] = field(default_factory=list)
    sample: int | None = None
    seed: int | None = None
    latent_steps: int | None = None
    score: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ThinkRecord":
        """A record read back from ``records.jsonl`` (resume, the run viewer)."""
        values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(cls) if f.name != "steps"}
        return cls(**values, steps=[TraceStep.from_json(s) for s in data.get("steps") or []])


def make_record(task: Task, method: str, out: ThinkOutput, seconds: float, batch_seconds: float,
                batch_size: int, *, verdict: Any = None, sample: int | None = None,
                seed: int | None = None) -> ThinkRecord:
    """The record of one item: ``out`` checked against ``task`` by its answer type's checker (or ``verdict``, the
    check already made)."""
    verdict = verdict or check_answer(task, out.answer)
    mean = lambda xs: (sum(xs) / len(xs)) if xs else None  # noqa: E731
    return ThinkRecord(
        method=method, id=task.id, question=task.question, reference=task.answer, trace=out.trace,
        forced=out.forced, answer=out.answer, pred=verdict.pred, correct=verdict.correct,
        stop_reason=out.stop_reason, think_tokens=out.think_tokens, answer_tokens=out.answer_tokens,
        tokens=out.generated_tokens, mean_entropy=mean(out.entropies), mean_mix_entropy=mean(out.mix_entropies),
        seconds=seconds, batch_seconds=batch_seconds, batch_size=batch_size, steps=trace_steps(out), sample=sample,
        seed=seed, latent_steps=out.latent_steps, score=verdict.score,
    )


def trace_steps(out: ThinkOutput) -> list[TraceStep]:
    """The per-step records of ``out`` (weights and entropies rounded to 4 decimals; empty when
    :func:`~vecgen.thinking.runner.run_thinking` recorded no top weights)."""
    if not out.top_ids:
        return []
    r = lambda x: round(float(x), 4)  # noqa: E731
    modes = out.modes if len(out.modes) == len(out.trace_tokens) else [None] * len(out.trace_tokens)
    return [TraceStep(token=tok, entropy=r(h), mix_entropy=r(mh), top=[(t, r(w)) for t, w in zip(tt, ww)], mode=m)
            for tok, h, mh, tt, ww, m in zip(out.trace_tokens, out.entropies, out.mix_entropies, out.top_tokens,
                                             out.top_weights, modes)]


def record_key(d: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The resume key of a record read back as a dict: ``(method, id, sample)``."""
    return d.get("method"), d.get("id"), d.get("sample")


__all__ = ["TRACE_TOP_K", "ThinkRecord", "TraceStep", "make_record", "record_key", "trace_steps"]
