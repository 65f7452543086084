"""Transport-neutral HTTP values: what ``on_request`` receives and may return, and what the router answers.

The Flask host builds a :class:`Request` from the WSGI request; a future Rivet Engine host builds one from a
tunnelled request. Actor code never sees Flask or Werkzeug objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Request:
    """An HTTP request as actor code sees it. Header names are lower-case."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def args(self) -> dict[str, list[str]]:
        """The query string parsed into lists of values."""
        return parse_qs(self.query, keep_blank_values=True)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """An HTTP response. ``body`` may be bytes or text (sent as UTF-8)."""

    body: bytes | str = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


def as_response(value: Any) -> Response:
    """Turn what an ``on_request`` handler returned into a Response (Flask's conventions, in small):
    a Response; bytes or str; a dict or list (JSON); or a tuple ``(body, status)`` / ``(body, status, headers)``."""
    if isinstance(value, Response):
        return value
    if isinstance(value, tuple):
        body, status, *rest = value
        response = as_response(body)
        response.status = int(status)
        if rest:
            response.headers.update(rest[0])
        return response
    if isinstance(value, (dict, list)):
        return Response(json.dumps(value), headers={"content-type": "application/json"})
    if isinstance(value, str):
        return Response(value, headers={"content-type": "text/plain; charset=utf-8"})
    if isinstance(value, (bytes, bytearray)):
        return Response(bytes(value), headers={"content-type": "application/octet-stream"})
    if value is None:
        return Response(b"", status=204)
    raise TypeError(f"on_request returned {type(value).__name__}; return a Response, str, bytes, dict or tuple")
