"""Model registry, loading, packaged weights, chat templates and family adapters."""

from .adapters import FamilyAdapter, adapter_for, count_real_vocab
from .chat import decode, format_prompt, has_chat_template, render_chat
from .checks import BACKENDS, check_backend, check_model_spec, check_model_specs
from .loader import load_model, load_tokenizer, register_model_swap
from .model import LoadedModel
from .registry import (
    DEFAULT_MODEL,
    MODELS,
    TOKENIZERS,
    ModelEntry,
    find_entry,
    get_entry,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "MODELS",
    "TOKENIZERS",
    "FamilyAdapter",
    "LoadedModel",
    "ModelEntry",
    "adapter_for",
    "check_backend",
    "check_model_spec",
    "check_model_specs",
    "count_real_vocab",
    "decode",
    "find_entry",
    "format_prompt",
    "get_entry",
    "has_chat_template",
    "load_model",
    "load_tokenizer",
    "register_model_swap",
    "render_chat",
]
