"""The browser tests' Chromium: Debian's ``chromium`` package driven by Playwright with ``executable_path`` (no browser
download). Skipped, with the reason printed, only where no Chromium is installed; ``VECGEN_REQUIRE_BROWSER=1`` (set by
``.ci/run``) turns that skip into a failure."""

from __future__ import annotations

import os

import pytest

from helpers.browser import chromium_path


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        reason = ("no Chromium here: install Debian's chromium (apt-get install chromium) or set VECGEN_CHROMIUM "
                  "to a Chromium binary")
        if os.environ.get("VECGEN_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (VECGEN_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()
