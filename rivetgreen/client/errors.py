"""The client's own errors, and turning what the server sent (error bodies, close reasons) into
:class:`~rivetgreen.errors.RivetError` (client-protocol.md §2, §3, §5.3).

Errors the client makes up itself use the group ``client``: ``timeout`` (also a :class:`TimeoutError`),
``connection_lost``, ``connection_open_failed``, ``connection_disposed``, ``http_error`` and
``malformed_response``.
"""

from __future__ import annotations

from typing import Any

from rivetgreen.encoding.client_protocol import decode_http_error
from rivetgreen.errors import RivetError

# Actor lifecycle codes after which a get/getOrCreate target may simply be tried again (the JS client's
# isStaleResolvedActorError, minus not_found, which is retried only where it can heal: see is_retryable).
LIFECYCLE_CODES = {"starting", "stopping", "not_configured", "dropped_reply", "restarting", "stopped"}
GUARD_CODES = {
    "service_unavailable", "actor_wake_retries_exceeded", "actor_stopped_while_waiting", "tunnel_request_aborted",
    "tunnel_message_timeout", "tunnel_response_closed", "gateway_response_start_timeout",
}


class ClientTimeout(RivetError, TimeoutError):
    """``client/timeout``: a blocking call gave up. Catchable as ``RivetError`` or ``TimeoutError``."""

    def __init__(self, message: str, metadata: Any = None) -> None:
        super().__init__("client", "timeout", message, metadata, public=True)


def client_error(code: str, message: str, metadata: Any = None) -> RivetError:
    return RivetError("client", code, message, metadata, public=True)


def error_from_dict(error: dict[str, Any]) -> RivetError:
    """``{group, code, message, metadata?, actor?}`` as a RivetError."""
    result = RivetError(error["group"], error["code"], error["message"], error.get("metadata"), public=True)
    result.actor = error.get("actor")
    return result


def error_from_http(encoding: str, status: int, reason: str, content_type: str | None, body: bytes) -> RivetError:
    """A non-2xx gateway response: a Rivet error body (JSON whenever the Content-Type says so, otherwise in the
    request's encoding), or ``client/http_error`` when the body is something else (an HTML error page...)."""
    try:
        return error_from_dict(decode_http_error(encoding, body, content_type))
    except (RivetError, ValueError, KeyError, TypeError, IndexError, EOFError):
        text = body.decode("utf-8", "replace")
        return client_error("http_error", f"{reason} ({status}):\n{text}", {"status": status, "body": text})


def parse_close_reason(reason: str) -> tuple[str, str, str | None] | None:
    """``"group.code"`` or ``"group.code#rayId"`` → ``(group, code, ray_id)``; None when it is not that shape."""
    main, _, ray_id = reason.partition("#")
    group, _, code = main.partition(".")
    if not group or not code:
        return None
    return group, code.split(".")[0], ray_id or None


def error_from_close(code: int | None, reason: str, clean: bool) -> RivetError:
    """The error that in-flight calls fail with when the server closed the connection."""
    parsed = parse_close_reason(reason)
    metadata = {"closeCode": code, "reason": reason}
    if parsed is not None:
        group, error_code, ray_id = parsed
        if ray_id is not None:
            metadata["rayId"] = ray_id
        return RivetError(group, error_code, f"Connection closed: {reason}", metadata, public=True)
    state = "closed" if clean else "lost"
    return client_error("connection_lost", f"Connection {state} (code: {code}, reason: {reason})", metadata)


def is_retryable(error: RivetError, query_target: bool, can_create: bool) -> bool:
    """Whether a failure is a transient actor lifecycle state worth another attempt: ``actor.restarting`` and the
    guard/ws lifecycle codes always; ``starting``/``stopping``/``dropped_reply``/... only for get/getOrCreate
    targets (which re-resolve); ``not_found`` only for getOrCreate (the actor is re-created)."""
    group, code = error.group, error.code
    if (group, code) in (("actor", "restarting"), ("actor", "stopped"), ("ws", "going_away")):
        return True
    if group == "guard" and code in GUARD_CODES:
        return True
    if group != "actor" or not query_target:
        return False
    if code in LIFECYCLE_CODES or code.startswith("destroyed_"):
        return True
    return code == "not_found" and can_create
