"""Prompts and end-of-thinking markers for the thinking runners.

Two styles, chosen by the model (through its family adapter) unless a marker is given:

``think-token`` (thinking models: the adapter has ``thinking_tokens``, e.g. Qwen3's
``<think>``/``</think>``, and the chat template has the ``enable_thinking`` switch)
    The chat turn is rendered in non-thinking mode and its empty ``<think>\\n\\n</think>\\n\\n``
    block is replaced by an open ``<think>\\n``: vecgen runs the thinking phase itself (in tokens or
    concept tokens), and it ends when the top-1 token is ``</think>``. ``direct`` keeps the empty
    block (no reasoning). The request is Qwen's math prompt ("reason step by step, and put your
    final answer within \\boxed{}").

``text marker`` (Instruct models without thinking tokens, e.g. Qwen2.5; and any model given
``marker=``)
    The user turn asks for step-by-step reasoning ending with a line that starts with the marker
    (default ``"Answer:"``); thinking ends when the marker appears in the top-1 token trace.
    ``direct`` asks for the answer only and the assistant turn starts with the marker.

Models without a chat template get the same request as plain text (``Question: ...``).

``trained`` (models trained by ``vecgen train``: :attr:`LoadedModel.reasoning <vecgen.models.LoadedModel>` is set)
    The layout they were trained on: ``question <bot>``, thinking (their own method's), ``<eot>`` forced or found,
    then ``### answer``; ``direct`` prompts end with ``<bot> <eot>``. No request text is added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..benchmarks_data.task import Task, task_text
from ..models import LoadedModel
from ..errors import ConfigError
from ..models.reasoning import ReasoningFormat
from ..models.chat import Message, has_thinking_switch, render_chat
from .markers import EndMarker

#: Default end-of-thinking marker for models without thinking tokens.
DEFAULT_TEXT_MARKER = "Answer:"

#: Text-marker requests (``{what}``: :attr:`AnswerRequest.what`; ``{marker}``: the marker).
COT_REQUEST = 'Solve the problem step by step. Then write {what} on a last line that starts with "{marker}".'
DIRECT_REQUEST = 'Reply with only {what}, on one line that starts with "{marker}". Do not explain.'
#: Think-token requests (Qwen's math prompt; ``{what}``: :attr:`AnswerRequest.boxed`).
THINK_COT_REQUEST = "Please reason step by step, and put {what} within \\boxed{{}}."
THINK_DIRECT_REQUEST = "Put {what} within \\boxed{{}}. Do not explain."


@dataclass(frozen=True)
class AnswerRequest:
    """How the prompts of one answer type ask for the answer.

    Attributes:
        what: the final answer in text-marker requests ("the letter of the correct option").
        boxed: what goes in ``\\boxed{}`` in think-token requests.
        cue: text that opens the assistant turn of a thinking prompt (text-marker style). Measured on the default
            model (docs/evaluation.md, "Answer types"): without it, short non-math questions get the answer line at once.
    """

    what: str
    boxed: str
    cue: str = ""


_COT_CUE = "Let's think step by step.\n"
#: One :class:`AnswerRequest` per answer type.
ANSWER_REQUESTS: dict[str, AnswerRequest] = {
    "numeric": AnswerRequest("the final answer as a number", "your final answer"),
    "choice": AnswerRequest("the letter of the correct option", "the letter of the correct option", _COT_CUE),
    "yesno": AnswerRequest("the final answer, Yes or No,", "your final answer (Yes or No)", _COT_CUE),
    "exact": AnswerRequest("the final answer in as few words as possible", "your final answer", _COT_CUE),
    # reasoning-gym items (rg:NAME) state their answer format in the question; the generator's verifier scores it
    "rg": AnswerRequest("the final answer in the format the question asks for", "your final answer", _COT_CUE),
}


@dataclass(frozen=True)
class PromptStyle:
    """How a model is asked to think and where thinking ends.

    Attributes:
        marker: the end-of-thinking marker text (``"</think>"`` or e.g. ``"Answer:"``).
        think_token: True when the marker is a thinking model's special token (``</think>``).
        open_think: the text that opens the thinking block (``"<think>\\n"``), think-token style only.
        chat: prompts use the chat template.
    """

    marker: str
    think_token: bool
    open_think: str = ""
    chat: bool = True

    def end_marker(self, tokenizer: Any) -> EndMarker:
        """The :class:`~vecgen.thinking.markers.EndMarker` of this style: ``</think>`` by token id; a
        text marker only at the start of a line (the prompt asks for a line that starts with it)."""
        return EndMarker(tokenizer, self.marker, at_line_start=not self.think_token)


def prompt_style(lm: LoadedModel, marker: str | None = None) -> PromptStyle:
    """The :class:`PromptStyle` for ``lm``.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel`.
        marker: an explicit end-of-thinking marker (text style); None = choose by model: ``</think>``
            for thinking models, else :data:`DEFAULT_TEXT_MARKER`.
    """
    tok = lm.tokenizer
    if lm.reasoning is not None and marker is None:
        fmt = lm.reasoning
        return PromptStyle(marker=fmt.eot, think_token=True, open_think=fmt.bot, chat=False)
    chat = lm.has_chat_template
    thinking = lm.adapter.thinking_tokens
    if marker is None and thinking is not None and chat and has_thinking_switch(tok):
        vocab = tok.get_vocab()
        if all(t in vocab for t in thinking):
            return PromptStyle(marker=thinking[1], think_token=True, open_think=f"{thinking[0]}\n", chat=True)
    return PromptStyle(marker=marker or DEFAULT_TEXT_MARKER, think_token=False, chat=chat)


def build_prompt(lm: LoadedModel, question: str | Task, style: PromptStyle, *, direct: bool) -> str:
    """The prompt text for one question.

    Args:
        lm: the model (its tokenizer's chat template is used when ``style.chat``).
        question: a :class:`~vecgen.benchmarks_data.Task` (its :func:`~vecgen.benchmarks_data.task_text`, and a
            request for its answer type) or a question text (a numeric answer is asked for).
        style: from :func:`prompt_style`.
        direct: answer without reasoning (the prompt ends where the answer starts).

    Returns:
        Prompt text; the thinking (or answer, for ``direct``) phase continues right after it. Thinking prompts
        of text-marker style end with the answer type's :attr:`AnswerRequest.cue` (when it has one).

    Raises:
        ConfigError: an empty question.
    """
    answer_type = question.answer_type if isinstance(question, Task) else "numeric"
    text = task_text(question) if isinstance(question, Task) else question
    return build_chat_prompt(lm, [{"role": "user", "content": text}], style, direct=direct, answer_type=answer_type)


def trained_prompt(fmt: ReasoningFormat, question: str, *, direct: bool) -> str:
    """The prompt of a model trained by ``vecgen train`` (the ``trained`` style of the module docstring):
    ``question <bot>``, or ``question <bot> <eot>`` for ``direct``."""
    text = f"{question.strip()} {fmt.bot}"
    return f"{text} {fmt.eot}" if direct else text


def build_chat_prompt(lm: LoadedModel, messages: Sequence[Message], style: PromptStyle, *, direct: bool,
                      answer_type: str = "numeric") -> str:
    """The thinking prompt of a conversation: :func:`build_prompt`'s request for ``answer_type`` appended to the last
    user message, earlier turns (system, user, assistant) rendered by the chat template as they are. One user
    message gives exactly :func:`build_prompt`'s prompt for that question (``vecgen serve``'s thinking requests
    equal :meth:`vecgen.Model.think`).

    Raises:
        ConfigError: no user message, an empty one, or an unknown answer type.
    """
    if answer_type not in ANSWER_REQUESTS:
        raise ConfigError(f"answer_type={answer_type!r}: choose one of {', '.join(ANSWER_REQUESTS)}",
                          param="answer_type")
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        raise ConfigError("the conversation has no user message to answer", param="messages")
    question = str(messages[last].get("content", ""))
    if not question.strip():
        raise ConfigError("empty prompt: give a non-empty message", param="messages")
    if lm.reasoning is not None and style.think_token:
        return trained_prompt(lm.reasoning, question, direct=direct)
    before, after = list(messages[:last]), list(messages[last + 1:])
    tok = lm.tokenizer
    ask = ANSWER_REQUESTS[answer_type]

    def chat(content: str) -> str:
        return render_chat(tok, [*before, {"role": "user", "content": content}, *after])

    if style.think_token:
        request = (THINK_DIRECT_REQUEST if direct else THINK_COT_REQUEST).format(what=ask.boxed)
        text = chat(f"{question}\n{request}")
        if direct:
            return text  # non-thinking render: an empty thinking block, then the answer
        assert lm.adapter.thinking_tokens is not None  # think-token style is chosen only for such models
        start, end = lm.adapter.thinking_tokens
        empty = f"{start}\n\n{end}\n\n"
        base = text[: -len(empty)] if text.endswith(empty) else text
        return base + style.open_think
    request = (DIRECT_REQUEST if direct else COT_REQUEST).format(what=ask.what, marker=style.marker)
    if style.chat:
        text = chat(f"{question}\n\n{request}")
    else:
        turns = "".join(f"{m.get('role', 'user').capitalize()}: {str(m.get('content', '')).strip()}\n"
                        for m in [*before] if str(m.get("content", "")).strip())
        text = f"{turns}Question: {question.strip()}\n{request}\n"
    return text + style.marker if direct else text + ask.cue
