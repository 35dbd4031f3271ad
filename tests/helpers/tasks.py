"""Small task files for think runs in tests."""

from __future__ import annotations

import json
from pathlib import Path

#: Five numeric items: "What is i + i?" with answer 2i.
SUMS = [{"id": f"t{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 6)]


def write_tasks(path: Path, rows: list[dict] | None = None) -> Path:
    """``rows`` (default :data:`SUMS`) as a JSON Lines task file at ``path``; returns ``path``."""
    path.write_text("".join(json.dumps(t) + "\n" for t in (SUMS if rows is None else rows)))
    return path
