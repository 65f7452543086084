"""The envoy protocol v8 codec against fixtures written by the npm package ``@rivetkit/engine-envoy-protocol@2.3.19``
(tests/fixtures/envoy/generate.mjs), generated messages, and hostile bytes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rivetgreen.encoding import envoy
from rivetgreen.encoding.envoy import messages as m
from rivetgreen.encoding.envoy.codecs import (
    Alias,
    EnumOf,
    FixedData,
    ListOf,
    MapOf,
    OptionalOf,
    Primitive,
    Struct,
    Union,
)
from rivetgreen.encoding.envoy.schema import TO_ENVOY, TOP_LEVEL
from rivetgreen.errors import RivetError
from tests.helpers import npm_install

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = ROOT / "tests" / "fixtures" / "envoy"
FIXTURE_FILE = FIXTURE_DIR / "v8.json"
PACKAGE = "@rivetkit/engine-envoy-protocol"
PACKAGE_VERSION = "2.3.19"
PACKAGE_PREFIX = ROOT / ".cache" / "envoy-protocol"

FIXTURES = json.loads(FIXTURE_FILE.read_text())["fixtures"]
FIXTURE_IDS = [fixture["name"] for fixture in FIXTURES]


def top_level_codec(type_name: str) -> Union:
    return TO_ENVOY if type_name == "ServerlessStart" else TOP_LEVEL[type_name]


def decode_fixture(fixture: dict) -> Any:
    data = bytes.fromhex(fixture["hex"])
    if fixture["type"] == "ServerlessStart":
        return envoy.decode_serverless_start(data)
    return envoy.decode(fixture["type"], data)


def encode_fixture(fixture: dict, message: Any) -> bytes:
    if fixture["type"] == "ServerlessStart":
        return envoy.encode_serverless_start(message)
    return envoy.encode(fixture["type"], message)


# The package's JSON representation -> messages, walking the codec table ------------------------------------------


def camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def from_package_value(codec: Any, value: Any) -> Any:
    """The message the npm package's value ``value`` stands for (JSON markers: $bytes, $bigint, $map)."""
    if isinstance(codec, Union):
        variants = {variant.message_class.__name__: variant for variant in codec.variants}
        assert value["tag"] in variants, f"{value['tag']} is not a variant of {codec.name}"
        variant = variants[value["tag"]]
        if isinstance(variant, Struct) and not variant.fields:
            assert value["val"] is None
            return variant.message_class()
        return from_package_value(variant, value["val"])
    if isinstance(codec, Alias):
        return codec.message_class(**{codec.field: from_package_value(codec.inner, value)})
    if isinstance(codec, Struct):
        assert set(value) == {camel_case(name) for name, _ in codec.fields}, codec.message_class.__name__
        return codec.message_class(
            **{name: from_package_value(field, value[camel_case(name)]) for name, field in codec.fields}
        )
    if isinstance(codec, EnumOf):
        return codec.enum_class(value)
    if isinstance(codec, OptionalOf):
        return None if value is None else from_package_value(codec.inner, value)
    if isinstance(codec, ListOf):
        return [from_package_value(codec.element, element) for element in value]
    if isinstance(codec, MapOf):
        return {
            from_package_value(codec.key, key): from_package_value(codec.value, item) for key, item in value["$map"]
        }
    if isinstance(codec, FixedData):
        return bytes.fromhex(value["$bytes"])
    assert isinstance(codec, Primitive)
    if codec.name in ("u64", "i64"):
        return int(value["$bigint"])
    if codec.name == "f64":  # SqliteValueFloat: data[8] in the package
        return struct.unpack("<d", bytes.fromhex(value["$bytes"]))[0]
    if codec.name == "data":
        return bytes.fromhex(value["$bytes"])
    return value


@pytest.mark.parametrize("fixture", FIXTURES, ids=FIXTURE_IDS)
def test_fixture_decodes_to_the_package_value_and_reencodes_byte_for_byte(fixture):
    expected = from_package_value(top_level_codec(fixture["type"]), fixture["value"])
    decoded = decode_fixture(fixture)
    assert decoded == expected
    assert encode_fixture(fixture, expected).hex() == fixture["hex"]


def reachable(codec: Any, seen: set[int] | None = None) -> tuple[set[type], set[Enum]]:
    """Every union variant class and enum member reachable from ``codec``."""
    seen = set() if seen is None else seen
    if id(codec) in seen:
        return set(), set()
    seen.add(id(codec))
    classes: set[type] = set()
    members: set[Enum] = set()
    children: list[Any] = []
    if isinstance(codec, Union):
        classes |= {variant.message_class for variant in codec.variants}
        children = list(codec.variants)
    elif isinstance(codec, Alias):
        children = [codec.inner]
    elif isinstance(codec, Struct):
        children = [field for _, field in codec.fields]
    elif isinstance(codec, EnumOf):
        members |= set(codec.enum_class)
    elif isinstance(codec, OptionalOf):
        children = [codec.inner]
    elif isinstance(codec, ListOf):
        children = [codec.element]
    elif isinstance(codec, MapOf):
        children = [codec.key, codec.value]
    for child in children:
        child_classes, child_members = reachable(child, seen)
        classes |= child_classes
        members |= child_members
    return classes, members


def contained(value: Any) -> tuple[set[type], set[Enum]]:
    """Every message class and enum member inside a decoded message."""
    if isinstance(value, Enum):
        return set(), {value}
    classes: set[type] = set()
    members: set[Enum] = set()
    if hasattr(value, "__dataclass_fields__"):
        classes.add(type(value))
        items: list[Any] = [getattr(value, name) for name in value.__dataclass_fields__]
    elif isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        items = []
    for item in items:
        item_classes, item_members = contained(item)
        classes |= item_classes
        members |= item_members
    return classes, members


def test_fixtures_cover_every_message_type_and_enum_member():
    # Each top-level variant has its own tag per top-level type, so each is covered within its type; nested types
    # are the same codec objects wherever they appear, so covering them in any fixture covers their bytes.
    expected_classes: set[type] = set()
    expected_members: set[Enum] = set()
    classes: set[type] = set()
    members: set[Enum] = set()
    for type_name, codec in TOP_LEVEL.items():
        reachable_classes, reachable_members = reachable(codec)
        expected_classes |= reachable_classes
        expected_members |= reachable_members
        decoded = [decode_fixture(fixture) for fixture in FIXTURES if fixture["type"] == type_name]
        top_level_classes = {variant.message_class for variant in codec.variants}
        assert {cls.__name__ for cls in top_level_classes - {type(message) for message in decoded}} == set()
        for message in decoded:
            message_classes, message_members = contained(message)
            classes |= message_classes
            members |= message_members
    assert {cls.__name__ for cls in expected_classes - classes} == set()
    assert expected_members - members == set()


def test_fixtures_include_edge_values():
    decoded = {fixture["name"]: decode_fixture(fixture) for fixture in FIXTURES}
    assert decoded["ToRivet.kv_list_range"].data.limit == 2**64 - 1
    stopped = decoded["ToRivet.events_all"].events[4]
    assert stopped.checkpoint == m.ActorCheckpoint(actor_id="actor ✓ 日本語 🚀", generation=2**32 - 1, index=2**63 - 1)
    assert stopped.inner.state == m.ActorStateStopped(code=m.StopCode.ERROR, message="actor ✓ 日本語 🚀")
    assert decoded["ToRivet.metadata_empty"] == m.ToRivetMetadata()
    values = decoded["ToRivet.sqlite_execute"].data.params
    assert m.SqliteValueInteger(value=-(2**63)) in values
    assert [value.value for value in values if isinstance(value, m.SqliteValueFloat)] == [3.25, -0.0, float("inf")]
    assert struct.pack("<d", values[4].value) == struct.pack("<d", -0.0)  # the sign of zero survives
    start = decoded["ToEnvoy.commands_start_and_stop"].commands[0].inner
    assert start.hibernating_requests[1] == m.HibernatingRequest(gateway_id=bytes(4), request_id=b"\xff" * 4)
    assert [command.inner.reason for command in decoded["ToEnvoy.commands_start_and_stop"].commands[2:]] == list(
        m.StopActorReason
    )


# Generated messages ----------------------------------------------------------------------------------------------

INTEGER_BITS = {"u16": 16, "u32": 32, "u64": 64}


def strategy(codec: Any) -> st.SearchStrategy:
    """Every message the codec can carry (small collections, no NaN so that equality holds)."""
    if isinstance(codec, Union):
        return st.one_of([strategy(variant) for variant in codec.variants])
    if isinstance(codec, Alias):
        return st.builds(codec.message_class, **{codec.field: strategy(codec.inner)})
    if isinstance(codec, Struct):
        return st.builds(codec.message_class, **{name: strategy(field) for name, field in codec.fields})
    if isinstance(codec, EnumOf):
        return st.sampled_from(list(codec.enum_class))
    if isinstance(codec, OptionalOf):
        return st.none() | strategy(codec.inner)
    if isinstance(codec, ListOf):
        return st.lists(strategy(codec.element), max_size=3)
    if isinstance(codec, MapOf):
        return st.dictionaries(strategy(codec.key), strategy(codec.value), max_size=3)
    if isinstance(codec, FixedData):
        return st.binary(min_size=codec.length, max_size=codec.length)
    if codec.name in INTEGER_BITS:
        return st.integers(0, 2 ** INTEGER_BITS[codec.name] - 1)
    return {
        "i64": st.integers(-(2**63), 2**63 - 1),
        "f64": st.floats(allow_nan=False),
        "bool": st.booleans(),
        "str": st.text(max_size=8),
        "data": st.binary(max_size=8),
    }[codec.name]


@pytest.mark.parametrize("type_name", list(TOP_LEVEL))
def test_generated_messages_round_trip(type_name):
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy(TOP_LEVEL[type_name]))
    def round_trip(message):
        encoded = envoy.encode(type_name, message)
        decoded = envoy.decode(type_name, encoded)
        assert decoded == message
        assert envoy.encode(type_name, decoded) == encoded

    round_trip()


def test_serverless_start_round_trips_with_the_version_prefix():
    message = m.ToEnvoyCommands(commands=[])
    payload = envoy.encode_serverless_start(message)
    assert payload == b"\x08\x00" + envoy.encode_to_envoy(message)
    assert envoy.decode_serverless_start(payload) == message


def test_pong_echoes_a_ping_through_the_public_functions():
    ping = envoy.decode_to_envoy(bytes.fromhex("05" + (1234).to_bytes(8, "little").hex()))
    assert ping == m.ToEnvoyPing(ts=1234)
    assert envoy.encode_to_rivet(m.ToRivetPong(ts=ping.ts)) == b"\x04" + (1234).to_bytes(8, "little")
    assert envoy.decode_to_rivet(envoy.encode_to_rivet(m.ToRivetStopping())) == m.ToRivetStopping()


# Invalid values to encode -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (m.ToEnvoyPing(ts=1), TypeError),  # a ToEnvoy message is not a ToRivet
        (m.ToRivetPong(ts=2**63), RivetError),
        (m.ToRivetAckCommands(last_command_checkpoints=[m.ActorCheckpoint(actor_id="a", generation=-1, index=0)]),
         RivetError),
        (m.ToRivetTunnelMessage(
            message_id=m.MessageId(gateway_id=b"abc", request_id=b"abcd", message_index=0),
            message_kind=m.ToRivetWebSocketOpen(can_hibernate=True)), RivetError),
        (m.ToRivetKvRequest(actor_id="a", request_id=1, data=m.KvListRequest(query=m.KvDropRequest())), TypeError),
        # An Execute where an Exec belongs has every field an Exec has: it must not be sent without its params.
        (m.ToRivetSqliteExecRequest(request_id=1, data=m.SqliteExecuteRequest(
            namespace_id="default", actor_id="a", generation=1, sql="SELECT ?", params=[m.SqliteValueNull()])),
         TypeError),
    ],
    ids=["wrong_direction", "i64_overflow", "negative_u32", "short_gateway_id", "wrong_variant", "wrong_struct"],
)
def test_encoding_an_invalid_message_raises(message, error):
    with pytest.raises(error):
        envoy.encode_to_rivet(message)


# Hostile bytes -----------------------------------------------------------------------------------------------------


def assert_malformed(type_name: str, data: bytes) -> RivetError:
    with pytest.raises(RivetError) as raised:
        envoy.decode(type_name, data)
    assert raised.value.matches("envoy", "malformed_message"), raised.value
    return raised.value


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if f["type"] != "ServerlessStart"], ids=lambda f: f["name"])
def test_every_truncation_and_any_trailing_byte_is_malformed(fixture):
    data = bytes.fromhex(fixture["hex"])
    for length in range(len(data)):
        assert_malformed(fixture["type"], data[:length])
    assert "trailing" in assert_malformed(fixture["type"], data + b"\x00").message


@pytest.mark.parametrize(
    ("type_name", "data", "reason"),
    [
        ("ToRivet", b"\x0f", "Unknown ToRivet tag 15"),
        ("ToEnvoy", b"\x0e", "Unknown ToEnvoy tag 14"),
        ("ToEnvoy", b"\xff" + bytes(8), "Unknown ToEnvoy tag 255"),
        # ToRivetEvents declaring 2**63 events in a 12-byte frame: refused at once, not looped over.
        ("ToRivet", b"\x01" + bytes.fromhex("ffffffffffffffff7f"), "declares"),
        ("ToRivet", b"\x01\x02\x00", "declares"),
        # A KV get whose key claims 2**32 bytes.
        ("ToRivet", b"\x05\x01a" + bytes(4) + b"\x00\x01" + bytes.fromhex("8080808010"), "truncated"),
        ("ToRivet", b"\x01" + b"\xff" * 11, "longer than 64 bits"),
        ("ToRivet", b"\x04" + bytes(7), "truncated"),
        ("ToRivet", b"\x06" + bytes(10) + b"\x05\x02", "bool"),  # WebSocketOpen.canHibernate = 2
        ("ToRivet", b"\x00\x02", "optional"),
        ("ToRivet", b"\x00\x00\x01\x02\xff\xfe", "UTF-8"),
        ("ToRivet", b"\x00\x01\x02\x01a\x00\x01a\x00\x00", "repeats the key"),
        ("ToEnvoy", b"\x01\x01\x01a" + bytes(12) + b"\x01\x07", "Unknown StopActorReason tag 7"),
        ("ToRivet", b"", "truncated"),
    ],
    ids=[
        "unknown_to_rivet_tag", "unknown_to_envoy_tag", "tag_255", "huge_list_count", "list_count_beyond_end",
        "huge_data_length", "overlong_uint", "short_i64", "bool_2", "optional_marker_2", "invalid_utf8",
        "duplicate_map_key", "unknown_enum_tag", "empty",
    ],
)
def test_hostile_bytes_are_malformed(type_name, data, reason):
    assert reason in assert_malformed(type_name, data).message


def test_a_text_frame_is_malformed():
    with pytest.raises(RivetError) as raised:
        envoy.decode_to_envoy("\x05")  # type: ignore[arg-type]
    assert raised.value.matches("envoy", "malformed_message")


def test_a_serverless_start_of_another_version_or_too_short_is_refused():
    body = envoy.encode_to_envoy(m.ToEnvoyPing(ts=1))
    with pytest.raises(RivetError) as raised:
        envoy.decode_serverless_start(b"\x07\x00" + body)
    assert raised.value.matches("envoy", "unsupported_version")
    for payload in (b"", b"\x08"):
        with pytest.raises(RivetError) as raised:
            envoy.decode_serverless_start(payload)
        assert raised.value.matches("envoy", "malformed_message")


MUTATIONS = st.sampled_from(["flip", "insert", "delete", "replace"])


@settings(max_examples=600, deadline=None)
@given(st.sampled_from([f for f in FIXTURES if f["type"] != "ServerlessStart"]), st.data())
def test_mutated_fixtures_decode_or_raise_only_rivet_errors(fixture, data):
    frame = bytearray.fromhex(fixture["hex"])
    for _ in range(data.draw(st.integers(1, 4))):
        mutation = data.draw(MUTATIONS)
        position = data.draw(st.integers(0, len(frame)))
        if mutation == "insert" or not frame:
            frame[position:position] = data.draw(st.binary(min_size=1, max_size=9))
        elif mutation == "delete":
            del frame[min(position, len(frame) - 1)]
        elif mutation == "flip":
            frame[min(position, len(frame) - 1)] ^= 1 << data.draw(st.integers(0, 7))
        else:
            frame[min(position, len(frame) - 1)] = data.draw(st.integers(0, 255))
    try:
        envoy.decode(fixture["type"], bytes(frame))
    except RivetError as error:
        assert error.matches("envoy", "malformed_message")


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(list(TOP_LEVEL)), st.binary(max_size=64))
def test_random_bytes_decode_or_raise_only_rivet_errors(type_name, data):
    try:
        envoy.decode(type_name, data)
    except RivetError as error:
        assert error.matches("envoy", "malformed_message")


# The fixtures are what the npm package writes today ---------------------------------------------------------------


@pytest.fixture(scope="session")
def envoy_protocol_package() -> Path:
    """The install prefix of the npm package (installed on first use into .cache/, never committed)."""
    try:
        npm_install(PACKAGE_PREFIX, PACKAGE, PACKAGE_VERSION)
    except RuntimeError as error:
        pytest.fail(str(error))
    return PACKAGE_PREFIX


def test_regenerated_fixtures_match_the_checked_in_ones(envoy_protocol_package, tmp_path):
    output = tmp_path / "v8.json"
    completed = subprocess.run(
        ["node", str(FIXTURE_DIR / "generate.mjs"), str(output)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "ENVOY_PROTOCOL_DIR": str(envoy_protocol_package)},
    )
    assert completed.returncode == 0, completed.stderr
    assert output.read_text() == FIXTURE_FILE.read_text(), "regenerate with: node tests/fixtures/envoy/generate.mjs"

