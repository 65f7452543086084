"""``python -m app``: a short tour of the demo actors, in process, on the embedded engine."""

from __future__ import annotations

import logging
import os

import gevent

from app.actors import ACTORS
from rivetgreen import RivetError, setup


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    registry = setup(*ACTORS, data_dir=os.environ.get("RIVETGREEN_DATA_DIR", "./.rivetgreen"))
    counter = registry.get_or_create("counter", ["demo"])
    seen: list[int] = []
    conn = counter.connect()
    conn.on("newCount", seen.append)
    print("counter is at", counter.increment(5))
    conn.increment(1)
    gevent.sleep(0.05)
    print("events received:", seen)
    print("after sleep and wake:", registry.sleep(counter.resolve()) or counter.getCount())

    room = registry.get_or_create("chatRoom", ["lobby"])
    alice = room.connect({"user": "alice"})
    alice.on("message", lambda message: print("alice sees", message))
    alice.send("hello from the demo")
    try:
        room.connect({})
    except RivetError as error:
        print("connect without a user is refused:", error)
    gevent.sleep(0.05)
    conn.close()
    alice.close()
    registry.shutdown()
    print("state is in", registry.data_dir)


if __name__ == "__main__":
    main()
