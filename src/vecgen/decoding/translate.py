"""Translation methods: turn N concept vectors back into text.

A registry (:data:`TRANSLATION_METHODS`, :func:`register_translation_method`) of methods. A
*generative* method builds a prompt made of token-id segments and the vectors themselves (a list of
segments for :func:`vecgen.decoding.loop.build_batch`) and lets the model continue it; the other kind
maps the vectors to token ids directly.

``nearest``
    The nearest real token of each vector by cosine similarity (no generation).
``direct``
    The N vectors alone as the prompt; the model continues after them (no framing).
``completion``
    ``"The meaning of" ⟨v₁…v_N⟩ " in plain English is"`` (the seeds' completion-style prompt). The
    vectors usually stand for tokens with a leading space (``" Paris"``), so no space is added.
``fewshot``
    The same frame after a few real examples (``The meaning of hola in plain English is hello.``).
``instruction``
    The vectors spliced inside the user turn of the model's chat template:
    ``[ids before, v₁…v_N, ids after]`` from the rendered template, whose special tokens
    (``<|im_start|>``, ``<|im_end|>``) enter as their real embeddings. Needs a chat template
    (:class:`~vecgen.errors.NoChatTemplateError` otherwise).
``patchscope``
    Patchscopes' token-identity prompt (Ghandeharioun et al., ICML 2024, arXiv 2401.06102):
    ``"cat->cat; 1135->1135; hello->hello; "`` ⟨v₁…v_N⟩ ``"->"``; the model, having seen identities, repeats what
    the vectors stand for. The paper patches a hidden state into the placeholder ``?`` of the prompt at a target
    layer; concept tokens live in the input space, so they are fed as the placeholder's inputs (layer 0, the
    paper's inspection of the input layer), and ``->`` is appended so the continuation is the identity itself.
``selfie``
    SelfIE's interpretation prompt (Chen et al., ICML 2024, arXiv 2403.10949): the vectors as the whole user turn
    of the chat template, the assistant's turn opened with ``"Sure, I will summarize the message:"``; SelfIE inserts
    hidden states at a chosen layer of the placeholders, here (input-space vectors) at the input. Needs a chat
    template.

Every translation records the raw generated token ids (special tokens included), the decoded text
with and without special tokens, and whether the model emitted a stop token — an empty answer is
then explained (e.g. the model emitted ``<|im_end|>`` first, which ``skip_special_tokens`` hides).
All generative prompts of one call are decoded in one left-padded batch (greedy by default). The
methods' fixed prefixes (few-shot examples, the chat template's head, "The meaning of") are prefilled
once and their KV cache is shared by the rows (and, with ``prefix_cache``, by later calls).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..backends.contract import Batch
from ..config import SamplingConfig
from ..errors import ConfigError, NoChatTemplateError
from ..models import LoadedModel
from ..models.chat import decode, render_chat
from .loop import generate
from .metrics import embedding_index, token_text

#: A prompt segment: token ids or an ``(n, d)`` tensor of vectors.
Segment = list[int] | torch.Tensor

#: Placeholder shown for the vectors in readable prompts.
VECTORS_MARK = "⟨vectors⟩"

COMPLETION_PREFIX = "The meaning of"
COMPLETION_SUFFIX = " in plain English is"
#: Real word → meaning examples of the ``fewshot`` method (foreign words, so the frame means "translate").
FEWSHOT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("hola", "hello"),
    ("merci", "thank you"),
    ("Katze", "cat"),
)
INSTRUCTION_MESSAGE = ("Say in plain English what the following text means.\nText:", "")
#: The methods that place the vectors in the chat template (they need one).
CHAT_METHODS = ("instruction", "selfie")
#: Patchscopes' token-identity target prompt (the paper's example few-shot identities), before and after the vectors.
PATCHSCOPE_PREFIX = "cat->cat; 1135->1135; hello->hello; "
PATCHSCOPE_SUFFIX = "->"
#: SelfIE's opening of the assistant turn (its interpretation prompt: "[INST] _ [/INST] Sure, I will summarize the
#: message:").
SELFIE_ANSWER = "Sure, I will summarize the message:"


@dataclass(frozen=True)
class TranslationMethod:
    """A registered translation method.

    Attributes:
        name: registry name.
        fn: generative: ``fn(lm, vectors (N, d)) -> list[Segment]`` (the prompt);
            otherwise ``fn(lm, vectors) -> list[int]`` (the translation's token ids).
        generative: whether the model generates the translation.
        description: one line for help texts and reports.
    """

    name: str
    fn: Callable[[Any, torch.Tensor], Any]
    generative: bool
    description: str


TRANSLATION_METHODS: dict[str, TranslationMethod] = {}


def register_translation_method(name: str, *, generative: bool = True, description: str = ""):
    """Decorator adding a method to :data:`TRANSLATION_METHODS` (see :class:`TranslationMethod` for ``fn``)."""

    def deco(fn):
        TRANSLATION_METHODS[name] = TranslationMethod(name, fn, generative, description or (fn.__doc__ or "").strip())
        return fn

    return deco


def get_method(name: str) -> TranslationMethod:
    """The registered method ``name``.

    Raises:
        ConfigError: unknown method (the message lists the known ones).
    """
    try:
        return TRANSLATION_METHODS[name]
    except KeyError:
        raise ConfigError(
            f"unknown translation method {name!r}; choose from: {', '.join(TRANSLATION_METHODS)}"
        ) from None


def check_methods(lm: LoadedModel | None, methods: Sequence[str], *, tokenizer: Any = None, name: str | None = None) -> None:
    """Fail early, before any generation, for methods that cannot run on ``lm`` (or, before loading it, on its
    ``tokenizer`` alone, named ``name``: pass ``lm=None``).

    Raises:
        ConfigError: an unknown method or an empty list.
        NoChatTemplateError: ``instruction`` on a tokenizer without a chat template.
    """
    if not methods:
        raise ConfigError("no translation methods given")
    for name in methods:
        get_method(name)
    tokenizer = lm.tokenizer if lm is not None else tokenizer
    name = lm.name if lm is not None else name
    for chat in CHAT_METHODS:
        if chat in methods and not getattr(tokenizer, "chat_template", None):
            raise NoChatTemplateError(
                f"translation method {chat!r} needs a chat template, and {name!r} has none; "
                "drop it (e.g. --methods nearest,direct,completion,fewshot,patchscope) or use a chat/instruct model"
            )


@register_translation_method("nearest", generative=False, description="nearest real token of each vector (cosine)")
def _nearest(lm: LoadedModel, vectors: torch.Tensor) -> list[int]:
    ids, _ = embedding_index(lm).nearest(vectors, 1, "cosine")  # (N, 1)
    return ids[:, 0].tolist()


@register_translation_method("direct", description="the vectors alone; the model continues after them")
def _direct(lm: LoadedModel, vectors: torch.Tensor) -> list[Segment]:
    return [vectors]


@register_translation_method("completion", description=f"'{COMPLETION_PREFIX}{VECTORS_MARK}{COMPLETION_SUFFIX}'")
def _completion(lm: LoadedModel, vectors: torch.Tensor) -> list[Segment]:
    return [lm.encode(COMPLETION_PREFIX), vectors, lm.encode(COMPLETION_SUFFIX)]


def fewshot_prefix() -> str:
    """The text before the vectors in the ``fewshot`` method."""
    lines = [f"{COMPLETION_PREFIX} {word}{COMPLETION_SUFFIX} {meaning}." for word, meaning in FEWSHOT_EXAMPLES]
    return "\n".join(lines) + "\n" + COMPLETION_PREFIX


@register_translation_method("fewshot", description="the completion frame after a few real word→meaning examples")
def _fewshot(lm: LoadedModel, vectors: torch.Tensor) -> list[Segment]:
    return [lm.encode(fewshot_prefix()), vectors, lm.encode(COMPLETION_SUFFIX)]


_SPLIT = "\x00VECGEN_VECTORS\x00"


def chat_segments(
    lm: LoadedModel, content_before: str, content_after: str = "", *, system: str | None = None
) -> tuple[list[int], list[int]]:
    """Token ids before and after a vector slot inside the user turn of the chat template.

    The template is rendered once with a placeholder in the user message (non-thinking mode, see
    :func:`vecgen.models.chat.render_chat`), split at the placeholder, and each side tokenized; special
    tokens such as ``<|im_start|>`` become their ids (and later their real embeddings).

    Returns:
        ``(ids_before, ids_after)``.

    Raises:
        NoChatTemplateError: the tokenizer has no chat template.
    """
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": f"{content_before}{_SPLIT}{content_after}"})
    text = render_chat(lm.tokenizer, messages)
    before, sep, after = text.partition(_SPLIT)
    if not sep:  # pragma: no cover - a template that drops the user's text
        raise NoChatTemplateError("the chat template does not include the user message; cannot place vectors in it")
    return lm.encode(before), lm.encode(after)


@register_translation_method("instruction", description="the vectors inside the user turn of the chat template")
def _instruction(lm: LoadedModel, vectors: torch.Tensor) -> list[Segment]:
    check_methods(lm, ["instruction"])
    before, after = chat_segments(lm, *INSTRUCTION_MESSAGE)
    return [before, vectors, after]


@register_translation_method("patchscope", description=f"Patchscopes' identity prompt '{PATCHSCOPE_PREFIX}"
                             f"{VECTORS_MARK}{PATCHSCOPE_SUFFIX}'")
def _patchscope(lm: LoadedModel, vectors: torch.Tensor) -> list[Segment]:
    return [lm.encode(PATCHSCOPE_PREFIX), vectors, lm.encode(PATCHSCOPE_SUFFIX)]


@register_translation_method("selfie", description="SelfIE: the vectors as the user turn, the assistant opens "
                             f"'{SELFIE_ANSWER}'")
def _selfie(lm: LoadedModel, vectors: torch.Tensor) -> list[Segment]:
    check_methods(lm, ["selfie"])
    before, after = chat_segments(lm, "", "")
    return [before, vectors, after + lm.encode(SELFIE_ANSWER)]


@dataclass
class Translation:
    """One translation of one vector sequence.

    Attributes:
        method: the method's name.
        token_ids: the raw generated ids (special tokens included; ``nearest``: the nearest tokens).
        tokens: each id decoded on its own (special tokens shown, e.g. ``<|im_end|>``).
        text: decoded with ``skip_special_tokens=True`` (what the seeds printed).
        raw_text: decoded with special tokens.
        answer: the first line of ``text`` with a letter or digit (else the first non-empty line), stripped:
            what a reader wants to see (``":\nParis is …"`` → ``"Paris is …"``).
        stopped: the model emitted a stop token (eos / end of turn).
        empty_reason: why ``text`` is empty, if it is (e.g. "emitted <|im_end|> first"); else "".
        prompt: the prompt as text with the vectors shown as ``⟨vectors⟩``.
    """

    method: str
    token_ids: list[int]
    tokens: list[str]
    text: str
    raw_text: str
    answer: str
    stopped: bool
    empty_reason: str
    prompt: str


def _readable_prompt(lm: LoadedModel, segments: Sequence[Segment]) -> str:
    parts = []
    for s in segments:
        if isinstance(s, torch.Tensor):
            parts.append(f"⟨{s.shape[0]} vectors⟩")
        else:
            parts.append(decode(lm.tokenizer, list(s), skip_special_tokens=False))
    return "".join(parts)


def _first_line(text: str) -> str:
    """The first line with a letter or digit (else the first non-empty line), stripped."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if any(ch.isalnum() for ch in line):
            return line
    return lines[0] if lines else ""


def describe_ids(lm: LoadedModel, method: str, ids: Sequence[int], stopped: bool, prompt: str) -> Translation:
    """A :class:`Translation` from generated (or chosen) token ids."""
    tok = lm.tokenizer
    ids = [int(i) for i in ids]
    text = decode(tok, ids, skip_special_tokens=True)
    raw = decode(tok, ids, skip_special_tokens=False)
    tokens = [token_text(tok, i) for i in ids]
    reason = ""
    if not text.strip():
        if not ids:
            reason = "no tokens were generated"
        elif stopped and len(ids) == 1:
            reason = f"the model emitted {tokens[0]!r} (a stop token) first"
        elif raw.strip():
            reason = f"only special tokens: {' '.join(tokens[:8])}"
        else:
            reason = "only whitespace was generated"
    return Translation(method, ids, tokens, text, raw, _first_line(text), stopped, reason, prompt)


def _shared_prefixes(lm: LoadedModel, prompts: list[list[Segment]], cache: dict | None):
    """Split each prompt into its leading token ids (a method's fixed prefix) and the rest; prefill the
    distinct prefixes once (or take them from ``cache``) and fork one cached row per prompt.

    Returns ``(rests, past)``: the prompts without their prefixes and the :class:`DecodeState` to feed them
    on (None when no prompt has a prefix). A prompt without a prefix gets an all-padding row. The model
    sees exactly the same sequence as with the whole prompt; only the order of the computation differs
    (float rounding).
    """
    heads: list[tuple[int, ...]] = []
    rests: list[list[Segment]] = []
    for segments in prompts:
        first = segments[0]
        if isinstance(first, torch.Tensor) or len(segments) == 1:
            heads.append(())
            rests.append(list(segments))
        else:
            heads.append(tuple(int(t) for t in first))
            rests.append(list(segments[1:]))
    distinct = list(dict.fromkeys(heads))
    if distinct == [()] or not lm.backend.inner_padding_exact:  # sliding windows count padded slots
        return prompts, None
    key = (id(lm.backend), tuple(distinct))
    state = None if cache is None else cache.get(key)
    if state is None:
        T = max(len(h) for h in distinct)
        pad = lm.tokenizer.pad_token_id or 0
        ids = torch.full((len(distinct), T), pad, dtype=torch.long, device=lm.device)  # (P, T)
        mask = torch.zeros(len(distinct), T, dtype=torch.long, device=lm.device)  # (P, T), 0 = padding
        for i, h in enumerate(distinct):
            if h:
                ids[i, T - len(h):] = torch.tensor(h, dtype=torch.long, device=lm.device)
                mask[i, T - len(h):] = 1
        with torch.inference_mode():
            state = lm.backend.prefill(Batch(ids, None, mask))
        if cache is not None:
            cache[key] = state
    return rests, lm.backend.fork(state, [distinct.index(h) for h in heads])


@torch.inference_mode()
def translate(
    lm: LoadedModel,
    vector_sets: Sequence[torch.Tensor],
    methods: Sequence[str],
    *,
    max_new_tokens: int = 16,
    sampling: SamplingConfig | None = None,
    allowed: torch.Tensor | None = None,
    on_step: Callable[[int, Any], None] | None = None,
    prefix_cache: dict | None = None,
) -> list[dict[str, Translation]]:
    """Translate each vector sequence with each method.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel`.
        vector_sets: ``S`` tensors of shape ``(N_s, d)`` (N may differ between sets).
        methods: registered method names.
        max_new_tokens: tokens generated per generative translation.
        sampling: decoding of the translations (default greedy, so translations are reproducible).
        allowed: optional allowed-token mask for the generated tokens (see :func:`vecgen.decoding.generate`).
        on_step: passed to :func:`vecgen.decoding.generate`: ``(step, live rows)`` before each step (progress).
        prefix_cache: a dict kept by the caller between calls on the same model; the KV cache of the
            methods' fixed prefixes (few-shot examples, chat template head) is stored there and reused.

    Returns:
        One ``{method: Translation}`` per vector set, methods in the given order.

    Raises:
        ConfigError: unknown method, empty vector set.
        NoChatTemplateError: ``instruction`` without a chat template.
        NonFiniteError: NaN/inf in a vector or in the logits (``row`` = the batch row of the failing
            prompt: set index × number of generative methods + method index).
    """
    check_methods(lm, methods)
    for i, v in enumerate(vector_sets):
        if v.dim() != 2 or v.shape[0] < 1:
            raise ConfigError(f"vector set {i} must be a non-empty (N, d) tensor, got shape {tuple(v.shape)}")
    results: list[dict[str, Translation]] = [{} for _ in vector_sets]
    prompts, slots = [], []
    for s, vectors in enumerate(vector_sets):
        for name in methods:
            method = get_method(name)
            if method.generative:
                segments = method.fn(lm, vectors)
                prompts.append(segments)
                slots.append((s, name, _readable_prompt(lm, segments)))
    gen = None
    if prompts:
        rests, past = _shared_prefixes(lm, prompts, prefix_cache)
        gen = generate(lm, rests, sampling=sampling or SamplingConfig(max_new_tokens=max_new_tokens),
                       max_new_tokens=max_new_tokens, allowed=allowed, record_top_k=0, on_step=on_step, past=past)
    row = 0
    for s, vectors in enumerate(vector_sets):
        for name in methods:
            method = get_method(name)
            if method.generative:
                _, _, prompt = slots[row]
                assert gen is not None  # generative methods made prompts
                results[s][name] = describe_ids(lm, name, gen.token_ids(row), bool(gen.finished[row]), prompt)
                row += 1
            else:
                results[s][name] = describe_ids(lm, name, method.fn(lm, vectors), False, f"nearest({VECTORS_MARK})")
    return results


__all__ = [
    "COMPLETION_PREFIX",
    "COMPLETION_SUFFIX",
    "FEWSHOT_EXAMPLES",
    "TRANSLATION_METHODS",
    "Translation",
    "TranslationMethod",
    "chat_segments",
    "check_methods",
    "fewshot_prefix",
    "get_method",
    "register_translation_method",
    "CHAT_METHODS",
    "translate",
]
