"""The one model loader.

:func:`load_model` accepts a registry name (``default``, ``qwen2.5-coder-1.5b-instruct``, ...), a
local Hugging Face model folder, a local ``.gguf`` file, or a hub id (``Qwen/Qwen3-0.6B``), and
returns a :class:`LoadedModel` holding everything the rest of vecgen needs.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from ..devices import parse_device_map, parse_max_memory, resolve_device, resolve_dtype
from ..errors import (
    BadWeightsError,
    ConfigError,
    ModelNotFoundError,
    WeightsUnavailableError,
)
from ..paths import cache_dir
from .adapters import adapter_for, count_real_vocab
from .backends import BackendSpec, LoadRequest, get_backend, register_backend
from .checks import check_model_spec, looks_like_hub_id
from .model import LoadedModel
from .packaged import (
    ensure_gguf_file,
    ensure_packaged_model,
    ensure_packaged_tokenizer,
)
from .reasoning import ReasoningFormat, trained_model_folder
from .registry import DEFAULT_MODEL, TOKENIZERS, find_entry, known_names

#: The class a load returns: :class:`LoadedModel` or a subclass (``vecgen.Model``).
M = TypeVar("M", bound=LoadedModel)

log = logging.getLogger(__name__)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def _hub_kwargs() -> dict[str, Any]:
    """``from_pretrained`` options for a hub id: ``local_files_only`` when ``HF_HUB_OFFLINE`` is set
    now (huggingface_hub reads the variable once at import; without this an offline request set later
    retries the network for tens of seconds before failing)."""
    return {"local_files_only": True} if _offline() else {}


@contextmanager
def quiet_weight_bars() -> Iterator[None]:
    """transformers' progress bars (per weight file, per tensor) off for the block (restored after)."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def resolve_source(spec: str, *, show_progress: bool = True) -> tuple[str, str, Path | None, bool]:
    """Where ``spec`` points: ``(source, load_from, path, built_now)``; builds the cache of packaged and GGUF
    weights on first use.

    Raises:
        ModelNotFoundError: ``spec`` is neither a registry name, an existing path, nor a hub id.
        BadWeightsError: a local file or folder that cannot be loaded.
        WeightsUnavailableError: a registry model without installed weights.
    """
    source = check_model_spec(spec)
    entry = find_entry(spec)
    if entry is not None:
        if source == "packaged":
            folder, built = ensure_packaged_model(entry, show_progress=show_progress)
            return "packaged", str(folder), folder, built
        if entry.hub_id is None:  # pragma: no cover - every entry has one or the other
            raise WeightsUnavailableError(f"no weights known for {entry.name}")
        if entry.packaged is not None:
            log.info("%s: packaged weights not installed (%s); trying the hub", entry.name, entry.packaged.install_hint)
        return "hub", entry.hub_id, None, False
    path = Path(spec).expanduser()
    path = trained_model_folder(path) or path
    if source == "gguf":
        folder, built = ensure_gguf_file(path)
        return "gguf", str(folder), folder, built
    if source == "local":
        return "local", str(path), path, False
    return "hub", spec, None, False


def _hub_error(hub_id: str, exc: Exception) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"could not load {hub_id!r} from the Hugging Face hub ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
        f"Offline? Download it on a connected machine (huggingface-cli download {hub_id} --local-dir DIR), "
        "copy DIR here and pass --model DIR; or use a packaged model: vecgen models"
    )


def load_tokenizer(spec: str) -> Any:
    """Load only a tokenizer, never model weights.

    Args:
        spec: a named tokenizer (``qwen3``, ``gpt2``; :data:`~vecgen.models.registry.TOKENIZERS`), a
            registry model name (``default``: read from the converted cache folder, or once from the
            GGUF metadata when the cache is not built yet), a folder with tokenizer files (no
            ``config.json`` needed), a ``tokenizer.json`` or ``.gguf`` file, or a hub id.

    Raises:
        ModelNotFoundError: unknown name, or a path that holds no readable tokenizer.
        WeightsUnavailableError: a packaged model's parts are not installed; a hub id offline.
    """
    if spec in TOKENIZERS:
        return AutoTokenizer.from_pretrained(str(TOKENIZERS[spec]()))
    entry = find_entry(spec)
    if entry is not None and entry.packaged is not None and (entry.packaged.installed() or entry.hub_id is None):
        return AutoTokenizer.from_pretrained(str(ensure_packaged_tokenizer(entry)))
    path = Path(spec).expanduser()
    if entry is None and path.exists():
        return _tokenizer_from_path(path)
    if entry is None and (os.sep in spec or spec.startswith((".", "~"))) and not looks_like_hub_id(spec):
        raise ModelNotFoundError(f"no such tokenizer file or folder: {path}")
    if entry is None and not looks_like_hub_id(spec):
        raise ModelNotFoundError(
            f"unknown tokenizer {spec!r}; named tokenizers: {', '.join(TOKENIZERS)}; model names: "
            f"{', '.join(known_names())}; or a folder with tokenizer files, a tokenizer.json, or a hub id"
        )
    hub_id = entry.hub_id if entry is not None and entry.hub_id is not None else spec
    try:
        return AutoTokenizer.from_pretrained(hub_id, **_hub_kwargs())
    except (OSError, ValueError) as exc:
        raise _hub_error(hub_id, exc) from None


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def _tokenizer_from_path(path: Path) -> Any:
    try:
        if path.is_file() and path.suffix == ".gguf":
            return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        if path.is_file() and path.name.endswith(".json"):
            return PreTrainedTokenizerFast(tokenizer_file=str(path))
        if path.is_dir():
            if not any((path / f).is_file() for f in _TOKENIZER_FILES):
                raise ModelNotFoundError(f"{path} holds no tokenizer files (one of: {', '.join(_TOKENIZER_FILES)})")
            return AutoTokenizer.from_pretrained(str(path))
    except ModelNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means "no usable tokenizer here"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(f"cannot read a tokenizer from {path}: {first}") from None
    raise ModelNotFoundError(f"{path} is not a tokenizer folder, a tokenizer.json or a .gguf file")


def _offload_folder() -> str:
    """A fresh folder under ``<cache>/offload/`` for accelerate's disk offload, removed when the process exits."""
    root = cache_dir() / "offload"
    root.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    show_progress: bool = True,
    device_map: str | dict[str, Any] | None = None,
    max_memory: str | dict[Any, str] | None = None,
    backend: str = "auto",
    options: Any = None,
    cls: type[M] = LoadedModel,  # type: ignore[assignment]
) -> M:
    """Load a causal LM and its tokenizer, in eval mode with gradients off for the weights.

    Args:
        spec: registry name or alias, local HF folder, local ``.gguf`` file, or hub id.
        device: ``"auto"`` (CUDA if available, else CPU; MPS only when named), or a device name. Ignored
            with ``device_map``.
        dtype: ``"auto"`` (bf16 on CUDA, fp32 otherwise), or ``float32``/``bfloat16``/``float16``.
        show_progress: show progress bars while building the cache.
        device_map: spread the layers over devices with accelerate's big-model inference: a strategy
            (``auto``, ``balanced``, ``balanced_low_0``, ``sequential``) or a module → device mapping, where
            ``"disk"`` offloads to a folder under ``<cache>/offload/`` removed at exit (slow, correct). The input embedding must sit on a
            device (not ``disk``): concept tokens are mixed from it. Vectors go to the embedding's device,
            logits come back there (:mod:`vecgen.devices`: :func:`~vecgen.devices.parse_device_map`).
        max_memory: per-device limits for a strategy, e.g. ``"0=20GiB,cpu=60GiB"``.
        backend: what runs the model: ``auto`` / ``transformers`` (PyTorch, transformers' implementation) or any
            registered backend (:func:`~vecgen.models.backends.backend_names`: ``reference``, vecgen's from-scratch
            Qwen2/Qwen3 forward pass on the same weights; a GGUF runtime, where ``device`` and ``dtype`` do not
            apply).
        options: the backend's own options object (:func:`~vecgen.models.backends.backend_options`), or None.
        cls: the class returned (:class:`LoadedModel` or a subclass: :func:`vecgen.load` returns ``vecgen.Model``).

    Returns:
        A ``cls`` instance.

    Raises:
        ModelNotFoundError: unknown name and no such path.
        WeightsUnavailableError: weights missing offline (the message says how to get them).
        IntegrityError: packaged weights fail the size/sha256 check.
        ConfigError: bad device, dtype, device map or memory limits; an input embedding offloaded to disk; a
            backend that cannot run this model.
        UnsupportedModelError: a backend that cannot run this model's family (``reference``: Qwen2/Qwen3 only).
        VecgenError: a backend that cannot run here (e.g. its package is not installed: the install hint named).
    """
    request = LoadRequest(spec, device=device, dtype=dtype, device_map=device_map, max_memory=max_memory,
                          show_progress=show_progress, options=options, cls=cls)
    return get_backend(backend).load(request)


def load_transformers(request: LoadRequest) -> LoadedModel:
    """The ``transformers`` backend's loader: the model through ``AutoModelForCausalLM`` (safetensors only)."""
    spec, device, dtype, show_progress = request.spec, request.device, request.dtype, request.show_progress
    device_map, max_memory, cls = request.device_map, request.max_memory, request.cls or LoadedModel
    start = time.perf_counter()
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    device_map, max_memory = parse_device_map(device_map), parse_max_memory(max_memory)
    placement: dict[str, Any] = {}
    if device_map is not None:
        placement = {"device_map": device_map, "max_memory": max_memory, "offload_folder": _offload_folder()}
    source, load_from, path, built = resolve_source(spec, show_progress=show_progress)
    hub = _hub_kwargs() if source == "hub" else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(load_from, **hub)
        # safetensors only: pickle weights are never unpickled (see vecgen.models.files)
        with quiet_weight_bars():  # a load from the cache takes seconds; no per-tensor bar in notebooks and logs
            loaded: Any = AutoModelForCausalLM.from_pretrained(load_from, dtype=dt, use_safetensors=True,
                                                               output_loading_info=True, **placement, **hub)
        model, info = loaded  # (model, loading info) with output_loading_info=True
    except Exception as exc:  # noqa: BLE001 - a reader failure on these files is a bad input, not a bug
        if source == "hub" and isinstance(exc, (OSError, ValueError)):
            raise _hub_error(load_from, exc) from None
        if source == "hub":
            raise
        raise BadWeightsError(f"cannot load a model from {path}: {type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}") from None
    missing = [k for k in info.get("missing_keys", ()) if k]
    if missing:
        raise BadWeightsError(f"the weights in {path or load_from} lack {len(missing)} tensor(s) the config needs "
                              f"(e.g. {sorted(missing)[0]}); the files do not match config.json")
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        raise BadWeightsError(f"the weights in {path or load_from} have {len(mismatched)} tensor(s) of the wrong shape "
                              f"(e.g. {mismatched[0][0] if isinstance(mismatched[0], tuple) else mismatched[0]}); the "
                              "files do not match config.json")
    if device_map is None:
        model.to(dev)
    else:
        weight = model.get_input_embeddings().weight
        if weight.device.type == "meta":
            raise ConfigError("--device-map offloads the input embedding to disk; concept tokens are mixed from it, so "
                              "keep it on a device (map the embedding module to cpu or a GPU)")
        dev = weight.device
        log.info("layers placed by --device-map: %s", getattr(model, "hf_device_map", device_map))
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = model.get_input_embeddings().weight.shape[0]
    lm = cls(
        name=spec,
        source=source,
        path=str(path) if path else None,
        model=model,
        tokenizer=tokenizer,
        adapter=adapter_for(model.config),
        n_real_vocab=count_real_vocab(tokenizer, rows),
        device=dev,
        dtype=dt,
        built_cache=built,
        load_seconds=time.perf_counter() - start,
        reasoning=ReasoningFormat.read(path) if path is not None else None,
    )
    log.info("loaded %s (%s, %s) in %.1f s", spec, source, lm.adapter.family, lm.load_seconds)
    return lm


TRANSFORMERS = register_backend(BackendSpec(
    "transformers", "transformers' implementation in PyTorch; any Hugging Face causal LM", load=load_transformers,
    families=("qwen2", "qwen3", "llama", "gpt2", "gemma3")))
