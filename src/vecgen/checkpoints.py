"""Checkpoints of the learning loops (soft prompts, the LoRA reader): one ``torch.save`` file, written atomically,
checked against the model.

A checkpoint holds everything a run needs to continue exactly (for a soft prompt: the vectors ``(n, d)``
float32, the Adam state, the torch RNG states, the number of completed episodes, the data order, the curves so
far, the baseline row, the configuration) and the identity of the model (name, family, layers, hidden size,
embedding rows and a small sample of the embedding matrix). Loading it next to a different model or embedding
size raises :class:`~vecgen.errors.ConfigError` naming both models. The file format is tagged (``fmt``) so
a reader checkpoint is never taken for a soft-prompt one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .io import atomic_torch_save
from .models import LoadedModel

#: Format tag stored in every checkpoint.
FORMAT = "vecgen-softprompt/1"
_SAMPLE_ROWS, _SAMPLE_COLS = 8, 16


def model_identity(lm: LoadedModel) -> dict[str, Any]:
    """What a checkpoint records about its model: name, family, sizes and an embedding sample.

    The sample is ``E[rows, :16]`` (float32) at 8 rows spread over the real vocabulary; it tells
    apart models of the same shape (e.g. Qwen2.5-0.5B-Instruct vs Qwen2.5-Coder-0.5B-Instruct). A model
    loaded from a local folder or ``.gguf`` file is named by its absolute path.
    """
    cfg = lm.config
    rows = torch.linspace(0, lm.n_real_vocab - 1, _SAMPLE_ROWS).long()
    sample = lm.embedding.detach()[rows.to(lm.embedding.device), :_SAMPLE_COLS].float().cpu()
    name = lm.name
    if getattr(lm, "source", None) in ("local", "gguf"):  # a path: absolute, so eval/inspect work from anywhere
        name = str(Path(name).expanduser().resolve())
    return {
        "name": name,
        "family": lm.adapter.family,
        "model_type": getattr(cfg, "model_type", None),
        "num_hidden_layers": getattr(cfg, "num_hidden_layers", None),
        "hidden_size": lm.hidden_size,
        "vocab_rows": lm.vocab_rows,
        "n_real_vocab": lm.n_real_vocab,
        "embedding_sample": sample,
    }


def _describe(ident: dict[str, Any]) -> str:
    return (f"{ident.get('name')} ({ident.get('model_type')}, {ident.get('num_hidden_layers')} layers, "
            f"embedding {ident.get('vocab_rows')} x {ident.get('hidden_size')})")


def check_model_identity(saved: dict[str, Any], lm: LoadedModel, *, where: str = "checkpoint") -> None:
    """Raise if ``lm`` is not the model ``saved`` describes.

    Raises:
        ConfigError: different embedding width, vocabulary, architecture or embedding values.
    """
    here = model_identity(lm)
    if saved.get("hidden_size") != here["hidden_size"]:
        raise ConfigError(
            f"{where} holds soft-prompt vectors of width {saved.get('hidden_size')} from {_describe(saved)}, "
            f"but the loaded model {_describe(here)} has embedding size {here['hidden_size']}; "
            f"pass --model {saved.get('name')}"
        )
    for key in ("vocab_rows", "model_type", "num_hidden_layers"):
        if saved.get(key) != here[key]:
            raise ConfigError(
                f"{where} was trained on {_describe(saved)}, not on the loaded model {_describe(here)} "
                f"({key} differs); pass --model {saved.get('name')}"
            )
    sample = saved.get("embedding_sample")
    if sample is not None and not torch.allclose(sample.float(), here["embedding_sample"], atol=1e-3, rtol=1e-2):
        raise ConfigError(
            f"{where} was trained on {_describe(saved)}, whose embedding matrix differs from the loaded model "
            f"{_describe(here)}; pass --model {saved.get('name')}"
        )


def rng_states() -> dict[str, Any]:
    """The torch CPU (and CUDA) RNG states."""
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any], *, fmt: str = FORMAT) -> Path:
    """Write ``payload`` (tensors, dicts, lists, numbers, strings) atomically with the format tag ``fmt``."""
    return atomic_torch_save({"format": fmt, **payload}, path)


def load_checkpoint(path: str | Path, *, fmt: str = FORMAT, what: str = "soft-prompt checkpoint",
                    names: tuple[str, ...] = ("checkpoint.pt",)) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with the same ``fmt`` (tensors on the CPU).

    Args:
        path: the file, or a run folder holding one of ``names`` (the first that exists).
        fmt: the format tag it must carry. what: its name in messages.

    Raises:
        ConfigError: missing file, unreadable file, or another format.
    """
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in names if (path / n).is_file()), path / names[0])
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure of the restricted reader means: not our file
        # torch's own message suggests weights_only=False, which would run code from an untrusted file
        raise ConfigError(f"{path} is not a vecgen {what} (it cannot be read as a tensors-only "
                          "torch file; vecgen never unpickles other objects, which could run code)") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ConfigError(f"{path} is not a vecgen {what} (expected format {fmt})")
    data["path"] = str(path)
    return data
