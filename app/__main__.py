"""``python -m app [--host H] [--port P]``: serve the demo app with gevent (default 127.0.0.1:6420; data under
``RIVETGREEN_DATA_DIR``, default ``./.rivetgreen``). SIGTERM or Ctrl-C stops it cleanly: every awake actor is saved
and put to sleep first."""

from __future__ import annotations

import argparse
import sys

from app import create_app
from rivetgreen.cli import DEFAULT_HOST, DEFAULT_PORT, port_number, serve_app


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve the rivetgreen demo app.")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT)
    options = parser.parse_args()
    return serve_app(create_app(), options.host, options.port)


if __name__ == "__main__":
    sys.exit(main())
