"""Vocabulary analysis: token classes of byte-level BPE tokenizers and English-only token sets.

Typical use while decoding::

    from vecgen.vocab import english_token_mask
    allowed = english_token_mask(lm, policy="text")       # (V_rows,) bool; stop tokens stay allowed
    out = generate(lm, [ids], sampling=..., mixing=..., allowed=allowed)

The same mask restricts concept-token mixing (weights renormalised over allowed tokens), and
:class:`AllowedTokensLogitsProcessor` applies it inside transformers' ``model.generate``.
"""

from .classify import (
    CLASS_DESCRIPTIONS,
    CLASS_LIST,
    Policy,
    TokenClass,
    VocabClassification,
    bytes_to_unicode,
    classify_bytes,
    classify_text,
    classify_tokenizer,
    decoded_texts,
    parse_policy,
    token_bytes,
)
from .mask import (
    AllowedTokensLogitsProcessor,
    classify_model_vocab,
    english_logits_processor,
    english_only_mask,
    english_token_mask,
    token_set_mask,
)

__all__ = [
    "CLASS_DESCRIPTIONS",
    "CLASS_LIST",
    "AllowedTokensLogitsProcessor",
    "Policy",
    "TokenClass",
    "VocabClassification",
    "bytes_to_unicode",
    "classify_bytes",
    "classify_model_vocab",
    "classify_text",
    "classify_tokenizer",
    "decoded_texts",
    "english_logits_processor",
    "english_only_mask",
    "english_token_mask",
    "parse_policy",
    "token_bytes",
    "token_set_mask",
]
