"""The demo actors: a counter with an event, a chat room with connection params and per-connection state."""

from __future__ import annotations

from typing import Any

from rivetgreen import UserError, actor

counter = actor("counter", state={"count": 0})


@counter.action
def increment(c, amount: int = 1) -> int:
    """Add ``amount`` and tell every subscriber the new count."""
    c.state["count"] += amount
    c.broadcast("newCount", c.state["count"])
    return c.state["count"]


@counter.action("getCount")
def get_count(c) -> int:
    return c.state["count"]


@counter.action
def reset_later(c, seconds: float) -> str:
    """Schedule a reset; it survives the actor sleeping in between."""
    return c.schedule.after(seconds, "reset")


@counter.action
def reset(c) -> int:
    c.state["count"] = 0
    c.broadcast("newCount", 0)
    return 0


chat_room = actor("chatRoom", state={"messages": []}, options={"sleep_timeout": 60.0})


@chat_room.on_before_connect
def check_user(c, params: Any) -> None:
    if not isinstance(params, dict) or not params.get("user"):
        raise UserError("Connect with params {'user': <name>}.", code="missing_user")


@chat_room.create_conn_state
def conn_state(c, params: dict) -> dict:
    return {"user": params["user"], "sent": 0}


@chat_room.action
def send(c, text: str) -> dict:
    """Post a message as the connected user."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("A message needs some text.", code="empty_message")
    c.conn.state["sent"] += 1
    message = {"user": c.conn.state["user"], "text": text}
    c.state["messages"].append(message)
    del c.state["messages"][:-100]  # keep the last 100
    c.broadcast("message", message)
    return message


@chat_room.action
def history(c) -> list:
    return c.state["messages"]


ACTORS = [counter, chat_room]
