"""Settings of a soft-prompt run (:class:`TrainConfig`), validated before any model loads, and the settings of a
resumed run (:func:`resume_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..benchmarks_data.arena import FAMILIES
from ..config import SEED_MAX, changed_settings, format_validation_error
from ..errors import ConfigError
from ..models import find_entry
from .prompt import DEFAULT_INIT_TEXT, DEFAULT_SYSTEM, InitMethod, Placement

_ALLOWED = {
    "episodes": ">= 1",
    "eval_interval": ">= 1 (and <= episodes)",
    "soft_tokens": ">= 1",
    "lr": "> 0",
    "eval_size": ">= 1",
    "difficulty": "1, 2 or 3",
    "eval_batch_size": ">= 1",
    "placement": "prefix or in-turn",
    "init": "text, vocab or random",
}


class TrainConfig(BaseModel):
    """Configuration of a soft-prompt run (validated; bad values raise :class:`ConfigError` via :meth:`create`).

    Attributes:
        model: model spec for :func:`vecgen.models.load_model`.
        episodes: training episodes (one task, one answer, one gradient step each).
        eval_interval: evaluate and checkpoint every this many episodes (<= episodes).
        soft_tokens: number of soft-prompt vectors ``n``.
        lr: Adam learning rate (> 0).
        chat_template: render prompts with the chat template (else ``Question: ...\\nAnswer:``).
        placement: ``prefix`` or ``in-turn``.
        init: ``text``, ``vocab`` or ``random``; ``init_text`` for ``text``.
        system: system message of chat prompts.
        seed: seeds the arena (held-out set, schedule) and the initialisation.
        eval_size: held-out items (round-robin over families).
        difficulty: arena difficulty 1–3.
        families: task families (default: all registered).
        max_new_tokens: answer length limit in tokens.
        eval_batch_size: prompts per batch when answering the held-out set.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = "default"
    episodes: int = Field(80, ge=1, le=1_000_000)
    eval_interval: int = Field(20, ge=1)
    soft_tokens: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    chat_template: bool = True
    placement: Placement = Placement.PREFIX
    init: InitMethod = InitMethod.TEXT
    init_text: str = DEFAULT_INIT_TEXT
    system: str | None = DEFAULT_SYSTEM
    seed: int = Field(0, ge=0, le=SEED_MAX)
    eval_size: int = Field(60, ge=1, le=100_000)
    difficulty: int = Field(1, ge=1, le=3)
    families: list[str] = Field(default_factory=lambda: list(FAMILIES))
    max_new_tokens: int = Field(24, ge=1)
    eval_batch_size: int = Field(8, ge=1)

    @field_validator("model")
    @classmethod
    def _absolute_model_path(cls, value: str) -> str:
        """A local folder or file is stored by its absolute path, so a checkpoint names it from anywhere."""
        path = Path(value).expanduser()
        if find_entry(value) is None and path.exists():
            return str(path.resolve())
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> "TrainConfig":
        if self.eval_interval > self.episodes:
            raise ValueError(f"eval_interval={self.eval_interval} is larger than episodes={self.episodes}; "
                             "give --eval-interval <= --episodes")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"unknown task families {unknown or '(none given)'}; choose from: {', '.join(FAMILIES)}")
        if self.init is InitMethod.TEXT and not self.init_text.strip():
            raise ValueError("init_text is empty; give --init-text or another --init")
        return self

    @classmethod
    def create(cls, **values: Any) -> "TrainConfig":
        """Validate ``values`` (``None`` values are dropped, i.e. take the default).

        Raises:
            ConfigError: one message naming every invalid field and its allowed range.
        """
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(_format(exc)) from None


def _format(exc: ValidationError) -> str:
    model_level = [e for e in exc.errors() if not e.get("loc")]
    if model_level:
        return "invalid soft-prompt config: " + "; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in model_level)
    return format_validation_error(exc, "soft-prompt config", _ALLOWED)


def _check_resumable(saved: dict[str, Any], config: TrainConfig) -> None:
    ignore = ("episodes", "model")
    old = {k: v for k, v in TrainConfig.create(**saved).model_dump(mode="json").items() if k not in ignore}
    new = {k: v for k, v in config.model_dump(mode="json").items() if k not in ignore}
    diff = changed_settings(old, new)
    if diff:
        raise ConfigError(f"the checkpoint was trained with other settings ({'; '.join(diff)}); a resumed run keeps "
                          "its configuration (only --episodes may change)")


def resume_config(checkpoint: dict[str, Any], **overrides: Any) -> TrainConfig:
    """The configuration of a resumed run: the checkpoint's, with ``episodes`` (and ``model``) overridable.

    Raises:
        ConfigError: an override that differs from the checkpoint (other than episodes/model), or fewer
            episodes than already done.
    """
    saved = dict(checkpoint["config"])
    given = {k: v for k, v in overrides.items() if v is not None}
    config = TrainConfig.create(**{**saved, **given})
    _check_resumable(saved, config)
    if config.episodes < int(checkpoint["episode"]):
        raise ConfigError(f"episodes={config.episodes} is fewer than the {checkpoint['episode']} already done")
    return config


__all__ = ["TrainConfig", "resume_config"]
