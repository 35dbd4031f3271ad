"""Device and dtype resolution.

``"auto"`` picks CUDA when available, otherwise the CPU; Apple's MPS is used only when asked for
by name (``"mps"``), because several kernels used here are slower or missing there. The dtype
``"auto"`` is bfloat16 on CUDA and float32 elsewhere (bfloat16 is not faster than float32 on the
CPUs we measured, and float32 keeps numerical comparisons tight).
"""

from __future__ import annotations

import torch

from .errors import ConfigError

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
