"""Detecting the end-of-thinking marker in a row's top-1 token trace.

A special single token (``</think>``) is matched by id. A text marker such as ``"Answer:"`` may be
split over several tokens, and the model may decorate it (``"**Answer:**"``, ``"Final answer:"``), so
the last few trace tokens are decoded and searched, case-insensitively.

With ``at_line_start=True`` (what ``vecgen think`` uses for text markers, since its prompt asks for "a
last line that starts with" the marker) the marker counts only at the start of a line, after nothing
but white space, Markdown decoration (``*``, ``#``, ``>``, ``-``, ``_``) or the word "final": a model
that echoes the instruction (``... a last line that starts with "Answer:".``) has not ended its
reasoning. A marker forced after such a line starts a new line (:meth:`EndMarker.forced_ids`).

Each step's check costs one ``decode`` of a few more tokens than the marker has characters, per
thinking row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError

#: What may precede a line-start marker on its line: white space, Markdown decoration, "final".
_LINE_PREFIX = re.compile(r"[\s*#>_\-]*(?:final[\s*_]*)?", re.IGNORECASE)


class EndMarker:
    """The end-of-thinking marker of a run.

    Args:
        tokenizer: the model's tokenizer.
        text: the marker (``"</think>"``, ``"Answer:"``).
        at_line_start: a text marker counts only at the start of a line (see the module docstring),
            and a forced marker starts a new line. Ignored for a single special token.

    Attributes:
        ids: the marker's token ids.
        token_id: the id when the marker is one special/added token, else None.

    Raises:
        ConfigError: an empty marker.
    """

    def __init__(self, tokenizer: Any, text: str, *, at_line_start: bool = False):
        if not text or not text.strip():
            raise ConfigError("the end-of-thinking marker must be non-empty text, e.g. \"Answer:\"")
        self.tokenizer = tokenizer
        self.text = text
        self.ids: list[int] = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        added = set(getattr(tokenizer, "all_special_tokens", [])) | set(tokenizer.get_added_vocab())
        self.token_id: int | None = self.ids[0] if len(self.ids) == 1 and text in added else None
        self.at_line_start = at_line_start and self.token_id is None
        self._newline_ids: list[int] = list(tokenizer("\n", add_special_tokens=False)["input_ids"])
        self._needle = text.lower()
        # Every token is at least one character; line-start mode also needs the line's beginning.
        self._window = len(text) + (10 if self.at_line_start else 2)

    def found(self, trace: Sequence[int]) -> bool:
        """True when the marker ends (or sits in) the last tokens of ``trace`` (token ids); with
        ``at_line_start``, only where it starts a line (the trace's start counts as one)."""
        if not trace:
            return False
        if self.token_id is not None:
            return int(trace[-1]) == self.token_id
        tail = self.tokenizer.decode(list(trace[-self._window :]), skip_special_tokens=False).lower()
        if not self.at_line_start:
            return self._needle in tail
        whole = len(trace) <= self._window  # the tail is the whole trace: its start is a line start
        start = 0
        while (at := tail.find(self._needle, start)) >= 0:
            line_begin = tail.rfind("\n", 0, at) + 1
            if (line_begin > 0 or whole) and _LINE_PREFIX.fullmatch(tail[line_begin:at]):
                return True
            start = at + 1
        return False

    @property
    def max_forced(self) -> int:
        """The most ids :meth:`forced_ids` returns (the marker plus a newline before it)."""
        return len(self._newline_ids) + len(self.ids)

    def forced_ids(self, trace: Sequence[int]) -> list[int]:
        """The token ids fed when thinking is ended by force after ``trace``: the marker, preceded
        by a newline when ``at_line_start`` and the trace does not end a line."""
        if not self.at_line_start or not trace:
            return list(self.ids)
        tail = self.tokenizer.decode(list(trace[-4:]), skip_special_tokens=False)
        return list(self.ids) if tail.endswith("\n") else self._newline_ids + list(self.ids)
