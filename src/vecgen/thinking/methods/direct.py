"""``direct``: answer at once (no thinking phase; the prompt ends where the answer starts)."""

from __future__ import annotations

from .registry import ThinkingMethod, register_method

DIRECT = register_method(ThinkingMethod("direct", "answer at once", thinks=False))
