"""The one results writer: ``runs/<name>/`` with ``results.json``, ``records.jsonl``, ``report.md``, plots.

``results.json`` always holds the command, the full configuration, the model description, package
versions and timestamps next to the results, so a run can be reproduced from its own output. Records
are appended to ``records.jsonl`` as they complete (one JSON object per line, flushed and fsynced),
so an interrupted run loses nothing already computed and can resume by reading them back.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text, to_jsonable

_PACKAGES = ("vecgen", "torch", "transformers", "tokenizers", "accelerate", "gguf", "numpy", "peft", "reasoning-gym",
             "math-verify")


def environment_info() -> dict[str, Any]:
    """Versions and machine facts for results files: Python, platform, CPU count, CUDA, key packages."""
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }
    commit = _git_commit()
    if commit is not None:
        info["vecgen_git_commit"] = commit
    try:
        import torch

        info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    return info


def _git_commit() -> str | None:
    """The commit of vecgen's source checkout (``+dirty`` with uncommitted changes), or None when
    vecgen is not installed from a git checkout or git is missing."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]  # src/vecgen/reports/writer.py -> checkout root
    if not (root / ".git").exists():
        return None
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True, timeout=5)  # noqa: E731
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_run_name(command: str) -> str:
    """``<command>-YYYYmmdd-HHMMSS`` (UTC)."""
    return f"{command}-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"


class RunWriter:
    """Writes one run's artifacts under ``<root>/<name>/``.

    Args:
        command: the command that produced the run (``"concept"``, ``"think"``...).
        name: run folder name (default ``<command>-<UTC timestamp>``); letters, digits, ``._-``.
        root: parent folder (default ``runs``).
        config: the full configuration (pydantic models and dataclasses are serialised).
    """

    def __init__(self, command: str, name: str | None = None, root: str | Path = "runs", config: Any = None):
        name = name or default_run_name(command)
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            from ..errors import ConfigError

            raise ConfigError(f"run name {name!r} may only contain letters, digits, '.', '_' and '-'")
        self.command = command
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = to_jsonable(config) if config is not None else {}
        self.created = _now()

    def path(self, filename: str) -> Path:
        """``<run dir>/<filename>``."""
        return self.dir / filename

    def append_record(self, record: Any, filename: str = "records.jsonl") -> None:
        """Append one JSON line and fsync it (survives a crash right after)."""
        line = json.dumps(to_jsonable(record), ensure_ascii=False) + "\n"
        path = self.path(filename)
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as fh:  # a torn last line (crash mid-write) must not swallow this one
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = "\n" + line
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def read_records(self, filename: str = "records.jsonl") -> Iterator[dict[str, Any]]:
        """Records written so far (a torn last line from a crash is skipped)."""
        path = self.path(filename)
        if not path.exists():
            return
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

    def write_results(self, results: Any, *, model: Any = None, **extra: Any) -> Path:
        """Write ``results.json`` atomically: command, config, model, environment, timestamps, results."""
        payload = {
            "command": self.command,
            "config": self.config,
            "model": to_jsonable(model),
            "environment": environment_info(),
            "created": self.created,
            "finished": _now(),
            **{k: to_jsonable(v) for k, v in extra.items()},
            "results": to_jsonable(results),
        }
        return atomic_write_json(self.path("results.json"), payload)

    def write_report(self, markdown: str, filename: str = "report.md") -> Path:
        """Write the human-readable report atomically."""
        return atomic_write_text(self.path(filename), markdown)

    def save_figure(self, fig: Any, filename: str) -> Path:
        """Save a matplotlib figure (PNG, 120 dpi) atomically and close it."""
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        return atomic_write_bytes(self.path(filename), buf.getvalue())
