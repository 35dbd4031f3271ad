"""The one model loader.

:func:`load_model` accepts a registry name (``default``, ``qwen2.5-coder-1.5b-instruct``, ...), a
local Hugging Face model folder, a local ``.gguf`` file, or a hub id (``Qwen/Qwen3-0.6B``), and
returns a :class:`LoadedModel` holding everything the rest of vecgen needs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..devices import resolve_device, resolve_dtype
from ..errors import BadWeightsError, ConfigError, ModelNotFoundError, WeightsUnavailableError
from .adapters import FamilyAdapter, adapter_for, count_real_vocab
from .packaged import ensure_gguf_file, ensure_packaged_model
from .registry import DEFAULT_MODEL, find_entry, get_entry, known_names

log = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedModel:
    """A causal LM with what vector-space decoding needs.

    Attributes:
        name: the name it was loaded by (registry name, path or hub id).
        source: ``"packaged"`` (registry weights via the cache), ``"local"``, ``"gguf"`` or ``"hub"``.
        path: folder the weights were read from (None for hub ids).
        model: the model; called as ``model(input_ids=... | inputs_embeds=..., attention_mask=...,
            position_ids=..., past_key_values=..., use_cache=True, logits_to_keep=1)``. Any module with
            that signature (e.g. vecgen's reference model) can replace it via :meth:`with_model`.
        tokenizer: the matching transformers tokenizer.
        adapter: the family adapter (the only place with family-specific facts).
        n_real_vocab: embedding rows that are real tokens; rows ``>= n_real_vocab`` are padding and
            never receive probability or mixture weight.
        device, dtype: where and in which precision the weights live.
        built_cache: True when this load converted packaged/GGUF weights into the cache.
        load_seconds: wall time of the load.
        backend: what the decode engine drives (:class:`~vecgen.backends.contract.Backend`); built from
            ``model`` when not given: a :class:`~vecgen.backends.transformers.TransformersBackend`
            named by the model's ``backend_name`` attribute (``"reference"`` for vecgen's reference
            model), else ``"transformers"``.
        config: the transformers config (``model.config`` when a model is given; read from the GGUF for the
            llama.cpp backend, which has no PyTorch model: ``model`` is None there).
    """

    name: str
    source: str
    path: str | None
    model: Any
    tokenizer: Any
    adapter: FamilyAdapter
    n_real_vocab: int
    device: torch.device
    dtype: torch.dtype
    built_cache: bool = False
    load_seconds: float = 0.0
    backend: Any = None
    config: Any = None

    def __post_init__(self) -> None:
        if self.config is None:  # the reference model keeps its source's transformers config
            self.config = getattr(self.model, "source_config", None) or self.model.config
        if self.backend is None:
            from ..backends import TransformersBackend

            cfg = self.config
            self.backend = TransformersBackend(self.model, embed_scale=self.adapter.embed_scale(cfg),
                                               sliding_window=self.adapter.has_sliding_window(cfg),
                                               name=getattr(self.model, "backend_name", "transformers"))

    @property
    def embedding(self) -> torch.Tensor:
        """The input embedding matrix ``E``, shape ``(V_rows, d)``, dtype ``self.dtype`` (unscaled)."""
        return self.backend.embedding

    @property
    def context_length(self) -> int | None:
        """Positions the model takes (prompt + generated): the adapter's ``context_length`` of the config."""
        return self.adapter.context_length(self.config)

    @property
    def hidden_size(self) -> int:
        """Embedding width ``d``."""
        return int(self.embedding.shape[1])

    @property
    def vocab_rows(self) -> int:
        """Rows of the embedding matrix, padding included."""
        return int(self.embedding.shape[0])

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def stop_token_ids(self) -> list[int]:
        """Token ids that end a generation (eos and end-of-turn)."""
        return self.adapter.stop_token_ids(self.tokenizer, getattr(self.model, "generation_config", None)
                                           if self.model is not None else None)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The model's input vectors for ids: ``(B, T)`` long → ``(B, T, d)``, exactly what the model does
        with ids (the backend's ``input_rows``: scaled for families such as Gemma 3)."""
        return self.backend.input_rows(input_ids)

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text`` (no BOS is added by default: chat templates carry their own tokens)."""
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def with_model(self, model: Any) -> "LoadedModel":
        """A copy that runs ``model`` (same tokenizer, embedding rows and adapter) through a new backend."""
        return dataclasses.replace(self, model=model, backend=None, config=None)

    def describe(self) -> dict[str, Any]:
        """Facts for results files: name, source, family, sizes, device, dtype."""
        cfg = self.config
        params = (sum(p.numel() for p in self.model.parameters()) if self.model is not None
                  else getattr(self.backend, "n_params", None))
        facts = {
            "name": self.name,
            "source": self.source,
            "path": self.path,
            "family": self.adapter.family,
            "model_type": getattr(cfg, "model_type", None),
            "num_hidden_layers": getattr(cfg, "num_hidden_layers", None),
            "hidden_size": self.hidden_size,
            "vocab_rows": self.vocab_rows,
            "n_real_vocab": self.n_real_vocab,
            "parameters": params,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "backend": self.backend.name,
        }
        if hasattr(self.backend, "describe"):
            facts["backend_settings"] = self.backend.describe()
        return facts


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def _hub_kwargs() -> dict[str, Any]:
    """``from_pretrained`` options for a hub id: ``local_files_only`` when ``HF_HUB_OFFLINE`` is set
    now (huggingface_hub reads the variable once at import; without this an offline request set later
    retries the network for tens of seconds before failing)."""
    return {"local_files_only": True} if _offline() else {}


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
    from .files import check_gguf_file, check_model_folder

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
    if _looks_like_hub_id(spec):
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
    import importlib.util

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
        from ..backends.llamacpp import INSTALL_HINT, LlamaCppUnavailableError

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
    from ..devices import parse_device_map, parse_max_memory

    for spec in specs:
        check_backend(backend, spec, check_model_spec(spec), device_map=device_map)
    if device is not None:
        dev = resolve_device(device)
        if dtype is not None:
            resolve_dtype(dtype, dev)
    parse_device_map(device_map)
    parse_max_memory(max_memory)


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
    from transformers import AutoTokenizer

    from .packaged import ensure_packaged_tokenizer
    from .registry import TOKENIZERS

    if spec in TOKENIZERS:
        return AutoTokenizer.from_pretrained(str(TOKENIZERS[spec]()))
    entry = find_entry(spec)
    if entry is not None and entry.packaged is not None and (entry.packaged.installed() or entry.hub_id is None):
        return AutoTokenizer.from_pretrained(str(ensure_packaged_tokenizer(entry)))
    path = Path(spec).expanduser()
    if entry is None and path.exists():
        return _tokenizer_from_path(path)
    if entry is None and (os.sep in spec or spec.startswith((".", "~"))) and not _looks_like_hub_id(spec):
        raise ModelNotFoundError(f"no such tokenizer file or folder: {path}")
    if entry is None and not _looks_like_hub_id(spec):
        raise ModelNotFoundError(
            f"unknown tokenizer {spec!r}; named tokenizers: {', '.join(TOKENIZERS)}; model names: "
            f"{', '.join(known_names())}; or a folder with tokenizer files, a tokenizer.json, or a hub id"
        )
    hub_id = entry.hub_id if entry is not None else spec
    try:
        return AutoTokenizer.from_pretrained(hub_id, **_hub_kwargs())
    except (OSError, ValueError) as exc:
        raise _hub_error(hub_id, exc) from None


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def _tokenizer_from_path(path: Path) -> Any:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

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
    import atexit
    import shutil
    import tempfile

    from ..paths import cache_dir

    root = cache_dir() / "offload"
    root.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _load_llamacpp(spec: str, options: Any, *, show_progress: bool, device_map: Any = None) -> LoadedModel:
    """A :class:`LoadedModel` whose backend is llama.cpp on the GGUF file (no PyTorch model is built)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    from ..backends.llamacpp import LlamaCppBackend
    from .packaged import ensure_gguf_extras, ensure_packaged_gguf

    start = time.perf_counter()
    source = check_model_spec(spec)
    check_backend("llamacpp", spec, source, device_map=device_map)
    entry = find_entry(spec)
    gguf = ensure_packaged_gguf(entry, show_progress=show_progress) if entry is not None else Path(spec).expanduser()
    extras = ensure_gguf_extras(gguf)
    tokenizer = AutoTokenizer.from_pretrained(str(extras))
    config = AutoConfig.from_pretrained(str(extras))
    embedding = load_file(str(extras / "embedding.safetensors"))["weight"]  # (V_rows, d) float32
    adapter = adapter_for(config)
    backend = LlamaCppBackend(gguf, embedding, embed_scale=adapter.embed_scale(config), options=options,
                              context_length=adapter.context_length(config))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm = LoadedModel(name=spec, source=source, path=str(gguf), model=None, tokenizer=tokenizer, adapter=adapter,
                     n_real_vocab=count_real_vocab(tokenizer, backend.vocab_rows), device=backend.device,
                     dtype=backend.dtype, load_seconds=time.perf_counter() - start, backend=backend, config=config)
    log.info("loaded %s on llama.cpp (%d threads, %d positions) in %.1f s", spec, backend.n_threads, backend.n_ctx,
             lm.load_seconds)
    return lm


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    show_progress: bool = True,
    device_map: str | dict[str, Any] | None = None,
    max_memory: str | dict[Any, str] | None = None,
    backend: str = "auto",
    llamacpp: Any = None,
) -> LoadedModel:
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
        backend: what runs the model: ``auto`` / ``transformers`` (PyTorch, transformers' implementation),
            ``reference`` (vecgen's from-scratch Qwen2/Qwen3 forward pass on the same weights) or ``llamacpp``
            (the GGUF file run by llama.cpp with its quantized weights; ``device`` and ``dtype`` do not apply:
            inputs and logits are float32 on the CPU).
        llamacpp: :class:`~vecgen.backends.llamacpp.LlamaCppOptions` (threads, context size) for ``llamacpp``.

    Returns:
        A :class:`LoadedModel`.

    Raises:
        ModelNotFoundError: unknown name and no such path.
        WeightsUnavailableError: weights missing offline (the message says how to get them).
        IntegrityError: packaged weights fail the size/sha256 check.
        ConfigError: bad device, dtype, device map or memory limits; an input embedding offloaded to disk; a
            backend that cannot run this model.
        UnsupportedModelError: ``reference`` for a family other than Qwen2/Qwen3.
        LlamaCppUnavailableError: ``llamacpp`` without llama-cpp-python installed.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..devices import parse_device_map, parse_max_memory

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "llamacpp":
        return _load_llamacpp(spec, llamacpp, show_progress=show_progress, device_map=device_map)
    if backend == "reference":
        from ..reference.weights import from_transformers

        lm = load_model(spec, device=device, dtype=dtype, show_progress=show_progress, device_map=device_map,
                        max_memory=max_memory)
        return lm.with_model(from_transformers(lm))

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
        model, info = AutoModelForCausalLM.from_pretrained(load_from, dtype=dt, use_safetensors=True,
                                                           output_loading_info=True, **placement, **hub)
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
    lm = LoadedModel(
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
    )
    log.info("loaded %s (%s, %s) in %.1f s", spec, source, lm.adapter.family, lm.load_seconds)
    return lm
