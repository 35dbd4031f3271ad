"""The engine thread behind ``vecgen serve``: requests from every client share one continuously batched decode loop.

A request becomes a :class:`Job` of one or more :class:`Choice` rows (``n``). :meth:`EngineWorker.submit` queues its
rows; the worker thread runs :func:`vecgen.decoding.engine.run` with ``admit`` (queued rows join the running batch
whenever fewer than ``max_batch`` rows are live: iteration-level scheduling as in Orca and vLLM) and ``on_row_end``
(a row's record and its error, if any, as soon as it leaves). Each row is driven by the same policy the offline
commands use — :class:`~vecgen.decoding.loop.GeneratePolicy` for text and concept tokens,
:class:`~vecgen.thinking.runner.ThinkPolicy` for thinking — wrapped by :class:`ServedRow`, which

* publishes text as it grows (``reasoning_content`` from the thinking trace, ``content`` from the answer or the
  generated text), holding back a possibly split UTF-8 character and the tail a stop string could still match;
* ends the row at the next step when its client is gone (``Job.cancelled``), and at a stop string;
* turns an exception of its policy into that row's error (HTTP 500 for that request only).

A NaN/inf in one row's logits or vector ends that row with the error (the engine's ``on_row_end`` mode); an error
of the backend itself fails the rows in flight, and the worker goes on with the next requests.

Events reach the request's ``asyncio`` loop through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..concept.tokens import TokenWeight, token_text
from ..decoding.engine import Action, Mode, Observation, RowPolicy, RowRecord, run
from ..errors import ConfigError
from ..models import LoadedModel, decode
from ..thinking.runner import ThinkOutput, cut_at_stop, decode_output
from .protocol import APIError

log = logging.getLogger(__name__)

#: Top tokens recorded per step (the largest concept-token weights a request may ask for: ``record_top_k``).
RECORD_TOP_K = 10


@dataclass
class Choice:
    """One row of a request (one of its ``n`` choices).

    Attributes:
        index: the choice's index in the response. prompt_ids: the row's prompt tokens.
        policy: the offline policy that drives the row. kind: ``text``, ``think`` or ``concept``.
        stops: stop strings (the text ends before the first one; OpenAI's ``stop``).
        record_top_k: ``concept``: weights kept per concept token.
    """

    index: int
    prompt_ids: list[int]
    policy: Any
    kind: str
    stops: tuple[str, ...] = ()
    record_top_k: int = RECORD_TOP_K
    sent: dict[str, int] = field(default_factory=lambda: {"reasoning_content": 0, "content": 0})
    texts: dict[str, str] = field(default_factory=lambda: {"reasoning_content": "", "content": ""})
    stopped: bool = False
    finish_reason: str | None = None
    error: BaseException | None = None
    concept_tokens: list[dict[str, Any]] | None = None
    output: ThinkOutput | None = None
    ended: bool = False

    @property
    def reasoning_tokens(self) -> int:
        return self.policy.out.think_tokens if self.kind == "think" else 0

    @property
    def completion_tokens(self) -> int:
        """Tokens (and concept tokens) the model produced: thinking + answer, or the generated tokens."""
        if self.kind == "think":
            return self.policy.out.generated_tokens
        return len(self.policy.tokens)

    def _current(self, tokenizer: Any) -> dict[str, str]:
        if self.kind == "think":
            out = self.policy.out
            texts = {"reasoning_content": decode(tokenizer, out.trace_ids, skip_special_tokens=False),
                     "content": decode(tokenizer, out.answer_ids)}
        elif self.kind == "text":
            texts = {"reasoning_content": "", "content": decode(tokenizer, self.policy.tokens)}
        else:
            return dict(self.texts)
        if self.stops:
            texts["content"], found = cut_at_stop(texts["content"], self.stops)
            self.stopped = self.stopped or found
        return texts

    def publish(self, tokenizer: Any, *, final: bool) -> list[tuple[str, str]]:
        """The new text of each channel since the last call: ``[(channel, delta), ...]``. Until ``final``, a trailing
        U+FFFD (a character whose bytes are not all generated yet) and the last ``len(longest stop) - 1`` characters
        of ``content`` are held back."""
        self.texts = self._current(tokenizer)
        hold = max((len(s) for s in self.stops), default=1) - 1
        out = []
        for channel, text in self.texts.items():
            end = len(text)
            if not final:
                if channel == "content" and not self.stopped:
                    end -= hold
                while end > 0 and text[end - 1] == "\ufffd":
                    end -= 1
            if end > self.sent[channel]:
                out.append((channel, text[self.sent[channel]:end]))
                self.sent[channel] = end
        return out

    def finish(self, tokenizer: Any, record: RowRecord | None) -> None:
        """Fill the finish reason, the thinking output and the concept tokens once the row has left the batch."""
        if self.kind == "think":
            out = decode_output(tokenizer, self.policy.out)
            self.output = out
            ended = bool(out.answer_ids) and out.answer_ids[-1] in self.policy.stops
            full = out.answer_tokens >= self.policy.cfg.max_answer_tokens
            self.finish_reason = "length" if full and not ended and not self.stopped else "stop"
        elif self.kind == "text":
            self.finish_reason = "stop" if self.policy.finished or self.stopped else "length"
        else:
            self.finish_reason = "length"
            self.concept_tokens = concept_list(tokenizer, record, self.record_top_k) if record is not None else []
            self.texts["content"] = "".join(c["token"] for c in self.concept_tokens)


def concept_list(tokenizer: Any, record: RowRecord, k: int) -> list[dict[str, Any]]:
    """Each concept token of a row as ``{"token", "top": [{"token", "id", "weight"}], "entropy"}`` (nats of the
    mixture) — :func:`vecgen.concept.tokens.concept_tokens`'s ``top`` and ``entropy``."""
    out = []
    for tok, ids, weights, h in zip(record.tokens.tolist(), record.mix_ids.tolist(), record.mix_weights.tolist(),
                                    record.mix_entropy.tolist()):
        top = [TokenWeight(token_text(tokenizer, t), float(w)) for t, w in zip(ids, weights) if w > 0][:k]
        ids_kept = [t for t, w in zip(ids, weights) if w > 0][:k]
        out.append({"token": token_text(tokenizer, int(tok)),
                    "top": [{"token": tw.token, "id": i, "weight": tw.weight} for tw, i in zip(top, ids_kept)],
                    "entropy": float(h)})
    return out


class Job:
    """One request: its choices, its client's event queue, and whether the client is gone.

    Events put on :attr:`events`: ``("delta", choice, channel, text)``, ``("end", choice)``.
    """

    def __init__(self, choices: list[Choice], loop: asyncio.AbstractEventLoop):
        self.choices = choices
        self.loop = loop
        self.events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.cancelled = False
        self.created = int(time.time())

    def emit(self, *event: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop is closed: the server is gone
            pass

    def fail(self, choice: Choice, error: BaseException) -> None:
        if not choice.ended:
            choice.error, choice.ended = error, True
            self.emit("end", choice)


class ServedRow:
    """The engine's policy for one choice: the offline policy, plus publishing, cancellation and stop strings."""

    def __init__(self, job: Job, choice: Choice, tokenizer: Any):
        self.job, self.choice, self.tokenizer = job, choice, tokenizer
        self.inner: RowPolicy = choice.policy

    def next_input(self) -> Mode | int | None:
        if self.job.cancelled or self.choice.error is not None or self.choice.stopped:
            return None
        try:
            return self.inner.next_input()
        except Exception as exc:  # the policy's bug fails this request only
            self.choice.error = exc
            return None

    def observe(self, obs: Observation) -> Action:
        try:
            action = Action(self.inner.observe(obs))
        except Exception as exc:
            self.choice.error = exc
            return Action.done
        for channel, text in self.choice.publish(self.tokenizer, final=False):
            self.job.emit("delta", self.choice, channel, text)
        return Action.done if self.choice.stopped else action

    def max_inputs(self) -> int:
        return self.inner.max_inputs()


class EngineWorker:
    """The thread that runs the decode engine for every request.

    Args:
        lm: the served model. max_batch: rows decoded at once (>= 1). prefill_chunk: chunked prefill of long
            prompts (tokens per step; None: whole prompts).
    """

    def __init__(self, lm: LoadedModel, max_batch: int, *, prefill_chunk: int | None = None):
        self.lm, self.max_batch, self.prefill_chunk = lm, int(max_batch), prefill_chunk
        seq_max = getattr(lm.backend, "n_seq_max", None)
        if seq_max is not None and self.max_batch > int(seq_max):
            raise ConfigError(f"max_batch={self.max_batch}: the llama.cpp context holds at most {seq_max} sequences; "
                              f"use at most {seq_max} rows", param="max_batch")
        #: KV cells every row shares (llama.cpp's ``n_ctx``), or None (each row has its own cache): rows are admitted
        #: only while their prompts and budgets fit the cells together, so a full context never fails a batch
        self.cells: int | None = getattr(lm.backend, "n_ctx", None)
        self.reserved: dict[int, int] = {}
        self.cond = threading.Condition()
        self.pending: deque[tuple[Job, Choice]] = deque()
        self.rows: dict[int, tuple[Job, Choice]] = {}
        self.accepting = True
        self.next_index = 0
        self.stats = {"steps": 0, "row_steps": 0, "requests": 0}
        self.thread = threading.Thread(target=self._loop, name="vecgen-engine", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Job) -> None:
        """Queue a request's rows.

        Raises:
            APIError: 503 once the server is shutting down.
        """
        with self.cond:
            if not self.accepting:
                raise APIError(503, "the server is shutting down; send the request again later")
            self.pending.extend((job, c) for c in job.choices)
            self.stats["requests"] += 1
            self.cond.notify()

    def stop_admitting(self) -> None:
        """Shutdown: queued rows fail with 503, rows in flight run to their end, then the thread exits."""
        with self.cond:
            self.accepting = False
            while self.pending:
                job, choice = self.pending.popleft()
                job.fail(choice, APIError(503, "the server shut down before this request started"))
            self.cond.notify()

    def abort_in_flight(self) -> None:
        """A second shutdown signal: stop admitting, and answer every request in flight with 503 (its rows leave at
        the next step) instead of letting them finish."""
        self.stop_admitting()
        with self.cond:
            for job, choice in list(self.rows.values()):
                job.fail(choice, APIError(503, "the server was stopped (a second signal) before this request "
                                               "finished; send it again later"))
            self.cond.notify()

    def close(self, timeout: float | None = None) -> None:
        self.stop_admitting()
        if self.thread.is_alive():
            self.thread.join(timeout)

    @property
    def busy(self) -> int:
        """Rows queued or in flight."""
        with self.cond:
            return len(self.pending) + len(self.rows)

    def _admit(self, free: int) -> list[tuple[list[int], RowPolicy]]:
        out: list[tuple[list[int], RowPolicy]] = []
        with self.cond:
            while self.pending and len(out) < free:
                job, choice = self.pending[0]
                if job.cancelled:
                    self.pending.popleft()
                    continue
                need = len(choice.prompt_ids) + choice.policy.max_inputs() + 1
                if self.cells is not None and self.reserved and sum(self.reserved.values()) + need > self.cells:
                    break  # it waits for rows to end and free their cells
                self.pending.popleft()
                self.reserved[self.next_index] = need
                self.rows[self.next_index] = (job, choice)
                self.next_index += 1
                out.append((choice.prompt_ids, ServedRow(job, choice, self.lm.tokenizer)))
        return out

    def _row_end(self, i: int, record: RowRecord, error: Exception | None) -> None:
        """Row ``i`` left the batch: log it, answer its request (or fail it). The row counts as :attr:`busy` until
        that is done, so a caller that waits for an idle worker sees its end handled."""
        self.reserved.pop(i, None)
        try:
            self._end_row(i, *self.rows[i], record, error)
        finally:
            self.rows.pop(i, None)

    def _end_row(self, i: int, job: Any, choice: Any, record: RowRecord, error: Exception | None) -> None:
        if job.cancelled:
            log.info("row %d freed after %d tokens: its client left", i, len(record.tokens))
            return
        failure = error or choice.error
        if isinstance(failure, APIError) and failure.status == 503:  # answered already (abort_in_flight)
            log.info("row %d ended: %s", i, failure.message)
            return
        if failure is not None:
            log.error("request row %d failed: %s: %s", i, type(failure).__name__, failure)
            job.fail(choice, failure)
            return
        try:
            choice.finish(self.lm.tokenizer, record)
            for channel, text in choice.publish(self.lm.tokenizer, final=True):
                job.emit("delta", choice, channel, text)
        except Exception as exc:  # pragma: no cover - a bug in finishing fails this request only
            log.exception("finishing a row failed")
            job.fail(choice, exc)
            return
        choice.ended = True
        job.emit("end", choice)

    def _on_step(self, step: int, live: int) -> None:
        self.stats["steps"] += 1
        self.stats["row_steps"] += live

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.pending and self.accepting:
                    self.cond.wait()
                if not self.pending and not self.accepting:
                    return
            self.next_index = 0
            try:
                run(self.lm, [], [], admit=self._admit, on_row_end=self._row_end, max_batch=self.max_batch,
                    record_top_k=RECORD_TOP_K, on_step=self._on_step, prefill_chunk=self.prefill_chunk)
            except Exception as exc:  # the backend failed: every row in flight fails, the server goes on
                log.exception("the decode step failed; failing the %d requests in flight", len(self.rows))
                for job, choice in self.rows.values():
                    job.fail(choice, exc)
                self.rows.clear()
                self.reserved.clear()


__all__ = ["Choice", "EngineWorker", "Job", "RECORD_TOP_K", "ServedRow", "concept_list"]
