"""``vecgen diagnose embeds``: does the model treat token ids and their embeddings differently?

The seeds concluded that instruction-tuned models "key on token ids", because prompts passed as
``inputs_embeds`` produced empty output. A causal LM only ever sees embeddings: ``model(input_ids=x)``
first computes ``E[x]`` and continues exactly as ``model(inputs_embeds=E[x])``. This module measures it
and shows the real causes of empty output (shared ANCHORS notes): the model's first token is an end of
turn (``<|im_end|>``) that ``skip_special_tokens=True`` hides, and transformers' ``generate`` called
with ``inputs_embeds`` returns only the new tokens, so slicing off the prompt length leaves nothing.

Each row of the table feeds one kind of input, as a plain prompt or inside the user turn of the chat
template (template tokens as their real embeddings), and reports:

* ``max |Δlogit|``: the largest absolute difference, over every position and vocabulary entry, between
  the logits of the embedding path and those of the *id path* — the same prompt with every vector
  replaced by its nearest real token id (cosine). For embeddings of real tokens the id path is the
  original ids, and the difference must be exactly 0;
* the greedy continuation: raw generated ids (special tokens included), tokens, decoded text with and
  without special tokens, whether the model stopped, and why an empty text is empty.

Input kinds: ``token ids`` (the reference), ``embeddings`` (``E[ids]``), ``noise`` (Gaussian vectors at
the embedding scale: ``N(0, σ²I)`` with ``σ = mean‖E[i]‖ / √d``, so their expected norm is about the
mean token norm), ``concept`` (concept tokens of the prompt: ``soft`` rule, temperature 1, max_topk 10),
``real + noise`` (the prompt's embeddings plus Gaussian noise of relative size ``mix_noise``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationMixin

from .backends.contract import Prompt, Segment, build_batch
from .config import SEED_MAX, SamplingConfig
from .decoding.engine import check_context
from .decoding.loop import generate
from .decoding.metrics import embedding_index
from .decoding.mixing import MixingConfig
from .decoding.translate import chat_segments, describe_ids
from .errors import ConfigError, UnsupportedError
from .models import LoadedModel
from .models.chat import decode, format_prompt

#: Vector inputs fed besides the token-id reference.
INPUT_KINDS: tuple[str, ...] = ("embeddings", "noise", "concept", "real + noise")


@dataclass
class DiagnoseRow:
    """One row of the table.

    Attributes:
        inputs: ``token ids``, ``embeddings``, ``noise``, ``concept`` or ``real + noise``.
        template: ``plain`` or ``chat``.
        n_vectors: how many input vectors (for ``token ids`` / ``embeddings``: prompt tokens).
        max_logit_diff: ``max |logits(embedding path) − logits(id path)|`` over all positions and tokens
            (None for the ``token ids`` row, the reference).
        id_path: what the id path was (the same ids / nearest-token ids) and its ids.
        token_ids, tokens, text, raw_text, stopped, empty_reason: the greedy continuation (see
            :class:`vecgen.decoding.translate.Translation`).
        same_as_ids: for ``embeddings``: the continuation equals the ``token ids`` row's.
    """

    inputs: str
    template: str
    n_vectors: int
    max_logit_diff: float | None
    id_path: str
    token_ids: list[int]
    tokens: list[str]
    text: str
    raw_text: str
    stopped: bool
    empty_reason: str
    same_as_ids: bool | None = None
    id_path_ids: list[int] = field(default_factory=list)


@dataclass
class GenerateCheck:
    """What transformers' ``generate(inputs_embeds=...)`` returns for the chat prompt as embeddings.

    Attributes:
        prompt_length: tokens in the prompt.
        returned_length: length of ``generate``'s output (new tokens only, since no ``input_ids`` were given).
        returned_ids: the returned ids.
        equals_loop: they equal vecgen's greedy continuation of the same embeddings.
        after_slicing: ``output[0][prompt_length:]`` — what code written for the ``input_ids`` case keeps.
        text_after_slicing: that, decoded.
    """

    prompt_length: int
    returned_length: int
    returned_ids: list[int]
    equals_loop: bool
    after_slicing: list[int]
    text_after_slicing: str


@dataclass
class DiagnoseResult:
    """The table, the ``generate`` check and the verdict."""

    rows: list[DiagnoseRow]
    generate_check: GenerateCheck | None
    ids_equal_embeddings: bool
    verdict: list[str]
    settings: dict[str, Any]


@torch.inference_mode()
def _all_logits(lm: LoadedModel, prompt: Prompt) -> torch.Tensor:
    """``(T, V)`` float32 logits of every position of one prompt (token ids, ``(T, d)`` vectors or segments; no
    cache), through the backend contract (:meth:`~vecgen.backends.contract.Backend.forward_logits`)."""
    with torch.no_grad():
        return lm.backend.forward_logits(build_batch(lm, [prompt]))[0]


def _segments_for(vectors: torch.Tensor, template: str, chat: tuple[list[int], list[int]] | None) -> list[Segment]:
    if template == "plain" or chat is None:
        return [vectors]
    before, after = chat
    return [before, vectors, after]


def _flat_ids(segments: list, vector_ids: list[int]) -> list[int]:
    ids: list[int] = []
    for s in segments:
        ids += vector_ids if isinstance(s, torch.Tensor) else list(s)
    return ids


def check_settings(*, prompt: str, chat_prompt: str, n_vectors: int, mix_noise: float, max_new_tokens: int,
                   seed: int = 0, **_: Any) -> None:
    """Validate the settings of :func:`diagnose_embeds` (before any model is loaded).

    Raises:
        ConfigError: an empty prompt, ``n_vectors < 1``, ``mix_noise`` negative or not finite,
            ``max_new_tokens < 1``, a seed outside ``[0, 2^63 - 1]``.
    """
    if not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"seed={seed}: allowed range is [0, 2^63 - 1]")
    if not math.isfinite(mix_noise):
        raise ConfigError(f"mix_noise={mix_noise}: must be a finite number >= 0")
    if not prompt.strip() or not chat_prompt.strip():
        raise ConfigError("empty prompt: give some text")
    if n_vectors < 1:
        raise ConfigError(f"n_vectors={n_vectors}: must be >= 1")
    if mix_noise < 0:
        raise ConfigError(f"mix_noise={mix_noise}: must be >= 0")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens}: must be >= 1")


def diagnose_embeds(
    lm: LoadedModel,
    *,
    prompt: str = "The capital of France is",
    chat_prompt: str = "What is the capital of France?",
    n_vectors: int = 4,
    mix_noise: float = 0.5,
    max_new_tokens: int = 16,
    seed: int = 0,
    generate_check: bool = True,
    kinds: tuple[str, ...] = INPUT_KINDS,
) -> DiagnoseResult:
    """Build the ids-vs-embeddings table for ``lm``.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel`.
        prompt: plain prompt (its ids, embeddings, concept tokens and noisy embeddings are fed).
        chat_prompt: the user message of the chat rows with ids / embeddings.
        n_vectors: number of noise vectors and of concept tokens (>= 1).
        mix_noise: noise norm relative to the mean token-embedding norm for ``real + noise`` (>= 0).
        max_new_tokens: greedy tokens generated per row (>= 1).
        seed: seed of the noise and of the concept tokens' sampling.
        generate_check: also run transformers' ``generate(inputs_embeds=...)`` on the chat embeddings.
        kinds: the vector inputs to feed besides the ``token ids`` reference rows (default all of
            :data:`INPUT_KINDS`; the ``embeddings`` rows are always included).

    Returns:
        A :class:`DiagnoseResult`; rows for the chat template are present only when the tokenizer has one.

    Raises:
        ConfigError: empty prompts, ``n_vectors < 1``, ``mix_noise < 0``, ``max_new_tokens < 1``, an unknown kind.
        ContextLengthError: ``n_vectors`` plus ``max_new_tokens`` exceed the model's context.
    """
    check_settings(prompt=prompt, chat_prompt=chat_prompt, n_vectors=n_vectors, mix_noise=mix_noise,
                   max_new_tokens=max_new_tokens, seed=seed)
    check_context(lm, [n_vectors], [max_new_tokens], names=["a row of --n-vectors vectors"])  # before allocating
    unknown = set(kinds) - set(INPUT_KINDS)
    if unknown:
        raise ConfigError(f"unknown input kinds {sorted(unknown)}; choose from {', '.join(INPUT_KINDS)}")

    index = embedding_index(lm)
    d = lm.hidden_size
    gen = torch.Generator().manual_seed(int(seed))
    sigma = index.mean_norm / d**0.5
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    stops = lm.stop_token_ids()

    ids = lm.encode(prompt)
    real = lm.embed(torch.tensor([ids]))[0].float().cpu()  # (T, d)
    noise = torch.randn(n_vectors, d, generator=gen) * sigma  # (n, d)
    noisy_real = real + torch.randn(real.shape, generator=gen) * sigma * mix_noise  # (T, d)
    concept = None
    if "concept" in kinds:
        concept = generate(lm, [ids], sampling=SamplingConfig(temperature=1.0, seed=seed),
                           mixing=MixingConfig(rule="soft"), max_new_tokens=n_vectors, stop_ids=[],
                           keep_vectors=True).vectors(0)  # (n, d)

    templates = ["plain"] + (["chat"] if getattr(lm.tokenizer, "chat_template", None) else [])
    chat = chat_segments(lm, "") if "chat" in templates else None
    chat_ids = None
    if "chat" in templates:
        chat_ids = lm.encode(format_prompt(lm.tokenizer, chat_prompt, chat=True))

    rows: list[DiagnoseRow] = []
    gen_check = None
    for template in templates:
        ref_ids = ids if template == "plain" or chat_ids is None else chat_ids
        ref = generate(lm, [ref_ids], sampling=greedy, stop_ids=stops)
        ref_t = describe_ids(lm, "ids", ref.token_ids(0), bool(ref.finished[0]), "")
        rows.append(DiagnoseRow("token ids", template, len(ref_ids), None, "reference",
                                ref_t.token_ids, ref_t.tokens, ref_t.text, ref_t.raw_text, ref_t.stopped,
                                ref_t.empty_reason, id_path_ids=list(ref_ids)))
        # The same ids as embeddings: the id path is the original ids.
        emb = lm.embed(torch.tensor([ref_ids]))  # (1, T, d)
        diff = (_all_logits(lm, list(ref_ids)) - _all_logits(lm, emb[0])).abs().max().item()
        out = generate(lm, [emb[0]], sampling=greedy, stop_ids=stops)
        t = describe_ids(lm, "embeddings", out.token_ids(0), bool(out.finished[0]), "")
        rows.append(DiagnoseRow("embeddings", template, len(ref_ids), diff, "the same token ids", t.token_ids, t.tokens,
                                t.text, t.raw_text, t.stopped, t.empty_reason, same_as_ids=t.token_ids == ref_t.token_ids,
                                id_path_ids=list(ref_ids)))
        if template == "chat" and generate_check:
            gen_check = _generate_check(lm, emb, t.token_ids, max_new_tokens)
        for kind, vectors in (("noise", noise), ("concept", concept), ("real + noise", noisy_real)):
            if kind not in kinds or vectors is None:
                continue
            segments = _segments_for(vectors, template, chat)
            nearest, _ = index.nearest(vectors, 1, "cosine")  # (n, 1)
            id_path = _flat_ids(segments, nearest[:, 0].tolist())
            diff = (_all_logits(lm, id_path) - _all_logits(lm, segments)).abs().max().item()
            out = generate(lm, [segments], sampling=greedy, stop_ids=stops)
            t = describe_ids(lm, kind, out.token_ids(0), bool(out.finished[0]), "")
            rows.append(DiagnoseRow(kind, template, vectors.shape[0], diff, "nearest-token ids (cosine)", t.token_ids,
                                    t.tokens, t.text, t.raw_text, t.stopped, t.empty_reason, id_path_ids=id_path))

    equal = all(r.max_logit_diff == 0.0 for r in rows if r.inputs == "embeddings")
    result = DiagnoseResult(rows, gen_check, equal, [], {
        "prompt": prompt, "chat_prompt": chat_prompt, "n_vectors": n_vectors, "mix_noise": mix_noise,
        "max_new_tokens": max_new_tokens, "seed": seed, "noise_sigma": sigma, "mean_token_norm": index.mean_norm,
    })
    result.verdict = verdict(result)
    return result


def _generate_check(lm: LoadedModel, emb: torch.Tensor, loop_ids: list[int], max_new_tokens: int) -> GenerateCheck:
    """transformers' own ``generate(inputs_embeds=...)`` on the chat embeddings (a transformers model only: the check
    is of transformers' behaviour, so it needs its ``GenerationMixin``)."""
    if not isinstance(lm.model, GenerationMixin):
        raise UnsupportedError("the generate check compares with transformers' generate; use backend transformers")
    mask = torch.ones(emb.shape[:2], dtype=torch.long, device=lm.device)
    with torch.inference_mode():
        out = lm.model.generate(inputs_embeds=emb, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                                pad_token_id=lm.tokenizer.pad_token_id)
    returned = out[0].tolist()
    sliced = returned[emb.shape[1]:]
    return GenerateCheck(emb.shape[1], len(returned), returned, returned == loop_ids, sliced,
                         decode(lm.tokenizer, sliced, skip_special_tokens=True))


def verdict(result: DiagnoseResult) -> list[str]:
    """Plain-language conclusions drawn from the table."""
    lines = []
    emb_rows = [r for r in result.rows if r.inputs == "embeddings"]
    diffs = ", ".join(f"{r.template}: {r.max_logit_diff:g}" for r in emb_rows)
    if result.ids_equal_embeddings:
        lines.append(f"Logits from token ids and from their embeddings are identical (max |Δlogit| {diffs}); the "
                     "model only ever sees embeddings, so it cannot key on token ids.")
    else:
        lines.append(f"Logits from token ids and from their embeddings DIFFER (max |Δlogit| {diffs}); check the "
                     "device/dtype and the model's embedding scaling.")
    same = [r for r in emb_rows if r.same_as_ids]
    if emb_rows and len(same) == len(emb_rows):
        lines.append("Greedy continuations from ids and from embeddings are the same tokens in every template.")
    for r in result.rows:
        if not r.text.strip() and r.token_ids:
            lines.append(f"{r.inputs} ({r.template}): decoded text is empty because {r.empty_reason}; "
                         f"raw ids {r.token_ids[:6]}.")
    g = result.generate_check
    if g is not None:
        lines.append(f"transformers generate(inputs_embeds=…) returned {g.returned_length} ids for a "
                     f"{g.prompt_length}-token prompt: only the new tokens"
                     f"{' (equal to vecgen’s loop)' if g.equals_loop else ''}. Slicing off the prompt length, as "
                     f"for input_ids, keeps {len(g.after_slicing)} ids → {g.text_after_slicing!r}.")
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n")


def diagnose_report(result: DiagnoseResult, model: dict[str, Any]) -> str:
    """The Markdown report: settings, the table, the ``generate`` check and the verdict."""
    s = result.settings
    lines = [
        "# Token ids vs embeddings",
        "",
        f"Model {model.get('name')} ({model.get('family')}, {model.get('dtype')} on {model.get('device')}). "
        f"Plain prompt {s['prompt']!r}; chat user message {s['chat_prompt']!r}; {s['n_vectors']} noise / concept "
        f"vectors; noise σ = {s['noise_sigma']:.4g} per coordinate (mean token norm {s['mean_token_norm']:.4g}); "
        f"real + noise at {s['mix_noise']} × the mean norm; greedy, {s['max_new_tokens']} tokens.",
        "",
        "`max |Δlogit|` compares every position's logits with the *id path*: the same prompt with each vector "
        "replaced by its nearest real token id (for embeddings of real tokens: the original ids).",
        "",
        "| template | inputs | vectors | max abs logit diff vs id path | stopped | raw generated ids | text (special tokens kept) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result.rows:
        diff = "reference" if r.max_logit_diff is None else f"{r.max_logit_diff:.4g}"
        ids = " ".join(map(str, r.token_ids[:10])) + (" …" if len(r.token_ids) > 10 else "")
        lines.append(f"| {r.template} | {r.inputs} | {r.n_vectors} | {diff} | {'yes' if r.stopped else 'no'} | {ids} | "
                     f"`{_md(repr(r.raw_text))}` |")
    lines += ["", "## Verdict", ""] + [f"- {v}" for v in result.verdict] + [""]
    return "\n".join(lines)


def to_records(result: DiagnoseResult) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts."""
    return [dataclasses.asdict(r) for r in result.rows]


__all__ = [
    "INPUT_KINDS",
    "DiagnoseResult",
    "DiagnoseRow",
    "GenerateCheck",
    "check_settings",
    "diagnose_embeds",
    "diagnose_report",
    "to_records",
    "verdict",
]
