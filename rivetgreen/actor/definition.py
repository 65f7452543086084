"""Actor definitions: what users declare with :func:`actor` and its decorators."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from rivetgreen.actor.config import ActorOptions
from rivetgreen.encoding.cbor import check_value

MAX_NAME_LENGTH = 64

#: Lifecycle hooks a definition may register, each with a decorator of the same name (core.md §4).
HOOKS = (
    "create_state", "on_migrate", "on_create", "create_vars", "on_wake", "on_sleep", "on_destroy",
    "on_state_change", "on_before_connect", "create_conn_state", "on_connect", "on_disconnect",
    "on_before_action_response", "on_request", "on_websocket", "run", "can_subscribe", "can_publish",
)

_UNSET: Any = object()


class ActorDefinition:
    """A named kind of actor: its initial state, actions, hooks and options."""

    def __init__(
        self,
        name: str,
        *,
        state: Any = _UNSET,
        vars: Any = _UNSET,
        conn_state: Any = _UNSET,
        options: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
            raise ValueError(f"actor name must be a string of 1 to {MAX_NAME_LENGTH} characters, not {name!r}")
        for label, value in (("state", state), ("conn_state", conn_state)):
            if value is not _UNSET and (bad := check_value(value)) is not None:
                raise ValueError(f"static {label} of actor {name!r} is not CBOR serializable at {bad}")
        self.name = name
        self.options = ActorOptions.from_mapping(options)
        self.actions: dict[str, Callable[..., Any]] = {}
        self.hooks: dict[str, Callable[..., Any]] = {}
        self._state = state
        self._vars = vars
        self._conn_state = conn_state

    def __repr__(self) -> str:
        return f"<ActorDefinition {self.name!r} actions={sorted(self.actions)}>"

    def action(self, function_or_name: Callable[..., Any] | str | None = None) -> Any:
        """Register an action: ``@definition.action`` (wire name = function name) or ``@definition.action("name")``."""
        if callable(function_or_name):
            return self._add_action(function_or_name.__name__, function_or_name)
        return lambda function: self._add_action(function_or_name or function.__name__, function)

    def _add_action(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if name in self.actions:
            raise ValueError(f"actor {self.name!r} already has an action named {name!r}")
        self.actions[name] = function
        return function

    def _set_hook(self, hook: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if hook in self.hooks:
            raise ValueError(f"actor {self.name!r} already has a {hook} hook")
        if hook == "create_state" and self._state is not _UNSET:
            raise ValueError(f"actor {self.name!r} has static state; it cannot also have create_state")
        self.hooks[hook] = function
        return function

    # derived facts ----------------------------------------------------------------------------------------
    @property
    def has_state(self) -> bool:
        return self._state is not _UNSET or "create_state" in self.hooks

    @property
    def has_static_state(self) -> bool:
        return self._state is not _UNSET

    def static_state(self) -> Any:
        """A fresh deep copy of the static state."""
        return copy.deepcopy(self._state)

    @property
    def has_vars(self) -> bool:
        return self._vars is not _UNSET or "create_vars" in self.hooks

    def static_vars(self) -> Any:
        return None if self._vars is _UNSET else copy.deepcopy(self._vars)

    @property
    def has_conn_state(self) -> bool:
        return self._conn_state is not _UNSET or "create_conn_state" in self.hooks

    def static_conn_state(self) -> Any:
        return None if self._conn_state is _UNSET else copy.deepcopy(self._conn_state)


def _hook_decorator(hook: str) -> Callable[[ActorDefinition, Callable[..., Any]], Callable[..., Any]]:
    def register(self: ActorDefinition, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._set_hook(hook, function)

    register.__name__ = hook
    register.__doc__ = f"Decorator: register the actor's ``{hook}`` hook."
    return register


for _hook in HOOKS:
    setattr(ActorDefinition, _hook, _hook_decorator(_hook))


def actor(
    name: str,
    *,
    state: Any = _UNSET,
    vars: Any = _UNSET,
    conn_state: Any = _UNSET,
    options: dict[str, Any] | None = None,
) -> ActorDefinition:
    """Declare an actor kind. ``state``/``vars``/``conn_state`` are static initial values, deep-copied per use."""
    return ActorDefinition(name, state=state, vars=vars, conn_state=conn_state, options=options)
