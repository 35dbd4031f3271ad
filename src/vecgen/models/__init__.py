"""Model registry, loading, packaged weights, chat templates and family adapters."""

from .adapters import FamilyAdapter, adapter_for, count_real_vocab
from .chat import format_prompt, has_chat_template, render_chat
from .loader import LoadedModel, check_model_spec, check_model_specs, load_model, load_tokenizer
from .registry import DEFAULT_MODEL, MODELS, TOKENIZERS, ModelEntry, find_entry, get_entry

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "TOKENIZERS",
    "FamilyAdapter",
    "LoadedModel",
    "ModelEntry",
    "adapter_for",
    "check_model_spec",
    "check_model_specs",
    "count_real_vocab",
    "find_entry",
    "format_prompt",
    "get_entry",
    "has_chat_template",
    "load_model",
    "load_tokenizer",
    "render_chat",
]
