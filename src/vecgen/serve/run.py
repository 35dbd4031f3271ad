"""Running the app: uvicorn with vecgen's shutdown (Ctrl-C / SIGTERM: stop admitting, finish in flight, exit 0)."""

from __future__ import annotations

import logging
from types import FrameType

import uvicorn

from ..models import LoadedModel
from .app import ServeSettings, create_app

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, except that a shutdown signal is not raised again once the server has stopped (uvicorn does,
    which turns a clean SIGTERM into exit status 143): the process exits 0. The first signal stops admitting
    requests; a second Ctrl-C exits at once."""

    def __init__(self, config: uvicorn.Config, on_exit) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            self.on_exit()
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve_forever(lm: LoadedModel, model_id: str, *, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 8,
                  api_key: str | None = None, max_tokens: int = 1024, max_body_bytes: int = 1_000_000,
                  log_level: str = "info") -> None:
    """Serve ``lm`` until Ctrl-C / SIGTERM (see :mod:`vecgen.serve.app` for the routes)."""
    settings = ServeSettings(model_id=model_id, max_batch=max_batch, api_key=api_key, max_tokens=max_tokens,
                             max_body_bytes=max_body_bytes)
    app = create_app(lm, settings)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=None)
    server = _Server(config, app.state.server.worker.stop_admitting)
    server.run()


__all__ = ["serve_forever"]
