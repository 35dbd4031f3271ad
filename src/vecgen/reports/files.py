"""The files a run writer keeps in a run folder besides the results: the lock and the owner marker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The run folder's lock (:mod:`vecgen.locks`), held while a command writes it.
LOCK_FILE = ".vecgen.lock"
#: The run folder's owner marker: ``{"command": ..., "created": ...}``, written when the folder is first entered.
MARKER_FILE = ".vecgen-run.json"


def read_marker(run_dir: str | Path) -> dict[str, Any] | None:
    """The owner marker of ``run_dir`` (``command``, ``created``), or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(run_dir) / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = ["LOCK_FILE", "MARKER_FILE", "read_marker"]
