"""The ``llamacpp`` backend's registration: a GGUF model run by llama.cpp (:mod:`vecgen.backends.llamacpp`), with
its checks before load (a GGUF model, llama-cpp-python installed, no ``--device-map``), its options (``threads``,
``n_ctx``) and its loader. Registered through the ``vecgen.backends`` entry point (``pyproject.toml``)."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer

from ..backends.llamacpp import INSTALL_HINT, LlamaCppBackend, LlamaCppOptions, LlamaCppUnavailableError
from ..errors import ConfigError, WeightsUnavailableError
from .adapters import adapter_for, count_real_vocab
from .backends import BackendSpec, LoadRequest, register_backend
from .checks import check_model_spec
from .model import LoadedModel
from .packaged import ensure_gguf_extras, ensure_packaged_gguf
from .registry import find_entry

log = logging.getLogger(__name__)


def check(spec: str, source: str, device_map: Any = None) -> None:
    """Whether llama.cpp can run the model ``spec`` (of kind ``source``), without loading anything.

    Raises:
        ConfigError: a model that is not a GGUF file; ``--device-map``.
        WeightsUnavailableError: a registry model whose GGUF parts are not installed.
        LlamaCppUnavailableError: llama-cpp-python is not installed.
    """
    entry = find_entry(spec)
    if source == "hub" and entry is not None and entry.packaged is not None:
        raise WeightsUnavailableError(f"--backend llamacpp runs the GGUF weights of {entry.name}, which are not "
                                      f"installed; install them with: {entry.packaged.install_hint}")
    if source not in ("packaged", "gguf"):
        raise ConfigError(f"--backend llamacpp runs GGUF models (default, qwen2.5-coder-1.5b-instruct, "
                          f"smollm2-135m-instruct, or a local .gguf file); {spec!r} is a {source} model: use "
                          "--backend transformers")
    if device_map is not None:
        raise ConfigError("--device-map does not apply to --backend llamacpp (llama.cpp places the layers itself: "
                          "its GPU builds offload them all)")
    if importlib.util.find_spec("llama_cpp") is None:
        raise LlamaCppUnavailableError(f"--backend llamacpp needs llama-cpp-python; install it with: {INSTALL_HINT}")


def options(values: Mapping[str, Any]) -> LlamaCppOptions:
    """:class:`~vecgen.backends.llamacpp.LlamaCppOptions` from ``threads`` / ``n_ctx``, checked.

    Raises:
        ConfigError: a thread count or context size out of range (named).
    """
    opts = LlamaCppOptions(n_threads=values.get("threads"), n_ctx=values.get("n_ctx"))
    opts.check()
    return opts


def load(request: LoadRequest) -> LoadedModel:
    """A :class:`~vecgen.models.LoadedModel` whose backend is llama.cpp on the GGUF file (no PyTorch model)."""
    start = time.perf_counter()
    spec = request.spec
    source = check_model_spec(spec)
    check(spec, source, request.device_map)
    entry = find_entry(spec)
    gguf = (ensure_packaged_gguf(entry, show_progress=request.show_progress) if entry is not None
            else Path(spec).expanduser())
    extras = ensure_gguf_extras(gguf)
    tokenizer = AutoTokenizer.from_pretrained(str(extras))
    config = AutoConfig.from_pretrained(str(extras))
    embedding = load_file(str(extras / "embedding.safetensors"))["weight"]  # (V_rows, d) float32
    adapter = adapter_for(config)
    backend = LlamaCppBackend(gguf, embedding, embed_scale=adapter.embed_scale(config), options=request.options,
                              context_length=adapter.context_length(config))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    cls = request.cls or LoadedModel
    lm = cls(name=spec, source=source, path=str(gguf), model=None, tokenizer=tokenizer, adapter=adapter,
             n_real_vocab=count_real_vocab(tokenizer, backend.vocab_rows), device=backend.device,
             dtype=backend.dtype, load_seconds=time.perf_counter() - start, backend=backend, config=config)
    log.info("loaded %s on llama.cpp (%d threads, %d positions) in %.1f s", spec, backend.n_threads, backend.n_ctx,
             lm.load_seconds)
    return lm


SPEC = register_backend(BackendSpec(
    "llamacpp", "a GGUF model run by llama.cpp on its quantized weights, about 2.5x faster on a CPU", load=load,
    options=("threads", "n_ctx"), make_options=options, check=check, extra="llamacpp", requires="llama_cpp",
    install_hint="pip install 'vecgen[llamacpp]'", capabilities=frozenset(), placement=False, max_rows=256, weights="gguf",
    families=("qwen2", "qwen3")))
