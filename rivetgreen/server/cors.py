"""CORS for rivetgreen's routes (its Blueprint), never for the rest of the Flask app.

The official client's ``fetch`` always sends ``credentials: "include"``, so a browser only accepts an answer that
echoes the page's exact origin with ``Access-Control-Allow-Credentials: true``. Doing that for any origin would let
every site read answers with the visitor's cookies, so only origins listed in ``cors_origins`` get it; ``"*"`` in
the list lets every other origin read answers without credentials (``Access-Control-Allow-Origin: *``, which the
official client cannot use, but plain ``fetch`` can); an origin that matches neither gets no CORS headers.
Default: ``RIVETGREEN_CORS_ORIGINS`` (comma- or space-separated) if set, else ``["*"]``; ``[]`` turns CORS off.
A flask-cors policy has one credentials switch for all its origins, hence this small policy of its own.

CORS only hides answers from pages: the request itself still runs, and browsers do not apply CORS to WebSockets at
all. So the gateway also gates browser requests (:meth:`CorsPolicy.gate`): an origin the policy does not allow is
refused before anything runs, and one allowed only without credentials reaches the actor without its cookies.
A same-origin request (``Origin`` naming the ``Host`` it was sent to) is always allowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Request, Response

from rivetgreen.errors import RivetError

ORIGINS_ENV = "RIVETGREEN_CORS_ORIGINS"
ANY_ORIGIN = "*"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
PREFLIGHT_MAX_AGE = "600"


@dataclass(frozen=True)
class CorsPolicy:
    """Which origins may read rivetgreen's answers, and which of them with credentials."""

    credentialed: frozenset[str]
    any_origin: bool

    @classmethod
    def from_setting(cls, origins: Iterable[str] | None) -> CorsPolicy:
        """The policy for ``origins`` (None: the environment variable, else any origin without credentials)."""
        if origins is None:
            configured = os.environ.get(ORIGINS_ENV)
            origins = [ANY_ORIGIN] if configured is None else configured.replace(",", " ").split()
        normalized = {normalize(origin) for origin in origins}
        return cls(frozenset(normalized - {ANY_ORIGIN}), ANY_ORIGIN in normalized)

    def allow_origin(self, origin: str) -> tuple[str, bool] | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin`` and whether credentials are allowed (None:
        the origin is not allowed)."""
        if normalize(origin) in self.credentialed:
            return origin, True
        if self.any_origin:
            return ANY_ORIGIN, False
        return None

    def gate(self, headers: dict[str, str]) -> None:
        """Refuse a cross-origin browser request from an origin the policy does not allow (403
        ``api/forbidden_origin``), and drop the cookies from ``headers`` when its origin may not send credentials."""
        origin = headers.get("origin")
        if not origin or same_origin(origin, headers.get("host")):
            return
        allowed = self.allow_origin(origin)
        if allowed is None:
            raise RivetError("api", "forbidden_origin", f"Origin {origin[:200]!r} may not use this host.", status=403)
        if not allowed[1]:
            headers.pop("cookie", None)

    def apply(self, request: Request, response: Response) -> Response:
        """Add the CORS headers ``request``'s origin may have to ``response``."""
        origin = request.headers.get("Origin")
        if not origin:
            return response
        response.vary.add("Origin")
        allowed = self.allow_origin(origin)
        if allowed is None:
            return response
        value, credentials = allowed
        headers = response.headers
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            requested = request.headers.get("Access-Control-Request-Headers")
            if requested:
                headers["Access-Control-Allow-Headers"] = requested
                response.vary.add("Access-Control-Request-Headers")
            headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        else:
            # Listed, not "*": with credentials a browser reads "*" as a header literally named "*".
            exposed = sorted({name.lower() for name in headers.keys()} - {"content-type", "content-length", "vary"})
            if exposed:
                headers["Access-Control-Expose-Headers"] = ", ".join(exposed)
        headers["Access-Control-Allow-Origin"] = value
        if credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return response


def normalize(origin: str) -> str:
    """Origins compare as browsers send them: lower case, no trailing slash."""
    return origin.strip().rstrip("/").lower()


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` names the host the request was sent to (behind a proxy, the ``Host`` it passes on)."""
    try:
        return bool(host) and urlsplit(origin.strip()).netloc.lower() == host.strip().lower()
    except ValueError:  # not a URL at all
        return False
