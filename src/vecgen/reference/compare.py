"""Layer-by-layer comparison of the reference model against transformers (``vecgen verify``).

The same input runs through both. The transformers side is captured with ``output_hidden_states``
(embeddings), forward hooks and pre-hooks on its submodules (norms, q/k/v projections, QK-norms,
``o_proj``, MLP, layers, final norm) and a capturing attention function registered through
transformers' ``AttentionInterface`` (q and k after RoPE, which no submodule returns). The reference
side records its own taps. For each layer and component: max |Δ| and RMSE, checked against a tolerance
for the dtype (:data:`TOLERANCES`); then the top-5 next tokens of both.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from ..errors import ConfigError
from ..models import LoadedModel
from .model import ReferenceModel
from .weights import from_transformers

_CAPTURE_ATTENTION = "vecgen_capture"
_current: dict[str, Any] | None = None  # the capture in progress (set by _transformers_taps)


@dataclass(frozen=True)
class Tolerance:
    """Bound on every element of a compared tensor: ``|ours − transformers| <= atol + rtol·max|transformers|``.

    The relative part scales with the tensor's largest magnitude rather than each element's: Qwen's
    residual stream has a few dimensions near 1e3 beside many near 0, and rounding errors follow the
    large ones through every norm and matmul.

    Attributes:
        dtype: the compute dtype it is for.
        atol, rtol: absolute part and part relative to ``max|transformers|`` of the tensor.
        reason: why these values.
    """

    dtype: str
    atol: float
    rtol: float
    reason: str

    def bound(self, theirs: torch.Tensor) -> float:
        """The allowed max |Δ| for a tensor whose transformers values are ``theirs``."""
        scale = float(theirs.detach().abs().max()) if theirs.numel() else 0.0
        return self.atol + self.rtol * scale

    def describe(self) -> str:
        return f"{self.dtype}: |Δ| ≤ {self.atol:g} + {self.rtol:g}·max|transformers| per tensor. {self.reason}"


#: Tolerances by dtype. Both paths run the same operations in the same order and dtype; on this
#: project's CPU (PyTorch 2.13, AVX2) every component came out bit-identical in float32 and bfloat16
#: on the default model (128-token prompt). Differences are expected only where a backend picks
#: different kernels for transformers' ``is_causal`` / ``enable_gqa`` SDPA call and our explicit-mask
#: call (e.g. CUDA flash vs. memory-efficient attention), i.e. rounding in the last place, carried
#: along the residual stream. A wrong component (bias, RoPE layout, KV-head mapping, norm epsilon
#: placement) is off by far more than these bounds.
TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float32: Tolerance(
        "float32", 1e-4, 1e-5,
        "float32 keeps ~7 significant digits (unit roundoff 6e-8); 1e-4 absolute on hidden states of order 1, "
        "plus 1e-5 of the tensor's largest value for the residual stream's ~1e3 outlier dimensions, where 1e-4 "
        "absolute would be a handful of float32 rounding steps.",
    ),
    torch.bfloat16: Tolerance(
        "bfloat16", 5e-2, 2e-2,
        "bfloat16 keeps 8 significant bits (unit roundoff 2^-9 ≈ 2e-3); one rounding difference early on "
        "propagates through the later layers, so a few units in the last place of the largest value (2e-2) "
        "plus 5e-2 absolute are allowed.",
    ),
    torch.float16: Tolerance(
        "float16", 1e-2, 5e-3,
        "float16 keeps 11 significant bits (unit roundoff 2^-11 ≈ 5e-4); a few units in the last place "
        "after propagation through the layers.",
    ),
}


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    """The :data:`TOLERANCES` entry for ``dtype`` (float32's for unknown dtypes)."""
    return TOLERANCES.get(dtype, TOLERANCES[torch.float32])


@dataclass
class ComponentDiff:
    """One row of the comparison.

    Attributes:
        name: tap name (``layers.3.q_rope``). layer: layer index or None. component: ``q_rope``.
        shape: tensor shape. max_abs: max |Δ|. rmse: root mean square of Δ.
        scale: max |transformers value| (for reading max_abs). worst: max_abs / allowed bound (≤ 1 passes).
        ok: max_abs within the tolerance.
    """

    name: str
    layer: int | None
    component: str
    shape: tuple[int, ...]
    max_abs: float
    rmse: float
    scale: float
    worst: float
    ok: bool


@dataclass
class TopToken:
    id: int
    text: str
    prob: float


@dataclass
class Comparison:
    """Result of :func:`compare`.

    Attributes:
        rows: per layer and component, in computation order.
        tolerance: the bound used.
        top_transformers, top_reference: top-k next tokens after the last input position.
        input_ids: the input.
    """

    rows: list[ComponentDiff]
    tolerance: Tolerance
    top_transformers: list[TopToken]
    top_reference: list[TopToken]
    input_ids: list[int] = field(default_factory=list)

    @property
    def next_token_transformers(self) -> int:
        return self.top_transformers[0].id

    @property
    def next_token_reference(self) -> int:
        return self.top_reference[0].id

    @property
    def first_failure(self) -> ComponentDiff | None:
        """The earliest component (in computation order) outside the tolerance."""
        return next((r for r in self.rows if not r.ok), None)

    @property
    def worst(self) -> ComponentDiff:
        return max(self.rows, key=lambda r: r.worst)

    @property
    def passed(self) -> bool:
        """Every component within the tolerance and the same next token."""
        return self.first_failure is None and self.next_token_transformers == self.next_token_reference

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "tolerance": asdict(self.tolerance),
            "input_ids": self.input_ids,
            "next_token": {"transformers": self.next_token_transformers, "reference": self.next_token_reference},
            "first_failure": self.first_failure.name if self.first_failure else None,
            "worst": asdict(self.worst),
            "top_transformers": [asdict(t) for t in self.top_transformers],
            "top_reference": [asdict(t) for t in self.top_reference],
            "rows": [asdict(r) for r in self.rows],
        }


def _capturing_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: Any, **kwargs: Any) -> Any:
    """Attention function for transformers' ``AttentionInterface``: record q, k after RoPE, then run the
    model's original attention implementation."""
    cap = _current
    if cap is None:  # pragma: no cover - only installed while capturing
        raise RuntimeError("vecgen capture attention used outside a capture")
    T = query.shape[2]
    cap["taps"][f"layers.{module.layer_idx}.q_rope"] = query  # (B, n_heads, T, head_dim)
    cap["taps"][f"layers.{module.layer_idx}.k_rope"] = key[:, :, -T:]  # (B, n_kv_heads, T, head_dim)
    return cap["attention"](module, query, key, value, attention_mask, **kwargs)


def _original_attention(model: Any, name: str) -> Any:
    if name in ALL_ATTENTION_FUNCTIONS:
        return ALL_ATTENTION_FUNCTIONS[name]
    layer_attn = model.model.layers[0].self_attn
    return importlib.import_module(type(layer_attn).__module__).eager_attention_forward


@contextlib.contextmanager
def _transformers_taps(model: Any) -> Iterator[dict[str, torch.Tensor]]:
    """Hooks on a transformers Qwen2/Qwen3 model that record the same components the reference taps."""
    global _current

    AttentionInterface.register(_CAPTURE_ATTENTION, _capturing_attention)
    taps: dict[str, torch.Tensor] = {}
    handles = []
    original = model.config._attn_implementation

    def out(name, fn=lambda o: o):
        def hook(_module, _inputs, output):
            taps[name] = fn(output[0] if isinstance(output, tuple) else output)
        return hook

    def inp(name):
        def hook(_module, inputs):
            taps[name] = inputs[0]
        return hook

    def heads(head_dim):
        def split(x):  # (B, T, n·head_dim) → (B, n, T, head_dim)
            return x.view(*x.shape[:-1], -1, head_dim).transpose(1, 2)
        return split

    def to_heads(x):  # (B, T, n, head_dim) → (B, n, T, head_dim)
        return x.transpose(1, 2)

    for i, layer in enumerate(model.model.layers):
        p, attn, hd = f"layers.{i}.", layer.self_attn, layer.self_attn.head_dim
        handles += [
            layer.input_layernorm.register_forward_hook(out(p + "attn_norm")),
            attn.q_proj.register_forward_hook(out(p + "q", heads(hd))),
            attn.k_proj.register_forward_hook(out(p + "k", heads(hd))),
            attn.v_proj.register_forward_hook(out(p + "v", heads(hd))),
            attn.o_proj.register_forward_pre_hook(inp(p + "attn_heads")),
            attn.register_forward_hook(out(p + "attn_out")),
            layer.post_attention_layernorm.register_forward_pre_hook(inp(p + "resid_attn")),
            layer.post_attention_layernorm.register_forward_hook(out(p + "mlp_norm")),
            layer.mlp.down_proj.register_forward_pre_hook(inp(p + "mlp_hidden")),
            layer.mlp.register_forward_hook(out(p + "mlp_out")),
            layer.register_forward_hook(out(p + "out")),
        ]
        if getattr(attn, "q_norm", None) is not None:
            handles.append(attn.q_norm.register_forward_hook(out(p + "q_norm", to_heads)))
            handles.append(attn.k_norm.register_forward_hook(out(p + "k_norm", to_heads)))
    handles.append(model.model.norm.register_forward_hook(out("final_norm")))
    _current = {"taps": taps, "attention": _original_attention(model, original)}
    model.set_attn_implementation(_CAPTURE_ATTENTION)
    try:
        yield taps
    finally:
        model.set_attn_implementation(original)
        _current = None
        for h in handles:
            h.remove()


@torch.inference_mode()
def capture_transformers(model: Any, *, input_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                         attention_mask: torch.Tensor | None = None,
                         position_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Run a transformers Qwen2/Qwen3 model once (no cache) and return its components under the
    reference model's tap names (``embed`` … ``logits``, see :mod:`vecgen.reference.model`)."""
    with _transformers_taps(model) as taps:
        out = model(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                    position_ids=position_ids, use_cache=False, output_hidden_states=True)
    result = {"embed": out.hidden_states[0]}
    result.update(taps)
    result["logits"] = out.logits
    return result


def _layer_of(name: str) -> tuple[int | None, str]:
    if name.startswith("layers."):
        _, i, comp = name.split(".", 2)
        return int(i), comp
    return None, name


def diff_rows(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], order: Sequence[str],
              tolerance: Tolerance, *, positions: torch.Tensor | None = None) -> list[ComponentDiff]:
    """Compare tensors present in both dicts, in ``order``.

    ``positions`` (B, T) bool optionally restricts the comparison to real (non-padding) positions of
    ``(B, …, T, …)`` tensors (the T axis is found by the tap's layout).
    """
    rows = []
    for name in order:
        if name not in ours or name not in theirs:
            continue
        a, b = ours[name].detach().double(), theirs[name].detach().double()
        if a.shape != b.shape:
            raise AssertionError(f"{name}: reference shape {tuple(a.shape)} vs transformers {tuple(b.shape)}")
        shape = tuple(a.shape)
        if positions is not None:
            if a.dim() == 4:  # (B, heads, T, head_dim)
                a, b = a.transpose(1, 2)[positions], b.transpose(1, 2)[positions]
            else:  # (B, T, ·)
                a, b = a[positions], b[positions]
        delta = (a - b).abs()
        max_abs = float(delta.max()) if delta.numel() else 0.0
        bound = tolerance.bound(b)
        layer, comp = _layer_of(name)
        rows.append(ComponentDiff(
            name=name, layer=layer, component=comp, shape=shape, max_abs=max_abs,
            rmse=float(delta.pow(2).mean().sqrt()) if delta.numel() else 0.0,
            scale=float(b.abs().max()) if b.numel() else 0.0,
            worst=max_abs / bound, ok=max_abs <= bound,
        ))
    return rows


def _top(logits: torch.Tensor, tokenizer: Any, k: int) -> list[TopToken]:
    probs = torch.softmax(logits.float(), dim=-1)  # (V,)
    p, i = torch.topk(probs, k)
    return [TopToken(int(t), tokenizer.decode([int(t)]) if tokenizer is not None else str(int(t)), float(q))
            for t, q in zip(i.tolist(), p.tolist())]


@torch.inference_mode()
def compare(lm: LoadedModel, input_ids: Sequence[int], *, reference: ReferenceModel | None = None, top_k: int = 5,
            tolerance: Tolerance | None = None) -> Comparison:
    """Run ``input_ids`` through ``lm.model`` (transformers) and the reference model; compare every component.

    Args:
        lm: a :class:`~vecgen.models.LoadedModel` with a transformers Qwen2/Qwen3 model.
        input_ids: the prompt's token ids (one sequence).
        reference: the reference model (default: :func:`~vecgen.reference.from_transformers` of ``lm``,
            sharing its weights).
        top_k: next tokens listed for each path.
        tolerance: default :func:`tolerance_for` ``lm.dtype``.

    Returns:
        A :class:`Comparison` (``.passed``, ``.first_failure``, ``.rows``, top-k of both).

    Raises:
        UnsupportedModelError: not a Qwen2/Qwen3 model.
        ConfigError: empty input.
    """
    if not len(input_ids):
        raise ConfigError("empty input: give at least one token")
    reference = reference if reference is not None else from_transformers(lm)
    tolerance = tolerance or tolerance_for(lm.dtype)
    ids = torch.tensor([list(input_ids)], dtype=torch.long, device=lm.device)  # (1, T)
    theirs = capture_transformers(lm.model, input_ids=ids)
    ours = reference(input_ids=ids, taps=True).taps
    rows = diff_rows(ours, theirs, reference.tap_names(), tolerance)
    return Comparison(
        rows=rows,
        tolerance=tolerance,
        top_transformers=_top(theirs["logits"][0, -1], lm.tokenizer, top_k),
        top_reference=_top(ours["logits"][0, -1], lm.tokenizer, top_k),
        input_ids=list(map(int, input_ids)),
    )


def comparison_report(result: Comparison, name: str, prompt: str, ids: Sequence[int], dtype: str) -> str:
    """The Markdown report of ``vecgen verify``: every compared tensor's max abs difference and RMSE against its
    tolerance, both next tokens, the verdict."""
    report = [f"# vecgen verify: {name}", "", f"Prompt {prompt!r}, ids {list(ids)}, dtype {dtype}.", "",
              f"Tolerance: {result.tolerance.describe()}", "",
              "| layer | component | max abs diff | RMSE | max abs value | ok |", "| --- | --- | --- | --- | --- | --- |"]
    report += [f"| {'' if r.layer is None else r.layer} | {r.component} | {format_float(r.max_abs)} | "
               f"{format_float(r.rmse)} | {r.scale:.3g} | {'yes' if r.ok else 'NO'} |" for r in result.rows]
    report += ["", f"Next token: transformers {result.next_token_transformers}, reference {result.next_token_reference}.",
               "", f"Result: {'PASS' if result.passed else 'FAIL'}"]
    return "\n".join(report) + "\n"


def format_float(x: float) -> str:
    """Compact scientific notation for tables (``0`` stays ``0``)."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.2e}"
