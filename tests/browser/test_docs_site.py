"""The documentation site in a real browser (issue 35, item 4): ``mkdocs build --strict`` of ``mkdocs.yml``, served
over HTTP on 127.0.0.1, and its home page and one API reference page opened in headless Chromium: the pages load
with no console errors and no failed requests (the site needs no network), and show what they should."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no access log on stderr
            pass

    handler = functools.partial(Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def open_page(browser, url):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append("request failed: " + r.url))
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page, errors


def test_the_home_page_and_an_api_page_load(site, browser):
    page, errors = open_page(browser, site + "/")
    assert page.locator("h1").first.inner_text().strip().rstrip("¶") == "vecgen"  # ¶: the heading's permalink
    assert "pip install -e '.[test,llamacpp,smollm2,lmeval,serve]' && pytest" in page.locator("article").inner_text()
    assert page.locator("nav a", has_text="Thinking methods").count() >= 1
    assert errors == []
    page, errors = open_page(browser, site + "/api/")
    text = page.locator("article").inner_text()
    assert "vecgen.api" in text and "load" in text and "check_load" in text  # generated from the docstrings
    assert page.locator("h2#vecgen.api.load, [id='vecgen.api.load']").count() == 1
    assert errors == []
    page, errors = open_page(browser, site + "/results/")
    assert "think-gsm8k100-default" in page.locator("article").inner_text() and errors == []
