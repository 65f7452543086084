"""HTTP/1.1 on gevent sockets without monkey patching, with keep-alive connections reused per origin.

:class:`HttpTransport` sends one request and reads the whole response; :class:`HttpResponse` is what callers get.
Every request has an overall deadline (a ``gevent.Timeout``) as well as per-socket-operation timeouts.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.lock
import gevent.socket
import gevent.ssl

from rivetgreen.client.errors import ClientTimeout, client_error

USER_AGENT = "RivetKit/2.3.19 (rivetgreen)"
MAX_IDLE_PER_ORIGIN = 8

# Errors that mean a reused keep-alive connection had been closed by the server before we used it.
_STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class GreenHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` whose socket is a gevent socket."""

    source_address: tuple[str, int] | None  # set by http.client.HTTPConnection; its stubs omit it

    def connect(self) -> None:
        self.sock = gevent.socket.create_connection((self.host, self.port), self.timeout, self.source_address)
        self.sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)


class GreenHTTPSConnection(http.client.HTTPSConnection):
    """``http.client.HTTPSConnection`` on a gevent socket, wrapped with gevent's SSL."""

    source_address: tuple[str, int] | None  # set by http.client, as _context is; its stubs omit both
    _context: ssl.SSLContext

    def __init__(self, host: str, port: int | None = None, timeout: float | None = None) -> None:
        super().__init__(host, port, timeout=timeout, context=gevent.ssl.create_default_context())

    def connect(self) -> None:
        sock = gevent.socket.create_connection((self.host, self.port), self.timeout, self.source_address)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class HttpResponse:
    """A complete HTTP response. ``headers`` is an ``http.client.HTTPMessage`` (case-insensitive ``get``)."""

    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode(self.headers.get_content_charset() or "utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status} {self.reason} ({len(self.body)} bytes)>"


class HttpTransport:
    """Sends requests, keeping idle keep-alive connections per ``scheme://host:port`` for reuse."""

    def __init__(self, user_agent: str = USER_AGENT) -> None:
        self.user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = defaultdict(list)
        self._lock = gevent.lock.Semaphore()
        self._closed = False

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float,
    ) -> HttpResponse:
        """Send the request and read the whole response, within ``timeout`` seconds overall."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        all_headers = {"User-Agent": self.user_agent, "Accept": "*/*"}
        all_headers.update(headers or {})
        deadline = gevent.Timeout(timeout, ClientTimeout(f"{method} {url} took longer than {timeout} s."))
        deadline.start()
        try:
            return self._send(origin, method, target, body, all_headers, timeout)
        except ClientTimeout:
            raise
        except (OSError, http.client.HTTPException) as error:
            raise client_error("http_error", f"{method} {url} failed: {error}", {"url": url}) from error
        finally:
            deadline.close()

    def _send(
        self, origin: tuple[str, str, int], method: str, target: str, body: bytes | None,
        headers: dict[str, str], timeout: float,
    ) -> HttpResponse:
        while True:
            connection, reused = self._acquire(origin, timeout)
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except _STALE_CONNECTION_ERRORS:
                connection.close()
                if reused:
                    continue  # the server had closed this idle connection; try a fresh one
                raise
            except BaseException:
                connection.close()
                raise
            result = HttpResponse(response.status, response.reason, response.headers, data)
            if response.will_close:
                connection.close()
            else:
                self._release(origin, connection)
            return result

    def _acquire(self, origin: tuple[str, str, int], timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle[origin]
            if idle:
                connection = idle.pop()
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                return connection, True
        scheme, host, port = origin
        if scheme == "https":
            return GreenHTTPSConnection(host, port, timeout=timeout), False
        return GreenHTTPConnection(host, port, timeout=timeout), False

    def _release(self, origin: tuple[str, str, int], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle[origin]
            if self._closed or len(idle) >= MAX_IDLE_PER_ORIGIN:
                connection.close()
            else:
                idle.append(connection)

    def close(self) -> None:
        """Close every idle connection; requests still running finish and then close theirs."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, defaultdict(list)
        for connections in idle.values():
            for connection in connections:
                connection.close()
