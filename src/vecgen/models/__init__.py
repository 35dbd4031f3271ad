"""Model registry, loading, packaged weights, chat templates and family adapters."""

from .adapters import FamilyAdapter, adapter_for, count_real_vocab
from .chat import decode, format_prompt, has_chat_template, render_chat
from .backends import BackendSpec, LoadRequest, backend_names, get_backend, register_backend
from .checks import check_backend, check_model_spec, check_model_specs
from .loader import load_model, load_tokenizer
from .model import LoadedModel
from .reasoning import FORMAT_FILE, TRAINED_METHODS, ReasoningFormat, trained_model_folder
from .registry import (
    DEFAULT_MODEL,
    MODELS,
    TOKENIZERS,
    ModelEntry,
    find_entry,
    get_entry,
)

__all__ = [
    "DEFAULT_MODEL",
    "FORMAT_FILE",
    "MODELS",
    "TOKENIZERS",
    "BackendSpec",
    "FamilyAdapter",
    "LoadRequest",
    "LoadedModel",
    "ModelEntry",
    "ReasoningFormat",
    "TRAINED_METHODS",
    "adapter_for",
    "backend_names",
    "check_backend",
    "check_model_spec",
    "check_model_specs",
    "count_real_vocab",
    "decode",
    "find_entry",
    "format_prompt",
    "get_backend",
    "get_entry",
    "has_chat_template",
    "load_model",
    "load_tokenizer",
    "register_backend",
    "trained_model_folder",
    "render_chat",
]
