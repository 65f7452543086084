"""The demo actors: a counter with an event, a chat room with connection params and per-connection state, an
echo server with raw HTTP and WebSocket handlers, and a worker that consumes a durable queue."""

from __future__ import annotations

import json
from typing import Any

from rivetgreen import Request, Response, UserError, actor

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
def post(c, text: str) -> dict:
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


echo = actor("echo")


@echo.on_request
def on_request(c, request: Request) -> Response:
    """Raw HTTP: ``handle.fetch("/anything")`` gets a description of the request back."""
    body = {"method": request.method, "path": request.path, "query": request.query, "body": request.text}
    return Response(json.dumps(body), headers={"content-type": "application/json"})


@echo.on_websocket
def on_websocket(c, ws, request: Request) -> None:
    """Raw WebSocket: every message comes back, text prefixed with ``echo:``."""
    while (message := ws.receive()) is not None:
        ws.send(f"echo:{message}" if isinstance(message, str) else message)


worker = actor("worker", state={"done": []})


@worker.run
def work(c) -> None:
    """Consume jobs; a job sent with ``wait=True`` gets its result back."""
    for job in c.queue.iter("jobs", completable=True):
        result = {"job": job.body, "length": len(json.dumps(job.body))}
        c.state["done"].append(result)
        del c.state["done"][:-20]
        job.complete(result)


@worker.action
def done(c) -> list:
    return c.state["done"]


ACTORS = [counter, chat_room, echo, worker]
