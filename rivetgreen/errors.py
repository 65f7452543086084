"""One error family: every failure a client or user can see is a :class:`RivetError` (group, code, message, metadata).

Only the (group, code) pairs listed in :data:`PUBLIC_ERRORS` (and every ``user/*`` error) expose their message and
metadata to clients; any other error keeps its group and code but is masked (core.md §5.1). Plain Python exceptions
raised by user code become ``core/internal_error``. The abort signal, :class:`ActorAborted`, is deliberately not a
RivetError (it must not be caught by ``except Exception``); clients see it as ``actor/aborted``.
"""

from __future__ import annotations

import os
from typing import Any

import gevent

INTERNAL_MESSAGE = "An internal error occurred"

# (group, code) -> HTTP status, for errors whose message and metadata clients may see (core.md §5.1).
PUBLIC_ERRORS: dict[tuple[str, str], int] = {
    ("auth", "forbidden"): 403,
    ("actor", "not_found"): 404,
    ("actor", "action_not_found"): 404,
    ("actor", "method_not_allowed"): 405,
    ("actor", "action_timed_out"): 408,
    ("actor", "aborted"): 400,
    ("actor", "duplicate_key"): 400,
    ("actor", "invalid_key"): 400,
    ("actor", "not_registered"): 400,
    ("actor", "invalid_request"): 400,
    ("protocol", "unsupported_encoding"): 400,
    ("message", "incoming_too_long"): 400,
    ("message", "outgoing_too_long"): 400,
}
PUBLIC_GROUPS = {"user", "schedule", "kv", "api"}
PUBLIC_QUEUE_CODES = {
    "full", "message_too_large", "message_invalid", "invalid_payload", "invalid_completion_payload",
    "already_completed", "previous_message_not_completed", "complete_not_configured", "timed_out",
}


class RivetError(Exception):
    """An error with a stable ``group``/``code`` that clients can match on."""

    def __init__(
        self,
        group: str,
        code: str,
        message: str,
        metadata: Any = None,
        *,
        public: bool | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.group = group
        self.code = code
        self.message = message
        self.metadata = metadata
        self.public = is_public(group, code) if public is None else public
        self.status = status
        self.actor: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.group}/{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"RivetError({self.group!r}, {self.code!r}, {self.message!r})"

    def matches(self, group: str, code: str) -> bool:
        return self.group == group and self.code == code

    def with_actor(self, actor_id: str, generation: int, key: list[str]) -> RivetError:
        """Annotate with the actor specifier (kept if already set); its ``key`` is the serialized key string, as
        every error body carries it (client-protocol.md §3)."""
        from rivetgreen.encoding.actor_key import serialize_key  # the encoding layer imports this module

        if self.actor is None:
            self.actor = {"actorId": actor_id, "generation": generation, "key": serialize_key(key)}
        return self

    def to_client(self) -> dict[str, Any]:
        """The error as a client may see it: masked unless public."""
        body: dict[str, Any] = {"group": self.group, "code": self.code}
        if self.public:
            body["message"] = self.message
            if self.metadata is not None:
                body["metadata"] = self.metadata
        elif os.environ.get("RIVET_EXPOSE_ERRORS") == "1":
            body["message"] = f"Internal error: {self.message}"
        else:
            body["message"] = INTERNAL_MESSAGE
        if self.actor is not None:
            body["actor"] = self.actor
        return body


class UserError(RivetError):
    """An error raised on purpose by actor code; always shown to clients as ``user/<code>``."""

    def __init__(self, message: str, code: str = "user_error", metadata: Any = None) -> None:
        super().__init__("user", code, message, metadata, public=True)


class ActorAborted(gevent.GreenletExit):
    """The abort signal: raised inside actor code when the actor stops it (a queue wait once shutdown began; any
    blocking call at the grace deadline). A ``BaseException`` (a ``GreenletExit``), like trio's ``Cancelled``, so
    ``except Exception`` does not swallow it; clients whose work it ended get the error ``actor/aborted``."""

    def __init__(self) -> None:
        super().__init__("actor/aborted: the actor is shutting down")


def is_public(group: str, code: str) -> bool:
    if group in PUBLIC_GROUPS:
        return True
    if group == "queue":
        return code in PUBLIC_QUEUE_CODES
    if group == "actor_runtime_socket":
        return True
    return (group, code) in PUBLIC_ERRORS


def from_exception(error: BaseException) -> RivetError:
    """Any exception as a RivetError; unstructured ones become ``core/internal_error``."""
    if isinstance(error, RivetError):
        return error
    if isinstance(error, ActorAborted):
        return aborted()
    return RivetError("core", "internal_error", f"{type(error).__name__}: {error}", {"error": repr(error)})


# Constructors for the built-in codes used by the runtime (core.md §5.2). -------------------------------------

def actor_error(code: str, message: str, metadata: Any = None) -> RivetError:
    return RivetError("actor", code, message, metadata)


def invalid_request(message: str) -> RivetError:
    """A request or message from a client that cannot be decoded (malformed bytes, bad version, bad shape)."""
    return actor_error("invalid_request", message)


def unsupported_encoding(encoding: object) -> RivetError:
    return RivetError("protocol", "unsupported_encoding", f"Unsupported encoding {encoding!r}; use json, cbor or bare.",
                      {"encoding": str(encoding)})


def not_found(actor_id: str) -> RivetError:
    return actor_error("not_found", f"Actor instance '{actor_id}' was not found.")


def actor_not_found_by_key(name: str, key: list[str]) -> RivetError:
    return actor_error("not_found", f"Actor '{name}' with key {key!r} was not found.")


def duplicate_key(name: str, key: list[str]) -> RivetError:
    return actor_error("duplicate_key", f"Actor '{name}' with key {key!r} already exists.", {"name": name, "key": key})


def not_registered(name: str) -> RivetError:
    return actor_error("not_registered", f"No actor named '{name}' is registered.")


def action_not_found(name: str) -> RivetError:
    return actor_error("action_not_found", f"Action `{name}` not found.", {"name": name})


def action_timed_out() -> RivetError:
    return actor_error("action_timed_out", "Action timed out.")


def callback_timed_out(hook: str) -> RivetError:
    return actor_error("callback_timed_out", f"Lifecycle hook '{hook}' timed out.", {"hook": hook})


def dropped_reply() -> RivetError:
    return actor_error("dropped_reply", "The actor stopped before it replied.")


def not_ready() -> RivetError:
    return actor_error("not_ready", "Actor is not ready.")


def starting() -> RivetError:
    return actor_error("starting", "Actor is starting.")


def stopping() -> RivetError:
    return actor_error("stopping", "Actor is stopping.")


def destroying() -> RivetError:
    return actor_error("destroying", "Actor is being destroyed.")


def aborted() -> RivetError:
    return actor_error("aborted", "Operation aborted: the actor is shutting down.")


def invalid_state_type(path: str) -> RivetError:
    return actor_error(
        "invalid_state_type",
        f"Attempted to set invalid state at path `{path}`. State must be CBOR serializable.",
        {"path": path},
    )
