"""The request bodies ``vecgen serve`` accepts, and its error objects (OpenAI's API reference shapes).

Fields are OpenAI's (``model``, ``messages`` / ``prompt``, ``max_tokens``, ``temperature``, ``top_p``, ``stop``,
``seed``, ``stream``, ``stream_options``, ``n``, ``user``), vLLM's sampling extensions (``top_k``, ``min_p``) and
vecgen's own, which clients send through ``extra_body``:

``thinking``
    ``{"method": "soft", "max_think_tokens": 320, ...}``: think with any registered ``vecgen think`` method
    (``direct``, ``cot``, ``soft``, ``hidden``, ``switch``, ``gated``, ...; ``none`` = plain chat) and then answer.
    Other keys are :class:`~vecgen.thinking.runner.ThinkConfig` fields under their names (``max_think_tokens``,
    ``cold_stop_tau``, ``cold_stop_steps``, ``answer_stops_at_newline``), the method's own settings
    (:mod:`vecgen.thinking.methods`; the OpenAPI document lists them), ``mixing`` (a :class:`~vecgen.decoding.mixing.MixingConfig`: ``rule``, ``max_topk``,
    ``noise``, ``gumbel_tau``, ``dirichlet_alpha``, ``beta``, ``hidden_scale``, ``anti_collapse``), ``think_sampling``
    (overrides of Soft Thinking's concept-token sampling: ``temperature``, ``top_p``, ``top_k``, ``min_p``),
    ``answer_type`` (what the prompt asks for: ``numeric`` as :meth:`vecgen.Model.think`, ``choice``, ``yesno``,
    ``exact``) and ``marker`` (the end-of-thinking text marker). The top-level sampling fields are the discrete
    sampler (the answer, and ``cot``'s thinking); ``max_tokens`` is the answer budget.
``concept_tokens``
    ``{"n": 4, "rule": "soft", ...}``: ``n`` concept tokens after the prompt instead of text, with
    :meth:`vecgen.Model.concept`'s parameters under its names (``rule``, ``temperature``, ``top_k``, ``top_p``,
    ``min_p``, ``max_topk``, ``noise``, ``gumbel_tau``, ``dirichlet_alpha``, ``beta``, ``hidden_scale``, ``seed``,
    ``record_top_k``); each comes back with its largest weights and entropy.

Every body is validated in full before anything is queued; a bad one is answered 400 with
``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import is_type_error

#: Choices per request (``n``) at most.
MAX_CHOICES = 16
#: Stop strings per request at most (OpenAI allows 4; lm-eval sends up to 4 for chat, more for completions).
MAX_STOPS = 16


class APIError(Exception):
    """An HTTP error answered with an OpenAI-style error object.

    Attributes:
        status: HTTP status (400, 401, 404, 413, 500, 503). kind: the error ``type``. param: the request field, or None.
    """

    def __init__(self, status: int, message: str, *, param: str | None = None, kind: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
                             413: "invalid_request_error", 503: "service_unavailable"}.get(status, "server_error")

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TextPart(_Strict):
    """One part of a message's content list (only text parts are accepted)."""

    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    """One message: ``role`` and ``content`` (a string or a list of text parts). ``name`` is accepted and unused."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)

    def as_dict(self) -> dict[str, str]:
        """``{"role", "content"}`` for the chat template (``developer`` is rendered as ``system``)."""
        return {"role": "system" if self.role == "developer" else self.role, "content": self.text()}


class StreamOptions(_Strict):
    include_usage: bool = False


class ThinkingRequest(BaseModel):
    """``thinking``: the method and its settings (module docstring); unknown keys are refused by ``ThinkConfig``."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    method: str = "soft"
    answer_type: str = "numeric"
    marker: str | None = None
    think_sampling: dict[str, Any] | None = None
    mixing: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        """The other keys: :class:`~vecgen.thinking.runner.ThinkConfig` fields."""
        return dict(self.model_extra or {})


class ConceptRequest(_Strict):
    """``concept_tokens``: :meth:`vecgen.Model.concept`'s parameters (module docstring)."""

    n: int = Field(4, ge=1)
    rule: str = "soft"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    max_topk: int = 10
    noise: str = "none"
    gumbel_tau: float | None = None
    dirichlet_alpha: float | None = None
    beta: float | None = None
    hidden_scale: str | None = None
    seed: int | None = None
    record_top_k: int = Field(10, ge=1, le=100)


class _Common(_Strict):
    """The fields chat and text completions share."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    user: str | None = None
    concept_tokens: ConceptRequest | None = None
    logprobs: Any = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOPS:
            raise APIError(400, f"stop: {len(stops)} stop strings, at most {MAX_STOPS}", param="stop")
        if any(not s for s in stops):
            raise APIError(400, "stop: an empty stop string; give non-empty strings", param="stop")
        return tuple(stops)

    def check_unsupported(self) -> None:
        """Refuse OpenAI fields vecgen does not implement, naming them."""
        if self.logprobs not in (None, False, 0):
            raise APIError(400, "logprobs is not supported by vecgen serve; leave it out", param="logprobs")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                raise APIError(400, f"{name} is not supported by vecgen serve; leave it out or set 0", param=name)
        if self.concept_tokens is not None and self.stream:
            raise APIError(400, "concept_tokens are returned whole: set stream to false", param="stream")


class ChatRequest(_Common):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    thinking: ThinkingRequest | None = None
    top_logprobs: int | None = None

    def budget(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(_Common):
    """``POST /v1/completions``: ``prompt`` is a text, a list of texts, token ids, or a list of token-id lists."""

    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False

    def prompts(self) -> list[str | list[int]]:
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]


def parse_request(cls: type[_Common], data: Any) -> Any:
    """Validate a decoded JSON body as ``cls``.

    Raises:
        APIError: 400 naming the first bad field (``messages.0.role``) and why.
    """
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc: str | None = ".".join(str(p) for p in err.get("loc", ())
                                   if not str(p).startswith(("str", "list[", "function-"))) or None
        own = [f for f in ("thinking", "concept_tokens") if f in cls.model_fields]
        if err.get("type") == "extra_forbidden" and loc in ("thinking", "concept_tokens"):
            message = f"{loc} is not a field of this endpoint; it is vecgen's own field of /v1/chat/completions"
        elif err.get("type") == "extra_forbidden":
            message = f"unknown field {loc!r}; see the API reference (vecgen's own fields here: {', '.join(own)})"
        elif err.get("type") == "missing":
            message = f"missing field {loc!r}"
        elif is_type_error(err):
            message = f"{loc}={err.get('input')!r}: wrong type: {err.get('msg', 'invalid value')}"
        else:
            message = f"{loc}={err.get('input')!r}: {err.get('msg', 'invalid value')}"
        raise APIError(400, message, param=loc) from None


#: ``ThinkConfig`` fields a request may not set in ``thinking`` (the request's own fields set them, or they are typed
#: above: method, think_sampling, mixing).
_THINKING_NOT_SETTABLE = ("method", "think_sampling", "answer_sampling", "mixing", "max_answer_tokens",
                          "stop_sequences", "method_settings")


def request_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schemas of the request bodies for the OpenAPI document (``GET /openapi.json``): ``ChatRequest`` and
    ``CompletionRequest`` and every model they use, keyed by name, with refs to ``#/components/schemas/NAME``.
    ``ThinkingRequest`` lists the ``ThinkConfig`` settings a request may give (``max_think_tokens``,
    ``cold_stop_tau``, ...), ``mixing`` is a ``MixingConfig`` and ``think_sampling`` the concept-token sampler's
    fields."""
    from ..config import SamplingConfig
    from ..decoding.mixing import MixingConfig
    from ..thinking.methods import get_method, method_names, setting_fields
    from ..thinking.runner import ThinkConfig
    from ..thinking.settings import CONCEPT_FIELDS

    ref = "#/components/schemas/{model}"
    out: dict[str, dict[str, Any]] = {}
    for model in (ChatRequest, CompletionRequest):
        schema = model.model_json_schema(ref_template=ref)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    think = ThinkConfig.model_json_schema(ref_template=ref)
    props = out["ThinkingRequest"]["properties"]
    for name, prop in think["properties"].items():
        if name not in _THINKING_NOT_SETTABLE:
            props[name] = prop
    for name, (_, owners) in setting_fields().items():  # every registered method's own settings
        prop = get_method(owners[0]).settings.model_json_schema(ref_template=ref)["properties"][name]
        props[name] = {**prop, "description": f"{', '.join(owners)}: {prop.get('description', name)}"}
    props["method"] = {**props.get("method", {"type": "string"}), "enum": [*method_names(), "none"]}
    mixing = MixingConfig.model_json_schema(ref_template=ref)
    out.update(mixing.pop("$defs", {}))
    out["MixingConfig"] = mixing
    props["mixing"] = {"anyOf": [{"$ref": ref.format(model="MixingConfig")}, {"type": "null"}]}
    sampling = SamplingConfig.model_json_schema(ref_template=ref)["properties"]
    props["think_sampling"] = {"anyOf": [{"type": "object", "additionalProperties": False,
                                          "properties": {f: sampling[f] for f in CONCEPT_FIELDS}}, {"type": "null"}]}
    out["ThinkingRequest"]["additionalProperties"] = False
    return out


__all__ = ["APIError", "ChatMessage", "ChatRequest", "CompletionRequest", "ConceptRequest", "ThinkingRequest",
           "parse_request", "request_schemas"]
