"""Patchscopes per layer: what a hidden state says when the model is asked to repeat it.

Patchscopes (Ghandeharioun et al., ICML 2024, arXiv 2401.06102) decode a hidden state ``h`` taken at source layer
``ℓ`` by patching it into a *target prompt* at target layer ``ℓ*`` and letting the model continue. With the
token-identity prompt ``"cat->cat; 1135->1135; hello->hello; ?"`` the continuation is what ``h`` stands for. Here
the target prompt is that prompt followed by ``->`` (so the next token *is* the identity), ``ℓ* = ℓ`` (the paper's
same-layer setting), and the residual stream entering decoder layer ``ℓ`` at the ``?`` position is replaced by ``h``
(for ``ℓ = 0``: the input vector). Layers ``0 … L−1`` are patched: the last hidden state transformers returns is
already after the final norm, which no layer takes as input. All ``L`` patched runs are one batch, one row per layer.

Needs a transformers PyTorch model (forward pre-hooks on its decoder layers); llama.cpp and vecgen's reference
model raise :class:`~vecgen.errors.UnsupportedError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import UnsupportedError
from ..models import LoadedModel

#: The token-identity target prompt, split at the placeholder (Patchscopes' example identities).
IDENTITY_PREFIX = "cat->cat; 1135->1135; hello->hello;"
IDENTITY_PLACEHOLDER = " ?"
IDENTITY_SUFFIX = "->"


def decoder_layers(lm: LoadedModel) -> torch.nn.ModuleList:
    """The decoder layers of a transformers model (the ``ModuleList`` with ``num_hidden_layers`` entries).

    Raises:
        UnsupportedError: not a transformers PyTorch model, or no such list found.
    """
    model = lm.require_transformers("Patchscopes (hooks on the decoder layers)")
    cfg = model.config
    n = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise UnsupportedError(f"{type(model).__name__}: no list of {n} decoder layers found to patch")


def identity_prompt(lm: LoadedModel) -> tuple[list[int], int]:
    """The target prompt's token ids and the placeholder's position in them."""
    before = lm.encode(IDENTITY_PREFIX)
    placeholder = lm.encode(IDENTITY_PLACEHOLDER)
    return before + placeholder + lm.encode(IDENTITY_SUFFIX), len(before) + len(placeholder) - 1


@torch.no_grad()
def patched_logits(lm: LoadedModel, ids: Sequence[int], position: int, states: torch.Tensor,
                   layers: Sequence[int]) -> torch.Tensor:
    """Next-token logits after ``ids`` with, in row ``r``, the stream entering layer ``layers[r]`` at ``position``
    replaced by ``states[r]``.

    Args:
        lm: a transformers model. ids: the target prompt. position: the patched position in ``ids``.
        states: ``(R, d)`` the vectors to patch. layers: ``R`` target layers in ``[0, L)``.

    Returns:
        ``(R, V)`` float32 logits at the last position.
    """
    blocks = decoder_layers(lm)
    rows = len(layers)
    dev = lm.backend.device
    states = states.to(dev, lm.backend.dtype)
    handles = []
    for r, layer in enumerate(layers):
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], r: int = r) -> Any:
            if args:
                h = args[0].clone()
                h[r, position] = states[r]
                return (h, *args[1:]), kwargs
            h = kwargs["hidden_states"].clone()
            h[r, position] = states[r]
            return args, {**kwargs, "hidden_states": h}

        handles.append(blocks[int(layer)].register_forward_pre_hook(hook, with_kwargs=True))
    try:
        batch = torch.tensor([list(ids)] * rows, device=dev)
        out = lm.model(input_ids=batch, use_cache=False)  # type: ignore[misc]
    finally:
        for h in handles:
            h.remove()
    return out.logits[:, -1].float()


@torch.no_grad()
def patchscope_layers(lm: LoadedModel, hidden: Sequence[torch.Tensor], *, top: int = 5) -> dict[str, Any]:
    """Decode one position's hidden state at every layer with the identity prompt (module docstring).

    Args:
        hidden: the ``L + 1`` states of the position, ``(d,)`` each (``hidden_states`` order: 0 = the input).
        top: tokens kept per layer.

    Returns:
        ``{"layers": [0..L-1], "top_ids": [[...]], "top_probs": [[...]], "top_texts": [[...]]}``.
    """
    from ..decoding.metrics import token_text

    ids, pos = identity_prompt(lm)
    n_layers = len(hidden) - 1
    layers = list(range(n_layers))
    states = torch.stack([hidden[layer].float() for layer in layers])  # (L, d)
    logits = patched_logits(lm, ids, pos, states, layers)[:, : lm.n_real_vocab]  # (L, V)
    p, i = torch.softmax(logits, -1).topk(top, dim=-1)
    return {"layers": layers, "top_ids": i.tolist(), "top_probs": p.tolist(),
            "top_texts": [[token_text(lm.tokenizer, int(t)) for t in row] for row in i.tolist()]}


__all__ = ["IDENTITY_PREFIX", "decoder_layers", "identity_prompt", "patched_logits", "patchscope_layers"]
