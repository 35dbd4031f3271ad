"""The loaded model: weights, tokenizer, family adapter and the backend that runs them.

:class:`LoadedModel` is what :func:`~vecgen.models.load_model` returns and what the engine and every feature take;
:class:`vecgen.Model` (what :func:`vecgen.load` returns) is this object with the research methods
(``generate``, ``concept``, ``think``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from ..backends import Backend, ContractError, TransformersBackend
from ..errors import UnsupportedError
from ..io import check_text
from .adapters import FamilyAdapter
from .reasoning import ReasoningFormat


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
        reasoning: the prompt layout of a model trained by ``vecgen train``
            (:class:`~vecgen.models.reasoning.ReasoningFormat`), read from its folder; None for every other model.
    """

    name: str
    source: str
    path: str | None
    model: torch.nn.Module | None
    tokenizer: PreTrainedTokenizerBase
    adapter: FamilyAdapter
    n_real_vocab: int
    device: torch.device
    dtype: torch.dtype
    built_cache: bool = False
    load_seconds: float = 0.0
    backend: Backend = None  # type: ignore[assignment]  # built in __post_init__ when not given
    config: PretrainedConfig = None  # type: ignore[assignment]  # read from the model when not given
    reasoning: ReasoningFormat | None = None

    def __post_init__(self) -> None:
        if self.config is None:  # the reference model keeps its source's transformers config
            if self.model is None:
                raise ContractError("a LoadedModel without a PyTorch model needs its backend and config")
            self.config = getattr(self.model, "source_config", None) or self.model.config
        if self.backend is None:
            model, adapter, cfg = self.model, self.adapter, self.config
            self.backend = TransformersBackend(model, embed_scale=adapter.embed_scale(cfg),
                                               sliding_window=adapter.has_sliding_window(cfg),
                                               name=getattr(model, "backend_name", "transformers"),
                                               final_norm=lambda: adapter.final_norm(model),
                                               logit_softcap=adapter.logit_softcap(cfg))

    @property
    def embedding(self) -> torch.Tensor:
        """The input embedding matrix ``E``, shape ``(V_rows, d)``, dtype ``self.dtype`` (unscaled)."""
        return self.backend.embedding

    @property
    def context_length(self) -> int | None:
        """Positions one row may use (prompt + generated): the adapter's ``context_length`` of the config, capped by
        a backend's fixed context (llama.cpp's ``n_ctx``, the cells every row shares) when it has one."""
        model_limit = self.adapter.context_length(self.config)
        per_row = getattr(self.backend, "max_model_len", None)  # vLLM: positions per row
        if isinstance(per_row, int) and per_row > 0:
            model_limit = per_row if model_limit is None else min(model_limit, per_row)
        cells = getattr(self.backend, "n_ctx", None)
        if isinstance(cells, int) and cells > 0:
            return cells if model_limit is None else min(model_limit, cells)
        return model_limit

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
        return self.adapter.stop_token_ids(self.tokenizer, getattr(self.model, "generation_config", None))

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The model's input vectors for ids: ``(B, T)`` long → ``(B, T, d)``, exactly what the model does
        with ids (the backend's ``input_rows``: scaled for families such as Gemma 3)."""
        return self.backend.input_rows(input_ids)

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text`` (no BOS is added by default: chat templates carry their own tokens).

        Raises:
            ConfigError: ``text`` is not valid Unicode (a lone surrogate), which tokenizers refuse with a TypeError.
        """
        check_text(text, "the text to tokenize")
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def require_transformers(self, what: str) -> PreTrainedModel:
        """The transformers model, for ``what`` (a feature built on transformers' own modules: PEFT adapters, hooks
        on its decoder layers).

        Raises:
            UnsupportedError: another backend (llama.cpp, vecgen's reference model).
        """
        if not isinstance(self.model, PreTrainedModel):
            raise UnsupportedError(f"{what} needs a transformers model; this one runs on {self.backend.name}: use "
                                   "backend transformers")
        return self.model

    def require_module(self, what: str) -> torch.nn.Module:
        """The PyTorch model, for ``what`` (a feature that needs the module itself: gradients, adapters).

        Raises:
            UnsupportedError: a backend without a PyTorch model (llama.cpp).
        """
        if self.model is None:
            raise UnsupportedError(f"{what} needs a PyTorch model; this one runs on {self.backend.name}: use backend "
                                   "transformers")
        return self.model

    def with_model(self, model: torch.nn.Module) -> Self:
        """A copy that runs ``model`` (same tokenizer, embedding rows and adapter) through a new backend."""
        return dataclasses.replace(self, model=model, backend=None, config=None)  # type: ignore[arg-type]  # rebuilt

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


__all__ = ["LoadedModel"]
