"""The model a training run starts from: a small GPT-2 built from a config with a word-level tokenizer of the data
(:func:`scratch_model`), or any Hugging Face causal LM with the markers added to its tokenizer (:func:`base_model`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..benchmarks_data import Task
from ..errors import ConfigError
from ..models import ReasoningFormat
from .tokenizer import task_words, word_tokenizer

#: Context positions of a scratch model beyond the longest training or dev sequence.
POSITION_HEADROOM = 64


def scratch_model(tasks: Sequence[Task], fmt: ReasoningFormat, *, layers: int, hidden: int, heads: int,
                  max_length: int, seed: int) -> tuple[Any, Any]:
    """A GPT-2 (``GPT2LMHeadModel``, no dropout, tied embeddings) and a word-level tokenizer over ``tasks``' words,
    initialised from ``seed``.

    Args:
        max_length: the longest sequence (tokens) the model must hold; ``n_positions`` adds
            :data:`POSITION_HEADROOM`.

    Returns:
        ``(model, tokenizer)``, the model float32 in train mode.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = word_tokenizer(task_words(tasks, fmt), fmt)
    config = GPT2Config(vocab_size=len(tok), n_positions=max_length + POSITION_HEADROOM, n_embd=hidden,
                        n_layer=layers, n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model.train(), tok


def add_markers(model: Any, tokenizer: Any, fmt: ReasoningFormat) -> int:
    """Add ``fmt``'s markers to a pretrained model's tokenizer as special tokens (rows initialised to the mean input
    embedding, COCONUT-style: its markers start from an existing embedding). Returns how many were added.

    Raises:
        ConfigError: the embedding cannot take new rows (a model without a resizable input embedding).
    """
    markers = [t for t in (fmt.bot, fmt.eot, fmt.pause) if t not in tokenizer.get_vocab()]
    if not markers:
        return 0
    tokenizer.add_special_tokens({"additional_special_tokens": markers})
    emb = model.get_input_embeddings()
    rows = emb.weight.shape[0]
    if len(tokenizer) > rows:
        try:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # rows set below
        except (NotImplementedError, AttributeError, TypeError) as exc:
            raise ConfigError(f"the model's tokenizer has no room for the markers {markers} and its embedding cannot "
                              f"grow ({type(exc).__name__}); train a model whose input embedding transformers can "
                              "resize", param="model") from None
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        mean = weight[: min(rows, len(tokenizer) - len(markers))].mean(0)
        for t in markers:
            weight[tokenizer.convert_tokens_to_ids(t)] = mean
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return len(markers)


__all__ = ["POSITION_HEADROOM", "add_markers", "scratch_model"]
