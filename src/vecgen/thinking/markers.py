"""Detecting the end-of-thinking marker in a row's top-1 token trace.

A special single token (``</think>``) is matched by id. A text marker such as ``"Answer:"`` may be
split over several tokens, and the model may spell it inside other text (``"**Answer:**"``,
``"Final answer:"``), so the last few trace tokens are decoded and searched, case-insensitively.
Each step's check costs one ``decode`` of at most ``len(marker) + 2`` tokens per thinking row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError


class EndMarker:
    """The end-of-thinking marker of a run.

    Args:
        tokenizer: the model's tokenizer.
        text: the marker (``"</think>"``, ``"Answer:"``).

    Attributes:
        ids: the marker's token ids (what is fed when thinking is ended by force).
        token_id: the id when the marker is one special/added token, else None.

    Raises:
        ConfigError: an empty marker.
    """

    def __init__(self, tokenizer: Any, text: str):
        if not text or not text.strip():
            raise ConfigError("the end-of-thinking marker must be non-empty text, e.g. \"Answer:\"")
        self.tokenizer = tokenizer
        self.text = text
        self.ids: list[int] = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        added = set(getattr(tokenizer, "all_special_tokens", [])) | set(tokenizer.get_added_vocab())
        self.token_id: int | None = self.ids[0] if len(self.ids) == 1 and text in added else None
        self._needle = text.lower()
        self._window = len(text) + 2  # every token is at least one character

    def found(self, trace: Sequence[int]) -> bool:
        """True when the marker ends (or sits in) the last tokens of ``trace`` (token ids)."""
        if not trace:
            return False
        if self.token_id is not None:
            return int(trace[-1]) == self.token_id
        tail = self.tokenizer.decode(list(trace[-self._window :]), skip_special_tokens=False)
        return self._needle in tail.lower()
