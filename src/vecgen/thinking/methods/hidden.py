"""``hidden``: think by feeding back the last hidden state (COCONUT's continuous thought, without training): the
``hidden`` rule with the run's ``hidden_scale``; the trace is the top-1 token of each step's logits."""

from __future__ import annotations

from ...decoding.mixing import MixingConfig
from .registry import ThinkingMethod, register_method

HIDDEN = register_method(ThinkingMethod(
    "hidden", "feed back the last hidden state, COCONUT-style; --hidden-scale",
    rule=lambda mixing: MixingConfig(rule="hidden", hidden_scale=mixing.hidden_scale),
    row=lambda settings, ctx: (lambda obs: True)))
