"""Sans-I/O codec for the Rivet Engine's envoy protocol v8 (engine-envoy.md §3), checked byte for byte against the
npm package ``@rivetkit/engine-envoy-protocol@2.3.19`` (``tests/fixtures/envoy``).

On the envoy WebSocket (``/envoys/connect?protocol_version=8``) every binary frame is one BARE ``ToRivet`` (envoy to
engine, :func:`encode_to_rivet`) or ``ToEnvoy`` (engine to envoy, :func:`decode_to_envoy`) with **no** version
prefix: the URL fixes the version. The serverless ``/start`` body embeds it: a u16 little-endian version, then a
``ToEnvoy`` (:func:`encode_serverless_start`). Message classes are in :mod:`rivetgreen.encoding.envoy.messages`.

Decoding malformed bytes (truncated, trailing bytes, unknown tag, impossible length, bad UTF-8) raises
``envoy/malformed_message``; encoding a value out of its type's range raises ``encoding/invalid``, a value of the
wrong type ``TypeError``.
"""

from __future__ import annotations

from typing import Any

from rivetgreen.encoding.bare import BareReader, BareWriter
from rivetgreen.encoding.envoy.messages import ToEnvoy, ToRivet
from rivetgreen.encoding.envoy.schema import TO_ENVOY, TOP_LEVEL
from rivetgreen.errors import RivetError

PROTOCOL_VERSION = 8
VERSION_PREFIX_BYTES = 2


def encode_to_rivet(message: ToRivet) -> bytes:
    """One envoy-to-engine WebSocket frame."""
    return encode("ToRivet", message)


def decode_to_rivet(frame: bytes | bytearray | memoryview) -> ToRivet:
    return decode("ToRivet", frame)


def encode_to_envoy(message: ToEnvoy) -> bytes:
    return encode("ToEnvoy", message)


def decode_to_envoy(frame: bytes | bytearray | memoryview) -> ToEnvoy:
    """One engine-to-envoy WebSocket frame."""
    return decode("ToEnvoy", frame)


def encode_serverless_start(message: ToEnvoy) -> bytes:
    """A serverless ``/start`` body: the protocol version (u16 little-endian), then the ``ToEnvoy``."""
    writer = BareWriter()
    writer.u16(PROTOCOL_VERSION)
    TO_ENVOY.write(writer, message)
    return writer.to_bytes()


def decode_serverless_start(payload: bytes | bytearray | memoryview) -> ToEnvoy:
    """The ``ToEnvoy`` of a serverless ``/start`` body; a version other than 8 is refused, as the Rust envoy does."""
    if len(payload) < VERSION_PREFIX_BYTES:
        raise _malformed("serverless start payload", f"{len(payload)} byte(s) cannot hold the u16 version.")
    version = int.from_bytes(bytes(payload[:VERSION_PREFIX_BYTES]), "little")
    if version != PROTOCOL_VERSION:
        raise RivetError(
            "envoy",
            "unsupported_version",
            f"The serverless start payload is envoy protocol v{version}; this host speaks v{PROTOCOL_VERSION}.",
        )
    return decode("ToEnvoy", payload[VERSION_PREFIX_BYTES:])


def encode(type_name: str, message: Any) -> bytes:
    """``message`` as the top-level schema type ``type_name`` (a key of :data:`~.schema.TOP_LEVEL`)."""
    writer = BareWriter()
    TOP_LEVEL[type_name].write(writer, message)
    return writer.to_bytes()


def decode(type_name: str, data: bytes | bytearray | memoryview) -> Any:
    """The top-level schema type ``type_name`` from exactly ``data``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _malformed(type_name, f"expected binary data, got {type(data).__name__}.")
    reader = BareReader(data)
    try:
        message = TOP_LEVEL[type_name].read(reader)
        reader.finish()
    except RivetError as error:
        raise _malformed(type_name, error.message) from error
    return message


def _malformed(type_name: str, reason: str) -> RivetError:
    message = f"Malformed envoy protocol v{PROTOCOL_VERSION} {type_name}: {reason}"
    return RivetError("envoy", "malformed_message", message)
