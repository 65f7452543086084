"""Requests the host refuses at the transport (too many connections, oversized or malformed requests), answered in
the spec's JSON error shape ``{group, code, message, metadata}`` with ``Connection: close``, never an HTML page.

The handler writes :func:`raw_response` itself when no application runs (a bad request head); a refusal found while
the application reads the body is raised as :class:`RequestRefused`, a Werkzeug ``HTTPException``, so that Flask
answers it with this JSON instead of logging a 500.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from rivetgreen.errors import RivetError


def host_error(code: str, message: str, status: int, metadata: Any = None) -> RivetError:
    """A ``host/<code>`` error: the transport's own, always shown to the client."""
    return RivetError("host", code, message, metadata, public=True, status=status)


def overloaded() -> RivetError:
    return host_error("overloaded", "The host has too many open connections; retry later.", 503)


def body_too_large(limit: int) -> RivetError:
    return host_error("body_too_large", f"The request body is over the host's limit of {limit} bytes.", 413,
                      {"limit": limit})


def headers_too_large(limit: int) -> RivetError:
    return host_error("headers_too_large", f"The request head is over the host's limit of {limit} bytes.", 431,
                      {"limit": limit})


def request_line_too_long(limit: int) -> RivetError:
    return host_error("request_line_too_long", f"The request line is over {limit} bytes.", 414, {"limit": limit})


def bad_request(message: str) -> RivetError:
    return host_error("bad_request", message, 400)


def invalid_body() -> RivetError:
    return host_error("invalid_body", "The request body is malformed or cut short (chunked encoding or "
                                      "Content-Length).", 400)


def body_timeout(seconds: float) -> RivetError:
    return host_error("body_timeout", f"No request body bytes came for {seconds:g} seconds.", 408,
                      {"timeout_seconds": seconds})


def internal_error() -> RivetError:
    return RivetError("core", "internal_error", "The application failed before answering.", status=500)


def json_body(error: RivetError) -> bytes:
    return json.dumps(error.to_client()).encode()


class RequestRefused(HTTPException):
    """A transport refusal raised inside the application (while it reads the body); answers itself as JSON."""

    def __init__(self, error: RivetError) -> None:
        super().__init__(error.message)
        self.error = error
        self.code = error.status or 400

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        return Response(json_body(self.error), status=self.code,
                        headers={"Content-Type": "application/json", "Connection": "close"})


def status_line(error: RivetError) -> str:
    """``"413 Request Entity Too Large"``: the status of ``error`` as WSGI's ``start_response`` takes it."""
    status = error.status or 400
    return f"{status} {HTTPStatus(status).phrase}"


def raw_response(error: RivetError, extra_headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A whole HTTP/1.1 response (head and JSON body) for ``error``, ending the connection."""
    body = json_body(error)
    head = [f"HTTP/1.1 {status_line(error)}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close", *(f"{name}: {value}" for name, value in extra_headers)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
