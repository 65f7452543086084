"""The engine-shaped REST API the official clients use to find actors (client-protocol.md §1.2, §2).

``GET /metadata``, ``GET /actors``, ``PUT /actors`` (get or create), ``POST /actors`` (create) and
``DELETE /actors/{id}``, with the Rivet Engine's JSON shapes and error statuses.
"""

from __future__ import annotations

from typing import Any

from rivetgreen import __version__
from rivetgreen.encoding.actor_key import parse_key, serialize_key, validate_key
from rivetgreen.encoding.cbor import encode
from rivetgreen.encoding.untrusted import parse_json
from rivetgreen.engine.directory import ActorRecord
from rivetgreen.engine.local import LocalEngine
from rivetgreen.errors import RivetError
from rivetgreen.server.gateway import decode_input

NAMESPACE = "default"


def engine_status(error: RivetError) -> int:
    """The engine's mapping: not found 404, other RivetErrors 400, internal errors 500 (an error that carries its
    own status, such as a storage fault's 503, keeps it)."""
    if error.status is not None:
        return error.status
    if error.code == "not_found":
        return 404
    if error.code == "unauthorized":
        return 401
    if error.group == "core":
        return 500
    return 400


def metadata(engine: LocalEngine) -> dict[str, Any]:
    return {
        "runtime": "rivetkit",
        "version": __version__,
        "envoy": {"kind": {"normal": {}}, "version": 1},
        "envoyProtocolVersion": 1,
        "actorNames": {name: {"metadata": {}} for name in engine.definitions},
    }


def actor_json(record: ActorRecord) -> dict[str, Any]:
    """An actor in the engine's JSON shape (the clients read ``actor_id``, ``name``, ``key`` and timestamps)."""
    return {
        "actor_id": record.actor_id,
        "name": record.name,
        "key": serialize_key(record.key),
        "namespace_id": NAMESPACE,
        "datacenter": "local",
        "runner_name_selector": "default",
        "crash_policy": "sleep",
        "create_ts": record.created_at,
        "start_ts": record.created_at,
        "connectable_ts": record.created_at,
        "pending_allocation_ts": None,
        "sleep_ts": None,
        "reschedule_ts": None,
        "destroy_ts": None,
        "error": None,
    }


def list_actors(engine: LocalEngine, name: str | None, key: str | None, actor_ids: str | None) -> dict[str, Any]:
    if actor_ids:
        records = [engine.directory.get(actor_id) for actor_id in actor_ids.split(",") if actor_id]
        found = [r for r in records if r is not None and (name is None or r.name == name)]
    elif name is not None and key is not None:
        record = engine.directory.find(name, parse_key(key))
        found = [] if record is None else [record]
    elif name is not None:
        found = engine.directory.list(name)
    else:
        raise RivetError("api", "invalid_request", "Give name (and key) or actor_ids.")
    return {"actors": [actor_json(record) for record in found], "pagination": {"cursor": None}}


def _creation(body: bytes) -> tuple[str, list[str], bytes | None]:
    """Name, key and encoded input of a ``PUT``/``POST /actors`` JSON body; anything malformed is a 400."""
    document = parse_json(body)
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        raise RivetError("api", "invalid_request", "The body must be a JSON object with a name.")
    key_text = document.get("key")
    if key_text is not None and not isinstance(key_text, str):
        raise RivetError("api", "invalid_request", "key must be the serialized key string.")
    key = validate_key(parse_key(key_text or ""))
    raw_input = document.get("input")
    create_input = None if raw_input is None else encode(decode_input(raw_input, urlsafe=False))
    return document["name"], key, create_input


def get_or_create_actor(engine: LocalEngine, body: bytes) -> dict[str, Any]:
    name, key, create_input = _creation(body)
    record, created = engine.get_or_create(name, key, create_input)
    return {"actor": actor_json(record), "created": created}


def create_actor(engine: LocalEngine, body: bytes) -> dict[str, Any]:
    name, key, create_input = _creation(body)
    return {"actor": actor_json(engine.create(name, key, create_input))}


def destroy_actor(engine: LocalEngine, actor_id: str) -> dict[str, Any]:
    engine.lookup(actor_id)
    engine.destroy(actor_id)
    return {}

