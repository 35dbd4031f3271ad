"""The registry of thinking methods: one :class:`ThinkingMethod` per name, registered by its own module.

A thinking method decides what a row feeds while it thinks (its concept token, its top-1 token, or, for the
``hidden`` rule, its last hidden state) and when thinking ends early; everything around it — prompts, the forced
end-of-thinking marker, Cold Stop, budgets, the answer, evaluation, grids, serving, lm-eval — is shared. Everything
that names methods or their settings derives from this registry: validation before load, saved settings and resume
checks, grid axes, the ``vecgen think`` flags and ``--help``, the ``thinking`` object of ``vecgen serve`` (and its
OpenAPI schema), the lm-eval model's arguments, :meth:`vecgen.Model.think`'s method settings and the run viewer's
column notes.

A method with settings gives them as a :class:`MethodSettings` subclass (pydantic fields with defaults, ranges and a
``description``, which is the flag's help text). Adding a method (``docs/contributing.md``)::

    from pydantic import Field
    from vecgen.thinking.methods import MethodSettings, ThinkingMethod, register_method

    class SharpSettings(MethodSettings):
        mix_temperature: float = Field(0.3, gt=0, le=2, description="the concept tokens' fixed temperature")

    register_method(ThinkingMethod(
        "sharp", "soft thinking at a fixed mixture temperature", settings=SharpSettings, concept_tokens=True,
        sampling=lambda sampling, s: sampling.model_copy(update={"temperature": s.mix_temperature})))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from ...config import SamplingConfig
from ...decoding.engine import Observation
from ...decoding.mixing import MixingConfig
from ...errors import ConfigError


class MethodSettings(BaseModel):
    """A thinking method's own settings (none for the base class). Subclasses declare pydantic fields with a
    default, a range (``ge``/``le``/``gt``/``lt``) and a ``description`` (shown as the flag's help)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass(frozen=True)
class RowContext:
    """What a method's per-row rule may read when a row starts.

    Attributes:
        tokenizer: the model's tokenizer (e.g. to find the ids of math symbols).
        n_real_vocab: token rows that are real tokens (``V``).
        rule: the thinking rule the row mixes with (:meth:`ThinkingMethod.thinking_rule`).
        reasoning: the prompt layout of a model trained by ``vecgen train``
            (:class:`~vecgen.models.ReasoningFormat`: its method, thoughts, markers), None for other models.
    """

    tokenizer: Any
    n_real_vocab: int
    rule: MixingConfig
    reasoning: Any = None


#: What a row feeds at one thinking step, decided from that step's :class:`~vecgen.decoding.engine.Observation`:
#: ``True`` its concept token (or hidden state), ``False`` its top-1 token, or a string: end thinking now with that
#: stop reason (the marker is forced, then the row answers).
StepRule = Callable[[Observation], "bool | str"]


def _always(latent: bool) -> Callable[[MethodSettings, RowContext], StepRule]:
    def make(settings: MethodSettings, ctx: RowContext) -> StepRule:
        return lambda obs: latent

    return make


@dataclass(frozen=True)
class ThinkingMethod:
    """One thinking method.

    Attributes:
        name: what ``--methods``, ``method=`` and the records call it.
        summary: one line: the ``--methods`` help, the docs' table and the viewer's column note.
        settings: the method's own settings (:class:`MethodSettings` subclass; the base class: none).
        thinks: False for a method that answers at once (``direct``): no thinking phase, the prompt ends where the
            answer starts.
        concept_tokens: True: thinks with the concept-token distribution (Soft Thinking's sampling, overridden by
            ``--concept-*``) and the run's mixing rule; False: with the discrete sampler and the ``onehot`` rule.
        rule: the thinking rule from the run's mixing config (default: the run's rule for ``concept_tokens``
            methods, else ``onehot``); e.g. ``hidden`` returns the ``hidden`` rule.
        sampling: ``(think sampling, settings) -> think sampling``: the method's change to its thinking sampler
            (default: none). It runs on every validation of a config, so it must set fields from the settings, not
            scale them.
        row: ``(settings, RowContext) -> StepRule``: a fresh per-row rule (default: every step latent for
            ``concept_tokens`` methods, every step explicit otherwise).
        stop_reasons: the stop reasons the row rule may return (recorded, counted in summaries).
        ends_on_trace: True: thinking also ends when the trace writes the end-of-thinking marker or an end-of-turn
            token, or Cold Stop fires; False: only the row rule and the budget end it (``coconut``: a fixed number
            of continuous thoughts, whatever their top-1 tokens read as).
        forced_thoughts: ``(settings, RowContext) -> token ids``: a method whose thinking is fixed tokens fed without
            sampling (``pause``: its learned pause token, ``n_thoughts`` times), then the marker; None: sampled.
        legacy_keys: keys that runs saved by older versions carry in this method's settings and that mean nothing to
            it (dropped before a resume compares settings).
    """

    name: str
    summary: str
    settings: type[MethodSettings] = MethodSettings
    thinks: bool = True
    concept_tokens: bool = False
    rule: Callable[[MixingConfig], MixingConfig] | None = None
    sampling: Callable[[SamplingConfig, Any], SamplingConfig] | None = None
    row: Callable[[Any, RowContext], StepRule] | None = None
    stop_reasons: tuple[str, ...] = ()
    ends_on_trace: bool = True
    forced_thoughts: Callable[[Any, RowContext], list[int]] | None = None
    legacy_keys: tuple[str, ...] = field(default=())

    def thinking_rule(self, mixing: MixingConfig) -> MixingConfig:
        """The rule this method thinks with, given the run's ``mixing`` config."""
        if self.rule is not None:
            return self.rule(mixing)
        return mixing if self.concept_tokens else MixingConfig(rule="onehot")

    def thinking_sampling(self, sampling: SamplingConfig, settings: MethodSettings) -> SamplingConfig:
        """The sampler of this method's thinking steps: ``sampling`` with the method's change, if any."""
        return sampling if self.sampling is None else self.sampling(sampling, settings)

    def new_row(self, settings: MethodSettings, ctx: RowContext) -> StepRule:
        """A fresh :data:`StepRule` for one row."""
        return (self.row or _always(self.concept_tokens))(settings, ctx)

    def setting_names(self) -> tuple[str, ...]:
        """The names of this method's own settings, in declaration order."""
        return tuple(self.settings.model_fields)


_METHODS: dict[str, ThinkingMethod] = {}
#: The fields of every method's config (:func:`reserve_settings`).
_COMMON: set[str] = set()

#: The names a method may not take: words the command line and the grid give another meaning.
_RESERVED = frozenset({"none", "all", "method", "methods"})


def register_method(method: ThinkingMethod, *, replace: bool = False) -> ThinkingMethod:
    """Add ``method`` to the registry (its module calls this at import). Returns it.

    Raises:
        ValueError: a name that is taken (unless ``replace``), reserved or not an identifier-like word; a setting
            whose name is a field of every method's config or that another method declares with another type.
    """
    name = method.name
    if not name or not name.replace("_", "").replace("-", "").isalnum() or name in _RESERVED:
        raise ValueError(f"thinking method name {name!r}: use letters, digits, '_' or '-', not {sorted(_RESERVED)}")
    if name in _METHODS and not replace:
        raise ValueError(f"thinking method {name!r} is already registered")
    for key, info in method.settings.model_fields.items():
        if key in _COMMON:
            raise ValueError(f"thinking method {name!r}: setting {key!r} is a field of every method's config")
        for other in _METHODS.values():
            theirs = other.settings.model_fields.get(key)
            if other.name != name and theirs is not None and theirs.annotation != info.annotation:
                raise ValueError(f"thinking method {name!r}: setting {key!r} is also {other.name}'s, with another "
                                 f"type ({theirs.annotation} vs {info.annotation})")
    _METHODS[name] = method
    return method


def reserve_settings(names: Sequence[str]) -> None:
    """Declare the fields every method's config has (:class:`~vecgen.thinking.runner.ThinkConfig` does, once it is
    defined): no method's own setting may take one of these names.

    Raises:
        ValueError: a registered method already has such a setting.
    """
    _COMMON.update(names)
    for method in _METHODS.values():
        clash = sorted(set(method.settings.model_fields) & _COMMON)
        if clash:
            raise ValueError(f"thinking method {method.name!r}: setting {clash[0]!r} is a field of every method's config")


def unregister_method(name: str) -> None:
    """Remove a registered method (tests and notebooks that register their own)."""
    _METHODS.pop(name, None)


def method_names() -> tuple[str, ...]:
    """Every registered method's name, in registration order (the built-ins first)."""
    return tuple(_METHODS)


def get_method(name: str, *, param: str = "method") -> ThinkingMethod:
    """The registered method ``name``.

    Raises:
        ConfigError: an unknown name (the registered ones listed; ``param`` named).
    """
    try:
        return _METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r} in {param}; choose from: {', '.join(_METHODS)}",
                          param=param) from None


def methods_with(setting: str) -> list[str]:
    """The registered methods that have ``setting`` among their own settings."""
    return [m.name for m in _METHODS.values() if setting in m.settings.model_fields]


def setting_fields() -> dict[str, tuple[Any, list[str]]]:
    """Every method setting of every registered method: ``name -> (pydantic FieldInfo, [methods having it])``, in
    registration order (the ``vecgen think`` flags, grid axes, lm-eval arguments and serve's schema come from it)."""
    out: dict[str, tuple[Any, list[str]]] = {}
    for method in _METHODS.values():
        for key, info in method.settings.model_fields.items():
            if key in out:
                out[key][1].append(method.name)
            else:
                out[key] = (info, [method.name])
    return out


def split_settings(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``values`` split into (method settings of registered methods, the rest)."""
    known = setting_fields()
    mine = {k: v for k, v in values.items() if k in known}
    return mine, {k: v for k, v in values.items() if k not in known}


def check_method_settings(methods: Sequence[str], values: dict[str, Any], *, param_of: Callable[[str], str] = str
                          ) -> None:
    """Refuse method settings that none of ``methods`` has (a setting of another registered method is named as
    such); unknown keys are left to the caller.

    Raises:
        ConfigError: ``S is a setting of M, which is not among the methods (cot, soft)``.
    """
    chosen = [get_method(m) for m in methods]
    for key, value in values.items():
        if value is None or any(key in m.settings.model_fields for m in chosen):
            continue
        owners = methods_with(key)
        if owners:
            raise ConfigError(f"{param_of(key)} is a setting of {', '.join(owners)}, which "
                              f"{'is' if len(owners) == 1 else 'are'} not among the methods ({', '.join(methods)}); "
                              f"add {owners[0]} to the methods or leave it out", param=key)


__all__ = ["MethodSettings", "RowContext", "StepRule", "ThinkingMethod", "check_method_settings", "get_method",
           "method_names", "methods_with", "register_method", "setting_fields", "split_settings",
           "unregister_method"]
