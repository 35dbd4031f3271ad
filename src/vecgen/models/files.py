"""Checks of weight files before anything is loaded from them.

Every model-loading command passes a local model through these checks first, so a bad file gets one
line naming it and what is wrong (:class:`~vecgen.errors.BadWeightsError`, exit status 2) instead of a
reader's traceback halfway through a load.

* A ``.gguf`` file must start with the GGUF magic and parse completely (header, metadata, tensor
  table, and tensor data inside the file: a truncated download fails here).
* A model folder needs a readable ``config.json`` (a JSON object with ``model_type``) and safetensors
  weights whose headers parse and whose tensors lie inside each file (all shards of an index).
* Pickle weights (``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``) are refused and never opened:
  unpickling a file can run arbitrary code, and vecgen loads models from folders users download.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from gguf import GGUFReader

from ..errors import BadWeightsError, ModelNotFoundError

GGUF_MAGIC = b"GGUF"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def check_gguf_file(path: str | Path) -> None:
    """Check that ``path`` is a complete GGUF file (magic, header, metadata, tensor data in bounds).

    Raises:
        BadWeightsError: unreadable, not GGUF, truncated or corrupt.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise BadWeightsError(f"cannot read {path}: {exc.strerror or _first_line(exc)}") from None
    if magic != GGUF_MAGIC:
        raise BadWeightsError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes); pass a "
                              ".gguf model file, a Hugging Face model folder, or a registry name (vecgen models)")

    try:
        reader = GGUFReader(str(path))
        if not reader.tensors:
            raise ValueError("it holds no tensors")
    except Exception as exc:  # noqa: BLE001 - any parse failure means a broken file
        raise BadWeightsError(f"{path} is a truncated or corrupt GGUF file ({_first_line(exc)}); download or "
                              "copy it again") from None


def check_model_folder(path: str | Path) -> None:
    """Check a Hugging Face model folder: ``config.json`` and safetensors weights, without loading tensors.

    Raises:
        ModelNotFoundError: no ``config.json`` (not a model folder).
        BadWeightsError: an unreadable ``config.json``; no weights; only pickle weights (refused, never
            unpickled); a safetensors file or shard that is missing, truncated or corrupt.
    """
    path = Path(path)
    config = path / "config.json"
    if not config.is_file():
        raise ModelNotFoundError(f"{path} is a folder but has no config.json; expected a Hugging Face model folder")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadWeightsError(f"{config} is not a readable JSON file ({_first_line(exc)})") from None
    if not isinstance(data, dict) or not data.get("model_type"):
        raise BadWeightsError(f"{config} does not describe a model (no \"model_type\"); expected a Hugging Face "
                              "config.json")
    files = sorted(path.glob("*.safetensors"))
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadWeightsError(f"{index} is not a readable safetensors index ({_first_line(exc)})") from None
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise BadWeightsError(f"{path} lacks the weight shard {missing[0]} listed in {index.name} "
                                  f"({len(missing)} of {len(shards)} missing); copy the whole model folder")
        files = [path / s for s in shards]
    if not files:
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
        if pickles:
            raise BadWeightsError(
                f"{path} holds only pickle weights ({pickles[0]}), which vecgen refuses to load: unpickling a file can "
                "run arbitrary code. Convert them to safetensors where you trust the file (AutoModelForCausalLM."
                "from_pretrained(DIR).save_pretrained(DIR) writes model.safetensors), or use the model's "
                "safetensors release")
        raise BadWeightsError(f"{path} holds no weights (no *.safetensors file next to config.json); copy the whole "
                              "model folder")
    for file in files:
        check_safetensors_file(file)


def check_safetensors_file(path: str | Path) -> None:
    """Check a safetensors file's header and that every tensor lies inside the file.

    Raises:
        BadWeightsError: unreadable, bad header, or truncated data.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100_000_000:
                raise ValueError(f"header length {n} does not fit the file ({size} bytes)")
            header = json.loads(fh.read(n).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        end = 0
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, stop = info["data_offsets"]
            if not (0 <= start <= stop):
                raise ValueError(f"tensor {name} has bad offsets {start}..{stop}")
            end = max(end, stop)
        if 8 + n + end > size:
            raise ValueError(f"tensor data ends at byte {8 + n + end} but the file has {size} bytes: truncated")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise BadWeightsError(f"{path} is not a valid safetensors file ({_first_line(exc)}); copy it again") from None
