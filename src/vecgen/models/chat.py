"""Prompt rendering: one function for chat-formatted prompts, with a plain-completion path.

vecgen runs every model in **non-thinking mode**. For chat templates that expose Qwen3's
``enable_thinking`` switch, :func:`render_chat` always passes ``enable_thinking=False``, which makes
the template append an empty ``<think>\\n\\n</think>\\n\\n`` block after
``<|im_start|>assistant\\n`` (Qwen3 model card). Asking for thinking mode raises
:class:`~vecgen.errors.ThinkingModeError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, NoChatTemplateError, ThinkingModeError

Message = dict[str, str]


def decode(tokenizer: Any, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
    """``ids`` decoded into one string (transformers types ``decode`` as ``str | list[str]``)."""
    text = tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
    return text if isinstance(text, str) else "".join(text)


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def has_thinking_switch(tokenizer: Any) -> bool:
    """True when the chat template reads ``enable_thinking`` (Qwen3 and similar)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = " ".join(template.values())
    return "enable_thinking" in template


def render_chat(
    tokenizer: Any,
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    enable_thinking: bool = False,
) -> str:
    """Render ``messages`` with the tokenizer's chat template (non-thinking mode).

    Args:
        tokenizer: a transformers tokenizer with a chat template.
        messages: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
        add_generation_prompt: append the assistant-turn header so the model answers next.
        enable_thinking: must be False; kept as a parameter so a request for thinking mode fails loudly.

    Returns:
        The prompt text, special tokens included as text.

    Raises:
        ThinkingModeError: ``enable_thinking=True`` (vecgen supports non-thinking mode only).
        NoChatTemplateError: the tokenizer has no chat template (use the plain-completion path).
        ConfigError: no messages, or an empty message.
    """
    if enable_thinking:
        raise ThinkingModeError(
            "thinking mode is not supported: vecgen runs models in non-thinking mode only "
            "(Qwen3 is rendered with enable_thinking=False); drop the thinking request"
        )
    if not has_chat_template(tokenizer):
        raise NoChatTemplateError(
            f"{type(tokenizer).__name__} has no chat template; use the plain-completion path (no --chat) "
            "or a chat/instruct model"
        )
    if not messages or any(not str(m.get("content", "")).strip() for m in messages if m.get("role") != "system"):
        raise ConfigError("empty prompt: give a non-empty message")
    kwargs: dict[str, Any] = {}
    if has_thinking_switch(tokenizer):
        kwargs["enable_thinking"] = False
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
    )


def format_prompt(tokenizer: Any, text: str, *, chat: bool, system: str | None = None) -> str:
    """The prompt text for ``text``: chat-formatted as one user turn, or unchanged for plain completion.

    Raises:
        ConfigError: ``text`` is empty or whitespace.
        NoChatTemplateError: ``chat=True`` on a tokenizer without a chat template.
    """
    if not text or not text.strip():
        raise ConfigError("empty prompt: give some text to continue, e.g. \"The capital of France is\"")
    if not chat:
        return text
    messages: list[Message] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": text})
    return render_chat(tokenizer, messages)
