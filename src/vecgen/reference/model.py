"""A from-scratch decoder for the Qwen2/Qwen2.5 and Qwen3 families, written for reading and tapping.

The model is the pre-norm decoder of the Qwen2 technical report (arXiv 2407.10671) and the Qwen3
technical report (arXiv 2505.09388), built from these published pieces:

* token embedding ``E`` (V_rows, d);
* RMSNorm (Zhang & Sennrich 2019, arXiv 1910.07467): ``x / sqrt(mean(x²) + eps) · g``, computed in float32;
* rotary position embeddings, RoPE (Su et al. 2021, arXiv 2104.09864), in the "rotate half" layout
  (dimension ``j`` pairs with ``j + head_dim/2``), frequencies ``θ_j = rope_theta^(-2j/head_dim)``;
* grouped-query attention, GQA (Ainslie et al. 2023, arXiv 2305.13245): ``n_kv_heads`` key/value heads,
  each shared by ``n_heads / n_kv_heads`` consecutive query heads (14 / 2 = 7 for Qwen2.5-0.5B);
* causal scaled-dot-product attention ``softmax(Q Kᵀ / sqrt(head_dim) + mask) V`` (Vaswani et al. 2017),
  either written out (``attention="math"``: :func:`repeat_kv` then :func:`attention_math`) or through
  ``F.scaled_dot_product_attention`` with an explicit boolean mask and ``enable_gqa`` (the default, same
  result; the kernel reads each KV head for its query group instead of copying it ``n_rep`` times);
* Qwen2/Qwen2.5: bias on the q, k, v projections; Qwen3: no bias, per-head RMSNorm on q and k before RoPE
  ("QK-norm", Qwen3 report §2);
* SwiGLU MLP (Shazeer 2020, arXiv 2002.05202): ``W_down (SiLU(x W_gate) ⊙ x W_up)``;
* final RMSNorm and the LM head (untied, or tied to ``E``).

It follows transformers' calling convention (``input_ids`` | ``inputs_embeds``, 2-D ``attention_mask``
with left padding, ``position_ids``, ``past_key_values``, ``use_cache``, ``logits_to_keep``) and
returns ``.logits`` / ``.past_key_values`` (and ``.hidden_states``), and its :class:`KVCache` narrows and
copies batch rows, so it runs under the decode engine through
:class:`~vecgen.backends.transformers.TransformersBackend` like a transformers model:
``generate(lm.with_model(ref), ...)``, ``run_thinking(...)``, translations with shared prefixes.

Taps
----
Every component's output can be captured (``taps=`` per call, or :meth:`ReferenceModel.capture` for all
calls in a block) and replaced (``intervene=`` per call, or :meth:`ReferenceModel.add_hook`). Names:

==========================  ==============================  ===============================================
name                        shape                           what
==========================  ==============================  ===============================================
``embed``                   (B, T, d)                       token embeddings (or the given inputs_embeds)
``layers.{i}.attn_norm``    (B, T, d)                       RMSNorm before attention
``layers.{i}.q``            (B, n_heads, T, head_dim)       ``x W_Q (+ b_Q)`` split into heads
``layers.{i}.k``, ``.v``    (B, n_kv_heads, T, head_dim)    ``x W_K (+ b_K)``, ``x W_V (+ b_V)``
``layers.{i}.q_norm``       (B, n_heads, T, head_dim)       Qwen3 only: per-head RMSNorm of q
``layers.{i}.k_norm``       (B, n_kv_heads, T, head_dim)    Qwen3 only: per-head RMSNorm of k
``layers.{i}.q_rope``       (B, n_heads, T, head_dim)       q after RoPE
``layers.{i}.k_rope``       (B, n_kv_heads, T, head_dim)    k after RoPE (the new positions; what is cached)
``layers.{i}.attn_probs``   (B, n_heads, T, S)              softmax weights (math attention, see below)
``layers.{i}.attn_heads``   (B, T, n_heads·head_dim)        ``softmax(QKᵀ/√head_dim) V``, heads concatenated
``layers.{i}.attn_out``     (B, T, d)                       attention output after ``W_O``
``layers.{i}.resid_attn``   (B, T, d)                       residual stream after attention (x + attn_out)
``layers.{i}.mlp_norm``     (B, T, d)                       RMSNorm before the MLP
``layers.{i}.mlp_hidden``   (B, T, d_ff)                    ``SiLU(x W_gate) ⊙ x W_up``
``layers.{i}.mlp_out``      (B, T, d)                       MLP output after ``W_down``
``layers.{i}.out``          (B, T, d)                       layer output (resid_attn + mlp_out)
``final_norm``              (B, T, d)                       final RMSNorm
``logits``                  (B, T_keep, V_rows)             LM head output
==========================  ==============================  ===============================================

``T`` is the number of new positions of the call, ``S`` = cached + new positions. ``B`` rows that are left
padding carry values that no real position attends to. ``attn_probs`` exists when the model runs the
written-out attention (``attention="math"``, or when a requested tap pattern names ``attn_probs``);
``taps=True`` records everything else without changing the attention kernel.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import ConfigError, UnsupportedModelError

#: Families the reference model implements (``FamilyAdapter.family`` values).
SUPPORTED_FAMILIES: tuple[str, ...] = ("qwen2", "qwen3")

#: Per-layer tap components, in computation order (``q_norm``/``k_norm`` exist only with QK-norm,
#: ``attn_probs`` only with ``attention="math"``).
LAYER_COMPONENTS: tuple[str, ...] = (
    "attn_norm", "q", "k", "v", "q_norm", "k_norm", "q_rope", "k_rope", "attn_probs", "attn_heads", "attn_out",
    "resid_attn", "mlp_norm", "mlp_hidden", "mlp_out", "out",
)

#: ``hook(name, tensor)`` may return a replacement tensor of the same shape, or None to keep it.
InterventionFn = Callable[[str, torch.Tensor], "torch.Tensor | None"]
#: What to record: None (nothing), True (everything), or names / fnmatch patterns ("layers.*.q_rope").
TapSpec = bool | Collection[str] | None


@dataclass(frozen=True)
class ReferenceConfig:
    """Hyperparameters of a Qwen2/Qwen3 decoder (names as in transformers' configs).

    Attributes:
        model_type: ``"qwen2"`` or ``"qwen3"`` (the transformers ``config.model_type``).
        vocab_size: embedding rows ``V_rows`` (padding rows included).
        hidden_size: ``d``. intermediate_size: ``d_ff`` of the SwiGLU MLP.
        num_hidden_layers: ``L``. num_attention_heads: query heads. num_key_value_heads: KV heads (GQA).
        head_dim: per-head width (Qwen2: ``d / n_heads``; Qwen3 sets it explicitly).
        rms_norm_eps: RMSNorm epsilon. rope_theta: RoPE base (1e6 for Qwen2.5 and Qwen3).
        qkv_bias: bias on the q/k/v projections (Qwen2). qk_norm: per-head RMSNorm on q and k (Qwen3).
        tie_word_embeddings: the LM head reuses the input embedding matrix.

    Raises:
        ConfigError: inconsistent sizes (e.g. query heads not a multiple of KV heads, odd head_dim).
    """

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    qkv_bias: bool
    qk_norm: bool
    tie_word_embeddings: bool

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads} (grouped-query attention needs whole groups)"
            )
        if self.head_dim % 2:
            raise ConfigError(f"head_dim={self.head_dim}: RoPE rotates pairs of dimensions, it must be even")
        if not (self.rms_norm_eps > 0 and self.rope_theta > 0):
            raise ConfigError(f"rms_norm_eps={self.rms_norm_eps} and rope_theta={self.rope_theta} must be > 0")

    @property
    def n_rep(self) -> int:
        """Query heads per KV head (7 for Qwen2.5-0.5B: 14 / 2)."""
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_transformers(cls, config: Any, adapter: Any) -> "ReferenceConfig":
        """Build from a transformers config and vecgen's family adapter (which supplies the family facts).

        ``rope_theta`` is read from ``config.rope_parameters["rope_theta"]`` (transformers 5) or
        ``config.rope_theta`` (older configs).

        Raises:
            UnsupportedModelError: a family other than qwen2/qwen3, or a variant this model does not
                implement (sliding-window layers, scaled RoPE, an activation other than SiLU).
        """
        model_type = getattr(config, "model_type", "?")
        if adapter.family not in SUPPORTED_FAMILIES:
            raise UnsupportedModelError(f"not supported: {model_type}; supported: {', '.join(SUPPORTED_FAMILIES)}")
        rope = dict(getattr(config, "rope_parameters", None) or {})
        rope_theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
        rope_type = rope.get("rope_type", rope.get("type", "default")) or "default"
        problems = []
        if rope_theta is None:
            problems.append("no rope_theta in the config")
        if rope_type != "default":
            problems.append(f"rope_type={rope_type!r} (only the default, unscaled RoPE)")
        if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
            problems.append("sliding-window attention layers")
        if getattr(config, "hidden_act", "silu") != "silu":
            problems.append(f"hidden_act={config.hidden_act!r} (SwiGLU uses silu)")
        if problems:
            raise UnsupportedModelError(f"not supported by the reference model: {model_type} with " + "; ".join(problems))
        assert rope_theta is not None  # refused above otherwise
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(
            model_type=model_type,
            vocab_size=int(config.vocab_size),
            hidden_size=int(config.hidden_size),
            intermediate_size=int(config.intermediate_size),
            num_hidden_layers=int(config.num_hidden_layers),
            num_attention_heads=int(config.num_attention_heads),
            num_key_value_heads=int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads),
            head_dim=int(head_dim),
            rms_norm_eps=float(config.rms_norm_eps),
            rope_theta=float(rope_theta),
            qkv_bias=bool(adapter.qkv_bias),
            qk_norm=bool(adapter.qk_norm),
            tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        )


def tap_names(config: ReferenceConfig, *, attention: str = "sdpa") -> list[str]:
    """Every tap name the model produces for ``config``, in computation order."""
    skip = set()
    if not config.qk_norm:
        skip |= {"q_norm", "k_norm"}
    if attention != "math":
        skip.add("attn_probs")
    names = ["embed"]
    for i in range(config.num_hidden_layers):
        names += [f"layers.{i}.{c}" for c in LAYER_COMPONENTS if c not in skip]
    return names + ["final_norm", "logits"]


# --------------------------------------------------------------------------------------------- pieces


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dimension (Zhang & Sennrich 2019), statistics in float32.

    ``x`` (..., n) any float dtype, ``weight`` (n,) → (..., n) in ``x``'s dtype (times ``weight``).
    """
    x32 = x.float()  # (..., n) float32
    inv_rms = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)  # (..., 1)
    return weight * (x32 * inv_rms).to(x.dtype)  # (..., n)


def rope_inverse_frequencies(head_dim: int, theta: float) -> torch.Tensor:
    """RoPE frequencies ``θ_j = theta^(-2j / head_dim)``, j = 0 … head_dim/2 − 1: ``(head_dim/2,)`` float32."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu") / head_dim  # (head_dim/2,)
    return 1.0 / (theta**exponents)  # (head_dim/2,)


def rope_cos_sin(position_ids: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines of the rotation angles ``m·θ_j`` (computed in float32, returned in ``dtype``).

    ``position_ids`` (B, T) long, ``inv_freq`` (head_dim/2,) → two ``(B, T, head_dim)`` tensors; the
    angle of pair ``j`` is repeated at ``j`` and ``j + head_dim/2`` (the rotate-half layout).
    """
    angles = position_ids[..., None].float() * inv_freq.float()  # (B, T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (B, T, head_dim)
    return angles.cos().to(dtype), angles.sin().to(dtype)  # (B, T, head_dim) each


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) → (−x2, x1)`` on the two halves of the last dimension: (..., head_dim) → (..., head_dim)."""
    x1, x2 = x.chunk(2, dim=-1)  # (..., head_dim/2) each
    return torch.cat([-x2, x1], dim=-1)  # (..., head_dim)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every head of ``x`` by its position: ``x·cos + rotate_half(x)·sin``.

    ``x`` (B, n_heads, T, head_dim), ``cos``/``sin`` (B, T, head_dim) → (B, n_heads, T, head_dim). At
    position 0 (cos = 1, sin = 0) this is the identity.
    """
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, head_dim): broadcast over heads
    return x * cos + rotate_half(x) * sin  # (B, n_heads, T, head_dim)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Expand KV heads to query heads for grouped-query attention.

    ``x`` (B, n_kv_heads, S, head_dim) → (B, n_kv_heads·n_rep, S, head_dim), where query head ``h`` uses KV
    head ``h // n_rep`` (each KV head repeated ``n_rep`` times in a row, like
    ``torch.repeat_interleave(x, n_rep, dim=1)``).
    """
    if n_rep == 1:
        return x
    B, n_kv, S, head_dim = x.shape
    x = x[:, :, None].expand(B, n_kv, n_rep, S, head_dim)  # (B, n_kv_heads, n_rep, S, head_dim), no copy
    return x.reshape(B, n_kv * n_rep, S, head_dim)  # (B, n_heads, S, head_dim)


def causal_mask(attention_mask: torch.Tensor, past_length: int, T: int) -> torch.Tensor:
    """Which keys each new query may attend to.

    Query ``t`` sits at index ``past_length + t`` of the full sequence; it sees key ``s`` when
    ``s <= past_length + t`` (causal) and ``attention_mask[b, s] == 1`` (not padding). Every query also
    sees itself, so a padding query's softmax is over one finite score instead of none (no NaN).

    ``attention_mask`` (B, S) 0/1 with ``S = past_length + T`` → ``(B, 1, T, S)`` bool, True = attend.
    """
    S = attention_mask.shape[-1]
    device = attention_mask.device
    query_index = past_length + torch.arange(T, device=device)  # (T,)
    key_index = torch.arange(S, device=device)  # (S,)
    causal = key_index[None, :] <= query_index[:, None]  # (T, S)
    allowed = causal[None] & attention_mask.bool()[:, None, :]  # (B, T, S)
    allowed = allowed | (key_index[None, :] == query_index[:, None])[None]  # (B, T, S): self always visible
    return allowed[:, None]  # (B, 1, T, S)


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                   scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(Q Kᵀ · scale, masked) V`` written out.

    Scores and softmax are computed in float32 (in bfloat16, ``Q Kᵀ`` of Qwen's large early-layer queries
    and keys would lose about 3 significant digits); the weights are cast back to ``v``'s dtype.

    ``q`` (B, H, T, head_dim), ``k``/``v`` (B, H, S, head_dim), ``mask`` (B, 1, T, S) bool →
    ``(output (B, H, T, head_dim), probs (B, H, T, S))``.
    """
    scores = (q.float() @ k.float().transpose(-2, -1)) * scale  # (B, H, T, S) float32
    scores = scores.masked_fill(~mask, float("-inf"))  # (B, H, T, S)
    probs = torch.softmax(scores, dim=-1).to(v.dtype)  # (B, H, T, S), rows sum to 1
    return probs @ v, probs  # (B, H, T, head_dim), (B, H, T, S)


# ----------------------------------------------------------------------------------------- KV cache


class KVCache:
    """Keys (after RoPE) and values of every layer, grown by concatenation along the sequence.

    Per layer: ``keys[i]`` and ``values[i]`` are ``(B, n_kv_heads, S, head_dim)`` (KV heads are stored
    unexpanded, as in the model). Updated in place by the model and returned again as
    ``past_key_values``.
    """

    def __init__(self, num_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k``, ``v`` (B, n_kv_heads, T, head_dim); return the layer's full ``(B, n_kv_heads, S, head_dim)``."""
        old_k, old_v = self.keys[layer], self.values[layer]
        if old_k is not None and old_v is not None:
            k = torch.cat([old_k, k], dim=2)  # (B, n_kv_heads, S, head_dim)
            v = torch.cat([old_v, v], dim=2)  # (B, n_kv_heads, S, head_dim)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def get_seq_length(self, layer: int = 0) -> int:
        """Cached positions ``S`` (padding included)."""
        k = self.keys[layer]
        return 0 if k is None else int(k.shape[2])

    def crop(self, max_length: int) -> None:
        """Keep only the first ``max_length`` positions (e.g. to undo steps)."""
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None and v is not None:
                self.keys[i], self.values[i] = k[:, :, :max_length], v[:, :, :max_length]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep batch rows ``indices`` ``(b,)`` long of every layer, in place (rows leave the batch, or
        rows are copied, e.g. a shared prefix per prompt); transformers' ``Cache`` method of the same name."""
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None and v is not None:
                idx = indices.to(k.device)
                self.keys[i], self.values[i] = k[idx], v[idx]  # (b, n_kv_heads, S, head_dim) each

    def __len__(self) -> int:
        return len(self.keys)


# --------------------------------------------------------------------------------------------- taps


class _Tapper:
    """Per-call tap point: runs intervention hooks, then records what was asked for."""

    def __init__(self, spec: TapSpec, hooks: list[InterventionFn]):
        self.hooks = hooks
        self.all = spec is True
        if isinstance(spec, str):
            spec = [spec]
        self.patterns = [] if spec in (None, False, True) else [str(s) for s in spec]  # type: ignore[union-attr]
        self.taps: dict[str, torch.Tensor] = {}
        self.active = bool(hooks) or self.all or bool(self.patterns)

    def wants(self, name: str) -> bool:
        return self.all or any(p == name or fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def names_component(self, component: str) -> bool:
        """Does a pattern name ``component`` explicitly (e.g. ``"layers.*.attn_probs"``)?"""
        return any(component in p for p in self.patterns)

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        for hook in self.hooks:
            y = hook(name, x)
            if y is not None:
                if tuple(y.shape) != tuple(x.shape):
                    raise ConfigError(
                        f"intervention on {name!r} returned shape {tuple(y.shape)}; expected {tuple(x.shape)}"
                    )
                x = y.to(dtype=x.dtype, device=x.device)
        if self.wants(name):
            self.taps[name] = x
        return x


# ------------------------------------------------------------------------------------------- modules


class RMSNorm(nn.Module):
    """RMSNorm with a learned gain ``g`` of width ``n`` (see :func:`rms_norm`)."""

    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)  # (..., n)


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE (and QK-norm for Qwen3)."""

    def __init__(self, config: ReferenceConfig):
        super().__init__()
        d, n_heads, n_kv, head_dim = config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim, self.n_rep = n_heads, n_kv, head_dim, config.n_rep
        self.scale = 1.0 / math.sqrt(head_dim)
        self.wq = nn.Linear(d, n_heads * head_dim, bias=config.qkv_bias)  # W_Q
        self.wk = nn.Linear(d, n_kv * head_dim, bias=config.qkv_bias)  # W_K
        self.wv = nn.Linear(d, n_kv * head_dim, bias=config.qkv_bias)  # W_V
        self.wo = nn.Linear(n_heads * head_dim, d, bias=False)  # W_O
        self.q_norm = RMSNorm(head_dim, config.rms_norm_eps) if config.qk_norm else None
        self.k_norm = RMSNorm(head_dim, config.rms_norm_eps) if config.qk_norm else None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                cache: KVCache | None, layer: int, tap: _Tapper, math_attention: bool) -> torch.Tensor:
        """``x`` (B, T, d) normalised input → (B, T, d) attention output (after ``W_O``)."""
        p = f"layers.{layer}."
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, n_heads, T, head_dim)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv_heads, T, head_dim)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv_heads, T, head_dim)
        q, k, v = tap(p + "q", q), tap(p + "k", k), tap(p + "v", v)
        if self.q_norm is not None and self.k_norm is not None:  # Qwen3 QK-norm, per head, before RoPE
            q = tap(p + "q_norm", self.q_norm(q))  # (B, n_heads, T, head_dim)
            k = tap(p + "k_norm", self.k_norm(k))  # (B, n_kv_heads, T, head_dim)
        q = tap(p + "q_rope", apply_rope(q, cos, sin))  # (B, n_heads, T, head_dim)
        k = tap(p + "k_rope", apply_rope(k, cos, sin))  # (B, n_kv_heads, T, head_dim)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, n_kv_heads, S, head_dim) each
        if math_attention:
            k = repeat_kv(k, self.n_rep)  # (B, n_heads, S, head_dim): query head h reads KV head h // n_rep
            v = repeat_kv(v, self.n_rep)  # (B, n_heads, S, head_dim)
            out, probs = attention_math(q, k, v, mask, self.scale)  # (B, n_heads, T, head_dim), (B, n_heads, T, S)
            tap(p + "attn_probs", probs)
        else:
            # The same GQA expansion (h → h // n_rep) done inside the kernel, without copying K and V n_rep times.
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale,
                                                 enable_gqa=self.n_rep > 1)  # (B, n_heads, T, head_dim)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, n_heads·head_dim)
        out = tap(p + "attn_heads", out)
        return self.wo(out)  # (B, T, d)


class SwiGLU(nn.Module):
    """``W_down (SiLU(x W_gate) ⊙ x W_up)`` (Shazeer 2020)."""

    def __init__(self, config: ReferenceConfig):
        super().__init__()
        d, d_ff = config.hidden_size, config.intermediate_size
        self.w_gate = nn.Linear(d, d_ff, bias=False)
        self.w_up = nn.Linear(d, d_ff, bias=False)
        self.w_down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x: torch.Tensor, layer: int, tap: _Tapper) -> torch.Tensor:
        """``x`` (B, T, d) → (B, T, d)."""
        hidden = F.silu(self.w_gate(x)) * self.w_up(x)  # (B, T, d_ff)
        hidden = tap(f"layers.{layer}.mlp_hidden", hidden)
        return self.w_down(hidden)  # (B, T, d)


class DecoderLayer(nn.Module):
    """Pre-norm block: ``h = x + Attn(RMSNorm(x))``; ``out = h + MLP(RMSNorm(h))``."""

    def __init__(self, config: ReferenceConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                cache: KVCache | None, tap: _Tapper, math_attention: bool) -> torch.Tensor:
        """``x`` (B, T, d) residual stream → (B, T, d)."""
        p = f"layers.{self.layer}."
        h = tap(p + "attn_norm", self.attn_norm(x))  # (B, T, d)
        a = tap(p + "attn_out", self.attn(h, cos, sin, mask, cache, self.layer, tap, math_attention))  # (B, T, d)
        x = tap(p + "resid_attn", x + a)  # (B, T, d)
        h = tap(p + "mlp_norm", self.mlp_norm(x))  # (B, T, d)
        m = tap(p + "mlp_out", self.mlp(h, self.layer, tap))  # (B, T, d)
        return tap(p + "out", x + m)  # (B, T, d)


@dataclass
class ReferenceOutput:
    """What :meth:`ReferenceModel.forward` returns.

    Attributes:
        logits: ``(B, T_keep, V_rows)`` in the model dtype.
        past_key_values: the :class:`KVCache` (when ``use_cache``), else None.
        taps: recorded tensors by tap name (empty unless requested).
        hidden_states: with ``output_hidden_states``, transformers' layout: ``L + 1`` tensors ``(B, T, d)`` —
            the embeddings, the outputs of layers ``0 … L−2``, and the final norm's output (the last
            layer's output after the final RMSNorm, what the LM head reads); else None.
    """

    logits: torch.Tensor
    past_key_values: KVCache | None = None
    taps: dict[str, torch.Tensor] = field(default_factory=dict)
    hidden_states: tuple[torch.Tensor, ...] | None = None


class ReferenceModel(nn.Module):
    """The Qwen2/Qwen3 decoder. Build it from a transformers model with
    :func:`vecgen.reference.from_transformers` (weights are shared, not copied, unless asked).

    Attributes:
        config: the :class:`ReferenceConfig` (has ``model_type`` and ``num_hidden_layers`` like an HF config).
        attention: ``"sdpa"`` (``F.scaled_dot_product_attention`` with an explicit boolean mask) or
            ``"math"`` (the formula written out; enables the ``attn_probs`` tap). Same results up to
            float rounding.
        generation_config: copied from the source transformers model when there is one (eos ids).
    """

    #: The name :class:`~vecgen.models.LoadedModel` gives the backend that drives this model.
    backend_name = "reference"

    def __init__(self, config: ReferenceConfig, *, attention: str = "sdpa"):
        super().__init__()
        if attention not in ("sdpa", "math"):
            raise ConfigError(f"attention={attention!r}: choose 'sdpa' or 'math'")
        self.config = config
        self.attention = attention
        self.generation_config: Any = None
        self.source_config: Any = None  # the transformers config it was built from, if any
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)  # E: (V_rows, d)
        self.blocks = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.final_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)  # (V_rows, d)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.tok_embeddings.weight
        inv_freq = rope_inverse_frequencies(config.head_dim, config.rope_theta)  # (head_dim/2,) float32, CPU
        self.inv_freq: torch.Tensor
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._hooks: OrderedDict[int, InterventionFn] = OrderedDict()
        self._captures: list[tuple[TapSpec, list[dict[str, torch.Tensor]]]] = []

    # -- HF-like surface -------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Embedding:
        """The input embedding (``weight`` is ``E``, (V_rows, d))."""
        return self.tok_embeddings

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    @property
    def device(self) -> torch.device:
        return self.tok_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tok_embeddings.weight.dtype

    def tap_names(self) -> list[str]:
        """Every tap name this model produces (see the module docstring)."""
        return tap_names(self.config, attention=self.attention)

    # -- taps and interventions ----------------------------------------------------------------
    def add_hook(self, fn: InterventionFn) -> RemovableHandle:
        """Call ``fn(name, tensor)`` at every tap point of every forward (also inside ``generate``).

        ``fn`` may return a tensor of the same shape to replace the component's output (an intervention),
        or None to leave it. Returns a handle; ``handle.remove()`` unregisters it.
        """
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = fn
        return handle

    @contextlib.contextmanager
    def capture(self, taps: TapSpec = True) -> Iterator[list[dict[str, torch.Tensor]]]:
        """Record taps of every forward inside the block: yields a list that gets one dict per call
        (prefill, then each decode step)."""
        calls: list[dict[str, torch.Tensor]] = []
        entry = (taps, calls)
        self._captures.append(entry)
        try:
            yield calls
        finally:
            self._captures.remove(entry)

    # -- forward ---------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
        logits_to_keep: int | torch.Tensor = 0,
        taps: TapSpec = None,
        intervene: InterventionFn | None = None,
        output_hidden_states: bool = False,
    ) -> ReferenceOutput:
        """Run the decoder on ``T`` new positions (on top of ``past_key_values`` when given).

        Args:
            input_ids: ``(B, T)`` long, or None when ``inputs_embeds`` is given.
            attention_mask: ``(B, S)`` 0/1 over cached + new positions, 0 on left padding (default all 1).
            position_ids: ``(B, T)`` long RoPE positions (default ``S − T … S − 1``).
            past_key_values: a :class:`KVCache` from an earlier call (extended in place).
            inputs_embeds: ``(B, T, d)`` input vectors instead of ids.
            use_cache: return the cache (a new one if none was given).
            logits_to_keep: ``k > 0`` keeps the last k positions' logits, 0 keeps all; a 1-D tensor of
                indices selects positions.
            taps: what to record into ``output.taps``: True (all), or names / fnmatch patterns.
            intervene: ``fn(name, tensor) → tensor | None`` run at every tap point of this call (after
                hooks from :meth:`add_hook`). Recorded taps hold the values after interventions.
            output_hidden_states: also return ``hidden_states`` (see :class:`ReferenceOutput`).

        Returns:
            :class:`ReferenceOutput` with ``logits`` (B, T_keep, V_rows), ``past_key_values``, ``taps``.

        Raises:
            ConfigError: both or neither of ``input_ids`` / ``inputs_embeds``; an ``attention_mask`` or
                ``position_ids`` of the wrong shape; an intervention returning the wrong shape.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ConfigError("give exactly one of input_ids or inputs_embeds")
        hooks = list(self._hooks.values()) + ([intervene] if intervene is not None else [])
        spec: TapSpec = taps
        if self._captures:  # record the union of this call's taps and every active capture block
            specs = [taps] + [s for s, _ in self._captures]
            spec = True if any(s is True for s in specs) else [p for s in specs if not isinstance(s, bool) and s is not None
                                                               for p in s]
        tap = _Tapper(spec, hooks)

        x = self.tok_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, d)
        x = tap("embed", x)
        B, T, _ = x.shape
        cache = past_key_values if past_key_values is not None else (KVCache(len(self.blocks)) if use_cache else None)
        past = cache.get_seq_length() if cache is not None else 0
        S = past + T
        if attention_mask is None:
            attention_mask = torch.ones(B, S, dtype=torch.long, device=x.device)  # (B, S)
        if tuple(attention_mask.shape) != (B, S):
            raise ConfigError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected (B, S) = {(B, S)} "
                              f"({past} cached + {T} new positions)")
        if position_ids is None:
            position_ids = (past + torch.arange(T, device=x.device))[None].expand(B, T)  # (B, T)
        if position_ids.dim() == 1:
            position_ids = position_ids[None].expand(B, T)  # (B, T)
        if tuple(position_ids.shape) != (B, T):
            raise ConfigError(f"position_ids has shape {tuple(position_ids.shape)}; expected (B, T) = {(B, T)}")

        mask = causal_mask(attention_mask, past, T)  # (B, 1, T, S) bool
        cos, sin = rope_cos_sin(position_ids, self.inv_freq.to(x.device), x.dtype)  # (B, T, head_dim) each
        math_attention = self.attention == "math" or tap.names_component("attn_probs")
        states: list[torch.Tensor] = []
        for block in self.blocks:
            states.append(x)
            x = block(x, cos, sin, mask, cache, tap, math_attention)  # (B, T, d)
        x = tap("final_norm", self.final_norm(x))  # (B, T, d)
        hidden_states = (*states, x) if output_hidden_states else None  # L + 1 tensors (B, T, d)
        if isinstance(logits_to_keep, int):
            x = x[:, -logits_to_keep:] if logits_to_keep > 0 else x  # (B, T_keep, d)
        else:
            x = x[:, logits_to_keep]  # (B, T_keep, d)
        logits = tap("logits", self.lm_head(x))  # (B, T_keep, V_rows)

        for cap_spec, calls in self._captures:
            sub = _Tapper(cap_spec, [])
            calls.append({k: v for k, v in tap.taps.items() if sub.wants(k)})
        own = _Tapper(taps, [])
        return ReferenceOutput(
            logits=logits,
            past_key_values=cache if use_cache else None,
            taps={k: v for k, v in tap.taps.items() if own.wants(k)},
            hidden_states=hidden_states,
        )
