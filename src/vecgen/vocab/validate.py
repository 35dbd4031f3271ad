"""Checks that an English-only token set is what it claims to be.

Two checks, both reported by ``vecgen vocab english``:

**Round trip of English texts.** For each text: the share of its ordinary tokens (``tokenizer.encode``)
that lie in the set, and whether the text can be written *with set tokens only*: a shortest
segmentation of the text's UTF-8 bytes into set tokens (dynamic programming over token byte strings)
whose ``tokenizer.decode`` must reproduce the text exactly. A text with a character no set token
contains (a comma under ``strict``, a curly quote under ``text``) is not reproducible; the first such
character is reported.

**Agreement with English word lists.** With each installed list (Debian ``wamerican`` at
``/usr/share/dict/american-english``; the ``wordfreq`` package's English list, top 50,000 alphabetic
words): the share of set tokens made of letters that are dictionary words after stripping the leading
space and lower-casing, and the share of the most common English words (``wordfreq``'s top N) that
encode to a single token of the set, written with a leading space (``" house"``, the form inside a
sentence) and without (``"house"``), lower-case or capitalised (``" June"``). ``wordfreq`` is built from web text and contains word pieces
such as ``ing`` and ``tion``, so its agreement figure is an upper bound; ``wamerican`` is stricter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..io import check_text, parse_json, read_user_text
from .classify import token_bytes, token_strings

WAMERICAN = Path("/usr/share/dict/american-english")
WORDFREQ_DICTIONARY_SIZE = 50_000

#: Built-in English sample texts (written for vecgen; plain ASCII prose, numbers and punctuation).
SAMPLE_TEXTS: tuple[str, ...] = (
    "The capital of France is Paris. It lies on the river Seine and has about two million inhabitants.",
    "She bought three apples and five oranges at the market, then walked home along the quiet street.",
    "If a train travels 60 miles in 1.5 hours, its average speed is 40 miles per hour.",
    "Language models predict the next token from the tokens before it; sampling picks one of the likely "
    "tokens at each step.",
    "Please answer the question below. Think step by step, and give the final answer as a number.",
    "The committee met on Tuesday to discuss the budget for next year. Most members agreed with the plan, "
    "although two of them asked for more time to read the report.",
    "Water boils at 100 degrees Celsius at sea level, but at lower temperatures on high mountains.",
    "\"Where are you going?\" asked the old man. \"To the library,\" she said, \"I have a book to return.\"",
)


@dataclass
class RoundTrip:
    """Round-trip result of one text under one token set."""

    text: str
    tokens: int
    tokens_in_set: int
    reproducible: bool
    set_tokens: int | None = None
    first_missing: str | None = None

    @property
    def share_in_set(self) -> float:
        return self.tokens_in_set / self.tokens if self.tokens else 0.0


@dataclass
class _SetPieces:
    pieces: dict[bytes, int]
    prefixes: set[bytes]
    max_len: int


def _set_pieces(tokenizer: Any, ids: Sequence[int]) -> _SetPieces:
    strings = tokenizer.convert_ids_to_tokens(list(ids))
    pieces: dict[bytes, int] = {}
    for i, s in zip(ids, strings):
        data = token_bytes(s) if isinstance(s, str) else None
        if data:
            pieces.setdefault(data, int(i))
    prefixes = {p[:k] for p in pieces for k in range(1, len(p) + 1)}
    return _SetPieces(pieces, prefixes, max((len(p) for p in pieces), default=0))


def encode_with_set(text: str, pieces: _SetPieces) -> list[int] | None:
    """A shortest segmentation of ``text``'s UTF-8 bytes into set tokens, or None if there is none."""
    data = text.encode("utf-8")
    n = len(data)
    inf = n + 1
    best = [inf] * (n + 1)
    back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
    best[0] = 0
    for i in range(n):
        if best[i] == inf:
            continue
        for j in range(i + 1, min(n, i + pieces.max_len) + 1):
            piece = data[i:j]
            if piece not in pieces.prefixes:
                break
            tok = pieces.pieces.get(piece)
            if tok is not None and best[i] + 1 < best[j]:
                best[j] = best[i] + 1
                back[j] = (i, tok)
    if best[n] == inf:
        return None
    out = []
    j = n
    while j > 0:
        i, tok = back[j]
        out.append(tok)
        j = i
    return out[::-1]


def _first_missing_char(text: str, pieces: _SetPieces) -> str | None:
    for ch in text:
        if ch.encode("utf-8") not in pieces.prefixes:
            return ch
    return None


def round_trip(tokenizer: Any, texts: Sequence[str], mask: torch.Tensor) -> list[RoundTrip]:
    """Round-trip every text under the set ``mask`` (``(V,)`` bool).

    ``reproducible`` is True when a set-only segmentation exists and ``tokenizer.decode`` of it equals
    the text exactly.
    """
    ids = mask.nonzero().flatten().tolist()
    pieces = _set_pieces(tokenizer, ids)
    allowed = set(ids)
    out = []
    for text in texts:
        enc = tokenizer.encode(text, add_special_tokens=False)
        seg = encode_with_set(text, pieces)
        ok = seg is not None and tokenizer.decode(seg, clean_up_tokenization_spaces=False) == text
        missing = None if seg is not None else _first_missing_char(text, pieces)
        out.append(RoundTrip(text, len(enc), sum(t in allowed for t in enc), ok,
                             None if seg is None else len(seg), missing))
    return out


def summarize_round_trip(results: Sequence[RoundTrip]) -> dict[str, Any]:
    """Totals: texts, reproducible texts, token share in set, token overhead of set-only encodings."""
    tokens = sum(r.tokens for r in results)
    inside = sum(r.tokens_in_set for r in results)
    ok = [r for r in results if r.reproducible]
    std = sum(r.tokens for r in ok)
    constrained = sum(r.set_tokens or 0 for r in ok)
    missing: dict[str, int] = {}
    for r in results:
        if r.first_missing is not None:
            missing[r.first_missing] = missing.get(r.first_missing, 0) + 1
    return {
        "texts": len(results),
        "tokens": tokens,
        "tokens_in_set": inside,
        "share_tokens_in_set": inside / tokens if tokens else 0.0,
        "texts_fully_in_set": sum(r.tokens_in_set == r.tokens for r in results),
        "texts_reproducible": len(ok),
        "share_texts_reproducible": len(ok) / len(results) if results else 0.0,
        "set_only_tokens_per_ordinary_token": constrained / std if std else None,
        "first_missing_characters": dict(sorted(missing.items(), key=lambda kv: -kv[1])[:10]),
    }


def available_word_lists(wamerican: Path | None = WAMERICAN) -> dict[str, set[str]]:
    """Installed English word lists, lower-cased ASCII alphabetic words: ``{"wamerican": ..., "wordfreq": ...}``."""
    lists: dict[str, set[str]] = {}
    if wamerican is not None and Path(wamerican).is_file():
        words = Path(wamerican).read_text(encoding="utf-8", errors="ignore").split()
        lists["wamerican"] = {w.lower() for w in words if w.isascii() and w.isalpha()}
    common = common_words(WORDFREQ_DICTIONARY_SIZE)
    if common:
        lists["wordfreq"] = set(common)
    return lists


def common_words(n: int) -> list[str]:
    """The ``n`` most frequent ASCII alphabetic English words of ``wordfreq`` (empty if not installed)."""
    try:
        import wordfreq  # lazy: loads its word lists on import, needed by the validation only
    except ImportError:
        return []
    words = [w for w in wordfreq.top_n_list("en", int(n * 1.2) + 100) if w.isascii() and w.isalpha()]
    return words[:n]


def word_list_agreement(
    tokenizer: Any,
    mask: torch.Tensor,
    word_lists: dict[str, set[str]],
    common: Sequence[str],
) -> dict[str, Any]:
    """Agreement of the set ``mask`` ``(V,)`` with English word lists (see the module docstring).

    Returns:
        ``{"lists": {name: {"letter_tokens", "dictionary_words", "share", "share_with_space",
        "share_without_space"}}, "common_words": {"n", "single_token_with_space",
        "single_token_without_space", "share_with_space", "share_without_space", "examples_split"}}``
    """
    ids = mask.nonzero().flatten().tolist()
    strings = token_strings(tokenizer, int(mask.numel()))
    words = []
    for i in ids:
        data = token_bytes(strings[i])
        text = data.decode("utf-8", errors="replace") if data else ""
        core = text[1:] if text.startswith(" ") else text
        if core.isascii() and core.isalpha():
            words.append((text.startswith(" "), core.lower()))
    lists = {}
    for name, dictionary in word_lists.items():
        with_space = [w for s, w in words if s]
        without = [w for s, w in words if not s]
        hit_s = sum(w in dictionary for w in with_space)
        hit_n = sum(w in dictionary for w in without)
        lists[name] = {
            "dictionary_size": len(dictionary),
            "letter_tokens": len(words),
            "dictionary_words": hit_s + hit_n,
            "share": (hit_s + hit_n) / len(words) if words else 0.0,
            "share_with_space": hit_s / len(with_space) if with_space else 0.0,
            "share_without_space": hit_n / len(without) if without else 0.0,
        }
    allowed = set(ids)
    single_s = single_n = 0
    split: list[str] = []

    def single(text: str) -> bool:
        enc = tokenizer.encode(text, add_special_tokens=False)
        return len(enc) == 1 and enc[0] in allowed

    for w in common:
        forms = (w, w.capitalize()) if w != w.capitalize() else (w,)
        ok_s = any(single(" " + f) for f in forms)
        single_s += ok_s
        single_n += any(single(f) for f in forms)
        if not ok_s and len(split) < 10:
            split.append(w)
    n = len(common)
    return {
        "lists": lists,
        "common_words": {
            "n": n,
            "single_token_with_space": single_s,
            "single_token_without_space": single_n,
            "share_with_space": single_s / n if n else 0.0,
            "share_without_space": single_n / n if n else 0.0,
            "examples_not_single_with_space": split,
        },
    }


def read_texts(path: Path, limit: int | None = None) -> list[str]:
    """English texts from a file: ``.jsonl`` (field ``text``, ``question`` or ``prompt`` per line) or plain
    text (one text per non-empty line).

    Raises:
        ConfigError: unreadable file, or no texts in it.
    """
    raw = read_user_text(path, "--texts file")
    texts: list[str] = []
    for n, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if str(path).endswith(".jsonl"):
            obj = parse_json(line, f"{path}:{n}")
            if not isinstance(obj, dict):
                raise ConfigError(f"{path}:{n}: expected a JSON object with 'text', 'question' or 'prompt'")
            text = next((obj[k] for k in ("text", "question", "prompt") if isinstance(obj.get(k), str)), None)
            if text is None:
                raise ConfigError(f"{path}:{n}: no 'text', 'question' or 'prompt' field")
            texts.append(text)
        else:
            texts.append(check_text(line, f"{path}:{n}"))
        if limit is not None and len(texts) >= limit:
            break
    if not texts:
        raise ConfigError(f"{path} holds no texts")
    return texts
