"""Actors the official-client scenarios talk to."""

from __future__ import annotations

from rivetgreen import Response, UserError, actor

counter = actor("counter")


@counter.create_state
def create_counter(c, input):
    return {"count": (input or {}).get("start", 0)}


@counter.action
def increment(c, amount=1):
    c.state["count"] += amount
    c.broadcast("newCount", c.state["count"])
    return c.state["count"]


@counter.action("getCount")
def get_count(c):
    return c.state["count"]


@counter.action
def echo(c, *args):
    return list(args)


@counter.action
def describe(c, *args):
    return [type(arg).__name__ for arg in args]


@counter.action
def fail(c, message, code, metadata):
    raise UserError(message, code=code, metadata=metadata)


@counter.action
def crash(c):
    raise RuntimeError("secret internal detail")


@counter.action("kickMe")
def kick_me(c):
    c.conn.disconnect("kicked")


chat_room = actor("chatRoom", state={"messages": []})


@chat_room.on_before_connect
def check_user(c, params):
    if params is not None and not (isinstance(params, dict) and params.get("user")):
        raise UserError("A user name is required.", code="missing_user")


@chat_room.create_conn_state
def conn_state(c, params):
    return {"user": (params or {}).get("user")}


@chat_room.action
def post(c, text):
    message = {"user": c.conn.state["user"], "text": text}
    c.state["messages"].append(message)
    c.broadcast("message", message)
    return len(c.state["messages"])


@chat_room.action
def whoami(c):
    return c.conn.state["user"]


@chat_room.action("whoamiHttp")
def whoami_http(c):
    return c.conn.params


worker = actor("worker", state={"processed": []})


@worker.run
def consume(c):
    for message in c.queue.iter("jobs", completable=True):
        c.state["processed"].append(message.body["task"])
        message.complete({"done": message.body["task"]})


@worker.action
def processed(c):
    return c.state["processed"]


raw_server = actor("rawServer")


@raw_server.on_request
def on_request(c, request):
    if request.path != "/hello/world":
        return Response("not here", status=404)
    body = {"method": request.method, "path": request.path, "query": request.query, "body": request.text,
            "custom": request.headers.get("x-custom")}
    return Response(__import__("json").dumps(body), headers={"content-type": "application/json",
                                                             "x-served-by": "rivetgreen"})


@raw_server.on_websocket
def on_websocket(c, ws, request):
    while (message := ws.receive()) is not None:
        ws.send(f"echo:{message}" if isinstance(message, str) else message)


ACTORS = [counter, chat_room, worker, raw_server]
