"""Limits on values that come from outside (client messages, headers, request bodies) and that storage accepts.

Every decoder refuses, with ``actor/invalid_request``, a message whose arrays and maps nest deeper than
:data:`MAX_NESTING` levels (the message's own envelope counts), an integer of more than :data:`MAX_INTEGER_BITS`
bits, a map key that is not a string or an integer, and a string that is not valid Unicode (a lone surrogate).
Storage (:func:`rivetgreen.encoding.cbor.check_value`) accepts exactly these values, so whatever a client can send
can be stored, and whatever is stored can be sent back in every encoding. Encoders allow
:data:`MAX_ENCODED_NESTING` levels: a stored value of the full depth plus the envelope of the message carrying it.
"""

from __future__ import annotations

import json
from typing import Any

from rivetgreen.errors import RivetError, invalid_request

MAX_NESTING = 128
MAX_ENCODED_NESTING = MAX_NESTING + 8
MAX_INTEGER_BITS = 4096  # |n| < 2**4096: 1,234 decimal digits, well inside Python's int/str conversion limit
MAX_INTEGER_DIGITS = len(str(1 << MAX_INTEGER_BITS))


def integer_fits(value: int) -> bool:
    """Whether ``value`` is small enough for every encoding (``$BigInt`` text, CBOR bignum, storage)."""
    return value.bit_length() <= MAX_INTEGER_BITS


def check_encodable_integer(value: int) -> None:
    """Raise ``encoding/invalid`` for an integer no encoding may carry (an encoder's check)."""
    if not integer_fits(value):
        raise RivetError("encoding", "invalid", f"An integer of more than {MAX_INTEGER_BITS} bits cannot be sent.")


def check_encoded_depth(depth: int) -> None:
    """Raise ``encoding/invalid`` for a container ``depth`` levels deep in a message being written."""
    if depth >= MAX_ENCODED_NESTING:
        raise RivetError("encoding", "invalid", f"The value is nested deeper than {MAX_ENCODED_NESTING} levels.")


def valid_text(value: str) -> bool:
    """Whether ``value`` can be written as UTF-8 (no lone surrogates, which JSON ``\\ud800`` escapes can make)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_json(data: bytes | bytearray | memoryview | str, what: str = "The body") -> Any:
    """Standard JSON from a client, checked against the limits above; anything else is ``actor/invalid_request``."""
    if isinstance(data, memoryview):
        data = bytes(data)
    try:
        document = json.loads(data)
    except RecursionError as error:
        raise invalid_request(f"{what} is nested deeper than {MAX_NESTING} levels.") from error
    except (ValueError, TypeError) as error:  # bad syntax, bad UTF-8, or an integer too long to convert
        raise invalid_request(f"{what} is not valid JSON: {error}") from error
    check_decoded(document, what)
    return document


def check_decoded(document: Any, what: str = "The body") -> None:
    """Raise ``actor/invalid_request`` unless ``document`` (parsed JSON) obeys the limits. Iterative, so any depth
    that the parser returned is measured without recursion."""
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if not valid_text(value):
                raise invalid_request(f"{what} holds a string that is not valid Unicode (a lone surrogate).")
        elif isinstance(value, int) and not isinstance(value, bool):
            if not integer_fits(value):
                raise invalid_request(f"{what} holds an integer of more than {MAX_INTEGER_BITS} bits.")
        elif isinstance(value, (list, dict)):
            if depth >= MAX_NESTING:
                raise invalid_request(f"{what} is nested deeper than {MAX_NESTING} levels.")
            items = value if isinstance(value, list) else [*value.keys(), *value.values()]
            pending.extend((item, depth + 1) for item in items)
