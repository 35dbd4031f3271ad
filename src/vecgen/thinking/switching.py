"""Where latent thinking feeds a concept token and where it feeds a token: the ``switch`` and ``gated`` rules.

Both methods think with a concept-token rule (``soft`` by default, any rule and noise) and decide per step whether
the step's input is the mixture (*latent*) or its top-1 token (*explicit*); the engine feeds one or the other
(:class:`~vecgen.decoding.engine.Action` ``feed`` / ``feed_token``), so every backend runs them.

``switch`` — SwiReasoning (Shi et al., ICLR 2026, arXiv 2510.05069; code ``sdc17/SwiReasoning``,
``generation_utils.py``). A row starts latent; the first thinking step sets the block's reference entropy
``H_ref``. Then at every step, with ``H`` the entropy of the step's untruncated distribution:

* latent → explicit when ``H < H_ref`` (confidence rose: commit to a token); no minimum stay;
* explicit → latent when ``H > H_ref`` and the row has stayed explicit for at least ``switch_window`` steps;
* each switch starts a new block: ``H_ref = H``, the stay counter resets;
* the ``switch_max``-th latent → explicit switch ends thinking: the end-of-thinking marker is forced (then the
  answer follows, vecgen's text markers being the answer cue).

``gated`` — SeLaR (ACL 2026, arXiv 2604.08299; code ``Parker-rfu/SeLaReasoning``): a step is latent exactly when
its mixture's normalised entropy ``H(w) / log |w|`` is at least ``gate_tau``; optionally with SeLaR's
anti-collapse push (:func:`~vecgen.decoding.mixing.push_from_top1`, ``--anti-collapse``).

Both papers force explicit steps for math symbols (digits, letters, operators, LaTeX commands: the code's
``get_math_symbols_ids``); :func:`math_token_ids` builds the same set for any tokenizer (``math_explicit``).

Deviations, all stated so runs can be compared: SwiReasoning's entropy is of ``softmax(logits)`` at T = 1 and its
latent vector the full-vocabulary mixture; here both come from the thinking rule at the concept sampling (Soft
Thinking's T = 0.6, top-k 30, ``max_topk`` 10 by default; ``--rule full --concept-temperature 1`` reproduces the
paper's). Its blending of ``<think>`` / ``</think>`` embeddings into switch steps (α₀ = 1 off by default; β₀ = 0.7)
applies only to ``</think>`` models and is not done. At the cap it injects ``</think>`` and later
``</think>\\n\\nThe final answer is`` on further switches; vecgen forces its marker once. Its 512-step window on
~32k-token budgets is scaled to vecgen's 320-token default budget: 512 / 32768 · 320 = 5 steps. SeLaR's entropy
is over its top-3 (k = 3, threshold 0.5); here over the rule's own support (``max_topk``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

#: Math symbols whose tokens are always fed explicitly (SwiReasoning's and SeLaR's ``get_math_symbols_ids``).
MATH_SYMBOLS: tuple[str, ...] = (
    "+", "-", "*", "/", "^", "=", "<", ">", "\\leq", "\\geq", "\\neq", "\\approx", "\\sim", "\\equiv", "\\to",
    "\\implies", "\\iff", "(", ")", "[", "]", "{", "}", "\\left(", "\\right)", "\\left[", "\\right]", "\\left\\{",
    "\\right\\}", "\\begin{pmatrix}", "\\end{pmatrix}", "\\frac", "\\dfrac", "\\sqrt", "\\sqrt[]", "\\in", "\\notin",
    "\\subset", "\\supset", "\\subseteq", "\\supseteq", "\\cup", "\\cap", "\\emptyset", "\\varnothing", "\\pi",
    "\\theta", "\\alpha", "\\beta", "\\gamma", "\\delta", "\\epsilon", "\\zeta", "\\lambda", "\\mu", "\\nu", "\\sin",
    "\\cos", "\\tan", "\\arcsin", "\\arccos", "\\arctan", "\\log", "\\ln", "\\exp", "_", "\\binom", "\\choose",
    "\\cdot", "\\dots", "\\ldots", "\\cdots", "\\vdots", "\\ddots", "\\mathbb", "\\mathbf", "\\mathrm", "\\text",
    "\\mbox", "\\infty", "\\circ", "\\prime", "\\ast", "\\star", "\\triangle", "\\triangleleft", "\\triangleright",
    "\\perp", "\\parallel", "\\angle", "\\boxed", "\\overline", "\\underline", "\\lceil", "\\rceil", "\\lfloor",
    "\\rfloor", "\\left", "\\right", "\\mid", "|", "\\vert", "\\Vert", "\\because", "\\therefore", "\\forall",
    "\\exists", "\\wedge", "\\vee", "\\neg", "\\sum", "\\prod", "\\int", "\\lim", "\\min", "\\max", "\\arg", "\\deg",
    "\\gcd", "\\operatorname", "\\cot", "\\cotg", "\\sec", "\\csc",
    *(chr(c) for c in range(ord("0"), ord("9") + 1)),
    *(chr(c) for c in range(ord("a"), ord("z") + 1)),
    *(chr(c) for c in range(ord("A"), ord("Z") + 1)),
)


def math_token_ids(tokenizer: Any) -> frozenset[int]:
    """Every token id of every :data:`MATH_SYMBOLS` entry as the tokenizer encodes it alone (the papers' rule; a
    symbol split into several tokens adds all of them). Cached per tokenizer object."""
    return _math_ids(_Key(tokenizer))


class _Key:
    """Hashes a tokenizer by identity (tokenizers are not hashable)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __hash__(self) -> int:
        return id(self.tokenizer)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other.tokenizer is self.tokenizer


@lru_cache(maxsize=8)
def _math_ids(key: _Key) -> frozenset[int]:
    ids: set[int] = set()
    for symbol in MATH_SYMBOLS:
        ids.update(key.tokenizer.encode(symbol, add_special_tokens=False))
    return frozenset(ids)


class SwitchState:
    """SwiReasoning's per-row state machine (module docstring).

    Args:
        window: the minimum explicit stay before switching back to latent (``switch_window``).
        max_switches: the latent → explicit switch that ends thinking (0 = no cap).

    Attributes:
        latent: the current mode. reference: the block's reference entropy (nats; None before the first step).
        stay: steps since the last switch. switches: latent → explicit switches so far.
    """

    def __init__(self, window: int, max_switches: int = 0):
        self.window, self.max_switches = int(window), int(max_switches)
        self.latent = True
        self.reference: float | None = None
        self.stay = 0
        self.switches = 0

    def step(self, entropy: float) -> bool:
        """Update the mode with this step's entropy (nats); returns whether the cap is reached (end thinking)."""
        if self.reference is None:
            self.reference = entropy
            return False
        self.stay += 1
        if self.latent and entropy < self.reference:
            self.latent, self.stay, self.reference = False, 0, entropy
            self.switches += 1
            return self.max_switches > 0 and self.switches >= self.max_switches
        if not self.latent and entropy > self.reference and self.stay >= self.window:
            self.latent, self.stay, self.reference = True, 0, entropy
        return False


def gate_is_latent(mix_entropy: float, support: int, tau: float) -> bool:
    """SeLaR's gate: latent when the mixture's entropy over ``log support`` (normalised to [0, 1]) is >= ``tau``;
    a one-token support is never latent."""
    if support < 2:
        return False
    return min(max(mix_entropy / math.log(support), 0.0), 1.0) >= tau


#: The settings runs of older versions saved for both ``switch`` and ``gated`` (one config held them all); each method
#: drops the others' on resume (:attr:`~vecgen.thinking.methods.ThinkingMethod.legacy_keys`).
SAVED_TOGETHER = ("switch_window", "switch_max", "gate_tau", "math_explicit")


__all__ = ["MATH_SYMBOLS", "SAVED_TOGETHER", "SwitchState", "gate_is_latent", "math_token_ids"]
