"""CBOR for user values: state, input, action arguments and outputs, schedule arguments, event arguments."""

from __future__ import annotations

from typing import Any

import cbor2

from rivetgreen.errors import RivetError

# The value types that survive a round trip through every client encoding (json, cbor, bare).
SCALARS = (type(None), bool, int, float, str, bytes)


def encode(value: Any) -> bytes:
    """Encode a user value; anything but plain CBOR values (see :func:`check_value`) raises ``encoding/invalid``."""
    bad = check_value(value)
    if bad is not None:
        raise RivetError("encoding", "invalid", f"Value at {bad} is not a plain CBOR value (None, bool, int, float, "
                         "str, bytes, list, dict).", {"path": bad})
    try:
        return cbor2.dumps(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as error:
        raise RivetError("encoding", "invalid", f"Value cannot be encoded as CBOR: {error}") from error


def decode(data: bytes) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as error:
        raise RivetError("encoding", "invalid", f"Bytes are not valid CBOR: {error}") from error


def check_value(value: Any, path: str = "") -> str | None:
    """The path of the first part of ``value`` that is not a plain CBOR value (None when all is fine)."""
    if isinstance(value, SCALARS):
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            bad = check_value(item, f"{path}[{index}]")
            if bad is not None:
                return bad
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                return f"{path}[{key!r}]"
            bad = check_value(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
            if bad is not None:
                return bad
        return None
    return path or "."
