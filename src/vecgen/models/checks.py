"""Checks of what a model spec names, without loading or converting anything: every command runs them for every
model before it loads the first, so a bad second model is reported before minutes of work on the first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..devices import parse_device_map, parse_max_memory, resolve_device, resolve_dtype
from ..errors import ModelNotFoundError
from .backends import get_backend
from .files import check_gguf_file, check_model_folder
from .reasoning import trained_model_folder
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
    path = trained_model_folder(path) or path
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


def check_backend(backend: str, spec: str, source: str, *, device_map: Any = None) -> None:
    """Whether ``backend`` can run the model ``spec`` (of kind ``source``, see :func:`check_model_spec`), without
    loading anything: the registered backend's own check (:attr:`~vecgen.models.backends.BackendSpec.check`).

    Raises:
        ConfigError: an unknown backend; a model or a ``--device-map`` the backend cannot run.
        VecgenError: the backend's own refusal (weights not installed, its package missing: the install hint named).
    """
    check = get_backend(backend).check
    if check is not None:
        check(spec, source, device_map)


def check_model_specs(specs: list[str], *, device: str | None = None, dtype: str | None = None,
                      device_map: str | None = None, max_memory: str | None = None,
                      backend: str = "auto") -> None:
    """:func:`check_model_spec` for every spec, and the device, dtype, device map, memory limits and backend, before
    any model is loaded.

    Raises:
        ModelNotFoundError, BadWeightsError: as :func:`check_model_spec`, for the first bad spec.
        ConfigError: a bad device, dtype, device map or memory limit; a backend that cannot run a model.
        VecgenError: a backend that cannot run here (its package missing: the install hint named).
    """
    for spec in specs:
        check_backend(backend, spec, check_model_spec(spec), device_map=device_map)
    if device is not None:
        dev = resolve_device(device)
        if dtype is not None:
            resolve_dtype(dtype, dev)
    parse_device_map(device_map)
    parse_max_memory(max_memory)


__all__ = ["check_backend", "check_model_spec", "check_model_specs", "looks_like_hub_id"]
