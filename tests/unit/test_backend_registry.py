"""The backend registry's own rules (vecgen.models.backends): names, options before load, helpful errors."""

from __future__ import annotations

import pytest

import vecgen.models.backends as backends
from vecgen.errors import ConfigError
from vecgen.models.backends import BackendSpec, backend_names, backend_options, get_backend, register_backend


def test_the_shipped_backends_are_registered_through_their_entry_points():
    assert {"transformers", "reference", "llamacpp"} <= set(backend_names(auto=False))
    assert backend_names()[0] == "auto" and get_backend("auto") is get_backend("transformers")
    assert get_backend("llamacpp").weights == "gguf" and not get_backend("llamacpp").placement
    assert get_backend("reference").families == ("qwen2", "qwen3")


def test_registration_refuses_bad_specs():
    load = get_backend("transformers").load
    with pytest.raises(ValueError, match="already registered"):
        register_backend(BackendSpec("reference", "another", load=load))
    with pytest.raises(ValueError, match="not 'auto'"):
        register_backend(BackendSpec("auto", "x", load=load))
    with pytest.raises(ValueError, match="unknown option or capability 'gpus'"):
        register_backend(BackendSpec("x", "x", load=load, options=("threads", "gpus")))


def test_options_are_checked_before_anything_loads():
    with pytest.raises(ConfigError, match="n_ctx applies to backend llamacpp, vllm only") as exc:
        backend_options("transformers", {"n_ctx": 512})
    assert set(exc.value.params) == {"n_ctx", "backend"}
    with pytest.raises(ConfigError, match="threads must be between 1 and 1024"):
        backend_options("transformers", {"threads": 0})
    assert backend_options("transformers", {"threads": 2, "n_ctx": None}) is None
    assert backend_options("llamacpp", {"threads": 2, "n_ctx": 512}).n_ctx == 512


def test_an_unknown_backend_lists_the_registered_ones_and_says_when_the_entry_points_are_missing(monkeypatch):
    with pytest.raises(ConfigError, match="unknown backend 'nosuch'; choose one of: auto, transformers") as exc:
        get_backend("nosuch")
    assert "reinstall" not in str(exc.value)
    monkeypatch.setattr(backends, "_ENTRY_POINTS_FOUND", [])  # an install made before the entry points existed
    with pytest.raises(ConfigError, match="reinstall vecgen"):
        get_backend("nosuch")
