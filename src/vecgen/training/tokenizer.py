"""A word-level tokenizer made from a task's own vocabulary (tokenizers' ``WordLevel`` model), for models trained from
scratch: one token per word or punctuation mark, the markers of :class:`~vecgen.models.ReasoningFormat` and
``<pad>`` / ``<unk>`` / ``<eos>`` as special tokens. ProsQA needs about 70 tokens; multiplication about 20."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..benchmarks_data import Task
from ..models import ReasoningFormat

#: Special tokens of a word-level tokenizer, in id order (``<pad>`` is 0).
BASE_SPECIALS = ("<pad>", "<unk>", "<eos>")


def task_words(tasks: Iterable[Task], fmt: ReasoningFormat) -> list[str]:
    """Every word of the tasks' questions, steps and answers (and the answer prefix), split the way the word-level
    tokenizer splits (whitespace, then punctuation), sorted."""
    from tokenizers.pre_tokenizers import Punctuation, Sequence as PreSequence, WhitespaceSplit

    split = PreSequence([WhitespaceSplit(), Punctuation(behavior="contiguous")])
    words: set[str] = set()
    for t in tasks:
        for text in (t.question, t.answer, *t.steps, fmt.answer_prefix):
            words.update(w for w, _ in split.pre_tokenize_str(text))
    return sorted(words)


def word_tokenizer(words: Sequence[str], fmt: ReasoningFormat) -> Any:
    """A ``PreTrainedTokenizerFast`` over ``words`` plus :data:`BASE_SPECIALS` and the format's markers (``bot``,
    ``eot``, ``pause``); decoding joins words with spaces.

    Returns:
        The tokenizer (``pad_token`` ``<pad>``, ``eos_token`` ``<eos>``, ``unk_token`` ``<unk>``).
    """
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Punctuation, Sequence as PreSequence, WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    specials = [*BASE_SPECIALS, fmt.bot, fmt.eot, fmt.pause]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = PreSequence([WhitespaceSplit(), Punctuation(behavior="contiguous")])
    core.decoder = decoders.WordPiece(prefix="\x00", cleanup=False)  # joins words with spaces (no word starts with NUL)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>",
                                  additional_special_tokens=[fmt.bot, fmt.eot, fmt.pause])
    return tok


__all__ = ["BASE_SPECIALS", "task_words", "word_tokenizer"]
