"""Actor definitions: what users declare with :func:`actor` and its decorators."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, TypeVar, overload

from rivetgreen.actor.config import ActorOptions
from rivetgreen.encoding.cbor import check_value

if TYPE_CHECKING:
    from rivetgreen.actor.connection import Conn
    from rivetgreen.actor.context import ActorContext
    from rivetgreen.http import Request

MAX_NAME_LENGTH = 64

#: Lifecycle hooks a definition may register, each with a decorator of the same name (core.md §4).
HOOKS = (
    "create_state", "on_migrate", "on_create", "create_vars", "on_wake", "on_sleep", "on_destroy",
    "on_state_change", "on_before_connect", "create_conn_state", "on_connect", "on_disconnect",
    "on_before_action_response", "on_request", "on_websocket", "run", "can_subscribe", "can_publish",
)

_UNSET: Any = object()

# The decorators return the function they were given, typed as it was (as temporalio's do): each hook's type
# variable is bound to the signature the runtime calls it with. ``object`` returns: the result is ignored.
ActionFunction = TypeVar("ActionFunction", bound="Callable[Concatenate[ActorContext, ...], Any]")
ContextHook = TypeVar("ContextHook", bound="Callable[[ActorContext], object]")
ValueHook = TypeVar("ValueHook", bound="Callable[[ActorContext, Any], object]")
MigrateHook = TypeVar("MigrateHook", bound="Callable[[ActorContext, bool], object]")
ConnHook = TypeVar("ConnHook", bound="Callable[[ActorContext, Conn], object]")
ActionResponseHook = TypeVar("ActionResponseHook", bound="Callable[[ActorContext, str, list[Any], Any], Any]")
RequestHook = TypeVar("RequestHook", bound="Callable[[ActorContext, Request], object]")
# The socket is the registry's RawSocket (send, receive, close, closed); the actor layer cannot name it.
WebSocketHook = TypeVar("WebSocketHook", bound="Callable[[ActorContext, Any, Request], object]")
SubscribeGate = TypeVar("SubscribeGate", bound="Callable[[ActorContext, Conn, str], bool]")
PublishGate = TypeVar("PublishGate", bound="Callable[[ActorContext, str], bool]")
HookFunction = TypeVar("HookFunction", bound="Callable[..., Any]")  # any of the above, as registered


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

    @overload
    def action(self, function_or_name: ActionFunction) -> ActionFunction: ...

    @overload
    def action(self, function_or_name: str | None = None) -> Callable[[ActionFunction], ActionFunction]: ...

    def action(
        self, function_or_name: ActionFunction | str | None = None
    ) -> ActionFunction | Callable[[ActionFunction], ActionFunction]:
        """Register an action: ``@definition.action`` (wire name = function name) or ``@definition.action("name")``."""
        if callable(function_or_name):
            return self._add_action(function_or_name.__name__, function_or_name)
        wire_name = function_or_name

        def register(function: ActionFunction) -> ActionFunction:
            return self._add_action(wire_name or function.__name__, function)

        return register

    def _add_action(self, name: str, function: ActionFunction) -> ActionFunction:
        if name in self.actions:
            raise ValueError(f"actor {self.name!r} already has an action named {name!r}")
        self.actions[name] = function
        return function

    # hook decorators (core.md §4): each registers the hook of its name and returns the function unchanged ----
    def create_state(self, function: ValueHook) -> ValueHook:
        """``create_state(c, input)``: the initial state of a new actor (instead of static ``state=``)."""
        return self._set_hook("create_state", function)

    def on_migrate(self, function: MigrateHook) -> MigrateHook:
        """``on_migrate(c, is_new)``: runs first at every start, before the state is installed."""
        return self._set_hook("on_migrate", function)

    def on_create(self, function: ValueHook) -> ValueHook:
        """``on_create(c, input)``: runs once, when the actor is created."""
        return self._set_hook("on_create", function)

    def create_vars(self, function: ContextHook) -> ContextHook:
        """``create_vars(c)``: the ephemeral ``c.vars`` of each start."""
        return self._set_hook("create_vars", function)

    def on_wake(self, function: ContextHook) -> ContextHook:
        """``on_wake(c)``: runs at every start, after the state and vars are ready."""
        return self._set_hook("on_wake", function)

    def on_sleep(self, function: ContextHook) -> ContextHook:
        """``on_sleep(c)``: runs when the actor goes to sleep."""
        return self._set_hook("on_sleep", function)

    def on_destroy(self, function: ContextHook) -> ContextHook:
        """``on_destroy(c)``: runs when the actor is destroyed."""
        return self._set_hook("on_destroy", function)

    def on_state_change(self, function: ValueHook) -> ValueHook:
        """``on_state_change(c, state)``: runs after changes to the state (coalesced)."""
        return self._set_hook("on_state_change", function)

    def on_before_connect(self, function: ValueHook) -> ValueHook:
        """``on_before_connect(c, params)``: raise to refuse a connection."""
        return self._set_hook("on_before_connect", function)

    def create_conn_state(self, function: ValueHook) -> ValueHook:
        """``create_conn_state(c, params)``: a new connection's state."""
        return self._set_hook("create_conn_state", function)

    def on_connect(self, function: ConnHook) -> ConnHook:
        """``on_connect(c, conn)``: a connection was opened."""
        return self._set_hook("on_connect", function)

    def on_disconnect(self, function: ConnHook) -> ConnHook:
        """``on_disconnect(c, conn)``: a connection was closed."""
        return self._set_hook("on_disconnect", function)

    def on_before_action_response(self, function: ActionResponseHook) -> ActionResponseHook:
        """``on_before_action_response(c, name, args, output)``: returns the output actually sent."""
        return self._set_hook("on_before_action_response", function)

    def on_request(self, function: RequestHook) -> RequestHook:
        """``on_request(c, request)``: raw HTTP; returns a Response, str, bytes, dict/list (JSON) or a tuple."""
        return self._set_hook("on_request", function)

    def on_websocket(self, function: WebSocketHook) -> WebSocketHook:
        """``on_websocket(c, ws, request)``: a raw WebSocket; the socket closes when the function returns."""
        return self._set_hook("on_websocket", function)

    def run(self, function: ContextHook) -> ContextHook:
        """``run(c)``: a long-running handler started after ``on_wake``; stop when ``c.aborted``."""
        return self._set_hook("run", function)

    def can_subscribe(self, function: SubscribeGate) -> SubscribeGate:
        """``can_subscribe(c, conn, event_name)``: only ``True`` lets the connection subscribe."""
        return self._set_hook("can_subscribe", function)

    def can_publish(self, function: PublishGate) -> PublishGate:
        """``can_publish(c, queue_name)``: only ``True`` lets an HTTP client send to the queue."""
        return self._set_hook("can_publish", function)

    def _set_hook(self, hook: str, function: HookFunction) -> HookFunction:
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
