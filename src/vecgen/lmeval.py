"""vecgen as an lm-evaluation-harness model (``pip install 'vecgen[lmeval]'``).

Any lm-eval task then runs with soft thinking::

    vecgen-lm-eval --model vecgen --model_args model=default,method=soft,max_think_tokens=256 \\
        --tasks gsm8k --limit 50

``vecgen-lm-eval`` is lm-eval's own command line (``lm_eval``, same arguments) with this module imported, so
the name ``vecgen`` is registered: lm-eval 0.4 discovers models only by import (it has no plugin entry
points). From Python, ``import vecgen.lmeval`` and call ``lm_eval.simple_evaluate(model="vecgen", ...)``.

``--model_args`` (``key=value`` pairs; every key is checked before the model loads):

``model`` (default ``default``), ``backend`` (``auto``), ``device`` (``auto``), ``dtype`` (``auto``), ``threads``,
``n_ctx``, ``tensor_parallel_size``
    As ``vecgen think``'s options (``backend=vllm,tensor_parallel_size=2`` runs the answers on vLLM; its
    log-likelihoods need ``backend=transformers``).
``method``
    Any registered thinking method: ``direct`` (default: plain greedy or sampled generation from the task's
    context), ``cot`` (discrete chain-of-thought), ``soft`` (concept tokens), ``hidden`` (COCONUT-style hidden-state
    feedback), ``switch``, ``gated``, ... Each method's own settings are arguments too, under their names
    (:func:`vecgen.thinking.methods.setting_fields`).
``max_think_tokens``, ``cold_stop_tau``, ``cold_stop_steps``, ``rule``, ``max_topk``, ``noise``, ``gumbel_tau``,
``dirichlet_alpha``, ``hidden_scale``, ``concept_temperature``, ``concept_top_p``, ``concept_top_k``,
``concept_min_p``, ``temperature`` (thinking of ``cot``), ``seed``, ``marker``, ``cue``, ``batch_size``
    As in ``vecgen think``. ``cue`` is the text put after the task's context to open the thinking (default
    :data:`THINK_CUE` for text markers; ``<think>\\n`` for thinking-token models).

Requests:

``generate_until``
    The task's context (as lm-eval renders it), then for ``cot`` / ``soft`` / ``hidden`` the cue and a thinking
    phase that ends at the marker (or is forced at the budget / by Cold Stop), then the answer phase, which
    stops at any of the request's ``until`` strings (the returned text is cut before it), at ``max_gen_toks``
    or at the end of the turn; it is greedy unless ``do_sample`` is set, then sampled with the request's
    ``temperature`` / ``top_p`` / ``top_k`` / ``min_p``. The text returned to lm-eval is the answer phase only: the thinking trace is not
    part of the generation it scores. Every method is one :class:`~vecgen.thinking.ThinkPolicy` per request
    on vecgen's decode engine, batched.
``loglikelihood`` / ``loglikelihood_rolling``
    Plain forward passes of ``context + continuation`` token ids (lm-eval's convention: the two are tokenized
    separately; an empty context is the end-of-text token), batched and left-padded, summing the
    continuation's log-probabilities (nats) and checking that every continuation token is the argmax. Rolling
    log-likelihoods score the whole text in windows of the model's context length (lm-eval's
    ``get_rolling_token_windows``). Needs the transformers backend.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import torch
from tqdm import tqdm  # type: ignore[import-untyped]  # lm-eval's own progress bars

try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
    from lm_eval.utils import (
        get_rolling_token_windows,
        make_disjoint_window,
        simple_parse_args_string,
    )
except ImportError as exc:  # pragma: no cover - the optional extra is missing
    raise ImportError("vecgen.lmeval needs lm-evaluation-harness: pip install 'vecgen[lmeval]'") from exc

from .api import Model, load
from .config import SamplingConfig
from .console import print_error
from .decoding.mixing import MixingConfig
from .errors import ConfigError, VecgenError
from .evaluation import chunk_size
from .scoring import target_logits
from .thinking.prompts import prompt_style
from .thinking.runner import ThinkConfig, cut_at_stop, method_configs, run_thinking
from .thinking.methods import method_names, setting_fields
from .thinking.settings import parse_methods

#: Default text that opens the thinking of ``cot`` / ``soft`` / ``hidden`` after a task's context (text markers).
THINK_CUE = ' Let\'s think step by step, and then write the final answer on a line that starts with "{marker}".\n'

log = logging.getLogger(__name__)

#: lm-eval ``gen_kwargs`` that :meth:`VecgenLM.generate_until` reads.
_GEN_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature", "top_p", "top_k", "min_p"}

_INT = ("batch_size", "max_think_tokens", "cold_stop_steps", "max_topk", "concept_top_k", "seed", "max_batch_size",
        "threads", "n_ctx", "tensor_parallel_size")
_FLOAT = ("cold_stop_tau", "gumbel_tau", "dirichlet_alpha", "hidden_scale", "concept_temperature", "concept_top_p",
          "concept_min_p", "temperature")
_STR = ("model", "method", "backend", "device", "dtype", "rule", "noise", "marker", "cue")


def _coerce(key: str, value: Any) -> Any:
    if key in setting_fields():  # a thinking method's own setting: its settings model validates it
        return value
    if value is None or key in _STR:
        return value if value is None else str(value)
    try:
        if key in _INT:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        kind = "an integer" if key in _INT else "a number"
        raise ConfigError(f"--model_args {key}={value!r}: expected {kind}") from None


@register_model("vecgen")
class VecgenLM(LM):
    """lm-eval model backed by a vecgen :class:`~vecgen.models.LoadedModel` (module docstring: arguments).

    Raises:
        ConfigError: an unknown ``--model_args`` key or a bad value (before the model loads).
    """

    def __init__(self, model: str = "default", method: str = "direct", batch_size: Any = 8, **kwargs: Any):
        super().__init__()
        known = set(_INT) | set(_FLOAT) | set(_STR) | set(setting_fields())
        kwargs.pop("device_map", None)
        kwargs.pop("max_length", None)
        unknown = sorted(k for k in kwargs if k not in known)
        if unknown:
            raise ConfigError(f"--model_args: unknown key {unknown[0]!r} for the vecgen model; choose from: "
                              f"{', '.join(sorted(known))}")
        opts = {k: _coerce(k, v) for k, v in kwargs.items()}
        if str(batch_size).startswith("auto"):
            batch_size = 8
        self.batch_size = _coerce("batch_size", batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"--model_args batch_size={self.batch_size}: allowed range is >= 1")

        if "," in str(method):
            raise ConfigError(f"--model_args method={method!r}: one method ({', '.join(method_names())})")
        self.method: str = parse_methods(str(method), param="--model_args method")[0]
        self.config = self._think_config(opts, {k: v for k, v in opts.items() if k in setting_fields()})

        device = opts.get("device") or "auto"
        where = dict(device=device, dtype=opts.get("dtype") or "auto", backend=opts.get("backend") or "auto",
                     **{k: opts[k] for k in ("threads", "n_ctx", "tensor_parallel_size") if opts.get(k) is not None})
        self.marker_text, self.cue = opts.get("marker"), opts.get("cue")
        if self.marker_text is not None and not self.marker_text.strip():
            raise ConfigError("--model_args marker is empty; give the text that ends thinking, e.g. marker=Answer:")
        self.lm: Model = load(model, show_progress=False, **where)  # load checks every option before it loads

        self.style = prompt_style(self.lm, self.marker_text)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None) -> "VecgenLM":
        """lm-eval's constructor hook: ``--model_args`` win over the harness's own ``--batch_size`` / ``--device``."""
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in arg_dict}
        return cls(**arg_dict, **extra)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict[str, Any] | None = None) -> "VecgenLM":
        """``--model_args key=value,...`` (lm-eval's parser), then :meth:`create_from_arg_obj`."""
        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    def _think_config(self, opts: dict[str, Any], own: dict[str, Any]) -> ThinkConfig:
        discrete = SamplingConfig.create(defaults={"temperature": 0.0}, temperature=opts.get("temperature"),
                                         seed=opts.get("seed"))
        mixing = MixingConfig.create(rule=opts.get("rule") or "soft", max_topk=opts.get("max_topk"),
                                     noise=opts.get("noise"), gumbel_tau=opts.get("gumbel_tau"),
                                     dirichlet_alpha=opts.get("dirichlet_alpha"), hidden_scale=opts.get("hidden_scale"))
        concept = {k: opts.get(f"concept_{k}") for k in ("temperature", "top_p", "top_k", "min_p")}
        return method_configs([self.method], discrete=discrete, mixing=mixing, concept=concept,
                                answer=SamplingConfig(), max_think_tokens=opts.get("max_think_tokens"),
                                cold_stop_tau=opts.get("cold_stop_tau"), cold_stop_steps=opts.get("cold_stop_steps"),
                                answer_stops_at_newline=False, **own)[self.method]

    # ------------------------------------------------------------------ generation

    def _prompt(self, context: str) -> list[int]:
        if self.method == "direct":
            return self.lm.encode(context)
        if self.style.think_token:
            cue = self.cue if self.cue is not None else self.style.open_think
        else:
            cue = self.cue if self.cue is not None else THINK_CUE.format(marker=self.style.marker)
        return self.lm.encode(context + cue)

    def _answer_sampling(self, gen: dict[str, Any]) -> SamplingConfig:
        """The answer's sampler from lm-eval's ``gen_kwargs``: greedy unless ``do_sample`` is true, then
        ``temperature`` (default 1.0, as in transformers), ``top_p``, ``top_k``, ``min_p``; seeded like thinking."""
        seed = self.config.think_sampling.seed
        if not gen.get("do_sample", False):
            return SamplingConfig(seed=seed)
        values = {k: gen.get(k) for k in ("top_p", "top_k", "min_p")}
        temperature = gen.get("temperature")
        return SamplingConfig.create(temperature=1.0 if temperature is None else temperature, seed=seed,
                                     **values)

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        """One answer text per request (``args = (context, gen_kwargs)``); the thinking trace is not returned.

        ``gen_kwargs`` read: ``until`` (stop strings, cut from the answer), ``max_gen_toks`` (answer budget,
        default 256), and with ``do_sample`` true ``temperature``, ``top_p``, ``top_k``, ``min_p`` (the answer's
        sampler; greedy otherwise). Other keys are ignored with one warning naming them.

        Raises:
            ConfigError: a sampling value out of range (field, value, range).
        """
        marker = self.style.end_marker(self.lm.tokenizer)
        groups: dict[tuple[tuple[str, ...], int, Any], list[int]] = {}
        ignored: set[str] = set()
        for i, req in enumerate(requests):
            context, gen = req.args
            until = gen.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            ignored |= set(gen) - _GEN_KWARGS
            groups.setdefault((until, int(gen.get("max_gen_toks", 256)), self._answer_sampling(gen)), []).append(i)
        if ignored:
            log.warning("vecgen ignores these lm-eval generation kwargs: %s", ", ".join(sorted(ignored)))
        out: list[str] = [""] * len(requests)
        bar = tqdm(total=len(requests), disable=disable_tqdm, desc=f"vecgen {self.method}")
        for (until, max_toks, answer), idx in groups.items():
            cfg = self.config.model_copy(update={"stop_sequences": until, "max_answer_tokens": max(1, max_toks),
                                                 "answer_sampling": answer})
            size = chunk_size(self.batch_size, continuous=True)  # continuously batched through batch_size rows
            for start in range(0, len(idx), size):
                chunk = idx[start : start + size]
                outs = run_thinking(self.lm, [self._prompt(requests[i].args[0]) for i in chunk], cfg, marker,
                                    max_batch=self.batch_size)
                for i, o in zip(chunk, outs):
                    text, _ = cut_at_stop(o.answer, until)
                    out[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
                bar.update(len(chunk))
        bar.close()
        return out

    # ------------------------------------------------------------------ log-likelihoods

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # lm-eval's convention: trailing spaces of the context move to the continuation
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        ctx = self.lm.encode(context) if context else [self._prefix_token()]
        return ctx, self.lm.encode(continuation)

    def _prefix_token(self) -> int:
        tok = self.lm.tokenizer
        for tid in (tok.bos_token_id, tok.eos_token_id):
            if tid is not None:
                return int(tid)
        raise ConfigError("the model's tokenizer has no bos or eos token to stand for an empty context")

    def score(self, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]) -> list[tuple[float, bool]]:
        """``(Σ log p(continuation | context) in nats, every continuation token greedy)`` per pair, batched.

        Rows longer than the model's context keep their last ``max_length`` tokens (continuation first).

        Raises:
            ConfigError: an empty continuation.
            UnsupportedError: a backend without teacher-forced logits (llama.cpp: use backend=transformers).
        """
        limit = self.max_length
        results: list[tuple[float, bool]] = []
        for start in range(0, len(contexts), self.batch_size):
            prompts, targets = [], []
            for ctx, cont in zip(contexts[start : start + self.batch_size], continuations[start : start + self.batch_size]):
                if not cont:
                    raise ConfigError("loglikelihood of an empty continuation")
                seq = (list(ctx) + list(cont))[-(limit + 1):]
                target = list(cont)[-(len(seq) - 1):] if len(cont) >= len(seq) else list(cont)
                prompts.append([seq[: len(seq) - len(target)]])
                targets.append(target)
            K = max(len(t) for t in targets)
            with torch.no_grad():
                logits = target_logits(self.lm, prompts, targets)[..., : self.lm.n_real_vocab]  # (B, K, V)
            logp = torch.log_softmax(logits, dim=-1)
            for b, t in enumerate(targets):
                lp = logp[b, K - len(t):]  # (len(t), V): each position predicts the next token
                ids = torch.tensor(t, device=lp.device)
                total = float(lp.gather(-1, ids[:, None]).sum())
                greedy = bool((lp.argmax(-1) == ids).all())
                results.append((total, greedy))
        return results

    @property
    def max_length(self) -> int:
        """The model's context length in tokens (``max_position_embeddings``, or 2048 when unknown)."""
        cfg = getattr(getattr(self.lm, "model", None), "config", None)
        return int(getattr(cfg, "max_position_embeddings", None) or 2048)

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``(log-likelihood in nats, is greedy)`` of each request's ``(context, continuation)``."""
        pairs = [self._encode_pair(*req.args) for req in requests]
        out = self.score([c for c, _ in pairs], [t for _, t in pairs])
        for req, res in zip(requests, out):
            self.cache_hook.add_partial("loglikelihood", req.args, res)
        return out

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood in nats of each request's whole text (``args = (text,)``), in context-length windows."""
        out = []
        for req in requests:
            ids = self.lm.encode(req.args[0])
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=ids, prefix_token=self._prefix_token(), max_seq_len=self.max_length, context_len=1)]
            scores = self.score([c for c, _ in windows], [t for _, t in windows])
            total = sum(s for s, _ in scores)
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
            out.append(total)
        return out


def default_device_args(argv: list[str]) -> list[str]:
    """``argv`` with ``--device auto`` added when it runs the ``vecgen`` model and names no ``--device``.

    lm-eval's own ``--device`` default is ``cuda:0`` (for its Hugging Face model), which it hands to every model;
    vecgen's default is ``auto`` (CUDA when present, else the CPU), as in ``--model_args device=...``."""
    def value(flag: str) -> str | None:
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        return None

    if value("--model") != "vecgen" or any(a == "--device" or a.startswith("--device=") for a in argv):
        return list(argv)
    return [*argv, "--device", "auto"]


def main() -> None:
    """``vecgen-lm-eval``: lm-eval's command line (``lm_eval``'s arguments) with the ``vecgen`` model registered.

    Exit status: lm-eval's; 2 with one line on stderr for vecgen's bad input (:class:`~vecgen.errors.VecgenError`,
    e.g. an unknown ``--model_args`` key), before any model loads."""
    from lm_eval.__main__ import (
        cli_evaluate,  # lm-eval's own command line, imported only to run it
    )

    sys.argv[1:] = default_device_args(sys.argv[1:])
    try:
        cli_evaluate()
    except VecgenError as exc:
        print_error(str(exc))
        sys.exit(2)


__all__ = ["THINK_CUE", "VecgenLM", "main"]
