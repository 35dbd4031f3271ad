"""Device and dtype resolution.

``"auto"`` picks CUDA when available, otherwise the CPU; Apple's MPS is used only when asked for
by name (``"mps"``), because several kernels used here are slower or missing there. The dtype
``"auto"`` is bfloat16 on CUDA and float32 elsewhere (bfloat16 is not faster than float32 on the
CPUs we measured, and float32 keeps numerical comparisons tight).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .io import read_user_text

def available_cores() -> list[int]:
    """The CPU cores this process may run on, in order (``os.sched_getaffinity``; ``0 .. os.cpu_count() - 1``
    where that is missing); at least one."""
    try:
        return sorted(os.sched_getaffinity(0)) or [0]
    except AttributeError:  # pragma: no cover - macOS
        return list(range(max(1, os.cpu_count() or 1)))


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` into a :class:`torch.device`.

    Raises:
        ConfigError: the name is not a device, or the device is not available here.
    """
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} requested but CUDA is not available; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {spec!r} requested but MPS is not available; use --device cpu or auto")
    return device


def resolve_dtype(spec: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Turn ``"auto"`` or a dtype name (float32/fp32, bfloat16/bf16, float16/fp16) into a torch dtype.

    ``auto`` is bfloat16 on CUDA and float32 on every other device.

    Raises:
        ConfigError: unknown dtype name.
    """
    if isinstance(spec, torch.dtype):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if spec not in _DTYPES:
        raise ConfigError(f"unknown dtype {spec!r}; use auto, " + ", ".join(sorted(_DTYPES)))
    return _DTYPES[spec]


#: ``--device-map`` names handed to accelerate (big-model inference: ``from_pretrained(device_map=...)``).
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def parse_device_map(spec: str | dict | None) -> str | dict[str, Any] | None:
    """A ``--device-map``: an accelerate strategy name, or a JSON object (inline or a ``.json`` file) mapping
    module names to devices (``"cpu"``, ``"cuda:1"``, ``0``, ``"disk"``).

    Raises:
        ConfigError: an unknown name, unreadable or invalid JSON, or a value that is not a device.
    """
    if spec is None or isinstance(spec, dict) and spec:
        return spec
    text = str(spec).strip()
    if text in DEVICE_MAP_STRATEGIES:
        return text
    if text.endswith(".json") and not text.startswith("{"):
        text = read_user_text(Path(text), "--device-map file")
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"--device-map {str(spec)[:60]!r}: use {', '.join(DEVICE_MAP_STRATEGIES)}, a JSON object "
                          "such as '{\"model.layers.0\": \"cpu\", \"model.layers.1\": \"disk\"}', or a .json file") from None
    if not isinstance(mapping, dict) or not mapping:
        raise ConfigError("--device-map JSON must be a non-empty object of module name: device")
    for module, device in mapping.items():
        if isinstance(device, bool) or not isinstance(device, (int, str)):
            raise ConfigError(f"--device-map: {module!r} maps to {device!r}, not a device (\"cpu\", \"cuda:0\", 0 or \"disk\")")
        if isinstance(device, str) and device != "disk":
            try:
                torch.device(device)
            except RuntimeError:
                raise ConfigError(f"--device-map: {module!r} maps to unknown device {device!r}") from None
    return mapping


def parse_max_memory(spec: str | dict | None) -> dict[Any, str] | None:
    """``--max-memory "0=20GiB,cpu=60GiB"`` (or a JSON object) → accelerate's ``max_memory``.

    Raises:
        ConfigError: a malformed entry or size.
    """
    if spec is None or isinstance(spec, dict):
        return spec
    text = spec.strip()
    if text.startswith("{"):
        try:
            pairs = list(json.loads(text).items())
        except (json.JSONDecodeError, AttributeError):
            raise ConfigError(f"--max-memory {text[:60]!r} is not a JSON object") from None
    else:
        pairs = [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in text.split(",") if p.strip()]
    out: dict[Any, str] = {}
    for device, size in pairs:
        device, size = str(device).strip(), str(size).strip()
        if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", size, flags=re.IGNORECASE):
            raise ConfigError(f"--max-memory: {device}={size!r} is not a size such as 20GiB or 500MB")
        if device.isdigit():
            out[int(device)] = size
        elif device in ("cpu", "disk", "mps") or device.startswith("cuda"):
            out[device] = size
        else:
            raise ConfigError(f"--max-memory: unknown device {device!r}; use a GPU index (0, 1, ...), cpu or mps")
    if not out:
        raise ConfigError("--max-memory is empty; give e.g. 0=20GiB,cpu=60GiB")
    return out
