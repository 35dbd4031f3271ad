"""Where vecgen keeps its cache: ``$VECGEN_CACHE``, default ``~/.cache/vecgen``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root (created on demand). Converted models live in ``<cache>/models/<name>``."""
    root = os.environ.get("VECGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vecgen")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
