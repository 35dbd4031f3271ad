"""Running the app: uvicorn with vecgen's shutdown (Ctrl-C / SIGTERM: stop admitting, finish in flight, exit 0)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import FrameType

import uvicorn

from ..models import LoadedModel
from .app import ServeSettings, create_app

log = logging.getLogger(__name__)


#: The exit status after a second signal (requests in flight were answered 503, not finished).
ABORTED_EXIT = 130


class _Server(uvicorn.Server):
    """uvicorn's server, except that a shutdown signal is not raised again once the server has stopped (uvicorn does,
    which turns a clean SIGTERM into exit status 143): the process exits 0. The first signal stops admitting
    requests and lets those in flight finish; a second one answers those in flight with 503 (their rows leave at
    the next step) and the process exits :data:`ABORTED_EXIT`. uvicorn's own force exit (which cancels the handlers
    mid-response: 500s and CancelledError tracebacks) is never used."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None], on_abort: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit, self.on_abort = on_exit, on_abort
        self.aborted = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:  # the second signal
            if not self.aborted:
                self.aborted = True
                log.warning("second signal: answering the requests in flight with 503 and exiting")
                self.on_abort()
            self._captured_signals.clear()
            return
        self.on_exit()
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve_forever(lm: LoadedModel, model_id: str, *, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 8,
                  api_key: str | None = None, max_tokens: int = 1024, max_body_bytes: int = 1_000_000,
                  log_level: str = "info", prefill_chunk: int | None = 256) -> int:
    """Serve ``lm`` until Ctrl-C / SIGTERM (see :mod:`vecgen.serve.app` for the routes).

    Returns:
        0 after a clean shutdown (one signal), :data:`ABORTED_EXIT` after a second signal.
    """
    settings = ServeSettings(model_id=model_id, max_batch=max_batch, api_key=api_key, max_tokens=max_tokens,
                             max_body_bytes=max_body_bytes, prefill_chunk=prefill_chunk)
    app = create_app(lm, settings)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=None)
    worker = app.state.server.worker
    server = _Server(config, worker.stop_admitting, worker.abort_in_flight)
    server.run()
    return ABORTED_EXIT if server.aborted else 0


__all__ = ["ABORTED_EXIT", "serve_forever"]
