"""The run viewer on large runs: page size, build time and time until the page is usable in headless Chromium.

Usage::

    python benchmarks/bench_view.py [--items 1319] [--steps 250] [--rounds 3] [--json out.json]

Workloads:

* the shipped run ``docs/results/think-gsm8k100-default`` (100 items, direct / cot / soft, per-step records);
* a synthetic run shaped like the full GSM8K test split: ``--items`` items × direct / cot / soft, ``--steps``
  recorded thinking steps (top-5 weights each) per cot and soft row (``tests/helpers/synthetic.py``).

For each: ``view.html`` size, ``write_view`` seconds (read the records, build the payload, write the page) and the
seconds from navigation until the page has rendered its first table page (``body[data-ready]``), median of
``--rounds`` loads. Baseline, measured in the same run and browser: a page of the same bytes that only parses
the same JSON document and shows its length — the ratio is the cost of the viewer's own rendering on top of
loading and parsing the data.

Target (issue 14): a 1,319-item three-method run opens in a few seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.synthetic import synthetic_think_run  # noqa: E402

import vecgen.thinking  # noqa: E402,F401  (registers the page data of think runs)
from vecgen.reports.view import write_view  # noqa: E402

BASELINE = ("<!DOCTYPE html><html><body><div id=app></div>{data}<script>"
            "const d = JSON.parse(document.getElementById('vecgen-data').textContent);"
            "document.getElementById('app').textContent = Object.keys(d).length + ' keys';"
            "document.body.dataset.ready = '1';</script></body></html>")


def load_seconds(browser, path: Path) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    t0 = time.perf_counter()
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
    dt = time.perf_counter() - t0
    page.close()
    return dt


def measure(browser, run_dir: Path, work: Path, rounds: int) -> dict:
    t0 = time.perf_counter()
    page = write_view(run_dir, work / "view.html")
    build = time.perf_counter() - t0
    html = page.read_text(encoding="utf-8")
    block = html[html.index('<script id="vecgen-data"'):]
    block = block[: block.index("</script>") + len("</script>")]
    base = work / "baseline.html"
    base.write_text(BASELINE.format(data=block), encoding="utf-8")
    view_t, base_t = [], []
    for _ in range(rounds):  # alternate, so machine noise hits both alike
        view_t.append(load_seconds(browser, page))
        base_t.append(load_seconds(browser, base))
    return {"bytes": page.stat().st_size, "build_seconds": build, "open_seconds": statistics.median(view_t),
            "baseline_open_seconds": statistics.median(base_t),
            "ratio": statistics.median(view_t) / statistics.median(base_t)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1319, help="items of the synthetic run (default 1319)")
    ap.add_argument("--steps", type=int, default=250, help="recorded thinking steps per cot/soft row (default 250)")
    ap.add_argument("--rounds", type=int, default=3, help="page loads per page, alternating with the baseline")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no Chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    out = {"chromium": chromium}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        work = Path(tmp)
        (work / "shipped").mkdir()
        out["shipped"] = measure(browser, ROOT / "docs" / "results" / "think-gsm8k100-default", work / "shipped",
                                 args.rounds)
        run = synthetic_think_run(work / "synthetic-run", n_items=args.items, steps=args.steps)
        (work / "synthetic").mkdir()
        out["synthetic"] = measure(browser, run, work / "synthetic", args.rounds)
        browser.close()
    for name in ("shipped", "synthetic"):
        r = out[name]
        label = "shipped 100-item run" if name == "shipped" else f"synthetic {args.items}-item run ({args.steps} steps)"
        print(f"{label:40s} {r['bytes'] / 1e6:6.1f} MB  build {r['build_seconds']:5.1f} s  open {r['open_seconds']:5.2f} s"
              f"  (parse-only baseline {r['baseline_open_seconds']:5.2f} s, ratio {r['ratio']:.2f}×)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
