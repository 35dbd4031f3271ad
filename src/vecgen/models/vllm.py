"""The ``vllm`` backend's registration: a Hugging Face model run by vLLM (:mod:`vecgen.backends.vllm`), with its
checks before load (vLLM installed, an architecture it runs, a tensor-parallel size that divides the attention heads
and fits the devices, no ``--device-map``), its options (``tensor_parallel_size``, ``n_ctx`` as vLLM's
``max_model_len``) and its loader. Registered through the ``vecgen.backends`` entry point (``pyproject.toml``)."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoTokenizer

from ..backends.vllm import INSTALL_HINT, VllmBackend, VllmOptions, VllmUnavailableError, start_llm
from ..devices import available_cores, resolve_dtype
from ..errors import BadWeightsError, ConfigError
from .adapters import adapter_for, count_real_vocab
from .backends import BackendSpec, LoadRequest, register_backend
from .checks import check_model_spec
from .loader import resolve_source
from .model import LoadedModel
from .reasoning import ReasoningFormat, trained_model_folder

log = logging.getLogger(__name__)

#: The weight names of the input embedding, by family (transformers' checkpoints).
EMBEDDING_KEYS = ("model.embed_tokens.weight", "transformer.wte.weight", "model.language_model.embed_tokens.weight",
                  "embed_tokens.weight")


def _devices() -> tuple[int, str]:
    if torch.cuda.is_available():
        return torch.cuda.device_count(), "GPUs"
    return len(available_cores()), "CPU cores"


def _local_config(spec: str, source: str) -> dict[str, Any] | None:
    """``config.json`` of a local folder (a trained run's ``model/`` included), else None (packaged, GGUF, hub)."""
    if source != "local":
        return None
    path = Path(spec).expanduser()
    path = trained_model_folder(path) or path
    try:
        return dict(json.loads((path / "config.json").read_text()))
    except (OSError, ValueError):
        return None


def check(spec: str, source: str, device_map: Any = None) -> None:
    """Whether vLLM can run the model ``spec`` (of kind ``source``), without loading: installed, no device map, and
    for a local folder its architecture (:func:`check_config`).

    Raises:
        ConfigError: ``--device-map``; an architecture vLLM does not run.
        VllmUnavailableError: vLLM is not installed.
    """
    if device_map is not None:
        raise ConfigError("--device-map does not apply to --backend vllm (vLLM splits a model with "
                          "--tensor-parallel-size)")
    if importlib.util.find_spec("vllm") is None:
        raise VllmUnavailableError(f"--backend vllm needs vLLM; install it with: {INSTALL_HINT}")
    config = _local_config(spec, source)
    if config is not None:
        check_config(spec, config, 1)


def check_config(spec: str, config: Mapping[str, Any], tensor_parallel_size: int) -> None:
    """The model's ``config.json`` against vLLM: an architecture it runs, heads the tensor-parallel size divides.

    Raises:
        ConfigError: either check fails (the fix named).
    """
    heads = config.get("num_attention_heads") or config.get("n_head")
    if heads and tensor_parallel_size > 1 and int(heads) % tensor_parallel_size:
        raise ConfigError(f"tensor_parallel_size={tensor_parallel_size} does not divide the model's {heads} "
                          "attention heads; choose a divisor of it", param="tensor_parallel_size")
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    if archs:
        supported = supported_architectures()
        if supported is not None and not any(a in supported for a in archs):
            raise ConfigError(f"vLLM does not run the architecture {archs[0]} of {spec}; use --backend transformers")


def supported_architectures() -> set[str] | None:
    """The text-generation architectures of the installed vLLM's model registry (None: it cannot be read)."""
    try:
        from vllm.model_executor.models.registry import ModelRegistry
    except Exception:  # noqa: BLE001 - a registry that does not import is checked again at load
        return None
    return set(ModelRegistry.get_supported_archs())


def options(values: Mapping[str, Any]) -> VllmOptions:
    """:class:`~vecgen.backends.vllm.VllmOptions` from ``tensor_parallel_size`` / ``n_ctx``, checked.

    Raises:
        ConfigError: a value out of range (named).
    """
    opts = VllmOptions(tensor_parallel_size=int(values.get("tensor_parallel_size") or 1),
                       max_model_len=values.get("n_ctx"))
    opts.check()
    count, kind = _devices()
    if opts.tensor_parallel_size > count:
        raise ConfigError(f"tensor_parallel_size={opts.tensor_parallel_size} exceeds the {count} {kind} here",
                          param="tensor_parallel_size")
    return opts


def read_embedding(folder: Path, dtype: torch.dtype) -> torch.Tensor:
    """``(V_rows, d)`` the input embedding of the safetensors checkpoint in ``folder``, in ``dtype``.

    Raises:
        BadWeightsError: no input-embedding tensor in the folder's safetensors files.
    """
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in EMBEDDING_KEYS:
                if key in f.keys():
                    return f.get_tensor(key).to(dtype)
    raise BadWeightsError(f"no input embedding ({EMBEDDING_KEYS[0]}, ...) in the safetensors files of {folder}")


def load(request: LoadRequest) -> LoadedModel:
    """A :class:`~vecgen.models.LoadedModel` whose backend is vLLM (no PyTorch model in this process)."""
    start = time.perf_counter()
    spec = request.spec
    opts: VllmOptions = request.options or VllmOptions()
    source = check_model_spec(spec)
    check(spec, source, request.device_map)
    source, load_from, path, built = resolve_source(spec, show_progress=request.show_progress)
    folder = Path(load_from) if path is not None else _hub_folder(load_from)
    config = AutoConfig.from_pretrained(str(folder))
    check_config(spec, config.to_dict(), opts.tensor_parallel_size)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    adapter = adapter_for(config)
    dtype = resolve_dtype(request.dtype, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    context = adapter.context_length(config) or 32768
    llm = start_llm(str(folder), dtype=dtype, options=opts, context_length=context)
    max_len = int(llm.llm_engine.model_config.max_model_len)
    backend = VllmBackend(llm, read_embedding(folder, dtype), embed_scale=adapter.embed_scale(config),
                          context_length=max_len, tensor_parallel_size=opts.tensor_parallel_size)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    cls = request.cls or LoadedModel
    lm = cls(name=spec, source=source, path=str(folder), model=None, tokenizer=tokenizer, adapter=adapter,
             n_real_vocab=count_real_vocab(tokenizer, backend.vocab_rows), device=backend.device, dtype=dtype,
             built_cache=built, load_seconds=time.perf_counter() - start, backend=backend, config=config,
             reasoning=ReasoningFormat.read(folder))
    log.info("loaded %s on vLLM (tensor parallel %d, %d positions) in %.1f s", spec, opts.tensor_parallel_size,
             max_len, lm.load_seconds)
    return lm


def _hub_folder(hub_id: str) -> Path:
    """The local snapshot of a hub model (downloaded when the hub is reachable)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model",
                                                              "*.jinja"]))
    except Exception as exc:  # noqa: BLE001 - offline or unknown repository: the user's input
        raise VllmUnavailableError(f"could not fetch {hub_id!r} from the Hugging Face hub for vLLM "
                                   f"({type(exc).__name__}); download it and pass the folder") from None


SPEC = register_backend(BackendSpec(
    "vllm", "vLLM (paged attention, tensor parallelism) with vecgen's vectors fed inside its model runner",
    load=load, options=("n_ctx", "tensor_parallel_size"), make_options=options, check=check, extra=None,
    requires="vllm", install_hint=INSTALL_HINT, capabilities=frozenset(), placement=True, max_rows=256,
    weights="transformers", families=()))
