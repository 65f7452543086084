"""Queue behaviour seen through the network client: durable across a host restart, redelivery of completable
messages after sleep, and ``wait`` sends that time out."""

from __future__ import annotations

import uuid

import pytest

import rivetgreen
from rivetgreen import actor
from rivetgreen.client import Client
from rivetgreen.server.serve import make_server

mailbox = actor("mailbox")


@mailbox.action
def take(c):
    message = c.queue.next("jobs", timeout=0)
    return None if message is None else message.body


@mailbox.action
def peek_completable(c):
    message = c.queue.next("jobs", timeout=0, completable=True)
    return None if message is None else message.body


class Host:
    """A registry served on a free port; ``restart()`` stops it and serves the same data directory again."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self._start()

    def _start(self) -> None:
        self.registry = rivetgreen.setup(mailbox, data_dir=self.data_dir)
        self.server = make_server(self.registry.flask_app(), "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.client = Client(self.url, timeout=10)

    def stop(self) -> None:
        self.client.close()
        self.server.stop(timeout=5)
        self.registry.shutdown()

    def restart(self) -> None:
        self.stop()
        self._start()


@pytest.fixture
def host(tmp_path):
    running = Host(str(tmp_path / "data"))
    yield running
    running.stop()


@pytest.mark.parametrize("encoding", ["bare", "cbor", "json"])
def test_queued_messages_survive_a_host_restart(host, encoding):
    key = [uuid.uuid4().hex]
    sender = Client(host.url, encoding=encoding, timeout=10)
    sender.mailbox.get_or_create(key).send("jobs", {"n": 1})
    sender.mailbox.get_or_create(key).send("jobs", {"n": 2})
    sender.close()
    host.restart()
    handle = host.client.mailbox.get_or_create(key)
    assert [handle.take(), handle.take(), handle.take()] == [{"n": 1}, {"n": 2}, None]


def test_a_completable_message_is_delivered_again_after_sleep(host):
    handle = host.client.mailbox.get_or_create([uuid.uuid4().hex])
    handle.send("jobs", "important")
    assert handle.peek_completable() == "important"
    assert handle.peek_completable() is None  # handed out, not completed
    host.registry.sleep(handle.resolve())
    assert handle.peek_completable() == "important"


def test_a_wait_send_nobody_completes_times_out(host):
    handle = host.client.mailbox.get_or_create([uuid.uuid4().hex])
    assert handle.send("jobs", "anyone?", wait=True, timeout=0.2)["status"] == "timedOut"
    assert handle.take() == "anyone?"  # the message stays queued
