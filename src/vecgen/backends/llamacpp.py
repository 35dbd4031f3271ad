"""The llama.cpp backend: a GGUF model run directly by llama.cpp (``llama-cpp-python``'s low-level API).

llama.cpp computes with the quantized weights (no float32 model is built), and its batch API takes either
token ids (``llama_batch.token``) or float input vectors (``llama_batch.embd``, ``n_tokens × d``) — a
concept token is exactly such a vector. The engine mixes concept tokens in PyTorch from
:attr:`LlamaCppBackend.embedding`: the GGUF's ``token_embd`` dequantized with the ``gguf`` package, which
is bit-identical to the rows transformers' GGUF conversion holds (see :mod:`vecgen.models.packaged`).

How the contract maps onto llama.cpp:

* every batch row is one llama.cpp *sequence* (``seq_id``) of one context whose KV cache is unified
  (``kv_unified``: every sequence draws from the same ``n_ctx`` cells, so a fork is a metadata copy);
* :meth:`~LlamaCppBackend.prefill` feeds each row's real inputs only (left padding is never sent, so
  padding between a cached prefix and new inputs is exact: ``inner_padding_exact`` is True), split into
  ``n_batch``-sized ``llama_decode`` calls, logits requested at each row's last input only;
* :meth:`~LlamaCppBackend.extend` sends ``B·k`` vectors in one ``embd`` batch;
* :meth:`~LlamaCppBackend.select_rows` removes the dropped rows' sequences (``llama_memory_seq_rm``);
  :meth:`~LlamaCppBackend.fork` copies sequences (``llama_memory_seq_cp``) into free ids. A state's
  sequences are released when the state is garbage-collected;
* ``hidden`` uses llama.cpp's embeddings output of a causal LM (``llama_set_embeddings``): the last
  hidden state after the final norm, before the LM head — what the contract asks for.

Pitfalls handled here (measured with llama-cpp-python 0.3.36 on a Xeon with AMX): the default model
parameters segfault in ``llama_decode`` through the "AMX repack" weight buffer, so
``use_extra_bufts`` is False; llama.cpp's log goes to the Python logger
``vecgen.backends.llamacpp.native`` (DEBUG; warnings and errors at their level) instead of stderr.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import available_cores
from ..errors import (
    BadWeightsError,
    ConfigError,
    ContextLengthError,
    UnsupportedError,
    VecgenError,
)
from .contract import Batch, ContractError, DecodeState, extend_inputs, merge_fields

log = logging.getLogger(__name__)
native_log = logging.getLogger(__name__ + ".native")

#: The tested range of ``llama-cpp-python`` (the ``vecgen[llamacpp]`` extra pins the same).
SUPPORTED_VERSIONS = ">=0.3.36,<0.4"
INSTALL_HINT = ("pip install 'vecgen[llamacpp]' (compiles llama.cpp: about 15 minutes on 2 CPU cores; for Metal or "
                "CUDA builds set CMAKE_ARGS first, see docs/backends.md)")

_LEVELS = {4: logging.WARNING}  # ggml: 1 debug, 2 info, 3 warn, 4 error, 5 continue
_init_lock = threading.Lock()
_initialised = False
_log_callback: Any = None  # the ctypes callback must stay alive as long as the library may call it


class LlamaCppUnavailableError(VecgenError, ImportError):
    """``--backend llamacpp`` without ``llama-cpp-python`` installed (the message says how to install it)."""


def import_llama_cpp() -> Any:
    """Import ``llama_cpp`` once, route its log to Python logging and initialise the llama.cpp backend.

    Raises:
        LlamaCppUnavailableError: the package is not installed.
    """
    global _initialised, _log_callback
    try:
        import llama_cpp  # optional extra vecgen[llamacpp]
    except ImportError:
        raise LlamaCppUnavailableError(f"--backend llamacpp needs llama-cpp-python; install it with: {INSTALL_HINT}"
                                       ) from None
    with _init_lock:
        if not _initialised:
            pending: list[str] = []
            last = [logging.DEBUG]

            @llama_cpp.llama_log_callback
            def _to_logging(level: int, text: bytes, user_data: Any) -> None:
                if level != 5:  # GGML_LOG_LEVEL_CONT continues the previous message at its level
                    last[0] = _LEVELS.get(level, logging.DEBUG)
                pending.append(text.decode("utf-8", "replace"))
                if pending[-1].endswith("\n"):
                    message = "".join(pending).rstrip()
                    pending.clear()
                    if message:
                        native_log.log(last[0], "%s", message)

            _log_callback = _to_logging
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _initialised = True
    return llama_cpp


def default_threads() -> int:
    """Every core this process may use (:func:`~vecgen.devices.available_cores`)."""
    return len(available_cores())


@dataclass
class LlamaCppOptions:
    """Settings of a llama.cpp context.

    Attributes:
        n_threads: CPU threads for decoding and prompt processing (default: every available core).
        n_ctx: KV cells of the context, shared by every sequence alive at once (rows, cached prefixes and their
            forks); default: the model's context length, at most 16,384.
        n_batch: inputs per ``llama_decode`` call (longer prefills are split).
        flash_attn: ``auto``, ``on`` or ``off`` (its CPU kernel works in float16).
        n_gpu_layers: layers offloaded to a GPU in Metal / CUDA builds (-1 = all; ignored by CPU builds).
        kv_type: the KV cache's element type, ``f16`` (llama.cpp's default) or ``f32`` (exact keys and values at
            twice the memory; with ``flash_attn="off"`` logits of an F32 GGUF agree with transformers' to ~3e-7).
            Measured on the default model, 2 cores: ``f32`` + ``off`` decodes 7–18% faster at 400 positions per
            row than the defaults, the same at short contexts, and end-to-end ratios were equal within noise;
            the defaults stay llama.cpp's, which the agreement figures in docs/backends.md were measured with.
        kv_unified: one KV buffer for every sequence (a fork copies metadata only). Per-sequence buffers
            (False) were slower here (18 tokens/s at batch 8 and 400 positions).
        n_seq_max: sequences alive at once (at most llama.cpp's 256).
    """

    n_threads: int | None = None
    n_ctx: int | None = None
    n_batch: int = 512
    flash_attn: str = "auto"
    n_gpu_layers: int = -1
    kv_type: str = "f16"
    kv_unified: bool = True
    n_seq_max: int = 256

    def check(self) -> None:
        """Raises: ConfigError naming the bad option."""
        if self.n_threads is not None and not 1 <= self.n_threads <= 1024:
            raise ConfigError(f"threads must be between 1 and 1024, got {self.n_threads}", param="threads")
        if self.n_ctx is not None and not 16 <= self.n_ctx <= 1 << 20:
            raise ConfigError(f"n_ctx must be between 16 and 1048576, got {self.n_ctx}", param="n_ctx")
        if not 1 <= self.n_seq_max <= 256:
            raise ConfigError(f"n_seq_max must be between 1 and 256 (llama.cpp's limit), got {self.n_seq_max}")
        if not 1 <= self.n_batch <= 65536:
            raise ConfigError(f"the llama.cpp batch size must be between 1 and 65536, got {self.n_batch}")
        if self.kv_type not in ("f16", "f32"):
            raise ConfigError(f"the KV cache type must be f16 or f32, got {self.kv_type!r}")
        if self.flash_attn not in ("auto", "on", "off"):
            raise ConfigError(f"flash attention must be auto, on or off, got {self.flash_attn!r}")


class _Sequences:
    """The llama.cpp sequence ids of one :class:`DecodeState`'s rows (row ``i`` is sequence ``ids[i]``).

    Released (KV removed, ids back to the pool) when the state holding it is garbage-collected.
    """

    def __init__(self, backend: "LlamaCppBackend", ids: list[int]):
        self.ids = ids
        self.release = weakref.finalize(self, backend._release, ids)


@dataclass
class LlamaCppCache:
    """The llama.cpp backend's part of a :class:`DecodeState`: the rows' sequences."""

    sequences: _Sequences


class _NativeBatch:
    """A ``llama_batch`` over arrays this object owns (numpy), so filling it is vectorised, not per token."""

    def __init__(self, llama_cpp: Any, capacity: int, n_embd: int):
        self.capacity = capacity
        self.token = np.zeros(capacity, dtype=np.int32)
        self.embd = np.zeros((capacity, n_embd), dtype=np.float32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self.seq = np.zeros(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        seq_ptr_type = ctypes.POINTER(ctypes.c_int32)
        base = self.seq.ctypes.data
        self.seq_ptrs = (seq_ptr_type * capacity)(*[ctypes.cast(base + 4 * i, seq_ptr_type) for i in range(capacity)])
        self._ids_batch = llama_cpp.llama_batch(
            0, self.token.ctypes.data_as(seq_ptr_type), None, self.pos.ctypes.data_as(seq_ptr_type),
            self.n_seq_id.ctypes.data_as(seq_ptr_type), self.seq_ptrs,
            self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
        self._embd_batch = llama_cpp.llama_batch(
            0, None, self.embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), self.pos.ctypes.data_as(seq_ptr_type),
            self.n_seq_id.ctypes.data_as(seq_ptr_type), self.seq_ptrs,
            self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))

    def native(self, n: int, vectors: bool) -> Any:
        b = self._embd_batch if vectors else self._ids_batch
        b.n_tokens = n
        return b


class LlamaCppBackend:
    """:class:`~vecgen.backends.contract.Backend` over a GGUF file run by llama.cpp.

    Args:
        gguf_path: the model file.
        embedding: ``(V_rows, d)`` float32, the GGUF's input embedding (dequantized ``token_embd``).
        embed_scale: the factor the family applies to its input embedding (``sqrt(d)`` for Gemma 3), part of
            :meth:`input_rows`. llama.cpp applies it inside its graph to token inputs only (Gemma 3:
            ``ggml_scale(inp, ubatch.token ? sqrtf(n_embd) : 1)``), so vectors, already scaled as the contract's
            inputs are, are fed unchanged.
        options: :class:`LlamaCppOptions`.
        context_length: the model's context length (the default ``n_ctx`` is this, at most 16,384).

    Raises:
        LlamaCppUnavailableError: llama-cpp-python is not installed.
        BadWeightsError: llama.cpp cannot load the file.
        ConfigError: bad options.
    """

    name = "llamacpp"
    inner_padding_exact = True

    def __init__(self, gguf_path: str | Path, embedding: torch.Tensor, *, embed_scale: float = 1.0,
                 options: LlamaCppOptions | None = None, context_length: int | None = None):
        self._lib = lib = import_llama_cpp()
        self.options = options = options or LlamaCppOptions()
        options.check()
        self.gguf_path = str(gguf_path)
        self.embedding = embedding  # (V_rows, d) float32
        self.embed_scale = float(embed_scale)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.hidden_size = int(embedding.shape[1])
        self.vocab_rows = int(embedding.shape[0])

        mparams = lib.llama_model_default_params()
        mparams.use_extra_bufts = False  # the AMX repack buffer segfaults in llama_decode (see the module docstring)
        mparams.n_gpu_layers = options.n_gpu_layers if lib.llama_supports_gpu_offload() else 0
        self._model = lib.llama_model_load_from_file(self.gguf_path.encode(), mparams)
        if not self._model:
            raise BadWeightsError(f"llama.cpp cannot load {self.gguf_path} (its log is on the logger {native_log.name})")
        vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(vocab))
        n_embd = int(lib.llama_model_n_embd(self._model))
        if n_embd != self.hidden_size or self.n_vocab != self.vocab_rows:
            lib.llama_model_free(self._model)
            raise BadWeightsError(f"{self.gguf_path}: llama.cpp sees {self.n_vocab} tokens × {n_embd} dimensions but "
                                  f"the input embedding is {tuple(embedding.shape)}")
        self.n_params = int(lib.llama_model_n_params(self._model))
        self.n_threads = options.n_threads or default_threads()
        train_ctx = int(lib.llama_model_n_ctx_train(self._model))
        self.n_ctx = options.n_ctx or min(context_length or train_ctx or 4096, 16384)
        # at most llama.cpp's LLAMA_MAX_SEQ (256): rows, prefixes, forks alive. llama.cpp caps n_batch at n_ctx but
        # reserves one output row per sequence at start: n_seq_max > n_ctx aborts the process (GGML_ASSERT
        # n_outputs_max <= cparams.n_outputs_max), and a context of n_ctx cells never holds more sequences anyway
        self.n_seq_max = min(options.n_seq_max, self.n_ctx)
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = self.n_ctx
        cparams.n_batch = options.n_batch
        cparams.n_ubatch = options.n_batch
        cparams.n_seq_max = self.n_seq_max
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = options.kv_unified
        cparams.no_perf = True
        cparams.flash_attn_type = {"auto": -1, "off": 0, "on": 1}[options.flash_attn]
        cparams.type_k = cparams.type_v = {"f16": 1, "f32": 0}[options.kv_type]  # GGML_TYPE_F16 / GGML_TYPE_F32
        self._ctx = lib.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lib.llama_model_free(self._model)
            raise ConfigError(f"llama.cpp could not create a context of {self.n_ctx} positions for {self.gguf_path} "
                              f"(out of memory? pass a smaller --n-ctx; its log is on the logger {native_log.name})")
        self._mem = lib.llama_get_memory(self._ctx)
        self._embeddings_on = False
        self._free = list(range(self.n_seq_max - 1, -1, -1))  # pop() hands out 0, 1, 2, ...
        # llama.cpp caps the batch at n_ctx; a llama_decode call of more inputs than it took aborts the process
        self.n_batch = int(lib.llama_n_batch(self._ctx))
        self._batch = _NativeBatch(lib, self.n_batch, self.hidden_size)
        weakref.finalize(self, LlamaCppBackend._free_native, lib, self._ctx, self._model)

    # -- lifetime ------------------------------------------------------------------------------------

    @staticmethod
    def _free_native(lib: Any, ctx: Any, model: Any) -> None:
        lib.llama_free(ctx)
        lib.llama_model_free(model)

    def _release(self, ids: list[int]) -> None:
        for s in ids:
            self._lib.llama_memory_seq_rm(self._mem, s, -1, -1)
            self._free.append(s)
        ids.clear()

    def _take(self, n: int) -> list[int]:
        if n > len(self._free):
            raise ConfigError(f"the llama.cpp backend holds at most {self.n_seq_max} sequences at once (rows, cached "
                              f"prefixes and their copies); this step needs {n} more with {len(self._free)} free: use a "
                              "smaller batch_size", param="batch_size")
        return [self._free.pop() for _ in range(n)]

    # -- inputs --------------------------------------------------------------------------------------

    def input_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``(...,)`` long → ``(..., d)`` float32: ``embed_scale · embedding[ids]``."""
        rows = self.embedding[ids.to(self.device)]
        return rows * self.embed_scale if self.embed_scale != 1.0 else rows

    # -- decoding ------------------------------------------------------------------------------------

    def _set_embeddings(self, on: bool) -> None:
        if on != self._embeddings_on:
            self._lib.llama_set_embeddings(self._ctx, on)
            self._embeddings_on = on

    def _decode(self, seq_ids: list[int], pos: list[np.ndarray], tokens: list[np.ndarray] | None,
                vectors: list[np.ndarray] | None, hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Feed each row's inputs (row ``r``: sequence ``seq_ids[r]`` at positions ``pos[r]``) in chunks of at
        most ``n_batch``; return logits ``(B, V)`` float32 (and hidden ``(B, d)``) at each row's last input."""
        lib, nb = self._lib, self._batch
        B = len(seq_ids)
        logits = torch.empty(B, self.n_vocab, dtype=torch.float32)
        h = torch.empty(B, self.hidden_size, dtype=torch.float32) if hidden else None
        self._set_embeddings(hidden)
        row, start = 0, 0  # next input to send: row `row`, its input `start`
        while row < B:
            n, out_rows, out_at = 0, [], []
            while row < B and n < nb.capacity:
                take = min(len(pos[row]) - start, nb.capacity - n)
                sl = slice(n, n + take)
                nb.pos[sl] = pos[row][start:start + take]
                nb.seq[sl] = seq_ids[row]
                nb.logits[sl] = 0
                if vectors is not None:
                    nb.embd[sl] = vectors[row][start:start + take]
                elif tokens is not None:
                    nb.token[sl] = tokens[row][start:start + take]
                n += take
                start += take
                if start == len(pos[row]):
                    nb.logits[n - 1] = 1
                    out_rows.append(row)
                    out_at.append(n - 1)
                    row, start = row + 1, 0
            rc = lib.llama_decode(self._ctx, nb.native(n, vectors is not None))
            if rc == 1:
                rows = f" or fewer rows at once (batch_size; {len(pos)} here)" if len(pos) > 1 else ""
                raise ContextLengthError(
                    f"the llama.cpp context ({self.n_ctx} positions shared by every row and cached prefix) is full: "
                    f"pass a larger n_ctx{rows}", param=("n_ctx", "batch_size") if rows else "n_ctx")
            if rc != 0:
                raise ContractError(f"llama_decode failed with status {rc} (see the logger {native_log.name})")
            # by position in the batch (with embeddings on, llama.cpp outputs every input, not only the flagged)
            for r, at in zip(out_rows, out_at):
                ptr = lib.llama_get_logits_ith(self._ctx, at)
                if not ptr:
                    raise ContractError(f"llama.cpp returned no logits for batch position {at}")
                logits[r] = torch.from_numpy(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)))
                if h is not None:
                    hp = lib.llama_get_embeddings_ith(self._ctx, at)
                    if not hp:
                        raise UnsupportedError("this llama.cpp build gives no embeddings output, which the hidden "
                                                "rule (COCONUT-style) needs; use --backend transformers")
                    h[r] = torch.from_numpy(np.ctypeslib.as_array(hp, shape=(self.hidden_size,)))
        return logits, h

    def prefill(self, batch: Batch, past: DecodeState | None = None, *, hidden: bool = False) -> DecodeState:
        mask = batch.attention_mask.cpu().bool()  # (B, T)
        B = batch.batch_size
        if past is not None and past.batch_size != B:
            raise ContractError(f"past has {past.batch_size} rows but the batch has {B}")
        lengths = mask.sum(-1)  # (B,)
        if past is None:
            offset = torch.zeros(B, dtype=torch.long)
            sequences = _Sequences(self, self._take(B))
        else:
            offset = past.next_position.cpu().long()
            sequences = past.cache.sequences
        pos = [np.arange(int(offset[i]), int(offset[i] + lengths[i]), dtype=np.int32) for i in range(B)]
        if batch.input_ids is not None:
            ids = batch.input_ids.cpu()
            tokens = [ids[i][mask[i]].numpy().astype(np.int32) for i in range(B)]
            logits, h = self._decode(sequences.ids, pos, tokens, None, hidden)
        else:
            assert batch.inputs_embeds is not None  # a Batch holds ids or vectors
            emb = batch.inputs_embeds.detach().to("cpu", torch.float32)
            vecs = [emb[i][mask[i]].numpy() for i in range(B)]
            logits, h = self._decode(sequences.ids, pos, None, vecs, hidden)
        return DecodeState(logits, offset + lengths, h, LlamaCppCache(sequences))

    def extend(self, state: DecodeState, inputs_embeds: torch.Tensor, *, hidden: bool = False) -> DecodeState:
        inputs_embeds = extend_inputs(state, inputs_embeds)  # (B, k, d)
        B, k, _ = inputs_embeds.shape
        emb = inputs_embeds.detach().to("cpu", torch.float32).numpy()
        start = state.next_position.cpu().long()
        pos = [np.arange(int(start[i]), int(start[i]) + k, dtype=np.int32) for i in range(B)]
        logits, h = self._decode(state.cache.sequences.ids, pos, None, list(emb), hidden)
        return DecodeState(logits, start + k, h, state.cache)

    def select_rows(self, state: DecodeState, rows: torch.Tensor) -> DecodeState:
        rows_list = [int(r) for r in torch.as_tensor(rows, dtype=torch.long).tolist()]
        seqs = state.cache.sequences
        keep = [seqs.ids[r] for r in rows_list]
        kept = set(keep)
        dropped = [s for s in seqs.ids if s not in kept]
        self._release(dropped)
        seqs.ids[:] = keep
        index = torch.tensor(rows_list, dtype=torch.long)
        state.logits = state.logits[index]
        state.next_position = state.next_position[index]
        if state.hidden is not None:
            state.hidden = state.hidden[index]
        return state

    def fork(self, state: DecodeState, rows: torch.Tensor | Sequence[int]) -> DecodeState:
        rows_list = [int(r) for r in torch.as_tensor(rows, dtype=torch.long).tolist()]
        src = state.cache.sequences.ids
        new = self._take(len(rows_list))
        for dst, r in zip(new, rows_list):
            self._lib.llama_memory_seq_cp(self._mem, src[r], dst, -1, -1)
        index = torch.tensor(rows_list, dtype=torch.long)
        hidden = state.hidden[index].clone() if state.hidden is not None else None
        return DecodeState(state.logits[index].clone(), state.next_position[index].clone(), hidden,
                           LlamaCppCache(_Sequences(self, new)))

    def merge(self, first: DecodeState, second: DecodeState) -> DecodeState:
        """Rows of ``first`` then ``second``: sequences are independent in llama.cpp's unified KV cache, so the
        merged state only holds both sets of sequence ids (nothing is copied)."""
        a, b = first.cache, second.cache
        if not isinstance(a, LlamaCppCache) or not isinstance(b, LlamaCppCache):
            raise ContractError("merge got a state that is not the llama.cpp backend's")
        ids = a.sequences.ids + b.sequences.ids
        a.sequences.release.detach()  # the merged state releases them now
        b.sequences.release.detach()
        a.sequences.ids, b.sequences.ids = [], []
        return merge_fields(first, second, LlamaCppCache(_Sequences(self, ids)))

    def forward_logits(self, batch: Batch, *, keep: int | None = None) -> torch.Tensor:
        raise UnsupportedError("llama.cpp computes no gradients and keeps only the last position's logits here; "
                               "teacher-forced scoring (soft prompts, the reader, log-likelihoods, diagnose) needs "
                               "backend transformers")

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        raise UnsupportedError("llama.cpp returns no per-layer hidden states here; the logit lens needs backend "
                               "transformers (or reference)")

    def unembed(self, hidden: torch.Tensor, *, final: bool = False) -> torch.Tensor:
        raise UnsupportedError("llama.cpp exposes no LM head here; use backend transformers (or reference)")

    def live_sequences(self) -> int:
        """Sequences alive now (rows of every live :class:`DecodeState`); for tests and diagnostics."""
        return self.n_seq_max - len(self._free)

    def describe(self) -> dict[str, Any]:
        """Settings for results files: threads, context, batch, flash attention, llama-cpp-python version."""
        return {"n_threads": self.n_threads, "n_ctx": self.n_ctx, "n_batch": self.n_batch,
                "flash_attn": self.options.flash_attn, "kv_type": self.options.kv_type, "llama_cpp_python": version("llama-cpp-python"),
                "weights_bytes": os.path.getsize(self.gguf_path), "bits_per_weight":
                round(8 * os.path.getsize(self.gguf_path) / max(self.n_params, 1), 3)}


__all__ = ["INSTALL_HINT", "LlamaCppBackend", "LlamaCppCache", "LlamaCppOptions", "LlamaCppUnavailableError",
           "default_threads", "import_llama_cpp"]
