"""The run viewer (`view.html`) in a real browser: headless Chromium (Debian's ``chromium`` package) driven by
Playwright with ``executable_path`` (no browser download).

Skipped, with the reason printed, only where no Chromium is installed; ``VECGEN_REQUIRE_BROWSER=1`` (set by
``.ci/run``) turns that skip into a failure. ``VECGEN_SCREENSHOT_DIR=path`` keeps the screenshots (the docs'
images come from there)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.browser import chromium_path
from helpers.synthetic import HOSTILE_QUESTION, synthetic_think_run

import vecgen.thinking  # noqa: F401  (registers the page data of think runs)
from vecgen.io import read_jsonl
from vecgen.reports.view import write_view

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "docs" / "results" / "think-gsm8k100-default"


class Page:
    """A loaded view.html with its console errors collected."""

    def __init__(self, browser, html_path: Path, width: int = 1400, height: int = 1000):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append("request failed: " + r.url))
        self.page.on("dialog", lambda d: (self.errors.append("dialog: " + d.message), d.dismiss()))
        t0 = time.perf_counter()
        self.page.goto(html_path.resolve().as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        self.load_seconds = time.perf_counter() - t0

    def rows(self) -> int:
        return self.page.locator("#items tbody tr.item").count()

    def count_text(self) -> str:
        return self.page.locator("#count").inner_text()

    def tip_pairs(self) -> list[tuple[str, float]]:
        tip = self.page.locator("#tip")
        assert tip.is_visible()
        toks = tip.locator(".bar-token").all_inner_texts()
        vals = tip.locator(".bar-value").all_inner_texts()
        return [(json.loads(t), float(v)) for t, v in zip(toks, vals)]

    def screenshot(self, name: str, **kw) -> bytes:
        png = self.page.screenshot(**kw)
        out = os.environ.get("VECGEN_SCREENSHOT_DIR")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / name).write_bytes(png)
        return png

    def close(self):
        self.page.close()


def assert_not_blank(png: bytes) -> None:
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.05, "the screenshot is (nearly) one colour"


def same_pairs(shown, recorded) -> None:
    """Tooltip bars (3 decimals) against records (4 decimals): same tokens in order, weights within rounding."""
    assert [t for t, _ in shown] == [t for t, _ in recorded]
    for (_, a), (_, b) in zip(shown, recorded):
        assert abs(a - b) <= 6e-4, (a, b)


def records(run_dir: Path) -> list[dict]:
    return list(read_jsonl(run_dir / "records.jsonl"))  # the shipped runs keep them compressed (.jsonl.gz)


def outcome_count(recs, want: dict[str, bool]) -> int:
    by_id: dict[str, dict[str, bool]] = {}
    for r in recs:
        by_id.setdefault(r["id"], {})[r["method"]] = r["correct"]
    return sum(all(v.get(m) is w for m, w in want.items()) for v in by_id.values())


def test_shipped_think_run(browser, tmp_path):
    """The shipped 100-item GSM8K run: loads clean, 100 rows, filters match the records, chips match them."""
    page_path = write_view(SHIPPED, tmp_path / "view.html")
    recs = records(SHIPPED)
    p = Page(browser, page_path)
    assert p.rows() == 100 and p.count_text() == "100 of 100 items"
    png = p.screenshot("view-think-table.png")
    assert_not_blank(png)

    pg = p.page
    pg.select_option("select[data-method=soft]", "right")
    pg.select_option("select[data-method=cot]", "wrong")
    n = outcome_count(recs, {"soft": True, "cot": False})
    assert p.rows() == n and p.count_text() == f"{n} of 100 items" and n > 0
    pg.select_option("select[data-method=soft]", "any")
    pg.select_option("select[data-method=cot]", "any")
    pg.select_option("#stop-filter", "soft|cold_stop")
    n = sum(r["method"] == "soft" and r["stop_reason"] == "cold_stop" for r in recs)
    assert p.rows() == n > 0
    pg.select_option("#stop-filter", "")

    # open an item where soft was right and cot wrong, and check every soft chip's count and one chip's weights
    soft = {r["id"]: r for r in recs if r["method"] == "soft"}
    cot = {r["id"]: r for r in recs if r["method"] == "cot"}
    item = next(i for i in soft if soft[i]["correct"] and not cot[i]["correct"])
    pg.fill("#search", item)
    assert p.rows() == 1
    pg.click("#items tbody tr.item")
    chips = pg.locator('#detail .col[data-method="soft"] .chip[data-step]')
    assert soft[item]["steps"], "the shipped run records per-step weights"
    assert chips.count() == soft[item]["think_tokens"] == len(soft[item]["steps"])
    assert pg.locator('#detail .col[data-method="cot"] .chip[data-step]').count() == cot[item]["think_tokens"]
    j = max(range(len(soft[item]["steps"])), key=lambda k: soft[item]["steps"][k]["mix_entropy"])
    chips.nth(j).hover()
    same_pairs(p.tip_pairs(), soft[item]["steps"][j]["top"])
    pg.mouse.move(0, 0)
    pg.locator("#detail").scroll_into_view_if_needed()
    chips.nth(j).hover()
    assert_not_blank(p.screenshot("view-think-item.png"))
    assert p.errors == []
    p.close()


def test_tiny_think_run_text_keyboard_and_tooltips(browser, tiny_runs):
    run = tiny_runs["think"]
    recs = records(run)
    p = Page(browser, run / "view.html")
    pg = p.page
    assert p.rows() == 3
    assert pg.locator("#items tbody tr.item td.q").first.inner_text() == HOSTILE_QUESTION.replace("\n", " ")
    assert pg.evaluate("window.__pwned") is None  # markup in a record is text, never executed
    assert pg.locator("#items b").count() == 0

    # keyboard: focus the first row, Enter opens it, chips are reachable and arrow keys move between them
    pg.locator("#items tbody tr.item").first.focus()
    pg.keyboard.press("ArrowDown")
    assert pg.evaluate("document.activeElement.dataset.index") == "1"
    pg.keyboard.press("ArrowUp")
    pg.keyboard.press("Enter")
    assert pg.locator("#detail").is_visible()
    assert pg.locator("#detail h2").inner_text() == "Item t1"
    rec = next(r for r in recs if r["method"] == "soft" and r["id"] == "t1")
    first = pg.locator('#detail .col[data-method="soft"] .chip[data-step="0"]')
    first.focus()
    same_pairs(p.tip_pairs(), rec["steps"][0]["top"])
    pg.keyboard.press("ArrowRight")
    assert pg.evaluate("document.activeElement.dataset.step") == "1"
    same_pairs(p.tip_pairs(), rec["steps"][1]["top"])
    pg.keyboard.press("End")
    assert pg.evaluate("document.activeElement.dataset.step") == str(rec["think_tokens"] - 1)
    cot = next(r for r in recs if r["method"] == "cot" and r["id"] == "t1")
    pg.locator('#detail .col[data-method="cot"] .chip[data-step="2"]').hover()
    same_pairs(p.tip_pairs(), cot["steps"][2]["top"])
    pg.locator('#detail .col[data-method="soft"] .chip[data-step="0"]').focus()
    pg.keyboard.press("Escape")  # closes the tooltip and the item; focus goes back to its row
    assert not pg.locator("#tip").is_visible() and not pg.locator("#detail").is_visible()
    assert pg.evaluate("document.activeElement.dataset.index") == "0"
    assert p.errors == []
    p.close()


def test_concept_run_chips_show_the_top_10_weights(browser, tiny_runs):
    run = tiny_runs["concept"]
    (rec,) = records(run)
    p = Page(browser, run / "view.html")
    chips = p.page.locator(".concept .chip[data-step]")
    assert chips.count() == rec["n"] == 3
    for i in range(3):
        chips.nth(i).hover()
        shown = p.tip_pairs()
        assert len(shown) == 10
        same_pairs(shown, [(t["token"], t["value"]) for t in rec["vectors"][i]["top"]])
        tip = p.page.locator("#tip").inner_text()
        assert json.dumps(rec["vectors"][i]["nearest_cosine"]["token"], ensure_ascii=False) in tip
        assert "off-manifold distance" in tip
    assert p.page.locator(".concept table td").first.inner_text() == "nearest"
    assert p.errors == []
    p.close()


def test_softprompt_run_shows_curves_and_nearest_tokens(browser, tiny_runs):
    run = tiny_runs["softprompt"]
    soft = json.loads((run / "results.json").read_text())["results"]["soft_prompt"]
    p = Page(browser, run / "view.html")
    pg = p.page
    assert pg.locator("#vectors tbody tr").count() == len(soft["vectors"]) == 2
    shown = pg.locator("#vectors tbody tr").first.locator(".chip").all_inner_texts()
    assert shown == [n["token"].replace("\n", "↵").replace("\t", "→") for n in soft["vectors"][0]["nearest"]]
    img = pg.locator("figure img").first
    assert pg.evaluate("(img) => img.complete && img.naturalWidth > 0", img.element_handle())
    assert p.errors == []
    p.close()


def test_other_runs_show_results_figures_and_report(browser, tiny_runs):
    run = tiny_runs["diagnose"]
    results = json.loads((run / "results.json").read_text())
    p = Page(browser, run / "view.html")
    pg = p.page
    assert pg.locator("h1").inner_text() == "vecgen diagnose-embeds — diagnose"
    assert json.loads(pg.locator("pre").first.inner_text()) == results["results"]
    pg.locator("summary", has_text="report.md").click()
    assert pg.locator("details pre").first.inner_text().strip() == (run / "report.md").read_text().strip()
    assert p.errors == []
    p.close()


def test_a_full_size_run_opens_and_pages(browser, tmp_path):
    """1,319 items × 3 methods with 250 recorded steps per thinking row: the page opens (time printed, no
    threshold: machines differ) and the table, filters and the last item work."""
    run = synthetic_think_run(tmp_path / "big")
    t0 = time.perf_counter()
    page_path = write_view(run)
    build = time.perf_counter() - t0
    p = Page(browser, page_path)
    print(f"\n1,319-item view: {page_path.stat().st_size / 1e6:.1f} MB, built in {build:.1f} s, "
          f"opened in {p.load_seconds:.2f} s (Chromium {chromium_path()})")
    pg = p.page
    assert p.rows() == 100 and p.count_text() == "1319 of 1319 items"
    for _ in range(13):
        pg.click("#next")
    assert p.rows() == 19 and pg.locator("#next").is_disabled()
    pg.locator("#items tbody tr.item").last.click()
    assert pg.locator('#detail .col[data-method="soft"] .chip[data-step]').count() == 250
    assert p.errors == []
    p.close()


@pytest.mark.integration
def test_concept_run_on_the_default_model(browser, tmp_path):
    """`vecgen concept` on the real default model writes a page whose first chip is ' Paris' with its weights."""
    out = subprocess.run(
        [sys.executable, "-m", "vecgen", "concept", "-p", "The capital of France is", "-p", "Once upon a time",
         "--n", "4", "--translation-tokens", "12", "--run-name", "view", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "view"
    recs = records(run)
    p = Page(browser, run / "view.html", width=1200, height=820)
    chip = p.page.locator(".concept .chip[data-step]").first
    assert chip.inner_text() == " Paris"
    chip.hover()
    same_pairs(p.tip_pairs(), [(t["token"], t["value"]) for t in recs[0]["vectors"][0]["top"]])
    assert_not_blank(p.screenshot("view-concept.png"))
    assert p.errors == []
    p.close()
