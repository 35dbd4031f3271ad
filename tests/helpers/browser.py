"""Where the browser tests find Chromium (Debian's ``chromium``, or ``VECGEN_CHROMIUM``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when none is installed."""
    for cand in (os.environ.get("VECGEN_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                 shutil.which("google-chrome")):
        if cand and Path(cand).exists():
            return cand
    return None
