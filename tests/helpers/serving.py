"""A live ``vecgen serve`` app for tests: uvicorn on a free 127.0.0.1 port in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import uvicorn

from vecgen.serve import ServeSettings, create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(lm, **settings):
    """A uvicorn server on a free port in a thread; yields ``(base_url, Server)``."""
    app = create_app(lm, ServeSettings(model_id="tiny", **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app.state.server
    finally:
        server.should_exit = True
        thread.join(60)
