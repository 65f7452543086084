"""The inspector's database tab: the user's tables, their columns and rows (core.md §8.2 ``/inspector/database``).

Only the user's tables are visible: the runtime's ``_rivet_*`` tables (and SQLite's own) are neither listed nor
readable. Statements run on the actor's connection, offloaded to the threadpool like ``c.db``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rivetgreen import errors
from rivetgreen.errors import RivetError
from rivetgreen.inspector.snapshot import jsonable
from rivetgreen.storage.schema import RESERVED_PREFIX

if TYPE_CHECKING:
    from rivetgreen.actor.task import ActorTask

MAX_ROWS = 500
DEFAULT_ROWS = 100

_USER_TABLES = (
    "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND substr(name, 1, ?) != ? ORDER BY name"
)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def user_tables(task: ActorTask) -> list[dict[str, Any]]:
    """``[{name, type}]`` of the user's tables and views."""
    return task.store.db.query(_USER_TABLES, (len(RESERVED_PREFIX), RESERVED_PREFIX), offload=True)


def schema(task: ActorTask) -> dict[str, Any]:
    """``{tables: [{table: {schema, name, type}, columns, foreignKeys, records}]}`` as the reference reports it."""
    db = task.store.db
    tables = []
    for table in user_tables(task):
        quoted = quote_identifier(table["name"])
        tables.append({
            "table": {"schema": "main", "name": table["name"], "type": table["type"]},
            "columns": jsonable(db.query(f"PRAGMA table_info({quoted})", offload=True)),
            "foreignKeys": jsonable(db.query(f"PRAGMA foreign_key_list({quoted})", offload=True)),
            "records": db.query(f"SELECT COUNT(*) AS count FROM {quoted}", offload=True)[0]["count"],
        })
    return {"tables": tables}


def rows(task: ActorTask, table: str, limit: int = DEFAULT_ROWS, offset: int = 0) -> list[dict[str, Any]]:
    """Rows of one user table (``limit`` capped at 500). Runtime tables are refused (``sqlite/reserved_table``),
    unknown ones are ``actor/invalid_request``."""
    if table.lower().startswith(RESERVED_PREFIX):
        raise RivetError("sqlite", "reserved_table", "Tables prefixed with _rivet_ are reserved for the runtime.",
                         public=True)
    if table not in {row["name"] for row in user_tables(task)}:
        raise errors.invalid_request(f"Table {table!r} does not exist.")
    found = task.store.db.query(
        f"SELECT * FROM {quote_identifier(table)} LIMIT ? OFFSET ?", (min(max(limit, 0), MAX_ROWS), max(offset, 0)),
        offload=True,
    )
    return jsonable(found)


def execute(task: ActorTask, sql: Any, args: Any, properties: Any) -> list[dict[str, Any]]:
    """Run one statement of the inspector's SQL console through ``c.db`` (so ``_rivet_*`` stays out of reach)."""
    if not isinstance(sql, str) or not sql.strip():
        raise errors.invalid_request("Invalid inspector request sql: must be non-empty")
    if args and properties is not None:
        raise errors.invalid_request("Invalid inspector request parameters: use either args or properties, not both")
    params: Any = properties if properties is not None else (args or ())
    if not isinstance(params, (list, dict)) and params != ():
        raise errors.invalid_request("Invalid inspector request parameters: args must be a list")
    return jsonable(task.ctx.db.query(sql, params))
