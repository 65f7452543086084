"""Sans-I/O codecs for the RivetKit client protocol v4, as spoken by the npm client ``rivetkit@2.3.19``
(client-protocol.md §3, §4, §5.2, §7). Shared by the server (decode requests, encode replies) and the Python
client (the reverse). Nothing here touches sockets, HTTP or actors.

Three encodings (:data:`ENCODINGS`), chosen per request or connection:

- ``json``: JSON text; user values carry the ``$``-wrappers of :mod:`rivetgreen.encoding.json_compat`, and the
  receiver revives the whole document. WebSocket messages are text frames (``str``).
- ``cbor``: one native CBOR map (:func:`~rivetgreen.encoding.cbor.encode_wire`). The JS client neither escapes
  ``$``-arrays nor wraps values when it sends, but revives wrappers when it receives; so the server escapes
  ``$``-arrays going out and does not revive coming in, and the Python client does the reverse.
- ``bare``: a ``u16`` little-endian protocol version, then a BARE struct (``rivetkit`` ``client-protocol``
  schemas v1–v4) whose ``data`` fields hold CBOR of the JSON-compat form of a value. Everything is sent as
  version 4; versions 1–4 are accepted (v1 ``Init`` has a ``connectionToken``; ``Error`` and
  ``HttpResponseError`` gain ``actor`` in v4; the queue messages exist from v3).

WebSocket ids are BigInt-shaped on the way out: ``["$BigInt", "n"]`` in JSON, ``1b`` + 8 bytes in CBOR, a plain
uint in BARE. On the way in, JSON ids may also be plain numbers. Anything undecodable raises
``actor/invalid_request``; an unknown encoding raises ``protocol/unsupported_encoding``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from rivetgreen.encoding.actor_key import serialize_key
from rivetgreen.encoding.bare import BareReader, BareWriter
from rivetgreen.encoding.cbor import Uint64, decode_wire, encode_wire
from rivetgreen.encoding.json_compat import BIGINT_TAG, escape_dollar_arrays, from_json_compat, to_json_compat
from rivetgreen.encoding.untrusted import parse_json
from rivetgreen.errors import RivetError, invalid_request, unsupported_encoding

ENCODINGS = ("json", "cbor", "bare")

PROTOCOL_VERSION = 4  # what this module sends
OLDEST_PROTOCOL_VERSION = 1  # the oldest version accepted
QUEUE_PROTOCOL_VERSION = 3  # HttpQueueSendRequest/Response exist from here on
ACTOR_SPECIFIER_PROTOCOL_VERSION = 4  # Error and HttpResponseError carry `actor` from here on
CONNECTION_TOKEN_PROTOCOL_VERSION = 1  # Init carries `connectionToken` up to here

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"

# BARE union tags of ToClientBody and ToServerBody.
INIT_TAG, ERROR_TAG, ACTION_RESPONSE_TAG, EVENT_TAG = range(4)
ACTION_REQUEST_TAG, SUBSCRIPTION_REQUEST_TAG = range(2)

UINT64_LIMIT = 1 << 64


# Messages ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueSendRequest:
    """``POST /queue/{name}``: the message ``body``; with ``wait``, block up to ``timeout_ms`` for completion."""

    name: str | None
    body: Any
    wait: bool = False
    timeout_ms: int | None = None


@dataclass(frozen=True)
class ActionRequest:
    """Client → server: call action ``name`` with ``args``; the reply carries the same ``id``."""

    id: int
    name: str
    args: list[Any]


@dataclass(frozen=True)
class SubscriptionRequest:
    """Client → server: start (or stop) receiving the event ``event_name``."""

    event_name: str
    subscribe: bool


@dataclass(frozen=True)
class Init:
    """Server → client, first message of a connection."""

    actor_id: str
    connection_id: str


@dataclass(frozen=True)
class ErrorMessage:
    """Server → client: the action ``action_id`` failed, or (``action_id`` None) the connection did.

    ``actor`` is ``{"actorId": str, "generation": int, "key"?: str}``; when encoding, ``key`` may also be a list
    of key parts (it is sent as the serialized key string)."""

    group: str
    code: str
    message: str
    metadata: Any = None
    action_id: int | None = None
    actor: dict[str, Any] | None = None


@dataclass(frozen=True)
class ActionResponse:
    """Server → client: the result of the action request ``id``."""

    id: int
    output: Any


@dataclass(frozen=True)
class Event:
    """Server → client: a broadcast event; ``args`` are spread into the client's listener."""

    name: str
    args: list[Any]


ToServerMessage = ActionRequest | SubscriptionRequest
ToClientMessage = Init | ErrorMessage | ActionResponse | Event


@dataclass(frozen=True)
class _Role:
    """How one side treats ``cbor`` mode values: the server escapes outgoing ``$``-arrays and does not revive
    incoming ones; a client (like the JS client) sends values as they are and revives what it receives."""

    escape_outgoing: bool
    revive_incoming: bool


SERVER = _Role(escape_outgoing=True, revive_incoming=False)
CLIENT = _Role(escape_outgoing=False, revive_incoming=True)


def content_type(encoding: str) -> str:
    """The ``Content-Type`` of a body in ``encoding``."""
    check_encoding(encoding)
    return JSON_CONTENT_TYPE if encoding == "json" else BINARY_CONTENT_TYPE


def check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise unsupported_encoding(encoding)


# Server side: HTTP ---------------------------------------------------------------------------------------------

def decode_action_request(encoding: str, body: bytes) -> list[Any]:
    """The arguments of ``POST /action/{name}``: ``{"args": [...]}`` (a non-list is one argument, null none)."""
    return normalize_arguments(_decode_single_field(encoding, body, "args", SERVER))


def encode_action_response(encoding: str, output: Any) -> bytes:
    return _encode_single_field(encoding, "output", output, SERVER)


def decode_queue_send_request(encoding: str, body: bytes) -> QueueSendRequest:
    check_encoding(encoding)
    if encoding == "bare":
        return _read_queue_send_request(_bare_reader(body, QUEUE_PROTOCOL_VERSION, "HttpQueueSendRequest"))
    document = _require_map(_load_document(encoding, body, SERVER), "queue send request")
    return QueueSendRequest(
        name=_optional_field(document, "name", str, "queue send request"),
        body=document.get("body"),
        wait=bool(_optional_field(document, "wait", bool, "queue send request")),
        timeout_ms=_optional_milliseconds(document.get("timeout")),
    )


def _read_queue_send_request(reader: BareReader) -> QueueSendRequest:
    body = _value_from_bare(reader.data())
    name = reader.optional(reader.str)
    wait = reader.optional(reader.bool)
    timeout_ms = reader.optional(reader.u64)
    reader.finish()
    return QueueSendRequest(name=name, body=body, wait=bool(wait), timeout_ms=timeout_ms)


def encode_queue_send_response(encoding: str, status: str, response: Any, has_response: bool) -> bytes:
    """``{"status": ..., "response"?: ...}``; ``response`` is sent only when ``has_response``."""
    check_encoding(encoding)
    if encoding == "bare":
        writer = _bare_writer()
        writer.str(status)
        writer.optional(_value_to_bare(response) if has_response else None, writer.data)
        return writer.to_bytes()
    document: dict[str, Any] = {"status": status}
    if has_response:
        document["response"] = _document_value(encoding, response, SERVER)
    return _dump_document(encoding, document)


def encode_http_error(encoding: str, error: dict[str, Any]) -> bytes:
    """An error body from ``{group, code, message, metadata?, actor?: {actorId, generation, key?}}`` (for example
    :meth:`RivetError.to_client`). A list ``key`` is sent as the serialized key string."""
    check_encoding(encoding)
    message = ErrorMessage(
        group=error["group"],
        code=error["code"],
        message=error["message"],
        metadata=error.get("metadata"),
        actor=error.get("actor"),
    )
    if encoding == "bare":
        writer = _bare_writer()
        _write_error(writer, message, with_action_id=False)
        return writer.to_bytes()
    return _dump_document(encoding, _error_document(encoding, message, with_action_id=False))


# Server side: WebSocket ----------------------------------------------------------------------------------------

def decode_to_server(encoding: str, frame: bytes | str) -> ToServerMessage:
    """A client's WebSocket message. ``json`` accepts text or binary frames; ``cbor`` and ``bare`` need binary."""
    check_encoding(encoding)
    if encoding == "bare":
        reader = _bare_reader(frame, OLDEST_PROTOCOL_VERSION, "ToServer")
        message = _read_to_server(reader)
        reader.finish()
        return message
    tag, value = _message_body(_load_document(encoding, frame, SERVER), "ToServer")
    if tag == "ActionRequest":
        return ActionRequest(
            id=_require_id(value.get("id"), "ActionRequest.id"),
            name=_require_field(value, "name", str, "ActionRequest"),
            args=normalize_arguments(value.get("args")),
        )
    if tag == "SubscriptionRequest":
        return SubscriptionRequest(
            event_name=_require_field(value, "eventName", str, "SubscriptionRequest"),
            subscribe=_require_field(value, "subscribe", bool, "SubscriptionRequest"),
        )
    raise invalid_request(f"Unknown ToServer message tag {tag!r}.")


def _read_to_server(reader: BareReader) -> ToServerMessage:
    tag = reader.uint()
    if tag == ACTION_REQUEST_TAG:
        identifier = reader.uint()
        name = reader.str()
        return ActionRequest(id=identifier, name=name, args=normalize_arguments(_value_from_bare(reader.data())))
    if tag == SUBSCRIPTION_REQUEST_TAG:
        return SubscriptionRequest(event_name=reader.str(), subscribe=reader.bool())
    raise invalid_request(f"Unknown ToServer union tag {tag}.")


def encode_to_client(encoding: str, message: ToClientMessage) -> bytes | str:
    """A server WebSocket message: ``str`` (a text frame) for ``json``, ``bytes`` otherwise."""
    check_encoding(encoding)
    if encoding == "bare":
        writer = _bare_writer()
        _write_to_client(writer, message)
        return writer.to_bytes()
    tag, value = _to_client_document(encoding, message)
    return _dump_frame(encoding, {"body": {"tag": tag, "val": value}})


def _write_to_client(writer: BareWriter, message: ToClientMessage) -> None:
    if isinstance(message, Init):
        writer.uint(INIT_TAG)
        writer.str(message.actor_id)
        writer.str(message.connection_id)
    elif isinstance(message, ErrorMessage):
        writer.uint(ERROR_TAG)
        _write_error(writer, message, with_action_id=True)
    elif isinstance(message, ActionResponse):
        writer.uint(ACTION_RESPONSE_TAG)
        writer.uint(message.id)
        writer.data(_value_to_bare(message.output))
    elif isinstance(message, Event):
        writer.uint(EVENT_TAG)
        writer.str(message.name)
        writer.data(_value_to_bare(normalize_arguments(message.args)))
    else:
        raise TypeError(f"Not a message to a client: {message!r}")


def _to_client_document(encoding: str, message: ToClientMessage) -> tuple[str, dict[str, Any]]:
    if isinstance(message, Init):
        return "Init", {"actorId": message.actor_id, "connectionId": message.connection_id}
    if isinstance(message, ErrorMessage):
        return "Error", _error_document(encoding, message, with_action_id=True)
    if isinstance(message, ActionResponse):
        output = _document_value(encoding, message.output, SERVER)
        return "ActionResponse", {"id": _document_id(encoding, message.id), "output": output}
    if isinstance(message, Event):
        arguments = _document_value(encoding, normalize_arguments(message.args), SERVER)
        return "Event", {"name": message.name, "args": arguments}
    raise TypeError(f"Not a message to a client: {message!r}")


# Client side: HTTP ---------------------------------------------------------------------------------------------

def encode_action_request(encoding: str, args: list[Any]) -> bytes:
    return _encode_single_field(encoding, "args", normalize_arguments(args), CLIENT)


def decode_action_response(encoding: str, body: bytes) -> Any:
    return _decode_single_field(encoding, body, "output", CLIENT)


def encode_queue_send_request(encoding: str, request: QueueSendRequest) -> bytes:
    """Like the JS client: ``wait`` is always sent, ``timeout`` and ``name`` only when set."""
    check_encoding(encoding)
    if encoding == "bare":
        writer = _bare_writer()
        writer.data(_value_to_bare(request.body))
        writer.optional(request.name, writer.str)
        writer.optional(request.wait, writer.bool)
        writer.optional(request.timeout_ms, writer.u64)
        return writer.to_bytes()
    document: dict[str, Any] = {"body": _document_value(encoding, request.body, CLIENT), "wait": request.wait}
    if request.timeout_ms is not None:
        document["timeout"] = request.timeout_ms
    if request.name is not None:
        document["name"] = request.name
    return _dump_document(encoding, document)


def decode_queue_send_response(encoding: str, body: bytes) -> tuple[str, Any]:
    """``(status, response)``; ``response`` is None when the server sent none."""
    check_encoding(encoding)
    if encoding == "bare":
        reader = _bare_reader(body, QUEUE_PROTOCOL_VERSION, "HttpQueueSendResponse")
        status = reader.str()
        response = reader.optional(reader.data)
        reader.finish()
        return status, None if response is None else _value_from_bare(response)
    document = _require_map(_load_document(encoding, body, CLIENT), "queue send response")
    return _require_field(document, "status", str, "queue send response"), document.get("response")


def decode_http_error(encoding: str, body: bytes, content_type: str | None) -> dict[str, Any]:
    """An error body as ``{group, code, message, metadata?, actor?}``. Like the JS client, a body whose
    ``Content-Type`` contains ``application/json`` is read as JSON whatever the request's encoding."""
    check_encoding(encoding)
    if content_type is not None and JSON_CONTENT_TYPE in content_type.lower():
        encoding = "json"
    if encoding == "bare":
        reader = _bare_reader(body, OLDEST_PROTOCOL_VERSION, "HttpResponseError")
        message = _read_error(reader, _version_of(body), with_action_id=False)
        reader.finish()
    else:
        document = _require_map(_load_document(encoding, body, CLIENT), "error response")
        message = _error_from_document(document, with_action_id=False)
    return error_to_dict(message)


def error_to_dict(message: ErrorMessage) -> dict[str, Any]:
    """``{group, code, message, metadata?, actor?}``, omitting the optional fields that are None."""
    error: dict[str, Any] = {"group": message.group, "code": message.code, "message": message.message}
    if message.metadata is not None:
        error["metadata"] = message.metadata
    if message.actor is not None:
        error["actor"] = message.actor
    return error


# Client side: WebSocket ----------------------------------------------------------------------------------------

def encode_to_server(encoding: str, message: ToServerMessage) -> bytes | str:
    """A client WebSocket message: ``str`` (a text frame) for ``json``, ``bytes`` otherwise."""
    check_encoding(encoding)
    if encoding == "bare":
        writer = _bare_writer()
        _write_to_server(writer, message)
        return writer.to_bytes()
    if isinstance(message, ActionRequest):
        arguments = _document_value(encoding, normalize_arguments(message.args), CLIENT)
        value = {"id": _document_id(encoding, message.id), "name": message.name, "args": arguments}
        return _dump_frame(encoding, {"body": {"tag": "ActionRequest", "val": value}})
    if isinstance(message, SubscriptionRequest):
        value = {"eventName": message.event_name, "subscribe": message.subscribe}
        return _dump_frame(encoding, {"body": {"tag": "SubscriptionRequest", "val": value}})
    raise TypeError(f"Not a message to a server: {message!r}")


def _write_to_server(writer: BareWriter, message: ToServerMessage) -> None:
    if isinstance(message, ActionRequest):
        writer.uint(ACTION_REQUEST_TAG)
        writer.uint(message.id)
        writer.str(message.name)
        writer.data(_value_to_bare(normalize_arguments(message.args)))
    elif isinstance(message, SubscriptionRequest):
        writer.uint(SUBSCRIPTION_REQUEST_TAG)
        writer.str(message.event_name)
        writer.bool(message.subscribe)
    else:
        raise TypeError(f"Not a message to a server: {message!r}")


def decode_to_client(encoding: str, frame: bytes | str) -> ToClientMessage:
    """A server's WebSocket message (BARE versions 1–4 accepted, like the JS client)."""
    check_encoding(encoding)
    if encoding == "bare":
        reader = _bare_reader(frame, OLDEST_PROTOCOL_VERSION, "ToClient")
        message = _read_to_client(reader, _version_of(frame))
        reader.finish()
        return message
    tag, value = _message_body(_load_document(encoding, frame, CLIENT), "ToClient")
    return _to_client_from_document(tag, value)


def _read_to_client(reader: BareReader, version: int) -> ToClientMessage:
    tag = reader.uint()
    if tag == INIT_TAG:
        init = Init(actor_id=reader.str(), connection_id=reader.str())
        if version <= CONNECTION_TOKEN_PROTOCOL_VERSION:
            reader.str()  # the v1 connectionToken, unused since v2
        return init
    if tag == ERROR_TAG:
        return _read_error(reader, version, with_action_id=True)
    if tag == ACTION_RESPONSE_TAG:
        identifier = reader.uint()
        return ActionResponse(id=identifier, output=_value_from_bare(reader.data()))
    if tag == EVENT_TAG:
        name = reader.str()
        return Event(name=name, args=normalize_arguments(_value_from_bare(reader.data())))
    raise invalid_request(f"Unknown ToClient union tag {tag}.")


def _to_client_from_document(tag: Any, value: dict[str, Any]) -> ToClientMessage:
    if tag == "Init":
        return Init(
            actor_id=_require_field(value, "actorId", str, "Init"),
            connection_id=_require_field(value, "connectionId", str, "Init"),
        )
    if tag == "Error":
        return _error_from_document(value, with_action_id=True)
    if tag == "ActionResponse":
        return ActionResponse(id=_require_id(value.get("id"), "ActionResponse.id"), output=value.get("output"))
    if tag == "Event":
        return Event(name=_require_field(value, "name", str, "Event"), args=normalize_arguments(value.get("args")))
    raise invalid_request(f"Unknown ToClient message tag {tag!r}.")


# Shared: values, documents, errors ----------------------------------------------------------------------------

def normalize_arguments(value: Any) -> list[Any]:
    """Arguments as a list: None is no arguments, a tuple a list, any other non-list value one argument."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


def _encode_single_field(encoding: str, name: str, value: Any, role: _Role) -> bytes:
    """A one-field struct: ``{name: value}`` in json/cbor, ``HttpAction{Request,Response}`` in bare."""
    check_encoding(encoding)
    if encoding == "bare":
        writer = _bare_writer()
        writer.data(_value_to_bare(value))
        return writer.to_bytes()
    return _dump_document(encoding, {name: _document_value(encoding, value, role)})


def _decode_single_field(encoding: str, body: bytes, name: str, role: _Role) -> Any:
    check_encoding(encoding)
    if encoding == "bare":
        reader = _bare_reader(body, OLDEST_PROTOCOL_VERSION, "HTTP action message")
        value = _value_from_bare(reader.data())
        reader.finish()
        return value
    return _require_map(_load_document(encoding, body, role), "HTTP action message").get(name)


def _error_document(encoding: str, message: ErrorMessage, with_action_id: bool) -> dict[str, Any]:
    """JSON/CBOR error fields; ``actionId`` (WebSocket only) is always present, null when unset."""
    document: dict[str, Any] = {"group": message.group, "code": message.code, "message": message.message}
    if with_action_id:
        document["actionId"] = None if message.action_id is None else _document_id(encoding, message.action_id)
    if message.metadata is not None:
        document["metadata"] = _document_value(encoding, message.metadata, SERVER)
    if message.actor is not None:
        document["actor"] = _document_value(encoding, _actor_specifier(message.actor), SERVER)
    return document


def _error_from_document(document: dict[str, Any], with_action_id: bool) -> ErrorMessage:
    action_id = document.get("actionId") if with_action_id else None
    actor = document.get("actor")
    return ErrorMessage(
        group=_require_field(document, "group", str, "Error"),
        code=_require_field(document, "code", str, "Error"),
        message=_require_field(document, "message", str, "Error"),
        metadata=document.get("metadata"),
        action_id=None if action_id is None else _require_id(action_id, "Error.actionId"),
        actor=None if actor is None else _actor_from_document(actor),
    )


def _write_error(writer: BareWriter, message: ErrorMessage, with_action_id: bool) -> None:
    writer.str(message.group)
    writer.str(message.code)
    writer.str(message.message)
    writer.optional(None if message.metadata is None else _value_to_bare(message.metadata), writer.data)
    if with_action_id:
        writer.optional(message.action_id, writer.uint)
    actor = None if message.actor is None else _actor_specifier(message.actor)
    writer.optional(actor, lambda specifier: _write_actor_specifier(writer, specifier))


def _read_error(reader: BareReader, version: int, with_action_id: bool) -> ErrorMessage:
    group, code, text = reader.str(), reader.str(), reader.str()
    metadata = reader.optional(reader.data)
    action_id = reader.optional(reader.uint) if with_action_id else None
    actor = None
    if version >= ACTOR_SPECIFIER_PROTOCOL_VERSION:
        actor = reader.optional(lambda: _read_actor_specifier(reader))
    return ErrorMessage(
        group=group,
        code=code,
        message=text,
        metadata=None if metadata is None else _value_from_bare(metadata),
        action_id=action_id,
        actor=actor,
    )


def _actor_specifier(actor: dict[str, Any]) -> dict[str, Any]:
    """``{actorId, generation, key?}`` with a list key serialized to the engine's key string."""
    specifier: dict[str, Any] = {"actorId": actor["actorId"], "generation": actor["generation"]}
    key = actor.get("key")
    if key is not None:
        specifier["key"] = key if isinstance(key, str) else serialize_key(list(key))
    return specifier


def _write_actor_specifier(writer: BareWriter, specifier: dict[str, Any]) -> None:
    writer.str(specifier["actorId"])
    writer.uint(specifier["generation"])
    writer.optional(specifier.get("key"), writer.str)


def _read_actor_specifier(reader: BareReader) -> dict[str, Any]:
    specifier: dict[str, Any] = {"actorId": reader.str(), "generation": reader.uint()}
    key = reader.optional(reader.str)
    if key is not None:
        specifier["key"] = key
    return specifier


def _actor_from_document(value: Any) -> dict[str, Any]:
    document = _require_map(value, "actor specifier")
    specifier: dict[str, Any] = {
        "actorId": _require_field(document, "actorId", str, "actor specifier"),
        "generation": _require_id(document.get("generation"), "actor specifier generation"),
    }
    key = _optional_field(document, "key", str, "actor specifier")
    if key is not None:
        specifier["key"] = key
    return specifier


# Documents (json, cbor) ----------------------------------------------------------------------------------------

def _document_value(encoding: str, value: Any, role: _Role) -> Any:
    """A user value placed in a json/cbor document: wrapped for json, ``$``-escaped for cbor from the server."""
    if encoding == "json":
        return to_json_compat(value)
    return escape_dollar_arrays(value) if role.escape_outgoing else value


def _document_id(encoding: str, identifier: int) -> Any:
    """A BigInt-shaped id: ``["$BigInt", "n"]`` in json, an 8-byte-argument integer in cbor."""
    return [BIGINT_TAG, str(identifier)] if encoding == "json" else Uint64(identifier)


def _dump_document(encoding: str, document: Any) -> bytes:
    return _json_text(document).encode("ascii") if encoding == "json" else encode_wire(document)


def _dump_frame(encoding: str, document: Any) -> bytes | str:
    return _json_text(document) if encoding == "json" else encode_wire(document)


def _json_text(document: Any) -> str:
    """Compact JSON; like ``JSON.stringify``, NaN and infinities become null."""
    try:
        return json.dumps(document, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return _dump_json(_replace_non_finite(document))
    except TypeError as error:
        raise RivetError("encoding", "invalid", f"Value cannot be encoded as JSON: {error}") from error


def _dump_json(document: Any) -> str:
    """The second try, once non-finite values are null: what still fails (a NaN map key) cannot be sent."""
    try:
        return json.dumps(document, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise RivetError("encoding", "invalid", f"Value cannot be encoded as JSON: {error}") from error


def _replace_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_replace_non_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _replace_non_finite(item) for key, item in value.items()}
    return value


def _load_document(encoding: str, body: bytes | str, role: _Role) -> Any:
    """Parse a json/cbor body or frame (depth-limited, see :mod:`rivetgreen.encoding.untrusted`); json is always
    revived, cbor only for a client."""
    if encoding == "json":
        return from_json_compat(parse_json(body, "The message"))
    value = decode_wire(_binary(body))
    return from_json_compat(value) if role.revive_incoming else value


def _binary(frame: Any) -> bytes | bytearray | memoryview:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return frame
    raise invalid_request(f"Expected binary data, got {type(frame).__name__} (a text frame?).")


def _message_body(document: Any, what: str) -> tuple[Any, dict[str, Any]]:
    """``(tag, val)`` of a ``{"body": {"tag": ..., "val": {...}}}`` envelope."""
    body = _require_map(_require_map(document, what).get("body"), f"{what}.body")
    return body.get("tag"), _require_map(body.get("val"), f"{what}.body.val")


def _require_map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_request(f"The {what} must be a map, not {type(value).__name__}.")
    return value


def _require_field(document: dict[str, Any], name: str, expected: type, what: str) -> Any:
    value = _optional_field(document, name, expected, what)
    if value is None:
        raise invalid_request(f"The {what} is missing the field {name!r}.")
    return value


def _optional_field(document: dict[str, Any], name: str, expected: type, what: str) -> Any:
    value = document.get(name)
    if value is None or isinstance(value, expected):
        return value
    raise invalid_request(f"The field {name!r} of the {what} must be a {expected.__name__}, not {value!r}.")


def _require_id(value: Any, what: str) -> int:
    """An unsigned 64-bit integer; an integral float (a JSON number like ``3.0``) is accepted."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < UINT64_LIMIT:
        raise invalid_request(f"The {what} must be an unsigned integer, not {value!r}.")
    return value


def _optional_milliseconds(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < UINT64_LIMIT:
        raise invalid_request(f"The queue send timeout must be a non-negative number of milliseconds, not {value!r}.")
    return int(value)


# BARE ----------------------------------------------------------------------------------------------------------

def _bare_writer() -> BareWriter:
    writer = BareWriter()
    writer.u16(PROTOCOL_VERSION)
    return writer


def _bare_reader(body: Any, oldest_version: int, what: str) -> BareReader:
    """A reader positioned after the version prefix, which must lie in ``oldest_version`` .. 4."""
    version = _version_of(body)
    if not oldest_version <= version <= PROTOCOL_VERSION:
        raise invalid_request(
            f"Unsupported client protocol version {version} for {what}; "
            f"versions {oldest_version} to {PROTOCOL_VERSION} are accepted."
        )
    reader = BareReader(_binary(body))
    reader.u16()
    return reader


def _version_of(body: Any) -> int:
    return BareReader(_binary(body)).u16()


def _value_to_bare(value: Any) -> bytes:
    """A ``data`` field's content: CBOR of the JSON-compat form, as the JS client writes it."""
    return encode_wire(to_json_compat(value))


def _value_from_bare(data: bytes) -> Any:
    return from_json_compat(decode_wire(data))

