"""Atomic file output: write to a temporary file or folder beside the target, then rename.

An interrupted run (Ctrl-C, crash, power loss) leaves either the old file or the new one, never a
half-written one. Every artifact vecgen writes (results, reports, checkpoints, the model cache)
goes through these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import json
import re
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Largest text file a user may pass (task files, configs, texts): beyond this it is surely not one.
MAX_TEXT_BYTES = 512 * 1024 * 1024


#: Longest question or prompt text a task file may hold (characters): beyond any supported model's context (at most
#: 131,072 positions) at the few characters per token of ordinary text, and found before a model loads.
MAX_TEXT_CHARS = 1_000_000


def invalid_unicode_at(text: str) -> int | None:
    """The index of the first character of ``text`` that is not valid Unicode text (a lone UTF-16 surrogate,
    U+D800–U+DFFF: what Python makes of invalid UTF-8 bytes in a command-line argument, or of a ``"\\ud800"``
    escape in JSON), or None when ``text`` can be encoded as UTF-8 (and so tokenized)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_text(text: str, what: str, *, param: str | None = None) -> str:
    """``text`` unchanged when it is valid Unicode text; tokenizers refuse lone surrogates with a ``TypeError``.

    Raises:
        ConfigError: ``what`` holds a lone surrogate (names the character and where it is).
    """
    at = invalid_unicode_at(text)
    if at is not None:
        raise ConfigError(f"{what} is not valid Unicode text (a lone surrogate U+{ord(text[at]):04X} at character "
                          f"{at}, e.g. from invalid UTF-8 bytes); pass UTF-8 text", param=param)
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the number literal {name} (not finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text} (not finite in double precision)")
    return value


#: The deepest nesting of arrays and objects accepted in user JSON (task files, request bodies); deeper input is
#: refused before parsing (Python's parser would raise RecursionError on it).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_too_deep_at(text: str, limit: int = MAX_JSON_DEPTH) -> int | None:
    """The offset in ``text`` where JSON arrays / objects nest deeper than ``limit``, or None (brackets inside
    strings do not count)."""
    depth = 0
    blanked = _JSON_STRING.sub(lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', text)  # keeps offsets
    for m in _JSON_BRACKET.finditer(blanked):
        depth += 1 if m.group(0) in "[{" else -1
        if depth > limit:
            return m.start()
    return None


def parse_json(text: str, where: str) -> Any:
    """Strict JSON for user files (task files, BIG-bench files, ``--texts``): standard JSON only.

    Python's :func:`json.loads` accepts ``NaN``, ``Infinity`` and ``-Infinity`` and turns ``1e400`` into
    ``inf``; none of them is JSON (RFC 8259) and none can be a reference answer, so each is refused, as is a
    string holding a lone surrogate (``"\\ud800"``), which no tokenizer takes.

    Raises:
        ConfigError: ``where: invalid JSON (...)`` naming the problem and its column / line; nesting deeper than
            :data:`MAX_JSON_DEPTH`.
    """
    deep = json_too_deep_at(text)
    if deep is not None:
        line = text.count("\n", 0, deep) + 1
        pos = f"line {line} column {deep - text.rfind(chr(10), 0, deep)}" if "\n" in text.strip() else f"column {deep + 1}"
        raise ConfigError(f"{where}: invalid JSON (arrays and objects nested deeper than {MAX_JSON_DEPTH} levels at "
                          f"{pos}); flatten the value")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        pos = f"line {exc.lineno} column {exc.colno}" if "\n" in text.strip() else f"column {exc.colno}"
        raise ConfigError(f"{where}: invalid JSON ({exc.msg} at {pos})") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid JSON: {exc}; write the value as a finite number or a string") from None
    check_strings(value, where)
    return value


def check_strings(value: Any, where: str) -> None:
    """Refuse any string inside ``value`` (nested lists and dicts, keys included) that is not valid Unicode text.

    Raises:
        ConfigError: ``where: the string '...' is not valid Unicode text (...)``.
    """
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if invalid_unicode_at(v) is not None:
                check_text(v, f"{where}: the string {v[:40]!r}")
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def read_user_text(path: str | Path, what: str) -> str:
    """Read a UTF-8 text file a user named (``--config``, ``--benchmark``, ``--texts``...).

    Args:
        path: the file.
        what: what it is, for messages ("config file", "task file").

    Raises:
        ConfigError: missing, a folder, unreadable (permissions, I/O), larger than :data:`MAX_TEXT_BYTES`,
            or not UTF-8 (with the byte offset); one line naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; pass a file")
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise ConfigError(f"{what} {path} is larger than {MAX_TEXT_BYTES >> 20} MiB; is it the right file?")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); is it the right "
                          "file?") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    The file gets the usual permissions (``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, numpy values, paths, dataclasses and pydantic models to JSON types."""
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # torch.Tensor, numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return str(obj)
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (tensors and dataclasses are converted)."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success rename it to ``target``.

    If the block raises (or is interrupted), the temporary folder is removed and ``target`` is not
    touched. An existing ``target`` is replaced only after the new folder is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def truncate_torn_line(path: str | Path) -> int:
    """Cut an unfinished last line (no trailing newline: a crash mid-append) off a JSONL file.

    Returns:
        the number of bytes removed (0 when the file ends with a newline or is empty).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return 0
        # find the last newline, reading backwards in blocks
        pos, keep = size, 0
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            block = fh.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = pos + nl + 1
                break
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return size - keep


_BROKEN = object()  # a line that is not valid JSON


def compressed(path: str | Path) -> Path:
    """Where ``path`` lives compressed: ``records.jsonl`` → ``records.jsonl.gz``."""
    path = Path(path)
    return path.with_name(path.name + ".gz")


def jsonl_file(path: str | Path) -> Path | None:
    """The file holding the JSONL ``path``: itself, else its gzip-compressed copy (:func:`compressed`), else None."""
    path = Path(path)
    if path.exists():
        return path
    return compressed(path) if compressed(path).exists() else None


def compress_jsonl(path: str | Path) -> Path:
    """Replace the JSONL file ``path`` by ``path.gz`` (gzip level 9, no timestamp, so the same lines give the same
    bytes), written atomically before ``path`` is removed. Every reader here reads either (:func:`read_jsonl`).

    Returns:
        The compressed file.
    """
    path = Path(path)
    data = gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)
    target = atomic_write_bytes(compressed(path), data)
    path.unlink()
    return target


def decompress_jsonl(path: str | Path) -> Path | None:
    """Bring back the plain JSONL ``path`` from ``path.gz`` (atomically, then the ``.gz`` is removed), so a resumed
    run appends to it; nothing happens when ``path`` exists or neither does. Returns ``path`` when it exists after."""
    path = Path(path)
    if path.exists() or not compressed(path).exists():
        return path if path.exists() else None
    atomic_write_bytes(path, gzip.decompress(compressed(path).read_bytes()))
    compressed(path).unlink()
    return path


def _jsonl_values(path: Path) -> Iterator[Any]:
    """The decoded non-blank lines of a JSONL file, or of its gzip-compressed copy when only that exists
    (``_BROKEN`` for a line that is not JSON); none when neither exists."""
    found = jsonl_file(path)
    if found is None:
        return
    opener = gzip.open if found != path else open
    with opener(found, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield _BROKEN


def read_jsonl_objects(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSONL file and the number of non-blank lines skipped (not JSON, or JSON but not an
    object: a torn last line, or a file that is not a records file). A missing file gives ``([], 0)``."""
    objects: list[dict[str, Any]] = []
    skipped = 0
    for value in _jsonl_values(Path(path)):
        if isinstance(value, dict):
            objects.append(value)
        else:
            skipped += 1
    return objects, skipped


def read_jsonl(path: str | Path) -> Iterator[Any]:
    """The values of a JSONL file, in order; a missing file gives none, and blank lines and lines that are not
    valid JSON (a torn last line of a running or killed run) are skipped."""
    return (v for v in _jsonl_values(Path(path)) if v is not _BROKEN)
