"""Ablation grids over :class:`~vecgen.thinking.runner.ThinkConfig` fields (``vecgen think --grid``).

``--grid cold_stop_steps=0,48 --grid noise=none,gumbel`` runs every combination (here 4) of every method on
the same items. A field is named as

* a ``ThinkConfig`` field: ``max_think_tokens``, ``max_answer_tokens``, ``cold_stop_tau``, ``cold_stop_steps``
  (0 = Cold Stop off), ``answer_stops_at_newline``;
* a registered method's own setting (:func:`~vecgen.thinking.methods.setting_fields`; e.g. ``switch``'s and
  ``gated``'s): it varies for the methods that have it (the others run once per combination, unchanged);
* a field of the thinking rule (``MixingConfig``), bare or as ``mixing.FIELD``: ``rule``, ``max_topk``,
  ``noise``, ``gumbel_tau``, ``dirichlet_alpha``, ``hidden_scale``, ...;
* a sampler field as ``think_sampling.FIELD`` or ``answer_sampling.FIELD``: ``temperature``, ``top_p``,
  ``top_k``, ``min_p``, ``seed``.

Each combination is named ``METHOD[field=value,...]`` (the run's record ``method``); each is compared with its
method's baseline combination (default: every field's first value; ``--baseline field=value,...``) by the
exact McNemar test on the items both answered.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import SamplingConfig
from ..decoding.mixing import MixingConfig
from ..errors import ConfigError
from .methods import setting_fields
from .runner import ThinkConfig

#: The common ``ThinkConfig`` fields a grid may vary.
_COMMON = ("max_think_tokens", "max_answer_tokens", "cold_stop_tau", "cold_stop_steps", "answer_stops_at_newline")
_SAMPLERS = ("think_sampling", "answer_sampling")


def _top() -> tuple[str, ...]:
    return (*_COMMON, *setting_fields())


def grid_fields() -> list[str]:
    """Every field name ``--grid`` accepts (bare names and dotted paths)."""
    mixing = list(MixingConfig.model_fields)
    sampling = [f for f in SamplingConfig.model_fields if f != "max_new_tokens"]
    return [*_top(), *mixing, *(f"mixing.{f}" for f in mixing), *(f"{s}.{f}" for s in _SAMPLERS for f in sampling)]


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid field=v1,v2`` option: the canonical field path and its values (as given, in order)."""

    field: str
    values: tuple[str, ...]

    @property
    def label(self) -> str:
        """The name used in combination names (the last part of the path)."""
        return self.field.rsplit(".", 1)[-1]


def _canonical(name: str) -> str:
    if name in _top():
        return name
    if name in MixingConfig.model_fields:
        return f"mixing.{name}"
    head, _, tail = name.partition(".")
    if head == "mixing" and tail in MixingConfig.model_fields:
        return name
    if head in _SAMPLERS and tail in SamplingConfig.model_fields and tail != "max_new_tokens":
        return name
    if name in SamplingConfig.model_fields:
        raise ConfigError(f"grid {name}: say which sampler, think_sampling.{name} or answer_sampling.{name}",
                          param="grid")
    if name in ("method", "methods"):
        raise ConfigError("grid method: choose methods with methods; a grid varies their settings",
                          param=("grid", "methods"))
    raise ConfigError(f"grid: unknown field {name!r}; choose one of: {', '.join(grid_fields())}", param="grid")


def parse_grid(specs: Sequence[str]) -> list[GridAxis]:
    """``["cold_stop_steps=0,48", "noise=none,gumbel"]`` → axes.

    Raises:
        ConfigError: not ``field=v1,v2,...``, an unknown field, a field given twice, an empty or repeated value.
    """
    axes: list[GridAxis] = []
    for spec in specs:
        name, eq, values = spec.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"grid {spec!r}: expected FIELD=VALUE1,VALUE2,..., e.g. noise=none,gumbel", param="grid")
        field = _canonical(name.strip())
        vals = tuple(v.strip() for v in values.split(","))
        if not vals or any(not v for v in vals):
            raise ConfigError(f"grid {spec!r}: every value must be non-empty (comma-separated)", param="grid")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"grid {spec!r}: a value is listed twice", param="grid")
        if any(a.field == field for a in axes):
            raise ConfigError(f"grid {spec!r}: field {field} is already an axis; give all its values in one axis",
                              param="grid")
        axes.append(GridAxis(field, vals))
    return axes


def combination_name(method: str, axes: Sequence[GridAxis], values: Sequence[str]) -> str:
    """``soft[cold_stop_steps=0,noise=gumbel]``."""
    return f"{method}[{','.join(f'{a.label}={v}' for a, v in zip(axes, values))}]"


def expand_grid(configs: dict[str, ThinkConfig], axes: Sequence[GridAxis]) -> dict[str, ThinkConfig]:
    """Every method's config for every combination of ``axes`` (the methods' own settings elsewhere), named by
    :func:`combination_name`; ``configs`` unchanged without axes.

    Raises:
        ConfigError: a value the field does not accept (the option, field and allowed range are named).
    """
    if not axes:
        return dict(configs)
    out: dict[str, ThinkConfig] = {}
    for method, base in configs.items():
        own = base.spec.setting_names()
        for values in itertools.product(*(a.values for a in axes)):
            data = base.flat()
            for axis, value in zip(axes, values):
                head, _, tail = axis.field.partition(".")
                if not tail and head not in ThinkConfig.model_fields and head not in own:
                    continue  # another method's setting: this method runs unchanged at this value
                data[head] = {**data[head], tail: value} if tail else value
                try:
                    ThinkConfig.create(**data)
                except ConfigError as exc:
                    raise ConfigError(f"grid {axis.label}={value}: {exc}", param="grid") from None
            out[combination_name(method, axes, values)] = ThinkConfig.create(**data)
    return out


def baseline_names(methods: Sequence[str], axes: Sequence[GridAxis], baseline: str | None) -> dict[str, str]:
    """Each method's baseline combination name: the first value of every axis, or ``baseline``
    (``field=value,...``; fields not named keep their first value).

    Raises:
        ConfigError: ``baseline`` without a grid, not ``field=value``, a field not in the grid, or a value not
            among that field's grid values.
    """
    if baseline is not None and not axes:
        raise ConfigError("baseline needs a grid: it names the combination the others are compared with",
                          param=("baseline", "grid"))
    chosen = {a.field: a.values[0] for a in axes}
    for part in (baseline or "").split(","):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(f"baseline {baseline!r}: expected FIELD=VALUE,..., e.g. noise=none", param="baseline")
        field = _canonical(name.strip())
        axis = next((a for a in axes if a.field == field), None)
        if axis is None:
            raise ConfigError(f"baseline: field {name.strip()!r} is not an axis of the grid", param="baseline")
        if value.strip() not in axis.values:
            raise ConfigError(f"baseline {name.strip()}={value.strip()}: not among the values of its axis "
                              f"{', '.join(axis.values)}", param="baseline")
        chosen[field] = value.strip()
    return {m: combination_name(m, axes, [chosen[a.field] for a in axes]) for m in methods}
