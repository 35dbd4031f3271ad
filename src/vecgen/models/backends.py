"""The registry of backends: what ``--backend`` / ``backend=`` may name, and how each one loads a model.

A backend is one :class:`BackendSpec`: its name, a one-line summary (``--backend``'s help, ``vecgen models``, the
docs' table), the shared options it takes (``threads``, ``n_ctx``), its checks before anything loads, its loader,
the extra it needs with the install hint, and its capabilities beyond decoding (``forward_logits``,
``hidden_states``, ``unembed``: :mod:`vecgen.backends.contract`). ``transformers`` is registered by
:mod:`vecgen.models.loader`; the others by their own modules, found through the ``vecgen.backends`` entry-point
group (``pyproject.toml``), which also lets another package add a backend without touching vecgen::

    [project.entry-points."vecgen.backends"]
    mine = "my_package.vecgen_backend"   # a module that calls register_backend(BackendSpec("mine", ...))

A test or notebook may call :func:`register_backend` directly. Everything that names backends derives from here:
``--backend``'s help and validation, :func:`vecgen.check_load`, :func:`~vecgen.models.load_model`, ``vecgen
models``, the serve worker's row limit and the backend contract suite's cases.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: What a backend may do beyond decoding (:class:`~vecgen.backends.contract.Backend`'s methods 7–9).
CAPABILITIES = ("forward_logits", "hidden_states", "unembed")

#: The options every command offers for backends (``--threads``, ``--n-ctx``); a backend lists those it takes.
SHARED_OPTIONS = ("threads", "n_ctx", "tensor_parallel_size")

#: The entry-point group backends register through.
ENTRY_POINT_GROUP = "vecgen.backends"


@dataclass(frozen=True)
class LoadRequest:
    """What :func:`~vecgen.models.load_model` hands a backend's loader.

    Attributes:
        spec: the model (registry name, folder, ``.gguf`` file or hub id). device, dtype: as given (``"auto"``).
        device_map, max_memory: accelerate's placement, as given (None: none).
        show_progress: progress bars while a cache is built.
        options: the backend's own options object (:attr:`BackendSpec.make_options`), or None.
        cls: the class to return (:class:`~vecgen.models.LoadedModel` or a subclass).
    """

    spec: str
    device: str | torch.device = "auto"
    dtype: str | torch.dtype = "auto"
    device_map: Any = None
    max_memory: Any = None
    show_progress: bool = True
    options: Any = None
    cls: Any = None


@dataclass(frozen=True)
class BackendSpec:
    """One backend.

    Attributes:
        name: what ``--backend`` calls it (also the ``name`` its :class:`~vecgen.backends.contract.Backend` reports).
        summary: one line for ``--backend``'s help and ``vecgen models``.
        load: ``(LoadRequest) -> LoadedModel``.
        options: the :data:`SHARED_OPTIONS` it takes (another one given is refused, naming the backends that take
            it).
        make_options: ``({option: value}) -> options object``, validated before anything loads (raises
            :class:`~vecgen.errors.ConfigError`); None: the backend has no options object.
        check: ``(model spec, source kind, device_map) -> None``: whether this backend can run that model, before
            anything loads (raises a :class:`~vecgen.errors.VecgenError`); ``source`` is
            :func:`~vecgen.models.checks.check_model_spec`'s kind (``packaged``, ``local``, ``gguf``, ``hub``).
        extra: the ``vecgen[...]`` extra it needs, or None. requires: a module that must be importable (its
            presence is what ``vecgen models`` shows as installed). install_hint: how to install it.
        capabilities: which of :data:`CAPABILITIES` it provides.
        placement: whether ``--device`` / ``--dtype`` / ``--device-map`` apply (False for llama.cpp).
        max_rows: the most rows it decodes at once (None: no limit of its own).
        weights: what it reads: ``"transformers"`` (a Hugging Face model: folder, registry name or hub id) or
            ``"gguf"`` (a GGUF file).
        families: the tiny model families the backend contract suite runs it on (``tests/contract``).
    """

    name: str
    summary: str
    load: Callable[[LoadRequest], Any]
    options: tuple[str, ...] = ("threads",)
    make_options: Callable[[Mapping[str, Any]], Any] | None = None
    check: Callable[[str, str, Any], None] | None = None
    extra: str | None = None
    requires: str | None = None
    install_hint: str | None = None
    capabilities: frozenset[str] = field(default_factory=lambda: frozenset(CAPABILITIES))
    placement: bool = True
    max_rows: int | None = None
    weights: str = "transformers"
    families: tuple[str, ...] = ()

    @property
    def installed(self) -> bool:
        """Whether what it needs (:attr:`requires`) is importable."""
        return self.requires is None or importlib.util.find_spec(self.requires) is not None


_BACKENDS: dict[str, BackendSpec] = {}
_ENTRY_POINTS_LOADED = False
_ENTRY_POINTS_FOUND: list[str] = []  # the names of the group's entry points (none: vecgen's metadata lacks them)


def register_backend(spec: BackendSpec, *, replace: bool = False) -> BackendSpec:
    """Add ``spec`` to the registry (its module calls this at import). Returns it.

    Raises:
        ValueError: a name that is taken (unless ``replace``) or ``auto``; an option or capability not known.
    """
    if spec.name == "auto" or not spec.name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"backend name {spec.name!r}: use letters, digits, '_' or '-' (and not 'auto')")
    if spec.name in _BACKENDS and not replace and _BACKENDS[spec.name] is not spec:
        raise ValueError(f"backend {spec.name!r} is already registered")
    unknown = sorted((set(spec.options) - set(SHARED_OPTIONS)) | (set(spec.capabilities) - set(CAPABILITIES)))
    if unknown:
        raise ValueError(f"backend {spec.name!r}: unknown option or capability {unknown[0]!r}")
    _BACKENDS[spec.name] = spec
    return spec


def unregister_backend(name: str) -> None:
    """Remove a registered backend (tests and notebooks that register their own)."""
    _BACKENDS.pop(name, None)


def _load_entry_points() -> None:
    """Import every module of the ``vecgen.backends`` entry-point group once (each registers its backend); one that
    fails to import is logged and skipped, so a broken plugin never breaks the others."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _ENTRY_POINTS_FOUND.append(ep.name)
        try:
            importlib.import_module(ep.value.split(":", 1)[0])
        except Exception as exc:  # noqa: BLE001 - a plugin's import failure must not break vecgen
            log.warning("backend entry point %s (%s) failed to import: %s", ep.name, ep.value, exc)


def backend_names(*, auto: bool = True) -> tuple[str, ...]:
    """``--backend``'s choices: ``auto`` (= ``transformers``) first when ``auto``, then every registered backend in
    registration order."""
    _load_entry_points()
    return (("auto",) if auto else ()) + tuple(_BACKENDS)


def get_backend(name: str, *, param: str = "backend") -> BackendSpec:
    """The registered backend ``name`` (``auto`` = ``transformers``).

    Raises:
        ConfigError: an unknown name (the registered ones listed).
    """
    _load_entry_points()
    spec = _BACKENDS.get("transformers" if name == "auto" else name)
    if spec is None:
        hint = ("" if _ENTRY_POINTS_FOUND else f" (no {ENTRY_POINT_GROUP!r} entry points are installed: an install "
                "made before they existed; reinstall vecgen, e.g. pip install -e ., to register its other backends)")
        raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(backend_names())}{hint}", param=param)
    return spec


def backends_taking(option: str) -> list[str]:
    """The registered backends that take the shared option ``option``."""
    _load_entry_points()
    return [s.name for s in _BACKENDS.values() if option in s.options]


def backend_options(name: str, values: Mapping[str, Any]) -> Any:
    """The backend's options object from the shared options given (None values ignored), validated before load.

    Raises:
        ConfigError: an unknown backend; an option this backend does not take (the backends that do named); a bad
            value (named).
    """
    spec = get_backend(name)
    given = {k: v for k, v in values.items() if v is not None}
    threads = given.get("threads")
    if threads is not None and not 1 <= threads <= 1024:
        raise ConfigError(f"threads must be between 1 and 1024, got {threads}", param="threads")
    tp = given.get("tensor_parallel_size")
    if tp is not None and not 1 <= tp <= 1024:
        raise ConfigError(f"tensor_parallel_size must be between 1 and 1024, got {tp}", param="tensor_parallel_size")
    for key in given:
        if key not in spec.options:
            takers = backends_taking(key)
            raise ConfigError(f"{key} applies to backend {', '.join(takers) or 'none'} only (backend {spec.name} "
                              "does not take it)", param=(key, "backend"))
    return spec.make_options(given) if spec.make_options is not None else None


def backend_help() -> str:
    """``--backend``'s help: every registered backend with its summary, extra and placement note."""
    parts = []
    for spec in (_BACKENDS[n] for n in backend_names(auto=False)):
        notes = [spec.summary]
        if spec.install_hint:
            notes.append(f"needs {spec.install_hint}")
        if not spec.placement:
            notes.append("--device and --dtype do not apply")
        parts.append(f"{spec.name} ({'; '.join(notes)})")
    return "What runs the model: auto (= transformers), " + ", ".join(parts) + "."


__all__ = ["CAPABILITIES", "ENTRY_POINT_GROUP", "SHARED_OPTIONS", "BackendSpec", "LoadRequest", "backend_help",
           "backend_names", "backend_options", "backends_taking", "get_backend", "register_backend",
           "unregister_backend"]
