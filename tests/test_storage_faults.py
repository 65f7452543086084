"""Storage faults are clear and contained (core.md §3.2 save retries; issue 8): on a full or read-only disk the
calls that need to write get a public ``storage/disk_full`` or ``storage/read_only`` error with status 503, reads
keep working, failed state saves are retried with capped exponential backoff and one warning per interval, other
actors keep serving, nothing stored before is lost or corrupted, and pending saves complete once space is back.

Every test runs on two disks. ``tmpfs``: a real one, a small tmpfs mounted inside the test's temporary directory,
filled with a file until the kernel says ENOSPC, or remounted read-only (mounting needs root with CAP_SYS_ADMIN;
where the machine refuses it, this case falls back to the injected disk and says so on stderr). ``injected``: the
same faults injected under the SQL backend: while "full", every write statement fails with SQLite's own
SQLITE_FULL error, and while "read-only" the data directory reports itself unwritable as a read-only mount does
(SQLite's read-only errors are then real). Time is the virtual clock, so the backoff schedule and the rate-limited
warnings are checked to the millisecond.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rivetgreen import actor, clock
from rivetgreen.encoding import client_protocol as protocol
from rivetgreen.errors import RivetError
from rivetgreen.storage.faults import MAX_RETRY_DELAY
from tests.helpers import stored_state

DISK_SIZE = "4m"

counter = actor("counter", state={"count": 0}, options={"no_sleep": True})


@counter.action
def get(c):
    return c.state["count"]


@counter.action
def set_later(c, count):
    """Change state; it is saved on the save throttle (the call does not wait for the disk)."""
    c.state["count"] = count
    return count


@counter.action
def set_now(c, count):
    """Change state and wait until it is on disk."""
    c.state["count"] = count
    c.save_state(immediate=True)
    return count


@counter.action
def remember(c, value):
    c.kv.put(b"note", value.encode())
    return value


@counter.action
def remember_many(c, count):
    """Several large values in one transaction: SQLite spills them to disk before the commit."""
    c.kv.batch_put([(f"big-{index}".encode(), bytes(100 * 1024)) for index in range(count)])
    return count


@counter.action
def enqueue(c, value):
    return c.queue.send("jobs", value).id


# The same actor with the default idle sleep (30 s).
sleepy = actor("sleepy", state={"count": 0})
sleepy.action(set_now)
sleepy.action(set_later)


class MountRefused(Exception):
    pass


class SmallDisk:
    """A tmpfs of ``DISK_SIZE`` mounted at ``path``; filled with a file, freed, or remounted read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"
        path.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(path)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise MountRefused(result.stderr.strip())

    @property
    def data_dir(self) -> str:
        return str(self.path / "data")

    def fill(self) -> None:
        """Write until the disk is full; SQLite's next page then has nowhere to go."""
        with open(self.filler, "ab", buffering=0) as filler:
            for block_size in (64 * 1024, 4096, 1):
                try:
                    while True:
                        filler.write(b"\0" * block_size)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error

    def free(self) -> None:
        self.filler.unlink()

    def remount(self, *, read_only: bool) -> None:
        self._mount_command("mount", "-o", "remount," + ("ro" if read_only else "rw"), str(self.path))

    def unmount(self) -> None:
        try:
            self._mount_command("umount", str(self.path))
        except AssertionError:
            # Something still holds a file open (that is the failure): detach anyway so no mount outlives the test.
            self._mount_command("umount", "--lazy", str(self.path))
            raise

    @staticmethod
    def _mount_command(*command: str) -> None:
        # No timeout: under the virtual clock (freezegun) subprocess would measure it on frozen and real time at once.
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"


class InjectedDisk:
    """The faults of :class:`SmallDisk` without mounting anything (see the module docstring)."""

    WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self.full = False
        self.read_only = False
        path.mkdir()
        disk = self

        class FaultyConnection(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                disk.check_write(sql)
                return super().execute(sql, *args)

            def executescript(self, script: str) -> sqlite3.Cursor:
                disk.check_write(script)
                return super().executescript(script)

        real_connect, real_access = sqlite3.connect, os.access
        monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=FaultyConnection, **k))
        monkeypatch.setattr(
            os, "access",
            lambda target, mode, **k: not (self.read_only and mode & os.W_OK and self.contains(target))
            and real_access(target, mode, **k),
        )

    @property
    def data_dir(self) -> str:
        return str(self.path / "data")

    def contains(self, target: Any) -> bool:
        return os.path.abspath(target).startswith(str(self.path))

    def check_write(self, sql: str) -> None:
        if self.full and self.WRITE.search(sql):
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode, error.sqlite_errorname = 13, "SQLITE_FULL"
            raise error

    def fill(self) -> None:
        self.full = True

    def free(self) -> None:
        self.full = False

    def remount(self, *, read_only: bool) -> None:
        self.read_only = read_only


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmallDisk | InjectedDisk]:
    if request.param == "tmpfs":
        try:
            small_disk = SmallDisk(tmp_path / "disk")
        except MountRefused as refused:
            sys.stderr.write(f"cannot mount a tmpfs here ({refused}); using the injected disk instead\n")
        else:
            try:
                yield small_disk
            finally:
                small_disk.unmount()
            return
    yield InjectedDisk(tmp_path / "injected-disk", monkeypatch)


# HTTP as the official client speaks it (JSON encoding) ----------------------------------------------------------

def action_url(name: str, action: str, key: str) -> str:
    return f"/gateway/{name}/action/{action}?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default" \
        f"&rvt-key={key}&rvt-crash-policy=sleep"


def post_action(client: Any, action: str, args: list[Any], key: str = "a") -> Any:
    return client.post(
        action_url("counter", action, key), data=protocol.encode_action_request("json", args),
        headers={"x-rivet-encoding": "json", "content-type": "application/json"},
    )


def answer(response: Any) -> Any:
    assert response.status_code == 200, (response.status_code, response.data[:500])
    return protocol.decode_action_response("json", response.data)


def assert_storage_error(response: Any, code: str) -> None:
    """A 503 with the public error: group, code and a message the user can act on (not the masked one)."""
    assert response.status_code == 503, (response.status_code, response.data[:500])
    body = response.get_json()
    assert (body["group"], body["code"]) == ("storage", code), body
    assert ("full" if code == "disk_full" else "read-only") in body["message"], body


def integrity(data_dir: str, actor_id: str) -> str:
    db = sqlite3.connect(os.path.join(data_dir, "actors", f"{actor_id}.sqlite"))
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


# Full disk -------------------------------------------------------------------------------------------------------

def test_full_disk_gives_clear_errors_to_writes_while_reads_and_other_actors_keep_serving(
    virtual_clock: Any, disk: Any, make_registry: Any
) -> None:
    registry = make_registry(counter, data_dir=disk.data_dir)
    client = registry.flask_app().test_client()
    assert answer(post_action(client, "set_now", [5])) == 5
    assert answer(post_action(client, "set_now", [1], key="other")) == 1
    actor_id = registry.get_or_create("counter", ["a"]).resolve()

    disk.fill()
    assert_storage_error(post_action(client, "set_now", [8]), "disk_full")  # a durable call: answered, clearly
    assert_storage_error(post_action(client, "set_now", [9]), "disk_full")  # again, without waiting for a retry
    assert_storage_error(post_action(client, "remember", ["hello"]), "disk_full")
    assert_storage_error(post_action(client, "enqueue", ["job"]), "disk_full")  # fails at COMMIT, rolled back
    assert_storage_error(post_action(client, "remember_many", [5]), "disk_full")  # fails mid-transaction
    assert_storage_error(post_action(client, "get", [], key="new"), "disk_full")  # creating an actor writes
    assert answer(post_action(client, "get", [])) == 9  # the change stays in memory, to be saved later
    assert answer(post_action(client, "get", [], key="other")) == 1
    assert stored_state(registry, actor_id) == {"count": 5}

    disk.free()
    virtual_clock.advance(MAX_RETRY_DELAY)  # the pending save's next retry
    assert stored_state(registry, actor_id) == {"count": 9}
    assert answer(post_action(client, "remember", ["hello"])) == "hello"
    assert answer(post_action(client, "enqueue", ["job"])) == 1  # the failed send left nothing behind
    assert integrity(disk.data_dir, actor_id) == "ok"


def test_failed_saves_back_off_and_warn_once_per_interval_until_space_is_back(
    virtual_clock: Any, disk: Any, make_registry: Any, caplog: Any
) -> None:
    registry = make_registry(counter, data_dir=disk.data_dir)
    handle = registry.get_or_create("counter", ["a"])
    assert handle.set_now(5) == 5
    store = registry.engine.instances[handle.resolve()].task.store
    started = clock.monotonic()
    attempts: list[float] = []
    write_state = store.write_state

    def counted_write_state(state: bytes) -> None:
        attempts.append(round(clock.monotonic() - started, 3))
        write_state(state)

    store.write_state = counted_write_state
    caplog.set_level(logging.WARNING, logger="rivetgreen.actor")

    disk.fill()
    assert handle.set_later(9) == 9
    virtual_clock.advance(60)
    # First save on the 1 s throttle, then retries 0.25 s, 0.5 s, 1 s, ... apart, capped at 8 s.
    assert attempts == [1.0, 1.25, 1.75, 2.75, 4.75, 8.75, 16.75, 24.75, 32.75, 40.75, 48.75, 56.75]
    warnings = [record.getMessage() for record in caplog.records if "saving state" in record.getMessage()]
    assert len(warnings) == 2, warnings  # at 1 s, then not before 31 s (with the count of the failures between)
    assert "failed 1 time(s)" in warnings[0] and "storage/disk_full" in warnings[0]
    assert "failed 8 time(s)" in warnings[1]
    assert all(record.exc_info is None for record in caplog.records)  # a disk fault is not a bug: no traceback

    disk.free()
    virtual_clock.advance(MAX_RETRY_DELAY)
    assert attempts[-1] == 64.75
    assert stored_state(registry, handle.resolve()) == {"count": 9}
    assert "succeeded after 12 failed attempt(s)" in caplog.records[-1].getMessage()


def test_an_actor_stays_awake_while_its_saves_fail_and_sleeps_once_they_succeed(
    virtual_clock: Any, disk: Any, make_registry: Any
) -> None:
    registry = make_registry(sleepy, data_dir=disk.data_dir)
    handle = registry.get_or_create("sleepy", ["a"])
    assert handle.set_now(5) == 5
    disk.fill()
    assert handle.set_later(9) == 9
    virtual_clock.advance(120)  # four idle windows
    assert handle.resolve() in registry.engine.instances  # sleeping would drop the unsaved change

    disk.free()
    virtual_clock.advance(MAX_RETRY_DELAY)
    assert stored_state(registry, handle.resolve()) == {"count": 9}
    virtual_clock.advance(30)
    assert not registry.engine.instances


# Read-only disk -------------------------------------------------------------------------------------------------

def test_read_only_data_directory_serves_reads_and_refuses_writes(
    virtual_clock: Any, disk: Any, make_registry: Any
) -> None:
    before = make_registry(counter, data_dir=disk.data_dir)
    handle = before.get_or_create("counter", ["a"])
    assert handle.set_now(5) == 5
    actor_id = handle.resolve()
    before.shutdown()
    disk.remount(read_only=True)

    registry = make_registry(counter, data_dir=disk.data_dir)
    client = registry.flask_app().test_client()
    assert answer(post_action(client, "get", [])) == 5  # a sleeping actor wakes to serve reads
    assert_storage_error(post_action(client, "set_now", [9]), "read_only")
    assert_storage_error(post_action(client, "remember", ["hello"]), "read_only")
    assert_storage_error(post_action(client, "get", [], key="new"), "read_only")
    created = client.put("/actors?namespace=default", json={"name": "counter", "key": "new2"})
    assert created.status_code == 503 and created.get_json()["code"] == "read_only", created.data
    registry.shutdown()  # the unsaved change cannot be saved; the shutdown still finishes

    disk.remount(read_only=False)
    with pytest.raises(RivetError):  # nothing was created while read-only
        make_registry(counter, data_dir=disk.data_dir).get("counter", ["new"]).resolve()
    assert stored_state(before, actor_id) == {"count": 5}
    assert integrity(disk.data_dir, actor_id) == "ok"
