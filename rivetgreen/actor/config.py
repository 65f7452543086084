"""Actor options with the reference defaults (core.md §2), in seconds where the reference uses milliseconds."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ActorOptions:
    """Every option of an actor definition. Durations are seconds (floats)."""

    state_save_interval: float = 1.0
    create_state_timeout: float = 5.0
    on_create_timeout: float = 5.0
    create_vars_timeout: float = 5.0
    create_conn_state_timeout: float = 5.0
    on_before_connect_timeout: float = 5.0
    on_connect_timeout: float = 5.0
    on_migrate_timeout: float = 30.0
    on_wake_timeout: float = 30.0
    action_timeout: float = 60.0
    sleep_timeout: float = 30.0
    no_sleep: bool = False
    sleep_grace_period: float = 15.0
    connection_liveness_timeout: float = 2.5
    connection_liveness_interval: float = 5.0
    max_queue_size: int = 1000
    max_schedules: int = 1000
    max_queue_message_size: int = 65_536
    max_incoming_message_size: int = 65_536
    max_outgoing_message_size: int = 1_048_576
    can_hibernate_websocket: bool = False
    database_idle_timeout: float = 10.0
    name: str | None = None
    icon: str | None = None

    @classmethod
    def from_mapping(cls, options: dict[str, Any] | None) -> ActorOptions:
        """Build options from a user dict; unknown names and wrong types are errors at definition time."""
        options = dict(options or {})
        known = {field.name: field for field in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown actor option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for name, value in options.items():
            _check_option(name, value, cls.__dataclass_fields__[name].default)
        return cls(**options)


def _check_option(name: str, value: Any, default: Any) -> None:
    if isinstance(default, bool):
        ok, expected = isinstance(value, bool), "True or False"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool) and value >= 0, "a whole number >= 0"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        expected = "a number of seconds >= 0"
    else:
        ok, expected = value is None or isinstance(value, str), "a string"
    if not ok:
        raise ValueError(f"actor option {name} must be {expected}, not {value!r}")
