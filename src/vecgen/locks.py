"""Exclusive locks on paths (run folders, model-cache builds) that leave no files behind.

Built on ``filelock``'s ``FileLock`` (``flock`` on Unix). On top of it:

* the lock file records its holder (process id, host, start time, command line), so a refused
  process can say who holds the lock;
* the lock file is removed on release (``filelock`` keeps it so waiters share one inode). Removing
  it is safe because every acquirer checks, once it holds the lock, that the path still names the
  file it locked; a waiter woken on a removed file retries on the new one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import VecgenError


class LockedError(VecgenError, RuntimeError):
    """The path is locked by another process (the message names it)."""


class _Stale(Exception):
    """The locked file was removed by its previous holder before we locked it; try again."""


def _owner_text() -> bytes:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["vecgen", *sys.argv[1:]]) if sys.argv else "",
    }
    return (json.dumps(info) + "\n").encode()


def describe_holder(lock_path: str | Path) -> str:
    """``pid 123 on host h since 2026-..., running `vecgen think ...``` from a lock file, or a generic phrase."""
    try:
        info = json.loads(Path(lock_path).read_text(encoding="utf-8"))
        text = f"pid {info['pid']} on host {info['host']} since {info['started']}"
        if info.get("command"):
            text += f", running `{info['command'][:120]}`"
        return text
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def exclusive(lock_path: str | Path, *, wait: bool, what: str, hint: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the ``with`` block; remove the file afterwards.

    Args:
        lock_path: the lock file (created if missing, with the holder's description).
        wait: block until the lock is free (True), or fail at once (False).
        what: what the lock protects, for the error message ("run folder runs/x").
        hint: what to do instead, appended to the error message.

    Raises:
        LockedError: ``wait`` is False and another process holds the lock.
    """
    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def on_acquired(fd: int) -> None:
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise _Stale
        os.ftruncate(fd, 0)
        os.pwrite(fd, _owner_text(), 0)

    while True:
        lock = FileLock(str(path), timeout=-1 if wait else 0, on_acquired=on_acquired)
        try:
            lock.acquire()
        except _Stale:
            continue
        except Timeout:
            raise LockedError(f"{what} is in use by {describe_holder(path)}" + (f"; {hint}" if hint else "")) from None
        break
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still held: a process that opened the old file sees it is stale
        lock.release()
