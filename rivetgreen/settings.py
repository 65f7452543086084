"""The host's limits and timeouts: one frozen :class:`HostSettings`, with defaults, readable from ``RIVETGREEN_*``
environment variables (``RIVETGREEN_MAX_CONNECTIONS=2000``...), passed to ``rivetgreen.server.serve`` /
``make_server`` (the gunicorn worker reads the environment)."""

from __future__ import annotations

import dataclasses
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "RIVETGREEN_"
KIB = 1024
MIB = 1024 * KIB


def default_max_connections() -> int:
    """Half the process's open-file limit (``ulimit -n``): the other half stays for actors' database files, logs
    and the listening socket. 512 under the common limit of 1,024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65_536
    return max(soft // 2, 16)


@dataclass(frozen=True)
class HostSettings:
    """Limits and timeouts of the HTTP host (durations in seconds, sizes in bytes)."""

    # Open connections (WebSockets included). Past the limit a new connection gets an immediate 503.
    max_connections: int = dataclasses.field(default_factory=default_max_connections)
    # Slots that connections still waiting for a request's head may never hold (default: a tenth of the limit).
    connection_reserve: int | None = None
    # From a connection's first byte (or its accept) to the end of the request's headers.
    header_timeout: float = 10.0
    # Idle time allowed between two requests on a keep-alive connection.
    keepalive_timeout: float = 60.0
    # Longest wait for the next bytes of a request body; also the time a response write may take.
    body_timeout: float = 30.0
    # Request bodies above this are refused (413) from Content-Length, or once a chunked body passes it.
    max_request_body_size: int = 16 * MIB
    # Request line and headers together.
    max_header_size: int = 64 * KIB

    def __post_init__(self) -> None:
        if self.connection_reserve is None:
            object.__setattr__(self, "connection_reserve", self.max_connections // 10)
        for field in dataclasses.fields(self):
            if field.name != "connection_reserve" and getattr(self, field.name) <= 0:
                raise ValueError(f"host setting {field.name} must be positive, not {getattr(self, field.name)!r}")
        if not 0 <= self.connection_reserve < self.max_connections:
            raise ValueError(f"connection_reserve ({self.connection_reserve}) must be from 0 to below max_connections "
                             f"({self.max_connections})")

    @property
    def max_waiting_connections(self) -> int:
        """How many connections may wait for a request's head at once."""
        return self.max_connections - self.connection_reserve

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> HostSettings:
        """Defaults, then ``RIVETGREEN_<FIELD NAME>`` variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = ENV_PREFIX + field.name.upper()
            text = environ.get(name, "").strip()
            if not text:
                continue
            parse = float if field.type == "float" else int
            try:
                values[field.name] = parse(text)
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a valid {parse.__name__}") from None
        return cls(**{**values, **overrides})
