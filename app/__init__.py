"""The rivetgreen demo application: ``python -m app`` serves it on http://127.0.0.1:6420 (``rivetgreen serve
app:registry`` serves the same actors, without the banner page).

Under gunicorn (rivetgreen's worker, one per host process: actors live in the process that runs them)::

    gunicorn -k rivetgreen.server.gunicorn.Worker -w 1 -b 127.0.0.1:6420 'app:create_app()'
"""

from __future__ import annotations

import os

from flask import Flask

from app.actors import ACTORS
from rivetgreen import Registry, setup

BANNER = """rivetgreen demo

Actors: counter (increment, getCount, reset_later; event newCount), chatRoom (connect with {"user": name};
post, history; event message), echo (raw fetch and WebSocket), worker (queue "jobs").

From node:  import { createClient } from "rivetkit/client";
            const client = createClient("http://127.0.0.1:6420");
            await client.counter.getOrCreate(["a"]).increment(5);
From Python: from rivetgreen.client import Client
            Client("http://127.0.0.1:6420").counter.get_or_create(["a"]).increment(5)
"""


def registry() -> Registry:
    """The demo's registry; data under ``RIVETGREEN_DATA_DIR`` (default ``./.rivetgreen``). A function, so that
    importing the demo's actors opens no storage."""
    return setup(*ACTORS, data_dir=os.environ.get("RIVETGREEN_DATA_DIR"))


def create_app() -> Flask:
    """The demo Flask app: the registry's routes plus a banner at ``/``."""
    app = registry().flask_app("rivetgreen-demo")

    @app.get("/")
    def index() -> tuple[str, int, dict[str, str]]:
        return BANNER, 200, {"content-type": "text/plain; charset=utf-8"}

    return app
