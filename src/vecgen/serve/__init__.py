"""``vecgen serve``: an OpenAI-compatible HTTP server over vecgen's decode engine (``pip install 'vecgen[serve]'``).

::

    import vecgen
    from vecgen.serve import ServeSettings, create_app
    app = create_app(vecgen.load(), ServeSettings(model_id="default", max_batch=8))   # a FastAPI app; run with uvicorn

Requests from every client share one continuously batched engine (:mod:`vecgen.serve.worker`); the routes, fields
and errors are in :mod:`vecgen.serve.app` and :mod:`vecgen.serve.protocol`. FastAPI and uvicorn are imported here,
so ``import vecgen`` does not need them.
"""

from __future__ import annotations

from .app import Server, ServeSettings, create_app
from .protocol import APIError

__all__ = ["APIError", "ServeSettings", "Server", "create_app"]
