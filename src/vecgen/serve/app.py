"""The HTTP side of ``vecgen serve``: an OpenAI-compatible FastAPI app over one :class:`~vecgen.serve.worker.EngineWorker`.

Routes (OpenAI's API reference; vLLM's server is the model for the extensions):

* ``GET /v1/models``: the one served model (``max_model_len`` = its context);
* ``POST /v1/chat/completions``: ``messages`` rendered with the model's chat template; ``thinking`` (the trace comes
  back as ``reasoning_content``, as vLLM's and DeepSeek's reasoning outputs do, streamed as its own deltas);
  ``concept_tokens``;
* ``POST /v1/completions``: plain continuation of ``prompt`` (texts or token ids); ``concept_tokens``;
* ``GET /health``: 200 once the model is loaded (no key needed).

``stream: true`` answers with server-sent events (``data: {chunk}`` lines, then ``data: [DONE]``); with
``stream_options.include_usage`` a last chunk carries the usage. Usage counts thinking steps in
``completion_tokens_details.reasoning_tokens`` (and in ``completion_tokens``).

Every request is checked in full before it is queued: body size (413), JSON, fields and ranges, the model name (404),
``max_tokens`` against ``--max-tokens`` and the prompt plus its budget against the model's context (400, naming the
field). The key, when set, is compared in constant time (401). A client that goes away cancels its rows: they leave
the batch at the next step.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import itertools
import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import CONCEPT_SAMPLING_DEFAULTS, SEED_MAX, SamplingConfig
from ..decoding.engine import Mode, check_context
from ..decoding.loop import GeneratePolicy
from ..decoding.mixing import MixingConfig
from ..errors import ConfigError, ContextLengthError, VecgenError
from ..io import MAX_JSON_DEPTH, check_text, json_too_deep_at
from ..models import LoadedModel, render_chat
from ..thinking.prompts import build_chat_prompt, prompt_style
from ..thinking.runner import think_policy
from ..thinking.settings import CONCEPT_FIELDS
from ..thinking.think import think_config
from .protocol import APIError, ChatRequest, CompletionRequest, _Common, parse_request, request_schemas
from .worker import Choice, EngineWorker, Job

log = logging.getLogger(__name__)

#: ``max_tokens`` of a text completion that gives none (OpenAI's default).
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
#: Prompts one text-completion request may hold.
MAX_PROMPTS = 64


@dataclass
class ServeSettings:
    """What ``vecgen serve`` serves and its limits.

    Attributes:
        model_id: the name clients send as ``model`` (and ``/v1/models`` lists).
        max_batch: rows decoded at once (continuous batching).
        api_key: the key clients must send as ``Authorization: Bearer KEY``; None = no key.
        max_tokens: the largest ``max_tokens`` (and thinking budget) a request may ask for; also the default of
            chat completions that give none (capped by the room left in the context).
        max_body_bytes: the largest request body.
        prefill_chunk: chunked prefill (:func:`~vecgen.decoding.engine.run`'s ``prefill_chunk``): a longer arriving
            prompt is prefilled this many tokens per step, between the live rows' steps; None: whole prompts.
    """

    model_id: str
    max_batch: int = 8
    api_key: str | None = None
    max_tokens: int = 1024
    max_body_bytes: int = 1_000_000
    prefill_chunk: int | None = 256


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class Server:
    """The app's state: the model, the engine thread, a tokenizer copy for requests (the engine thread decodes with
    the model's own, so the two never share a Rust tokenizer)."""

    def __init__(self, lm: LoadedModel, settings: ServeSettings):
        self.lm, self.settings = lm, settings
        self.worker = EngineWorker(lm, settings.max_batch, prefill_chunk=settings.prefill_chunk)
        self.request_tokenizer = copy.deepcopy(lm.tokenizer)
        self.tokenizer_lock = threading.Lock()
        self.stop_ids = frozenset(lm.stop_token_ids())
        self.job_ids = itertools.count(1)  # names each request's random streams; next() is atomic under the GIL

    # -- checks --------------------------------------------------------------------------------------------------
    def check_key(self, request: Request) -> None:
        key = self.settings.api_key
        if key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), key.encode()):
            raise APIError(401, "missing or wrong API key: send it as 'Authorization: Bearer KEY'", code="invalid_api_key")

    async def read_json(self, request: Request) -> Any:
        limit = self.settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise APIError(413, f"the request body is {int(length):,} bytes, more than the limit of {limit:,} "
                           "(vecgen serve --max-body-bytes)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise APIError(413, f"the request body is more than the limit of {limit:,} bytes "
                               "(vecgen serve --max-body-bytes)")
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(400, "the request body is not UTF-8 text") from None
        deep = json_too_deep_at(text)
        if deep is not None:
            raise APIError(400, f"the request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels "
                           f"(at character {deep})")
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise APIError(400, "the request body is not UTF-8 text") from None
        except ValueError as exc:
            raise APIError(400, f"malformed JSON in the request body: {exc}") from None

    def check_model(self, req: _Common) -> None:
        if req.model is not None and req.model not in (self.settings.model_id, self.lm.name):
            raise APIError(404, f"model {req.model!r} is not served here; this server serves "
                           f"{self.settings.model_id!r} (GET /v1/models)", param="model", code="model_not_found")

    def encode(self, text: str, param: str) -> list[int]:
        try:
            check_text(text, param)
        except ConfigError as exc:
            raise APIError(400, str(exc), param=param) from None
        with self.tokenizer_lock:
            return list(self.request_tokenizer(text, add_special_tokens=False)["input_ids"])

    def _budget(self, given: int | None, default: int, prompt_len: int) -> int:
        limit = self.settings.max_tokens
        if given is not None and given > limit:
            raise APIError(400, f"max_tokens={given}: more than this server's limit of {limit} (vecgen serve "
                           "--max-tokens)", param="max_tokens")
        if given is not None:
            return given
        room = (self.lm.context_length or 10**9) - prompt_len
        return max(1, min(default, room))

    def _sampling(self, req: _Common, max_tokens: int, seed: int) -> SamplingConfig:
        try:
            return SamplingConfig.create(defaults={"temperature": 1.0}, temperature=req.temperature, top_p=req.top_p,
                                         top_k=req.top_k, min_p=req.min_p, seed=seed, max_new_tokens=max_tokens)
        except ConfigError as exc:
            raise APIError(400, str(exc), param=_field_of(exc)) from None

    def _seeds(self, req: _Common, n: int) -> list[int]:
        if req.seed is not None and not 0 <= req.seed <= SEED_MAX - n:
            raise APIError(400, f"seed={req.seed}: allowed range is [0, {SEED_MAX - n}]", param="seed")
        base = req.seed if req.seed is not None else secrets.randbelow(2**31)
        return [base + j for j in range(n)]

    def _check_fits(self, ids: list[int], budget: int, param: str) -> None:
        if not ids:
            raise APIError(400, f"{param}: the prompt is empty; give some text", param=param)
        try:
            check_context(self.lm, [len(ids)], [budget], names=["the prompt"])
        except ContextLengthError:  # the library's message names command-line flags; name the request's fields
            raise APIError(400, f"{param}: the prompt needs {len(ids) + budget} positions ({len(ids)} prompt + up to "
                           f"{budget} generated), but the model's context is {self.lm.context_length}; shorten "
                           f"{param} or lower max_tokens (and thinking.max_think_tokens)", param=param,
                           code="context_length_exceeded") from None

    # -- rows ----------------------------------------------------------------------------------------------------
    def _concept_choices(self, req: _Common, ids: list[int], seeds: list[int], job_id: int, param: str) -> list[Choice]:
        c = req.concept_tokens
        assert c is not None
        try:
            sampling = SamplingConfig.create(defaults=CONCEPT_SAMPLING_DEFAULTS, temperature=c.temperature,
                                             top_k=c.top_k, top_p=c.top_p, min_p=c.min_p, seed=0)
            mixing = MixingConfig.create(rule=c.rule, max_topk=c.max_topk, noise=c.noise, gumbel_tau=c.gumbel_tau,
                                         dirichlet_alpha=c.dirichlet_alpha, beta=c.beta, hidden_scale=c.hidden_scale)
        except ConfigError as exc:
            name = _field_of(exc)
            raise APIError(400, f"concept_tokens: {exc}", param=f"concept_tokens.{name}" if name else "concept_tokens") from None
        if c.n > self.settings.max_tokens:
            raise APIError(400, f"concept_tokens.n={c.n}: more than this server's limit of {self.settings.max_tokens}",
                           param="concept_tokens.n")
        self._check_fits(ids, c.n - 1, param)
        base = c.seed if c.seed is not None else req.seed if req.seed is not None else 0  # Model.concept's: 0
        if not 0 <= base <= SEED_MAX - len(seeds):
            raise APIError(400, f"concept_tokens.seed={base}: allowed range is [0, {SEED_MAX - len(seeds)}]",
                           param="concept_tokens.seed")
        out = []
        for j in range(len(seeds)):
            s = sampling.model_copy(update={"seed": base + j})
            mode = Mode("generate", s, mixing, stream=f"r{job_id}c{j}")
            out.append(Choice(j, ids, GeneratePolicy(mode, c.n, frozenset()), "concept", record_top_k=c.record_top_k))
        return out

    def _text_choices(self, req: _Common, ids: list[int], seeds: list[int], job_id: int, param: str,
                      max_tokens: int) -> list[Choice]:
        self._check_fits(ids, max_tokens - 1, param)
        out = []
        for j, seed in enumerate(seeds):
            mode = Mode("generate", self._sampling(req, max_tokens, seed), MixingConfig(rule="onehot"),
                        stream=f"r{job_id}c{j}")
            out.append(Choice(j, ids, GeneratePolicy(mode, max_tokens, self.stop_ids), "text", stops=req.stops()))
        return out

    def chat_choices(self, req: ChatRequest) -> list[Choice]:
        """The rows of a chat request (runs in a worker thread: it tokenizes)."""
        self.check_model(req)
        req.check_unsupported()
        if req.thinking is not None and req.concept_tokens is not None:
            raise APIError(400, "give thinking or concept_tokens, not both", param="thinking")
        messages = [m.as_dict() for m in req.messages]
        seeds = self._seeds(req, req.n)
        job_id = next(self.job_ids)
        thinking = req.thinking
        if thinking is None or thinking.method == "none":
            if not self.lm.has_chat_template:
                raise APIError(400, f"{self.settings.model_id} has no chat template; use /v1/completions",
                               param="messages")
            try:
                text = render_chat(self.lm.tokenizer, messages)
            except VecgenError as exc:
                raise APIError(400, str(exc), param="messages") from None
            ids = self.encode(text, "messages")
            if req.concept_tokens is not None:
                return self._concept_choices(req, ids, seeds, job_id, "messages")
            max_tokens = self._budget(req.budget(), self.settings.max_tokens, len(ids))
            return self._text_choices(req, ids, seeds, job_id, "messages", max_tokens)
        return self._think_choices(req, messages, seeds, job_id)

    def _think_choices(self, req: ChatRequest, messages: list[dict[str, str]], seeds: list[int],
                       job_id: int) -> list[Choice]:
        t = req.thinking
        assert t is not None
        given = req.budget()
        if given is not None:
            self._budget(given, 0, 0)
        try:
            settings = t.settings()
            for name in ("max_answer_tokens", "stop_sequences", "answer_sampling"):
                if name in settings:
                    raise ConfigError(f"thinking.{name}: set it with the request's own fields (max_tokens, stop, "
                                      "temperature ...)", param=name)
            given_mixing, given_concept = t.mixing, t.think_sampling
            mixing = (_section("mixing", lambda: MixingConfig.create(**given_mixing))
                      if given_mixing is not None else None)
            if given_concept is not None:
                _section("think_sampling", lambda: _concept_sampling(given_concept))
            sampling = self._sampling(req, 1, seeds[0])  # the answer's (and cot's thinking) sampler
            cfg = think_config(t.method, sampling=sampling, mixing=mixing, concept=t.think_sampling,
                               max_answer_tokens=given, stop_sequences=req.stops() or None, **settings)
            if cfg.max_think_tokens > self.settings.max_tokens:
                raise APIError(400, f"thinking.max_think_tokens={cfg.max_think_tokens}: more than this server's limit "
                               f"of {self.settings.max_tokens} (vecgen serve --max-tokens)",
                               param="thinking.max_think_tokens")
            style = prompt_style(self.lm, t.marker)
            end = style.end_marker(self.lm.tokenizer)
            text = build_chat_prompt(self.lm, messages, style, direct=not cfg.spec.thinks,
                                     answer_type=t.answer_type)
        except ConfigError as exc:
            field = _field_of(exc)
            param = f"thinking.{field}" if field else "thinking"
            raise APIError(400, f"thinking: {exc}", param=param) from None
        ids = self.encode(text, "messages")
        policies = [think_policy(self.lm, cfg, end, seed=seed, stream_id=f"r{job_id}c{j}")
                    for j, seed in enumerate(seeds)]
        self._check_fits(ids, policies[0].max_inputs(), "messages")
        return [Choice(j, ids, p, "think", stops=req.stops()) for j, p in enumerate(policies)]

    def completion_choices(self, req: CompletionRequest) -> list[list[Choice]]:
        """The rows of a text-completion request, per prompt (runs in a worker thread)."""
        self.check_model(req)
        req.check_unsupported()
        if req.echo:
            raise APIError(400, "echo is not supported by vecgen serve; leave it out", param="echo")
        prompts = req.prompts()
        if not prompts:
            raise APIError(400, "prompt: no prompt given", param="prompt")
        if len(prompts) > MAX_PROMPTS:
            raise APIError(400, f"prompt: {len(prompts)} prompts, at most {MAX_PROMPTS} per request; split them",
                           param="prompt")
        out = []
        n_real = self.lm.n_real_vocab
        for k, p in enumerate(prompts):
            if isinstance(p, str):
                ids = self.encode(p, "prompt")
            else:
                bad = [t for t in p if not 0 <= t < n_real]
                if bad:
                    raise APIError(400, f"prompt: token id {bad[0]} is outside the vocabulary [0, {n_real})",
                                   param="prompt")
                ids = list(p)
            seeds = self._seeds(req, req.n)
            job_id = next(self.job_ids)
            if req.concept_tokens is not None:
                choices = self._concept_choices(req, ids, seeds, job_id, "prompt")
            else:
                max_tokens = self._budget(req.max_tokens, COMPLETIONS_DEFAULT_MAX_TOKENS, len(ids))
                choices = self._text_choices(req, ids, seeds, job_id, "prompt", max_tokens)
            for c in choices:
                c.index = k * req.n + c.index
            out.append(choices)
        return out


def _body(schema: str) -> dict[str, Any]:
    """The ``requestBody`` of a route in the OpenAPI document (the route reads its body itself)."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``GET /openapi.json``: FastAPI's, with the request bodies' schemas
    (:func:`~vecgen.serve.protocol.request_schemas`) and the OpenAI error object."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        doc = get_openapi(title="vecgen", version=_version(), routes=app.routes,
                          description="OpenAI-compatible chat and text completions with soft thinking and concept "
                                      "tokens (vecgen serve)")
        doc.setdefault("components", {}).setdefault("schemas", {}).update(request_schemas())
        app.openapi_schema = doc
    return app.openapi_schema


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vecgen")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without install
        return "0"


def _concept_sampling(values: dict[str, Any]) -> SamplingConfig:
    unknown = sorted(set(values) - set(CONCEPT_FIELDS))
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}; choose from: {', '.join(CONCEPT_FIELDS)}", param=unknown[0])
    return SamplingConfig.create(**values)


def _section(name: str, build: Callable[[], Any]) -> Any:
    """``build()``, its errors as a 400 naming ``thinking.<name>.<field>`` (the nested object's own path)."""
    try:
        return build()
    except ConfigError as exc:
        field = _field_of(exc)
        path = f"thinking.{name}.{field}" if field else f"thinking.{name}"
        raise APIError(400, f"{path}: {exc}", param=path) from None


def _field_of(exc: VecgenError) -> str | None:
    """The field an error names: its first ``param``, else the first ``field=`` of its message
    (``invalid sampling config: temperature=3.0: ...`` → ``temperature``)."""
    if exc.params:
        return exc.params[0]
    found = re.search(r"(?:^|[:;] )([A-Za-z_][\w.]*)=", str(exc))
    return found.group(1) if found else None


def _usage(choices: list[Choice], prompt_tokens: int) -> dict[str, Any]:
    completion = sum(c.completion_tokens for c in choices)
    reasoning = sum(c.reasoning_tokens for c in choices)
    usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                             "total_tokens": prompt_tokens + completion}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def _thinking_info(c: Choice) -> dict[str, Any] | None:
    if c.output is None:
        return None
    o = c.output
    return {"stop_reason": o.stop_reason, "think_tokens": o.think_tokens, "latent_steps": o.latent_steps,
            "forced": o.forced}


def _failure(choices: list[Choice]) -> APIError | None:
    for c in choices:
        if c.error is not None:
            if isinstance(c.error, APIError):
                return c.error
            return APIError(500, f"generation failed: {type(c.error).__name__}: {c.error}")
    return None


def create_app(lm: LoadedModel, settings: ServeSettings) -> FastAPI:
    """The FastAPI app serving ``lm`` (the engine thread starts and stops with the app's lifespan)."""
    server = Server(lm, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.worker.start()
        try:
            yield
        finally:
            await asyncio.to_thread(server.worker.close)

    app = FastAPI(title="vecgen", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.server = server
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # the bodies are parsed by hand: typed here

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:  # 404, 405 and the like
        if exc.status_code == 404:
            message = (f"no route {request.url.path}; vecgen serve answers POST /v1/chat/completions, POST "
                       "/v1/completions, GET /v1/models and GET /health")
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(APIError(exc.status_code, message))

    @app.exception_handler(Exception)
    async def _any_error(request: Request, exc: Exception) -> JSONResponse:  # a bug: logged, one request fails
        log.exception("request failed")
        return error_response(APIError(500, f"internal error: {type(exc).__name__}: {exc}"))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": settings.model_id, "busy_rows": server.worker.busy}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        server.check_key(request)
        return {"object": "list", "data": [{"id": settings.model_id, "object": "model", "created": 0,
                                            "owned_by": "vecgen", "max_model_len": lm.context_length}]}

    @app.post("/v1/chat/completions", response_model=None, openapi_extra=_body("ChatRequest"))
    async def chat(request: Request) -> Any:
        server.check_key(request)
        req = parse_request(ChatRequest, await server.read_json(request))
        choices = await asyncio.to_thread(server.chat_choices, req)
        job = Job(choices, asyncio.get_running_loop())
        server.worker.submit(job)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_chat_stream(job, rid, settings.model_id, include_usage), media_type="text/event-stream")
        await _wait(job, request)
        failed = _failure(choices)
        if failed is not None:
            return error_response(failed)
        body_choices = []
        for c in choices:
            message: dict[str, Any] = {"role": "assistant", "content": c.texts["content"]}
            if c.kind == "think":
                message["reasoning_content"] = c.texts["reasoning_content"]
            item: dict[str, Any] = {"index": c.index, "message": message, "finish_reason": c.finish_reason,
                                    "logprobs": None}
            if c.concept_tokens is not None:
                item["concept_tokens"] = c.concept_tokens
            if c.output is not None:
                item["thinking"] = _thinking_info(c)
            body_choices.append(item)
        return {"id": rid, "object": "chat.completion", "created": job.created, "model": settings.model_id,
                "choices": body_choices, "usage": _usage(choices, len(choices[0].prompt_ids))}

    @app.post("/v1/completions", response_model=None, openapi_extra=_body("CompletionRequest"))
    async def completions(request: Request) -> Any:
        server.check_key(request)
        req = parse_request(CompletionRequest, await server.read_json(request))
        groups = await asyncio.to_thread(server.completion_choices, req)
        choices = [c for g in groups for c in g]
        job = Job(choices, asyncio.get_running_loop())
        server.worker.submit(job)
        rid = f"cmpl-{uuid.uuid4().hex}"
        prompt_tokens = sum(len(g[0].prompt_ids) for g in groups)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_completion_stream(job, rid, settings.model_id, include_usage, prompt_tokens),
                                     media_type="text/event-stream")
        await _wait(job, request)
        failed = _failure(choices)
        if failed is not None:
            return error_response(failed)
        body_choices = []
        for c in sorted(choices, key=lambda c: c.index):
            item: dict[str, Any] = {"index": c.index, "text": c.texts["content"], "finish_reason": c.finish_reason,
                                    "logprobs": None}
            if c.concept_tokens is not None:
                item["concept_tokens"] = c.concept_tokens
            body_choices.append(item)
        return {"id": rid, "object": "text_completion", "created": job.created, "model": settings.model_id,
                "choices": body_choices, "usage": _usage(choices, prompt_tokens)}

    return app


#: Seconds between two checks of a non-streamed request's connection (whatever events its rows emit meanwhile).
DISCONNECT_POLL_S = 0.2


async def _wait(job: Job, request: Request) -> None:
    """Until every choice has ended; a client that disconnects cancels the job (its rows leave at the next step).
    The connection is checked every :data:`DISCONNECT_POLL_S` seconds, also while the rows emit an event per step."""
    left = len(job.choices)
    loop = asyncio.get_running_loop()
    check_at = loop.time() + DISCONNECT_POLL_S
    try:
        while left:
            try:
                event = await asyncio.wait_for(job.events.get(), timeout=max(0.01, check_at - loop.time()))
                if event[0] == "end":
                    left -= 1
            except asyncio.TimeoutError:
                pass
            if left and loop.time() >= check_at:
                if await request.is_disconnected():
                    job.cancelled = True
                    return
                check_at = loop.time() + DISCONNECT_POLL_S
    except asyncio.CancelledError:
        job.cancelled = True
        raise


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(job: Job) -> AsyncIterator[tuple[Any, ...]]:
    """The job's events until every choice has ended; the job is cancelled if the consumer stops early."""
    left = len(job.choices)
    try:
        while left:
            event = await job.events.get()
            if event[0] == "end":
                left -= 1
            yield event
    finally:
        if left:
            job.cancelled = True


async def _stream(job: Job, rid: str, model: str, kind: str, include_usage: bool, prompt_tokens: int,
                  delta: Callable[[Choice, str, str], dict[str, Any] | None], finish: Callable[[Choice], dict[str, Any]],
                  head: Sequence[dict[str, Any]] = ()) -> AsyncIterator[str]:
    """The server-sent events of one streamed job (both endpoints): ``head`` entries first, then per event the
    choice entry ``delta(choice, channel, text)`` makes (None: nothing sent) or ``finish(choice)``; a choice that
    failed sends its error object and cancels the job; a completed stream ends with usage when asked, then
    ``[DONE]``. ``kind`` is the chunks' ``object``."""
    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"id": rid, "object": kind, "created": job.created, "model": model, "choices": choices}
        if include_usage:
            body["usage"] = usage
        return _sse(body)

    for entry in head:
        yield chunk([entry])
    async for event in _events(job):
        if event[0] == "delta":
            _, c, channel, text = event
            step = delta(c, channel, text)
            if step is not None:
                yield chunk([step])
        else:
            c = event[1]
            if c.error is not None:
                failed = _failure([c])
                assert failed is not None
                yield _sse(failed.body())
                job.cancelled = True
                break
            yield chunk([finish(c)])
    else:
        if include_usage:
            yield chunk([], _usage(job.choices, prompt_tokens))
    yield "data: [DONE]\n\n"


def _chat_stream(job: Job, rid: str, model: str, include_usage: bool) -> AsyncIterator[str]:
    head = [{"index": c.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
            for c in job.choices]
    return _stream(job, rid, model, "chat.completion.chunk", include_usage, len(job.choices[0].prompt_ids),
                   lambda c, channel, text: {"index": c.index, "delta": {channel: text}, "logprobs": None,
                                             "finish_reason": None},
                   lambda c: {"index": c.index, "delta": {}, "logprobs": None, "finish_reason": c.finish_reason}, head)


def _completion_stream(job: Job, rid: str, model: str, include_usage: bool, prompt_tokens: int) -> AsyncIterator[str]:
    return _stream(job, rid, model, "text_completion", include_usage, prompt_tokens,
                   lambda c, channel, text: ({"index": c.index, "text": text, "logprobs": None, "finish_reason": None}
                                             if channel == "content" else None),
                   lambda c: {"index": c.index, "text": "", "logprobs": None, "finish_reason": c.finish_reason})


__all__ = ["Server", "ServeSettings", "create_app"]
