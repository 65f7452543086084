"""``python -m app [--host H] [--port P]``: serve the demo app with gevent (default 127.0.0.1:6420; data under
``RIVETGREEN_DATA_DIR``, default ``./.rivetgreen``). SIGTERM or Ctrl-C stops it cleanly: every awake actor is saved
and put to sleep first."""

from __future__ import annotations

import argparse
import logging

from app import create_app
from rivetgreen.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the rivetgreen demo app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6420)
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(create_app(), options.host, options.port)


if __name__ == "__main__":
    main()
