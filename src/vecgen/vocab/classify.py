"""Classification of every token of a byte-level BPE tokenizer (Qwen2.5, Qwen3, GPT-2).

How a token is turned into text
-------------------------------
Byte-level BPE vocabularies (GPT-2, Radford et al. 2019, ``encoder.py``; Qwen2.5 and Qwen3 reuse the
scheme) store each token as a string over a 256-character alphabet in which every byte has one
printable stand-in (``Ġ`` = the space byte 0x20, ``Ċ`` = newline 0x0A, ...). :func:`byte_decoder`
inverts that table, so each regular token becomes its exact **bytes**; the bytes are then decoded as
UTF-8 *strictly*. A token whose bytes are not complete UTF-8 (one byte of a 3-byte Chinese character,
say) is an **incomplete UTF-8 byte fragment** and never shows up as ``U+FFFD`` text.

Classes (first matching rule wins)
----------------------------------
=================  ===========================================================================
``padding``        embedding row ``>= n_real`` (Qwen's 151,936 rows hold 151,665 or 151,669 real
                   tokens; GGUF-built tokenizers name the rest ``[PADnnnnnn]``)
``special``        an added token (``<|im_end|>``, ``<|endoftext|>``, ``<think>``, ``<tool_call>``...),
                   special or not; their text is not byte-encoded
``byte_fragment``  bytes that are not complete UTF-8 (``\\xe4\\xbd``, ``" \\xd0"``)
``english``        ``^ ?[A-Za-z]+$``: ASCII letters only, with at most one leading space (word or word
                   piece: ``" the"``, ``"ing"``, ``"Paris"``)
``number``         ``^ ?[0-9]+$``: ASCII digits, optional leading space
``punctuation``    only Unicode punctuation (``\\p{P}``) and white space (``\\p{White_Space}``):
                   ``"."``, ``"\\n\\n"``, ``"  "``, ``"，"``, ``"。"`` (not necessarily ASCII)
``cjk``            contains a Han, Hiragana, Katakana, Hangul or Bopomofo character
``cyrillic``       contains a Cyrillic letter (``"ариж"``)
``other_script``   contains a letter of another script (Greek, Arabic, Hebrew, Devanagari, Thai...)
``latin_other``    letters are Latin but not all ASCII (``"é"``, ``" für"``, ``"ção"``)
``code_symbol``    everything else: ASCII letters mixed with digits or punctuation (``"'s"``,
                   ``"_id"``, ``"();"``, ``"x2"``), symbols (``"+="``, ``"$"``, ``"→"``, emoji),
                   control characters
=================  ===========================================================================

Scripts come from the ``regex`` package's Unicode properties (``\\p{Han}``, ``\\p{Cyrillic}``,
``\\p{Latin}``...), not hand-written code-point ranges. Combining marks (script ``Inherited``) and
``Common`` characters do not decide a script.

Policies (which tokens form the English-only set)
-------------------------------------------------
``strict``
    the ``english`` class: ASCII letters only, optional leading space.
``text``
    every regular token whose whole text is ASCII letters, digits, ASCII punctuation (the 32 printable
    non-alphanumeric ASCII characters, ``string.punctuation``) and the white space characters space,
    ``\\t``, ``\\n``, ``\\r``; that is ``english`` + ``number`` + the all-ASCII members of ``punctuation``
    and ``code_symbol``. ``"，"`` is punctuation but not in the ``text`` set.

Neither set contains special tokens; :func:`vecgen.vocab.english_token_mask` adds the end-of-turn / eos
tokens back for decoding, or generation could never stop.

Speed: the 151,669 tokens of Qwen3 are classified in about a second; results for a tokenizer are
cached under ``<vecgen cache>/vocab/`` keyed by a hash of its tokens.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

import regex
import torch

from ..errors import ConfigError, UnsupportedModelError
from ..io import atomic_torch_save
from ..models.adapters import count_real_vocab
from ..paths import cache_dir

log = logging.getLogger(__name__)

#: Bump when the rules change, so cached classifications are recomputed.
CLASSIFIER_VERSION = 1


class TokenClass(str, Enum):
    """Token classes, in the order of the statistics tables."""

    english = "english"
    number = "number"
    punctuation = "punctuation"
    code_symbol = "code_symbol"
    latin_other = "latin_other"
    cjk = "cjk"
    cyrillic = "cyrillic"
    other_script = "other_script"
    byte_fragment = "byte_fragment"
    special = "special"
    padding = "padding"


#: One-line descriptions of the classes (used in reports).
CLASS_DESCRIPTIONS: dict[TokenClass, str] = {
    TokenClass.english: "English word or word piece: ASCII letters, optional leading space",
    TokenClass.number: "ASCII digits, optional leading space",
    TokenClass.punctuation: "punctuation and white space only (any script: '.', '\\n', '，')",
    TokenClass.code_symbol: "code / symbol: mixed ASCII (\"'s\", '();', '_id'), symbols, emoji, control chars",
    TokenClass.latin_other: "Latin letters beyond ASCII ('é', ' für')",
    TokenClass.cjk: "CJK: Han, Hiragana, Katakana, Hangul, Bopomofo",
    TokenClass.cyrillic: "Cyrillic",
    TokenClass.other_script: "other scripts (Greek, Arabic, Hebrew, Devanagari, Thai, ...)",
    TokenClass.byte_fragment: "incomplete UTF-8 byte fragment",
    TokenClass.special: "special / added token (<|im_end|>, <think>, ...)",
    TokenClass.padding: "padding row (not a real token)",
}

CLASS_LIST: tuple[TokenClass, ...] = tuple(TokenClass)
_CODE = {c: i for i, c in enumerate(CLASS_LIST)}


class Policy(str, Enum):
    """Which tokens count as English (see the module docstring)."""

    strict = "strict"
    text = "text"


_ENGLISH = regex.compile(r"^ ?[A-Za-z]+$")
_NUMBER = regex.compile(r"^ ?[0-9]+$")
_PUNCT_WS = regex.compile(r"^[\p{P}\p{White_Space}]+$")
_ASCII_TEXT = regex.compile(r"^[\t\n\r\x20-\x7e]+$")
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}]")
_CYRILLIC = regex.compile(r"\p{Cyrillic}")
_OTHER_LETTER = regex.compile(r"(?V1)[[\p{L}\p{M}]--[\p{Latin}\p{Inherited}\p{Common}]]")
_NON_ASCII_LATIN = regex.compile(r"(?V1)[\p{Latin}--[A-Za-z]]")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte → printable character table (``encoder.py`` of openai/gpt-2; the same table as
    ``transformers.convert_slow_tokenizer.bytes_to_unicode``): printable Latin-1 bytes map to
    themselves, the other 68 bytes to ``chr(256 + n)``."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """The inverse table: printable stand-in character → byte."""
    return {c: b for b, c in bytes_to_unicode().items()}


def token_bytes(token: str) -> bytes | None:
    """The bytes of one byte-level BPE token string (``"Ġthe"`` → ``b" the"``); None if ``token``
    has characters outside the byte alphabet (not a byte-level token)."""
    dec = byte_decoder()
    try:
        return bytes(dec[c] for c in token)
    except KeyError:
        return None


def classify_bytes(data: bytes) -> TokenClass:
    """Class of a regular token from its bytes (rules in the module docstring)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return TokenClass.byte_fragment
    return classify_text(text)


def classify_text(text: str) -> TokenClass:
    """Class of a regular token's complete text (no padding / special / fragment checks)."""
    if _ENGLISH.match(text):
        return TokenClass.english
    if _NUMBER.match(text):
        return TokenClass.number
    if _PUNCT_WS.match(text):
        return TokenClass.punctuation
    if _CJK.search(text):
        return TokenClass.cjk
    if _CYRILLIC.search(text):
        return TokenClass.cyrillic
    if _OTHER_LETTER.search(text):
        return TokenClass.other_script
    if _NON_ASCII_LATIN.search(text):
        return TokenClass.latin_other
    return TokenClass.code_symbol


def is_ascii_text(text: str) -> bool:
    """True when ``text`` is only ASCII letters, digits, punctuation, space, tab, newline, CR."""
    return bool(_ASCII_TEXT.match(text))


def display_text(data: bytes) -> str:
    """Printable form of a token's bytes: the UTF-8 text, with undecodable bytes as ``\\xNN``."""
    return data.decode("utf-8", errors="backslashreplace")


@dataclass
class VocabClassification:
    """The class of every embedding row of a tokenizer.

    Attributes:
        n_rows: rows classified (``len(tokenizer)``, or the model's embedding rows).
        n_real: real tokens; rows ``>= n_real`` are ``padding``.
        codes: ``(n_rows,)`` uint8, index into :data:`CLASS_LIST`.
        ascii_text: ``(n_rows,)`` bool, regular tokens whose text is ASCII text (the ``text`` policy).
        key: hash of the tokenizer's tokens and these settings (the cache key).
        from_cache: True when read from the cache instead of computed.
    """

    n_rows: int
    n_real: int
    codes: torch.Tensor
    ascii_text: torch.Tensor
    key: str
    from_cache: bool = False

    def classes(self) -> list[TokenClass]:
        """The class of each row."""
        return [CLASS_LIST[c] for c in self.codes.tolist()]

    def class_of(self, token_id: int) -> TokenClass:
        return CLASS_LIST[int(self.codes[token_id])]

    def mask(self, policy: Policy | str = Policy.text) -> torch.Tensor:
        """``(n_rows,)`` bool: tokens of the English-only set under ``policy`` (special tokens excluded).

        Raises:
            ConfigError: unknown policy.
        """
        policy = parse_policy(policy)
        if policy is Policy.strict:
            return self.codes == _CODE[TokenClass.english]
        return self.ascii_text.clone()

    def ids(self, policy: Policy | str = Policy.text) -> list[int]:
        """Token ids of the set under ``policy``, ascending."""
        return self.mask(policy).nonzero().flatten().tolist()

    def counts(self) -> dict[str, int]:
        """Tokens per class (every class listed; they sum to ``n_rows``)."""
        counts = torch.bincount(self.codes.long(), minlength=len(CLASS_LIST)).tolist()
        return {c.value: int(n) for c, n in zip(CLASS_LIST, counts)}


def parse_policy(policy: Policy | str) -> Policy:
    """``"strict"`` / ``"text"`` → :class:`Policy`.

    Raises:
        ConfigError: any other value.
    """
    if isinstance(policy, Policy):
        return policy
    try:
        return Policy(str(policy).strip().lower())
    except ValueError:
        raise ConfigError(f"unknown vocabulary policy {policy!r}; choose one of: strict, text") from None


def token_strings(tokenizer: Any, n: int) -> list[str]:
    """The raw vocabulary strings of ids ``0..n-1`` (``Ġ``-strings for byte-level BPE); ids the
    tokenizer does not know give ``""``."""
    toks = tokenizer.convert_ids_to_tokens(list(range(n)))
    return [t if isinstance(t, str) else "" for t in toks]


def added_token_ids(tokenizer: Any) -> set[int]:
    """Ids of added tokens (special or not), whose text is not byte-encoded."""
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return {int(i) for i in decoder}


def _key(strings: list[str], added: set[int], n_rows: int, n_real: int) -> str:
    h = hashlib.sha256(f"v{CLASSIFIER_VERSION}:{n_rows}:{n_real}:".encode())
    h.update(",".join(map(str, sorted(added))).encode())
    h.update(b"\0")
    h.update("\0".join(strings).encode("utf-8", errors="surrogatepass"))
    return h.hexdigest()[:24]


def _cache_path(key: str):
    return cache_dir() / "vocab" / f"{key}.pt"


def classify_tokenizer(tokenizer: Any, n_rows: int | None = None, *, cache: bool = True) -> VocabClassification:
    """Classify every row of a byte-level BPE tokenizer.

    Args:
        tokenizer: a transformers tokenizer (Qwen2.5, Qwen3, GPT-2 or another byte-level BPE).
        n_rows: rows to classify (a model's embedding rows); default ``len(tokenizer)``. Rows
            beyond the real vocabulary (:func:`vecgen.models.count_real_vocab`) are ``padding``.
        cache: read/write the result under ``<vecgen cache>/vocab/<key>.pt``.

    Returns:
        A :class:`VocabClassification` whose counts sum to ``n_rows``.

    Raises:
        UnsupportedModelError: the tokenizer is not byte-level BPE (more than 1% of its regular tokens
            use characters outside the 256-character byte alphabet, e.g. SentencePiece ``▁`` pieces).
    """
    rows = int(n_rows if n_rows is not None else len(tokenizer))
    n_real = count_real_vocab(tokenizer, rows)
    strings = token_strings(tokenizer, n_real)
    added = added_token_ids(tokenizer)
    key = _key(strings, added, rows, n_real)
    if cache:
        path = _cache_path(key)
        if path.is_file():
            try:
                data = torch.load(path, weights_only=True)
                return VocabClassification(rows, n_real, data["codes"], data["ascii_text"], key, from_cache=True)
            except Exception as exc:  # noqa: BLE001 - a corrupt cache entry is recomputed
                log.warning("ignoring unreadable vocabulary cache %s (%s)", path, exc)
    codes = torch.full((rows,), _CODE[TokenClass.padding], dtype=torch.uint8)
    ascii_text = torch.zeros(rows, dtype=torch.bool)
    code_list = [_CODE[TokenClass.special]] * n_real
    ascii_list = [False] * n_real
    not_byte_level = 0
    regular = 0
    for i, s in enumerate(strings):
        if i in added:
            continue
        regular += 1
        data = token_bytes(s)
        if data is None or not s:
            not_byte_level += 1
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            code_list[i] = _CODE[TokenClass.byte_fragment]
            continue
        code_list[i] = _CODE[classify_text(text)]
        ascii_list[i] = is_ascii_text(text)
    if regular and not_byte_level > 0.01 * regular:
        raise UnsupportedModelError(
            f"{not_byte_level:,} of {regular:,} regular tokens are not byte-level BPE strings; vecgen vocab handles "
            "byte-level BPE tokenizers (Qwen2.5, Qwen3, GPT-2, SmolLM2)"
        )
    if not_byte_level:
        log.info("%d regular tokens outside the byte alphabet were classified as special", not_byte_level)
    codes[:n_real] = torch.tensor(code_list, dtype=torch.uint8)
    ascii_text[:n_real] = torch.tensor(ascii_list, dtype=torch.bool)
    result = VocabClassification(rows, n_real, codes, ascii_text, key)
    if cache:
        try:
            atomic_torch_save({"codes": codes, "ascii_text": ascii_text}, _cache_path(key))
        except OSError as exc:  # a read-only cache only costs time
            log.warning("could not cache the vocabulary classification: %s", exc)
    return result


def decoded_texts(tokenizer: Any, n_real: int, *, surrogates: bool = False) -> list[str]:
    """Text of ids ``0..n_real-1``: byte-level tokens decoded, added tokens as their content.

    Undecodable bytes of fragments appear as ``\\xNN`` (backslash, x, two hex digits); with
    ``surrogates=True`` as lone surrogates ``U+DC80..U+DCFF`` instead (Python's ``surrogateescape``),
    which keeps them distinguishable from a literal backslash (see :func:`escape_tsv`).
    """
    strings = token_strings(tokenizer, n_real)
    added = added_token_ids(tokenizer)
    out = []
    for i, s in enumerate(strings):
        data = None if i in added else token_bytes(s)
        if data is None:
            out.append(s)
        else:
            out.append(data.decode("utf-8", errors="surrogateescape") if surrogates else display_text(data))
    return out


def escape_tsv(text: str) -> str:
    """One-line, tab-free form of a token text: ``\\`` → ``\\\\``, tab / newline / CR → ``\\t`` ``\\n``
    ``\\r``, other control and line-separator characters → ``\\uNNNN``, surrogate-escaped bytes (see
    :func:`decoded_texts`) → ``\\xNN``. Everything else, leading spaces included, is kept."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x20 or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029) or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


_SIMPLE_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
