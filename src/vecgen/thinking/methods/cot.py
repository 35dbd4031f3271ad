"""``cot``: discrete chain-of-thought (every thinking step feeds its sampled token; greedy by default)."""

from __future__ import annotations

from .registry import ThinkingMethod, register_method

COT = register_method(ThinkingMethod("cot", "discrete chain-of-thought"))
