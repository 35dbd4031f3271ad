"""``soft``: think in concept tokens (Soft Thinking; Zhang et al. 2025): every thinking step feeds the mixture of
the run's concept-token rule (``--rule``; ``soft`` by default) at Soft Thinking's sampling."""

from __future__ import annotations

from .registry import ThinkingMethod, register_method

SOFT = register_method(ThinkingMethod("soft", "concept tokens with --rule", concept_tokens=True))
