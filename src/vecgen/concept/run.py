"""Running the concept-token experiment (the seeds' protocol): generate N concept tokens, describe them,
translate them back into text, on one model or several side by side. Presentation (console, report,
figure, files) is in :mod:`vecgen.concept.report`; the typed records in :mod:`vecgen.concept.records`.

For each model and prompt:

1. the prompt is encoded (plain completion, no chat template) and ``max(N)`` concept vectors are
   generated with the decode loop (:func:`vecgen.decoding.generate`) under the mixing rule
   (default ``soft``, ``max_topk`` 10) and the sampling settings (default temperature 1.0, no
   top-k / top-p / min-p truncation: the plain softmax of the seeds);
2. each vector is described (:func:`vecgen.decoding.metrics.vector_metrics`: top weights, entropy,
   nearest tokens, distance from the embedding manifold, norm);
3. for every N, the first N vectors are translated with every method
   (:mod:`vecgen.decoding.translate`), all in one batch.

The first N vectors of an ``max(N)``-step run are exactly the vectors of an N-step run (same seed,
same random draws step by step), so one run per prompt serves every N.

Records (one per model, prompt and N) are appended to ``records.jsonl`` as soon as a prompt is done;
NaN/inf stops the run with a :class:`~vecgen.errors.NonFiniteError` naming the step, the prompt and
the model, and the records already written stay.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import (
    CONCEPT_SAMPLING_DEFAULTS,
    DEFAULT_PROMPTS,
    SamplingConfig,
    format_validation_error,
)
from ..decoding.metrics import vector_metrics
from ..decoding.mixing import MixingConfig
from ..decoding.translate import (
    CHAT_METHODS,
    TRANSLATION_METHODS,
    check_methods,
    get_method,
    translate,
)
from ..errors import ConfigError, NoChatTemplateError, NonFiniteError
from ..io import atomic_write_text, to_jsonable
from ..models import LoadedModel, load_model
from ..parallel import Processes
from ..reports import RunWriter
from ..vocab import english_token_mask
from .records import ConceptRecord, ConceptVector
from .tokens import concept_tokens

log = logging.getLogger(__name__)

#: The seeds' numbers of concept tokens.
DEFAULT_N: tuple[int, ...] = (2, 3, 4)


def all_methods() -> list[str]:
    """Every registered translation method, in registry order."""
    return list(TRANSLATION_METHODS)


class ConceptConfig(BaseModel):
    """Configuration of a concept-token run.

    Attributes:
        prompts: texts to continue (plain completion).
        n_values: numbers N of concept tokens to translate (each >= 1).
        methods: translation methods; ``None`` = every registered method that the model supports
            (``instruction`` is skipped for models without a chat template, with a note). Naming
            ``instruction`` explicitly on such a model is an error.
        sampling: how the concept tokens' distributions are formed (temperature, top_k, top_p, min_p, seed).
        mixing: the mixing rule and its parameters.
        translation_tokens: tokens generated per translation (greedy decoding).
        english_only: restrict concept-token weights and translation tokens to English tokens
            (:func:`vecgen.vocab.english_token_mask`; stop tokens stay allowed).
        english_policy: ``text`` or ``strict`` (see :mod:`vecgen.vocab`).
        record_top_k: mixture weights recorded per vector.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS))
    n_values: list[int] = Field(default_factory=lambda: list(DEFAULT_N))
    methods: list[str] | None = None
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(**CONCEPT_SAMPLING_DEFAULTS))
    mixing: MixingConfig = Field(default_factory=MixingConfig)
    translation_tokens: int = Field(16, ge=1)
    english_only: bool = False
    english_policy: str = "text"
    record_top_k: int = Field(10, ge=1)

    @classmethod
    def create(cls, **values: Any) -> "ConceptConfig":
        """Validate, raising :class:`ConfigError` with one clear message.

        Raises:
            ConfigError: no prompts or an empty prompt; N < 1 or no N; an unknown, empty or duplicate
                method; an out-of-range value.
        """
        values = {k: v for k, v in values.items() if v is not None}
        prompts = values.get("prompts")
        if prompts is not None:
            if not prompts:
                raise ConfigError("no prompts given")
            for i, p in enumerate(prompts):
                if not str(p).strip():
                    raise ConfigError(f"empty prompt (prompt {i + 1}): give some text to continue, "
                                      "e.g. \"The capital of France is\"")
        n_values = values.get("n_values")
        if n_values is not None:
            if not n_values:
                raise ConfigError("no N values given")
            for n in n_values:
                if int(n) < 1:
                    raise ConfigError(f"N={n}: the number of concept tokens must be >= 1")
            values["n_values"] = sorted(set(int(n) for n in n_values))
        methods = values.get("methods")
        if methods is not None:
            if not methods:
                raise ConfigError("no translation methods given")
            for m in methods:
                get_method(m)
            values["methods"] = list(dict.fromkeys(methods))
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "concept config")) from None

    @property
    def max_n(self) -> int:
        return max(self.n_values)


def methods_for(lm: LoadedModel, config: ConceptConfig) -> tuple[list[str], list[str]]:
    """``(methods to run, notes)`` for ``lm``.

    Raises:
        NoChatTemplateError: ``instruction`` was named explicitly and ``lm`` has no chat template.
    """
    if config.methods is not None:
        check_methods(lm, config.methods)
        return list(config.methods), []
    methods = all_methods()
    try:
        check_methods(lm, methods)
        return methods, []
    except NoChatTemplateError:
        skipped = [m for m in methods if m in CHAT_METHODS]
        note = f"{lm.name}: no chat template, so the {', '.join(repr(m) for m in skipped)} translations were skipped"
        return [m for m in methods if m not in CHAT_METHODS], [note]


def total_steps(config: ConceptConfig, n_models: int = 1) -> int:
    """Upper bound of decode steps of a run (for progress bars)."""
    return n_models * len(config.prompts) * (config.max_n + config.translation_tokens)


ProgressFn = Callable[[int, str], None]
PromptDoneFn = Callable[[list[ConceptRecord]], None]


def _step_no(exc: NonFiniteError) -> str:
    return "?" if exc.step is None else str(exc.step + 1)


def _located(exc: NonFiniteError, where: str, prompt_index: int) -> NonFiniteError:
    what = str(exc).split(" at step")[0]
    return NonFiniteError(f"{what} at {where}", step=exc.step, row=prompt_index)


def run_prompt(
    lm: LoadedModel,
    prompt: str,
    prompt_index: int,
    config: ConceptConfig,
    methods: Sequence[str],
    *,
    allowed: Any = None,
    progress: ProgressFn | None = None,
    prefix_cache: dict | None = None,
) -> tuple[list[ConceptRecord], Any]:
    """Concept tokens of one prompt, their metrics and translations.

    ``prefix_cache`` (a dict kept per model) lets the translation methods' fixed prefixes be prefilled
    once per model instead of once per prompt (see :func:`vecgen.decoding.translate.translate`).

    Returns:
        ``(records, vectors)``: one :class:`~vecgen.concept.records.ConceptRecord` per N and the
        ``(max N, d)`` float32 vectors on the CPU.

    Raises:
        NonFiniteError: NaN/inf in logits or vectors; ``row`` = ``prompt_index``, ``step`` as raised.
        ConfigError: an empty prompt.
    """
    if not lm.encode(prompt):
        raise ConfigError(f"prompt {prompt_index + 1} encodes to no tokens: {prompt!r}")
    start = time.perf_counter()
    tick = (lambda step, rec: progress(1, f"{lm.name}: concept tokens")) if progress else None
    try:
        tokens = concept_tokens(lm, [prompt], n=config.max_n, sampling=config.sampling, mixing=config.mixing,
                                allowed=allowed, record_top_k=config.record_top_k, on_step=tick)[0]
    except NonFiniteError as exc:
        raise _located(exc, f"concept token {_step_no(exc)}", prompt_index) from None
    vectors = tokens.vectors  # (max N, d) float32
    row = tokens.record  # typed records of the one row: (max N, K) mix_ids / mix_weights, (max N,) entropies
    assert row is not None
    metrics = vector_metrics(lm, vectors, mix_ids=row.mix_ids, mix_weights=row.mix_weights, entropies=row.mix_entropy,
                             top_k=config.record_top_k)
    described = [ConceptVector.build(i + 1, tok, tid, h, m)
                 for i, (m, tok, tid, h) in enumerate(zip(metrics, tokens.tokens, tokens.token_ids,
                                                          tokens.distribution_entropy))]
    concept_seconds = time.perf_counter() - start

    done = [0]

    def tick_tr(step, rec):
        done[0] += 1
        if progress:
            progress(1, f"{lm.name}: translations")

    start = time.perf_counter()
    try:
        translations = translate(lm, [vectors[:n] for n in config.n_values], methods,
                                 max_new_tokens=config.translation_tokens, allowed=allowed, on_step=tick_tr,
                                 prefix_cache=prefix_cache)
    except NonFiniteError as exc:
        raise _located(exc, f"translation step {_step_no(exc)}", prompt_index) from None
    if progress and done[0] < config.translation_tokens:
        progress(config.translation_tokens - done[0], f"{lm.name}: translations")
    translate_seconds = time.perf_counter() - start

    seconds = {"concept": round(concept_seconds, 3), "translate": round(translate_seconds, 3)}
    records = [ConceptRecord(lm.name, prompt_index, prompt, tokens.prompt_ids, n, described[:n], dict(tr), seconds)
               for n, tr in zip(config.n_values, translations)]
    return records, vectors


@dataclasses.dataclass
class ConceptRun:
    """Result of :func:`run_concept`.

    Attributes:
        records: every :class:`~vecgen.concept.records.ConceptRecord` (one per model, prompt and N).
        models: ``LoadedModel.describe()`` of each model, in order.
        notes: remarks (e.g. a method skipped for a model without chat template).
        vectors: ``{model: {prompt: (max N, d) tensor}}``.
        seconds: wall time per model.
    """

    records: list[ConceptRecord]
    models: list[dict[str, Any]]
    notes: list[str]
    vectors: dict[str, dict[str, Any]]
    seconds: dict[str, float]


def run_concept(
    models: Sequence[Any],
    config: ConceptConfig,
    *,
    load: Callable[[str], Any] | None = None,
    writer: RunWriter | None = None,
    progress: ProgressFn | None = None,
    on_prompt: PromptDoneFn | None = None,
    into: ConceptRun | None = None,
    processes: Any = None,
) -> ConceptRun:
    """Run the concept-token protocol on each model in turn (one model in memory at a time).

    Args:
        models: model specs (loaded with ``load``) or :class:`~vecgen.models.LoadedModel` objects.
        config: the run configuration.
        load: ``spec -> LoadedModel`` (default :func:`vecgen.models.load_model`).
        writer: a :class:`~vecgen.reports.RunWriter`; records are appended as each prompt completes.
        progress: called with ``(steps done, description)`` after each decode step.
        on_prompt: called with the records of each finished prompt (console output).
        into: an empty :class:`ConceptRun` to fill (so a caller still has the finished part when an
            error stops the run); a new one by default.
        processes: this process's share of a data-parallel run (:class:`~vecgen.parallel.Processes`): prompt
            ``i`` runs here when ``processes.owns(i)`` (each prompt's sampling is seeded on its own, so the
            split changes nothing), records go to ``processes.records_file``, and at the end the main
            process gathers every share into the run a single process makes (other processes keep theirs).

    Raises:
        ConfigError: no models; bad prompts.
        NoChatTemplateError: ``instruction`` requested for a model without a chat template.
        NonFiniteError: NaN/inf; the message names the model, the prompt and the step.
    """
    processes = processes or Processes()
    if not models:
        raise ConfigError("no models given")
    load = load or load_model
    run = into if into is not None else ConceptRun([], [], [], {}, {})
    for spec in models:
        lm = load(spec) if isinstance(spec, str) else spec
        start = time.perf_counter()
        methods, notes = methods_for(lm, config)
        run.notes += notes
        for note in notes:
            log.warning(note)
        allowed = None
        if config.english_only:
            allowed = english_token_mask(lm, policy=config.english_policy)
        run.models.append(lm.describe())
        run.vectors[lm.name] = {}
        prefix_cache: dict = {}
        for i, prompt in enumerate(config.prompts):
            if not processes.owns(i):
                continue
            try:
                records, vectors = run_prompt(lm, prompt, i, config, methods, allowed=allowed, progress=progress,
                                              prefix_cache=prefix_cache)
            except NonFiniteError as exc:
                kept = f"; the {len(run.records)} records already done are kept"
                if writer is not None:
                    kept += f" in {writer.path('records.jsonl')}"
                raise NonFiniteError(
                    f"{exc} for prompt {i + 1} {prompt!r} on model {lm.name!r}: run stopped{kept}",
                    step=exc.step, row=i,
                ) from None
            run.vectors[lm.name][prompt] = vectors
            for rec in records:
                if writer is not None:
                    writer.append_record(rec, processes.records_file)
                run.records.append(rec)
            if on_prompt is not None:
                on_prompt(records)
        run.seconds[lm.name] = round(time.perf_counter() - start, 2)
        if isinstance(spec, str):
            del lm
            gc.collect()
    if processes.count > 1:
        _gather(run, config, writer, processes)
    return run


def _gather(run: ConceptRun, config: ConceptConfig, writer: RunWriter | None, processes: Any) -> None:
    """Main process: fold every process's share into ``run`` in one-process order; rewrite ``records.jsonl``
    from it and remove the per-process files."""
    from accelerate.utils import gather_object  # lazy: only data-parallel runs need it

    shares = gather_object([(run.records, run.vectors, run.notes, run.seconds)])
    processes.wait()
    if not processes.is_main:
        return
    models = [m["name"] for m in run.models]
    run.records[:] = sorted((r for records, _, _, _ in shares for r in records),
                            key=lambda r: (models.index(r.model), r.prompt_index, r.n))
    order = {p: i for i, p in enumerate(config.prompts)}
    for name in models:
        merged = {p: v for _, vectors, _, _ in shares for p, v in vectors.get(name, {}).items()}
        run.vectors[name] = dict(sorted(merged.items(), key=lambda kv: order[kv[0]]))
        run.seconds[name] = max(seconds.get(name, 0.0) for _, _, _, seconds in shares)
    run.notes[:] = list(dict.fromkeys(n for _, _, notes, _ in shares for n in notes))
    if writer is not None:
        atomic_write_text(writer.path("records.jsonl"),
                          "".join(json.dumps(to_jsonable(r), ensure_ascii=False) + "\n" for r in run.records))
        for path in writer.dir.glob("records.rank*.jsonl"):
            path.unlink()


