"""The settings of a thinking evaluation (``vecgen think``, :func:`vecgen.evaluate`), validated before any model loads.

:class:`EvaluationSettings` holds everything that shapes the results of a run: the benchmark, the methods and
their settings (the discrete sampler of ``cot`` thinking and of every answer, the concept-token distribution of
``soft``, the mixing rule, budgets, Cold Stop), an ablation grid and its baseline, pass@k samples, the batch size.
Its :meth:`~EvaluationSettings.method_configs` are the per-name :class:`~vecgen.thinking.runner.ThinkConfig`
(one per method, or per method and grid combination). Bad values raise :class:`~vecgen.errors.ConfigError` naming
the parameter (``batch_size``, ``samples``, ...); the CLI names its flags instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import SamplingConfig, format_validation_error
from ..decoding.mixing import MixingConfig
from ..errors import ConfigError
from .grid import GridAxis, baseline_names, expand_grid, parse_grid
from .methods import method_names, split_settings
from .runner import SOFT_THINKING_SAMPLING, ThinkConfig, method_configs

#: The methods a run compares when none are named.
DEFAULT_METHODS: tuple[str, ...] = ("direct", "cot", "soft")
#: The concept-token sampling fields that ``concept`` may override (:data:`SOFT_THINKING_SAMPLING`).
CONCEPT_FIELDS = ("temperature", "top_p", "top_k", "min_p")


def parse_methods(methods: str | Sequence[str], *, param: str = "methods") -> list[str]:
    """``"direct,cot,soft"`` (or a list) → ``["direct", "cot", "soft"]`` (order kept, duplicates dropped).

    Raises:
        ConfigError: an empty list or an unknown method (the parameter is named).
    """
    items = methods.split(",") if isinstance(methods, str) else list(methods)
    names = [str(m).strip() for m in items if str(m).strip()]
    if not names:
        raise ConfigError(f"{param} is empty; choose from: {', '.join(method_names())}", param=param)
    bad = [m for m in names if m not in method_names()]
    if bad:
        raise ConfigError(f"unknown method {bad[0]!r} in {param}; choose from: {', '.join(method_names())}",
                          param=param)
    return list(dict.fromkeys(names))


def deterministic(cfg: ThinkConfig) -> bool:
    """True when a method's outputs cannot vary between samples: its thinking draws nothing and its answer is
    greedy. Thinking draws nothing for ``direct`` (none), ``hidden`` (the hidden state), greedy sampling, and the
    ``soft`` / ``full`` concept-token rules without noise: a concept token is the weighted mixture itself, not a
    draw (only ``onehot`` and ``moi`` sample a token; ``gumbel`` / ``dirichlet`` noise draws weights)."""
    rule = cfg.thinking_rule()
    thinking_fixed = (not cfg.spec.thinks or cfg.think_sampling.greedy or rule.feeds_hidden
                      or (rule.rule in ("soft", "full") and rule.noise.value == "none"))
    return thinking_fixed and cfg.answer_sampling.greedy


#: Allowed ranges named in error messages.
_ALLOWED = {"limit": ">= 1 (or leave it out for all items)", "batch_size": ">= 1",
            "samples": f"[1, {10_000:,}]"}

#: Generations (items × configurations × samples) above which a run needs ``allow_large``: more than the 2-core
#: CPU this was written on answers in a day (the GSM8K-100 comparison, 300 generations, took about 20 minutes).
LARGE_RUN_GENERATIONS = 20_000
#: Configurations (methods × grid combinations) above which a run needs ``allow_large``.
LARGE_RUN_CONFIGS = 64
#: Most samples per item (pass@k beyond k = 10,000 is never what was meant).
MAX_SAMPLES = 10_000


class EvaluationSettings(BaseModel):
    """Settings of a thinking evaluation (every field has ``vecgen think``'s default).

    Attributes:
        benchmark: a named benchmark (``gsm8k``, ``arena``) or a task file path; ``"tasks"`` when the caller gives
            :class:`~vecgen.benchmarks_data.Task` objects.
        data_source: where a named benchmark's items come from (:func:`~vecgen.benchmarks_data.load_benchmark`).
        limit: the first ``limit`` items (>= 1); None = all.
        methods: method names (registered: :func:`~vecgen.thinking.methods.method_names`).
        batch_size: rows decoded together (>= 1): with continuous batching (the default) a finished row's place goes
            to the next item at once, ``CHUNK_BATCHES`` batches' worth of items per chunk; ``static_batching``:
            batches of ``batch_size`` items, each running until its longest row ends (for comparisons; results
            agree up to the kernels' batch tolerance, so it is not a resume setting).
        sampling: the discrete sampler of ``cot`` thinking and of every answer (default greedy).
        mixing: the thinking rule of ``soft`` (and ``hidden``'s ``hidden_scale``).
        concept: overrides of ``soft``'s concept-token distribution (:data:`SOFT_THINKING_SAMPLING`: temperature
            0.6, top_p 0.95, top_k 30, min_p 0.001); keys :data:`CONCEPT_FIELDS`.
        max_think_tokens, max_answer_tokens, cold_stop_tau, cold_stop_steps: budgets and Cold Stop (None = the
            :class:`~vecgen.thinking.runner.ThinkConfig` defaults: 320, 24, 0.01 nats, 48).
        method_settings: the methods' own settings (:class:`~vecgen.thinking.methods.MethodSettings` fields, e.g.
            ``switch``'s and ``gated``'s), flat ``name -> value``; each method takes those it has, and a setting that
            none of the methods has is refused. :meth:`create` takes them as keywords.
        marker: the end-of-thinking text marker (None: ``</think>`` for thinking models, else ``"Answer:"``).
        grid: ablation axes ``FIELD=V1,V2`` (:mod:`vecgen.thinking.grid`); baseline: the combination the others are
            compared with (``FIELD=VALUE,...``; default every axis's first value).
        budgets: thinking budgets (tokens): every method runs with each (the marker forced at the budget), named
            ``METHOD[max_think_tokens=B]``; the methods are compared with each other at each budget.
        samples: answer every item ``samples`` times per method with per-item seeds (pass@k), at most
            :data:`MAX_SAMPLES`; None = once.
        allow_large: go ahead with a run above :data:`LARGE_RUN_CONFIGS` configurations or
            :data:`LARGE_RUN_GENERATIONS` generations (otherwise refused before anything loads; not a setting of the
            results, so a resume need not repeat it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    benchmark: str = "gsm8k"
    data_source: str | None = None
    limit: int | None = Field(None, ge=1)
    methods: tuple[str, ...] = DEFAULT_METHODS
    batch_size: int = Field(8, ge=1)
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(max_new_tokens=1))
    mixing: MixingConfig = Field(default_factory=lambda: MixingConfig(rule="soft"))
    concept: dict[str, float | int] = Field(default_factory=dict)
    max_think_tokens: int | None = None
    max_answer_tokens: int | None = None
    cold_stop_tau: float | None = None
    cold_stop_steps: int | None = None
    method_settings: dict[str, Any] = Field(default_factory=dict)
    marker: str | None = None
    grid: tuple[str, ...] = ()
    budgets: tuple[int, ...] = ()
    baseline: str | None = None
    samples: int | None = Field(None, ge=1, le=MAX_SAMPLES)
    allow_large: bool = False
    static_batching: bool = False

    @classmethod
    def create(cls, **values: Any) -> "EvaluationSettings":
        """Validate every setting (``None`` = the default) and build the per-method configs once, so every bad
        value, grid value and sample count is refused here, before any model is loaded.

        Raises:
            ConfigError: the first bad value (its parameter named: ``batch_size``, ``samples``, ``grid``, ...).
        """
        values = {k: v for k, v in values.items() if v is not None}
        own, values = split_settings(values)
        if own:
            values["method_settings"] = {**values.get("method_settings", {}), **own}
        if "methods" in values:
            values["methods"] = tuple(parse_methods(values["methods"]))
        if "grid" in values:
            values["grid"] = tuple(values["grid"])
        if "budgets" in values:
            values["budgets"] = tuple(values["budgets"])
            _check_budgets(values["budgets"], values)
        marker = values.get("marker")
        if marker is not None and not str(marker).strip():
            raise ConfigError('marker is empty: give the text the prompt asks the model to write before its answer, '
                              'e.g. "Answer:"', param="marker")
        unknown = sorted(set(values.get("concept") or {}) - set(CONCEPT_FIELDS))
        if unknown:
            raise ConfigError(f"concept: unknown field {unknown[0]!r}; choose from: {', '.join(CONCEPT_FIELDS)}",
                              param="concept")
        try:
            settings = cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = str(first["loc"][0]) if first.get("loc") else None
            raise ConfigError(format_validation_error(exc, "evaluation settings", _ALLOWED), param=param) from None
        n = settings.n_configs
        if n > LARGE_RUN_CONFIGS and not settings.allow_large:
            raise ConfigError(f"this run has {n:,} configurations ({len(settings.methods)} methods × "
                              f"{n // len(settings.methods):,} combinations of grid values and budgets), more than "
                              f"{LARGE_RUN_CONFIGS}; narrow them, or pass allow_large to go ahead",
                              param=("grid", "allow_large"))
        settings.method_configs()  # every method, grid value and sample count is checked now
        return settings

    @property
    def n_configs(self) -> int:
        """Configurations the run answers with: methods × grid combinations (computed without expanding the grid)."""
        return len(self.methods) * math.prod(len(a.values) for a in self.axes)

    def check_size(self, n_items: int) -> int:
        """The run's generations (``n_items`` × :attr:`n_configs` × samples), checked before anything loads.

        Raises:
            ConfigError: more than :data:`LARGE_RUN_GENERATIONS` without ``allow_large`` (the count and its factors
                named, and how to go ahead).
        """
        samples = self.samples or 1
        total = n_items * self.n_configs * samples
        if total > LARGE_RUN_GENERATIONS and not self.allow_large:
            raise ConfigError(
                f"this run is {total:,} generations ({n_items:,} items × {self.n_configs:,} configurations × {samples:,} "
                f"samples), more than {LARGE_RUN_GENERATIONS:,} (about a day on a 2-core CPU); lower limit, the grid "
                "or samples, or pass allow_large to go ahead", param=("limit", "samples", "allow_large"))
        return total

    @property
    def axes(self) -> list[GridAxis]:
        """The grid's axes (empty without a grid); ``budgets`` add a ``max_think_tokens`` axis."""
        axes = parse_grid(self.grid)
        if self.budgets:
            axes.append(GridAxis("max_think_tokens", tuple(str(b) for b in self.budgets)))
        return axes

    def budget_pairs(self) -> list[tuple[str, str]]:
        """With ``budgets``: every pair of methods at each budget (the same other grid values), as run names."""
        if not self.budgets:
            return []
        names = list(self.method_configs())
        by_rest: dict[str, list[str]] = {}
        for name in names:
            method, _, rest = name.partition("[")
            by_rest.setdefault(rest, []).append(name)
        return [(a, b) for group in by_rest.values() for i, a in enumerate(group) for b in group[i + 1 :]]

    def base_configs(self) -> dict[str, ThinkConfig]:
        """One :class:`~vecgen.thinking.runner.ThinkConfig` per method (no grid): :func:`method_configs`."""
        settings = {k: getattr(self, k) for k in ("max_think_tokens", "max_answer_tokens", "cold_stop_tau",
                                                  "cold_stop_steps")}
        return method_configs(list(self.methods), discrete=self.sampling, mixing=self.mixing, concept=self.concept,
                              **settings, **self.method_settings)

    def method_configs(self) -> dict[str, ThinkConfig]:
        """Name → config of every run of the evaluation: a method, or ``METHOD[field=value,...]`` per grid
        combination.

        Raises:
            ConfigError: a grid value a field does not accept, a baseline not in the grid, or ``samples > 1`` for a
                method whose outputs cannot vary (:func:`deterministic`).
        """
        configs = expand_grid(self.base_configs(), self.axes)
        self.baselines()
        if self.samples is not None and self.samples > 1:
            fixed = [n for n, c in configs.items() if deterministic(c)]
            if fixed:
                raise ConfigError(
                    f"samples {self.samples}: {fixed[0]} draws nothing (greedy, or unperturbed concept tokens, and "
                    "a greedy answer), so every sample would be the same; give temperature (e.g. 0.7; it also "
                    "samples the answers of soft), noise gumbel for soft, or leave the method out",
                    param=("samples", "temperature", "noise"))
        return configs

    def baselines(self) -> dict[str, str]:
        """Each method's baseline grid combination (empty without a grid)."""
        return baseline_names(list(self.methods), self.axes, self.baseline)

    def concept_sampling(self) -> SamplingConfig:
        """``soft``'s concept-token distribution: :data:`SOFT_THINKING_SAMPLING` with :attr:`concept`'s overrides."""
        return SamplingConfig.create(defaults={**SOFT_THINKING_SAMPLING, **self.concept}, seed=self.sampling.seed)


def _check_budgets(budgets: tuple[Any, ...], values: dict[str, Any]) -> None:
    if not budgets:
        raise ConfigError("budgets: give thinking budgets, e.g. 64,128,256", param="budgets")
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in budgets):
        raise ConfigError(f"budgets {list(budgets)}: every budget must be an integer >= 1", param="budgets")
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"budgets {list(budgets)}: a budget is listed twice", param="budgets")
    if values.get("max_think_tokens") is not None:
        raise ConfigError("budgets set the thinking budget of every run; leave max_think_tokens out",
                          param=("budgets", "max_think_tokens"))
    if any(str(g).split("=", 1)[0].strip() == "max_think_tokens" for g in values.get("grid") or ()):
        raise ConfigError("budgets and a grid over max_think_tokens say the same thing; give one",
                          param=("budgets", "grid"))


def settings_from_options(*, concept: Mapping[str, Any] | None = None, **values: Any) -> EvaluationSettings:
    """:meth:`EvaluationSettings.create` with ``concept`` given as possibly-None fields (the CLI's ``--concept-*``)."""
    return EvaluationSettings.create(concept={k: v for k, v in (concept or {}).items() if v is not None}, **values)


__all__ = ["CONCEPT_FIELDS", "DEFAULT_METHODS", "EvaluationSettings", "deterministic", "parse_methods",
           "settings_from_options"]
