"""Validated configuration objects shared by every command.

:class:`SamplingConfig` is the one sampling configuration of the project: every decode path
(discrete generation, concept tokens, soft thinking, soft-prompt answers) reads its temperature,
``top_k``, ``top_p``, ``min_p``, ``max_new_tokens`` and ``seed`` from here.

Values come, in increasing priority, from a preset, a YAML file, and explicit keyword arguments (the
CLI's flags). Invalid values raise :class:`vecgen.errors.ConfigError` whose message names the field,
the value and the allowed range.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .io import read_user_text

#: The seeds' prompts (``vecgen concept``'s and the logit lens's defaults).
DEFAULT_PROMPTS: tuple[str, ...] = ("The capital of France is", "2 plus 2 equals", "Once upon a time")
#: Sampling defaults for concept tokens (``vecgen concept``, the probes, the reader): the plain softmax at
#: temperature 1 (no truncation besides the mixing rule's ``max_topk``), as in the seeds and Soft Thinking.
CONCEPT_SAMPLING_DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "seed": 0}

#: Presets. ``qwen3-non-thinking`` and ``qwen3-thinking-card`` are the Qwen3 model card's
#: recommended values (temperature / top_p / top_k / min_p): 0.7/0.8/20/0 and 0.6/0.95/20/0.
#: vecgen runs Qwen3 in non-thinking mode only; the thinking-card preset is kept for comparison.
PRESETS: dict[str, dict[str, Any]] = {
    "greedy": {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0},
    "qwen3-non-thinking": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0},
    "qwen3-thinking-card": {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0},
}


def format_validation_error(exc: ValidationError, what: str, allowed: dict[str, str] | None = None) -> str:
    """One readable clause per invalid field, e.g. ``temperature=3.0: allowed range is [0, 2]``.

    Args:
        exc: pydantic's error.
        what: what was being validated ("sampling config").
        allowed: optional field -> human-readable allowed range, used instead of pydantic's wording.
    """
    allowed = _ALLOWED_RANGES | (allowed or {})
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or what
        if is_type_error(err):
            msg = f"wrong type: {err.get('msg', 'invalid value')}"
        elif field in allowed and err.get("type") != "extra_forbidden":
            msg = f"allowed range is {allowed[field]}"
        else:
            msg = err.get("msg", "invalid value")
        parts.append(f"{field}={err.get('input')!r}: {msg}")
    return f"invalid {what}: " + "; ".join(parts)


def is_type_error(err: Any) -> bool:
    """True for a pydantic error about a value's type (``'hot'`` for a number), not its range."""
    kind = str(err.get("type", ""))
    return kind.endswith(("_parsing", "_type")) or kind == "is_instance_of"


def validation_params(exc: ValidationError) -> tuple[str, ...]:
    """The top-level fields ``exc`` names (for :class:`~vecgen.errors.ConfigError`'s ``param``: the command line
    writes them as its flags)."""
    return tuple(dict.fromkeys(str(e["loc"][0]) for e in exc.errors() if e.get("loc")))


#: Human-readable allowed ranges, used in error messages.
_ALLOWED_RANGES = {
    "temperature": "[0, 2] (0 = greedy)",
    "top_p": "(0, 1] (1 = off)",
    "top_k": ">= 0 (0 = off)",
    "min_p": "[0, 1] (0 = off)",
    "max_new_tokens": ">= 1",
    "seed": "[0, 2^63 - 1]",
}

#: Largest seed: seeds are 64-bit (torch generators take [0, 2^64); results files store int64).
SEED_MAX = 2**63 - 1


class SamplingConfig(BaseModel):
    """How next-token probabilities are formed and sampled.

    The order follows transformers' logits processors and the Soft Thinking reference code:
    temperature, then ``top_k``, ``top_p`` and ``min_p`` truncation, each followed by
    renormalisation. ``temperature == 0`` means greedy (the argmax token gets probability 1).

    Attributes:
        temperature: softmax temperature, in [0, 2]; 0 = greedy.
        top_p: nucleus mass, in (0, 1]; 1 = off.
        top_k: keep the k most likely tokens, >= 0; 0 = off.
        min_p: drop tokens with p < min_p * max(p), in [0, 1]; 0 = off.
        max_new_tokens: generated tokens (or vectors) per prompt, >= 1.
        seed: seed of the sampling generator (reproducible runs).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=1)
    seed: int = Field(0, ge=0, le=SEED_MAX)

    @property
    def greedy(self) -> bool:
        """True when sampling reduces to argmax (temperature 0 or top_k 1)."""
        return self.temperature == 0.0 or self.top_k == 1

    @classmethod
    def create(
        cls,
        preset: str | None = None,
        config_file: str | Path | None = None,
        defaults: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> "SamplingConfig":
        """Build a config from ``defaults`` (a command's own), then a preset, then a YAML file, then
        explicit overrides (highest priority).

        ``None`` overrides are ignored, so CLI flags that were not given do not clobber the file.
        The YAML file may hold the fields at top level or under a ``sampling:`` key, and may name a
        ``preset``.

        Raises:
            ConfigError: unknown preset, unreadable YAML, unknown field, or a value out of range.
        """
        values: dict[str, Any] = dict(defaults or {})
        file_values: dict[str, Any] = {}
        if config_file is not None:
            file_values = load_yaml_section(config_file, "sampling")
            preset = preset or file_values.pop("preset", None)
            file_values.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"unknown sampling preset {preset!r}; choose one of: {', '.join(PRESETS)}")
            values.update(PRESETS[preset])
        values.update(file_values)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "sampling config")) from None


def changed_settings(old: Any, new: Any, *, limit: int = 6) -> list[str]:
    """The leaves that differ between two nested settings mappings, as ``path: old → new`` lines.

    Nested mappings are compared key by key (``methods.soft.max_think_tokens: 320 → 32``), so a message
    about a refused resume names what changed, not the whole settings block. At most ``limit`` lines;
    a last line says how many more differ.
    """
    diffs: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, "<unset>"), b.get(key, "<unset>"), f"{path}.{key}" if path else str(key))
        elif a != b:
            diffs.append(f"{path or 'value'}: {_short(a)} → {_short(b)}")

    walk(old, new, "")
    if len(diffs) > limit:
        diffs = diffs[:limit] + [f"and {len(diffs) - limit} more"]
    return diffs


def _short(value: Any) -> str:
    text = "unset" if value == "<unset>" else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_yaml_section(path: str | Path, section: str) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; return ``data[section]`` if present, else the whole mapping.

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8, not valid YAML (line and column named), or not
            a mapping.
    """
    path = Path(path)
    text = read_user_text(path, "config file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {' '.join(str(problem).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping of option: value")
    inner = data.get(section, data)
    if not isinstance(inner, dict):
        raise ConfigError(f"config file {path}: section {section!r} must be a mapping")
    return dict(inner)


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any parts (sha256 of their text; stable across processes and machines)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
