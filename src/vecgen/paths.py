"""Where vecgen keeps its cache: ``$VECGEN_CACHE``, default ``~/.cache/vecgen``."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def cache_dir() -> Path:
    """The cache root (created on demand). Converted models live in ``<cache>/models/<name>``.

    Raises:
        ConfigError: the location (``$VECGEN_CACHE`` when set) is a file, lies under a file, or cannot be created
            (permissions, read-only file system); the message names the path and the variable.
    """
    env = os.environ.get("VECGEN_CACHE")
    root = env or os.path.join(os.path.expanduser("~"), ".cache", "vecgen")
    path = Path(root)
    where = f"the cache location VECGEN_CACHE={root}" if env else f"the cache location {root}"
    fix = "set VECGEN_CACHE to a folder" if env else "set VECGEN_CACHE to a writable folder"
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            what = "is a file" if part == path else f"lies under a file ({part})"
            raise ConfigError(f"{where} {what}; {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{where} cannot be created ({exc.strerror or exc}); {fix}") from None
    return path
