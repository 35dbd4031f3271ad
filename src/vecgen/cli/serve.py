"""``vecgen serve``: an OpenAI-compatible server (``pip install 'vecgen[serve]'``)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from .common import BackendOptions, ModelOptions, check_load, load, with_options

#: Hosts that only this machine reaches (no key needed).
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeOptions(ModelOptions, BackendOptions):
    """The flags of ``vecgen serve``."""

    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. 127.0.0.1 (the default) is reachable from this machine only; any other "
        "address (0.0.0.0 = every interface) needs --api-key.")] = "127.0.0.1"
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0 = a free port, printed at start).")] = 8000
    max_batch: Annotated[int, typer.Option(
        "--max-batch", min=1, max=1024, help="Rows decoded at once: requests from every client share this batch "
        "(continuous batching; a request with n choices takes n rows).")] = 8
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", envvar="VECGEN_API_KEY", help="Key clients must send as 'Authorization: Bearer KEY' (also from "
        "VECGEN_API_KEY). Required when --host is not a loopback address.", show_default=False)] = None
    max_tokens: Annotated[int, typer.Option(
        "--max-tokens", min=1, max=1_000_000, help="Largest max_tokens (and thinking budget, and concept_tokens.n) a "
        "request may ask for; also the default max_tokens of chat completions that give none (capped by the room "
        "left in the context). Text completions default to 16, as OpenAI's.")] = 1024
    max_body_bytes: Annotated[int, typer.Option(
        "--max-body-bytes", min=1024, max=1_000_000_000, help="Largest request body in bytes (larger ones get HTTP "
        "413).")] = 1_000_000
    prefill_chunk: Annotated[int, typer.Option(
        "--prefill-chunk", min=0, max=1_000_000, help="Chunked prefill: a prompt longer than this many tokens that "
        "arrives while other requests decode is prefilled this many tokens per step, between their steps, so they "
        "keep streaming (0 = prefill whole prompts at once).")] = 256
    served_model_name: Annotated[Optional[str], typer.Option(
        "--served-model-name", help="The model name clients send and /v1/models lists (default: --model).",
        show_default=False)] = None
    log_level: Annotated[str, typer.Option(
        "--log-level", help="uvicorn's log level: critical, error, warning, info, debug.")] = "info"


def check_serve(o: ServeOptions) -> None:
    """Every flag that can be checked without the model (before loading).

    Raises:
        ConfigError: a non-loopback host without a key, an empty key, a port in use, a bad log level, serve's extra
            not installed.
    """
    from ..models.backends import get_backend

    from ..errors import ConfigError

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError("vecgen serve needs FastAPI and uvicorn: pip install 'vecgen[serve]'") from None
    if o.api_key is not None and not o.api_key.strip():
        raise ConfigError("--api-key is empty; give a key, or leave the option out on a loopback --host",
                          param="api_key")
    if not is_loopback(o.host) and o.api_key is None:
        raise ConfigError(f"--host {o.host} is reachable from other machines: give --api-key KEY (or VECGEN_API_KEY), "
                          "or serve on 127.0.0.1", param="api_key")
    limit = get_backend(o.backend).max_rows
    if limit is not None and o.max_batch > limit:
        raise ConfigError(f"--max-batch {o.max_batch}: backend {o.backend} holds at most {limit} sequences at once; "
                          f"use at most {limit}", param="max_batch")
    if o.log_level not in ("critical", "error", "warning", "info", "debug"):
        raise ConfigError(f"--log-level {o.log_level!r}: choose critical, error, warning, info or debug",
                          param="log_level")
    try:
        infos = socket.getaddrinfo(o.host, o.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {o.host!r} cannot be resolved ({exc.strerror}); give an address such as 127.0.0.1",
                          param="host") from None
    family, _, _, _, address = infos[0]
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {o.host}:{o.port} ({exc.strerror}); choose another --port (0 = a free one)",
                          param="port") from None
    finally:
        probe.close()


@with_options(ServeOptions, context=False)
def serve(o: ServeOptions) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/chat/completions, /v1/completions), with
    streaming, soft thinking ("thinking": {"method": "soft", ...} in the body, e.g. the openai client's extra_body;
    the trace comes back as reasoning_content) and concept tokens ("concept_tokens": {"n": 4}). Requests from every
    client share one continuously batched engine. Ctrl-C or SIGTERM stops admitting, lets the requests in flight
    finish, and exits 0; a second signal answers the requests in flight with 503 and exits 130."""
    check_serve(o)
    check_load(o)
    lm = load(o)
    from ..serve.run import serve_forever  # FastAPI and uvicorn are imported only here

    code = serve_forever(lm, o.served_model_name or o.model, host=o.host, port=o.port, max_batch=o.max_batch,
                         api_key=o.api_key, max_tokens=o.max_tokens, max_body_bytes=o.max_body_bytes,
                         prefill_chunk=o.prefill_chunk or None,
                         log_level=o.log_level)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
