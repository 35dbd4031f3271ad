"""English-only vocabulary on the real default model (Qwen2.5-Coder-0.5B-Instruct)."""

import pytest
import regex
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import generate
from vecgen.models import format_prompt, load_tokenizer
from vecgen.vocab import classify_tokenizer, english_token_mask

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_default_tokenizer_counts_padding_rows():
    tok = load_tokenizer("default")  # tokenizer only: read from the cache folder, no weights
    cls = classify_tokenizer(tok, cache=False)
    counts = cls.counts()
    assert cls.n_rows == 151_936 and cls.n_real == 151_665
    assert counts["padding"] == 271 and counts["special"] == 22
    assert sum(counts.values()) == 151_936
    # Qwen2.5 and Qwen3 share the byte-level vocabulary: the same strict set (docs/vocabulary.md figures).
    assert counts["english"] == 68_923


def test_english_only_keeps_a_translation_in_english(default_lm):
    lm = default_lm
    text = format_prompt(lm.tokenizer, "Translate into Russian: The weather is nice today.", chat=True)
    ids = lm.encode(text)
    sampling = SamplingConfig(max_new_tokens=24)
    free = generate(lm, [ids], sampling=sampling)
    assert regex.search(r"\p{Cyrillic}", free.text(0, lm.tokenizer))  # the model answers in Russian
    allowed = english_token_mask(lm, "text")
    res = generate(lm, [ids], sampling=sampling, allowed=allowed)
    out = res.text(0, lm.tokenizer)
    assert out.strip() and out.isascii()
    assert bool(res.finished[0])  # <|im_end|> stays allowed, so the turn ends
    assert bool(allowed[torch.tensor(res.token_ids(0))].all())
