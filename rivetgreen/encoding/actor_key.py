"""Actor keys: validation and the engine's key string form (core.md §7.1, client-protocol.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rivetgreen.errors import RivetError

MAX_SEGMENT_BYTES = 128
MAX_KEY_BYTES = 1024
HEADER_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "%")


def invalid_key(message: str) -> RivetError:
    return RivetError("actor", "invalid_key", message)


def validate_key(key: Any) -> list[str]:
    """A key as a list of strings; a single string is a one-segment key. Anything else is ``actor/invalid_key``."""
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, (list, tuple)):
        raise invalid_key(f"An actor key must be a list of strings, not {type(key).__name__}.")
    total = 0
    for index, part in enumerate(key):
        if not isinstance(part, str):
            raise invalid_key(f"Key segment {index} must be a string, not {type(part).__name__} ({part!r}).")
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError as error:
            raise invalid_key(f"Key segment {index} is not valid Unicode (a lone surrogate).") from error
        if size > MAX_SEGMENT_BYTES:
            raise invalid_key(f"Key segment {index} is {size} bytes; the limit is {MAX_SEGMENT_BYTES}.")
        total += size
    if total > MAX_KEY_BYTES:
        raise invalid_key(f"The key is {total} bytes; the limit is {MAX_KEY_BYTES}.")
    return list(key)


def serialize_key(key: list[str]) -> str:
    """``["a", "b/c"]`` → ``"a/b\\/c"``; the empty key is ``"/"``; an empty segment is ``\\0``."""
    if not key:
        return "/"
    return "/".join(_escape(part) for part in key)


def _escape(part: str) -> str:
    if part == "":
        return "\\0"
    return part.replace("\\", "\\\\").replace("/", "\\/")


def key_header(key: list[str]) -> str:
    """The serialized key as an HTTP header value (``x-rivet-actor-key``): UTF-8 percent-encoded wherever a header
    cannot carry the character as is (anything but visible ASCII) and for ``%`` itself, so ASCII keys read as
    before and ``decodeURIComponent`` (or ``urllib.parse.unquote``) returns the serialized key of any key."""
    return quote(serialize_key(key), safe=HEADER_SAFE)


def parse_key(text: str) -> list[str]:
    """The inverse of :func:`serialize_key`."""
    if text in ("", "/"):
        return []
    parts: list[str] = []
    current: list[str] = []
    escaped_zero = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following == "0" and not current:
                escaped_zero = True
            else:
                current.append(following)
            index += 2
            continue
        if char == "/":
            parts.append("" if escaped_zero else "".join(current))
            current, escaped_zero = [], False
        else:
            current.append(char)
        index += 1
    parts.append("" if escaped_zero else "".join(current))
    return parts
