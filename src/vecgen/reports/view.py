"""The run viewer: ``view.html``, one self-contained page per run folder (``vecgen view RUN_DIR``).

The page needs no network: its script and styles (``vecgen/data/view/``) are inlined, the run's data is
embedded as one JSON document (``<script type="application/json">``) and its figures as PNG data URIs.
Every run command writes it when it finishes (:meth:`~vecgen.reports.RunWriter.__exit__`); ``vecgen view``
rebuilds it from the files of any run folder, also one written before the viewer existed.

What it shows depends on the run's command (``results.json``'s ``command``): each feature registers the data
its command's page shows (:func:`register_view`; the page's script knows each kind):

* ``think`` (:mod:`vecgen.thinking.report`) — a table of items (question, reference, each method's answer, right or wrong, stop reason,
  thinking tokens), filterable by each method's outcome, stop reason and text; opening an item shows the
  methods' traces side by side as token chips coloured by entropy (the fed mixture's for ``soft``, the
  model's distribution's for ``cot``), with the step's largest weights on hover or keyboard focus, then the
  forced marker and the answer;
* ``concept`` (:mod:`vecgen.concept.report`) — per prompt and N, the concept tokens as chips labelled with their top-1 token and coloured
  by the entropy of their weights; hover/focus shows the top weights as bars, the nearest tokens and the
  off-manifold distance; the translations beside them;
* ``softprompt`` (:mod:`vecgen.softprompt.report`) — the learning curves and the nearest tokens of every learned vector;
* any other run — its results, figures and report.

Tables render lazily (a page of rows at a time; an item's traces when it is opened), so a 1,319-item
run with three methods opens in about a second.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import atomic_write_text, read_jsonl_objects
from .files import read_marker

#: The file written into the run folder.
VIEW_FILE = "view.html"
#: Figures larger than this are not embedded (the page names them instead).
MAX_FIGURE_BYTES = 4_000_000


def _asset(name: str) -> str:
    return resources.files("vecgen").joinpath("data", "view", name).read_text(encoding="utf-8")


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a records file; other lines are skipped, with a warning on the ``vecgen`` logger that
    says how many (a torn last line of a running run, or a file that is not a records file)."""
    records, skipped = read_jsonl_objects(path)
    if skipped:
        logging.getLogger("vecgen").warning("%s: skipped %d of %d lines that are not JSON records (damaged, or not a "
                                            "records file?)", path, skipped, skipped + len(records))
    return records


class StringTable:
    """A table of distinct token strings (the page stores indices into it)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def __call__(self, s: Any) -> int:
        s = "" if s is None else str(s)
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.items)
            self.items.append(s)
        return i


def rounded(x: Any, nd: int = 4) -> float | None:
    """``x`` rounded, or None when it is missing or not a finite number."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return round(x, nd) if math.isfinite(x) else None


def _milli(x: Any) -> int | None:
    """``x`` in thousandths, rounded half up (as the fast path of :func:`compact_steps`), or None when it is missing or
    not a finite number."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return math.floor(1000 * x + 0.5) if math.isfinite(x) else None


def compact_steps(steps: list[dict[str, Any]], strings: StringTable) -> dict[str, list[Any]]:
    """The compact columns of a record's ``steps``: token indices ``t``, entropies ``h`` / ``m`` and top
    weights ``w`` in thousandths, top-token indices ``k``; ``x`` (1 = the step fed its token, 0 = its concept token)
    only for traces that mix both (``switch``, ``gated``)."""
    modes = {s.get("mode") for s in steps}
    mixed = {"latent", "explicit"} <= modes
    out = _compact(steps, strings)
    if mixed:
        out["x"] = [1 if s.get("mode") == "explicit" else 0 for s in steps]
    return out


def _compact(steps: list[dict[str, Any]], strings: StringTable) -> dict[str, list[Any]]:
    try:  # fast path: every number finite and >= 0 (so int(x + 0.5) rounds)
        return {
            "t": [strings(s["token"]) for s in steps],
            "h": [int(1000 * s["entropy"] + 0.5) for s in steps],
            "m": [int(1000 * s["mix_entropy"] + 0.5) for s in steps],
            "k": [[strings(t) for t, _ in s["top"]] for s in steps],
            "w": [[int(1000 * w + 0.5) for _, w in s["top"]] for s in steps],
        }
    except (TypeError, ValueError, OverflowError):  # a None or NaN somewhere: shown as missing
        return {
            "t": [strings(s.get("token")) for s in steps],
            "h": [_milli(s.get("entropy")) for s in steps],
            "m": [_milli(s.get("mix_entropy")) for s in steps],
            "k": [[strings(t) for t, _ in s.get("top") or []] for s in steps],
            "w": [[_milli(w) for _, w in s.get("top") or []] for s in steps],
        }


#: A command's view data: ``fn(results, run_dir) -> dict`` (``results``: ``results.json``, or what a running run wrote).
ViewPayload = Callable[[dict[str, Any], Path], dict[str, Any]]

#: command → the function that builds its page's data (:func:`register_view`).
VIEW_PAYLOADS: dict[str, ViewPayload] = {}


def register_view(command: str) -> Callable[[ViewPayload], ViewPayload]:
    """Decorator: ``fn(results, run_dir)`` builds the page data of ``command``'s runs (stored under
    ``payload[command]``; the page's script draws that kind). Runs of other commands show their results, figures
    and report."""

    def deco(fn: ViewPayload) -> ViewPayload:
        VIEW_PAYLOADS[command] = fn
        return fn

    return deco


def _figures(run_dir: Path) -> list[dict[str, str]]:
    figs = []
    for png in sorted(run_dir.glob("*.png")):
        size = png.stat().st_size
        if size > MAX_FIGURE_BYTES:
            figs.append({"name": png.name, "src": "", "note": f"{size / 1e6:.1f} MB, not embedded"})
            continue
        figs.append({"name": png.name, "src": "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()})
    return figs


def _running(run_dir: Path) -> dict[str, Any]:
    """What a run still in progress (no ``results.json`` yet) has written: its command (the run folder's
    owner marker), its settings (``settings.json``, where the command writes one) and its records.

    Raises:
        ConfigError: the folder has no owner marker either (not a vecgen run folder).
    """
    marker = read_marker(run_dir)
    if marker is None or "command" not in marker:
        raise ConfigError(f"{run_dir} is not a vecgen run folder (no results.json); pass a folder written by a "
                          "vecgen command")
    command = str(marker["command"])
    try:
        settings = json.loads((run_dir / "settings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        settings = {}
    return {"command": command, "config": settings, "created": marker.get("created"),
            "finished": "not yet (the run is in progress or was interrupted: records so far)"}


def view_payload(run_dir: str | Path) -> dict[str, Any]:
    """The data the page shows, read from the run folder's files (``results.json``, ``records.jsonl``,
    figures, ``report.md``); for a run still in progress, what it has written so far.

    Raises:
        ConfigError: ``run_dir`` is not a folder or not a vecgen run folder, or its ``results.json`` is
            not readable.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; pass a run folder written by a vecgen command (runs/<name>)")
    path = run_dir / "results.json"
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        run = _running(run_dir)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc}); rerun or resume the command that wrote it") from None
    if not isinstance(run, dict):
        raise ConfigError(f"{path} is not a vecgen results file (a JSON object was expected)")
    command = str(run.get("command") or "run")
    report = run_dir / "report.md"
    payload: dict[str, Any] = {
        "kind": command, "name": run_dir.resolve().name, "command": command,
        "command_line": run.get("command_line"), "model": run.get("model"), "config": run.get("config"),
        "environment": run.get("environment"), "created": run.get("created"), "finished": run.get("finished"),
        "figures": _figures(run_dir),
        "report": report.read_text(encoding="utf-8", errors="replace") if report.exists() else "",
    }
    build = VIEW_PAYLOADS.get(command)
    if build is not None:
        payload[command] = build(run, run_dir)
    else:
        payload["results"] = run.get("results")
    return payload


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def render_html(payload: dict[str, Any]) -> str:
    """The self-contained page for ``payload`` (:func:`view_payload`)."""
    # "<" is escaped so that no "</script>" or "<!--" in a record can end the data block early
    try:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN/inf somewhere in the records: JSON.parse would refuse them; shown as missing
        data = json.dumps(_finite(payload), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    data = data.replace("<", "\\u003c")
    title = html.escape(f"vecgen {payload.get('command')} — {payload.get('name')}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{title}</title>\n<style>\n{_asset('view.css')}\n</style>\n</head>\n<body>\n"
        "<div id=\"app\" role=\"main\"><p>Loading…</p></div>\n"
        "<div id=\"tip\" role=\"tooltip\" hidden></div>\n"
        f"<script id=\"vecgen-data\" type=\"application/json\">{data}</script>\n"
        f"<script>\n{_asset('view.js')}\n</script>\n</body>\n</html>\n"
    )


def write_view(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run folder's page (atomically) and return its path.

    Args:
        run_dir: a run folder written by a vecgen command.
        out: where to write (default ``run_dir/view.html``).

    Raises:
        ConfigError: not a run folder (see :func:`view_payload`), or ``out`` cannot be written.
    """
    target = Path(out) if out is not None else Path(run_dir) / VIEW_FILE
    text = render_html(view_payload(run_dir))
    try:
        return atomic_write_text(target, text)
    except OSError as exc:
        raise ConfigError(f"cannot write {target} ({exc.strerror or exc}); choose another --out") from None


__all__ = ["VIEW_FILE", "VIEW_PAYLOADS", "StringTable", "ViewPayload", "compact_steps", "read_records", "register_view",
           "render_html", "rounded", "view_payload", "write_view"]
