"""The inspector web page in headless Chromium: list actors, open one, see its state change live (no reload), call
actions from the form; a screenshot lands in ``.cache/screenshots/inspector.png``.

Needs node/npm (``playwright-core`` is installed from npm into ``.cache/node`` on first use) and Debian's
``chromium`` at ``/usr/bin/chromium`` (``.ci/run`` installs it). The server runs in this process on a free loopback
port; the browser script (``tests/inspector_page.mjs``) and this test take turns over the script's stdio.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import gevent
import gevent.subprocess
import pytest

from rivetgreen import UserError, actor, setup
from rivetgreen.server.serve import make_server
from tests.helpers import npm_install

PLAYWRIGHT_VERSION = "1.65.1"
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / ".cache" / "node"
SCRIPT = Path(__file__).with_name("inspector_page.mjs")
SCREENSHOT = ROOT / ".cache" / "screenshots" / "inspector.png"
STEP_TIMEOUT = 60.0  # seconds for the browser to reach each step (Chromium's first start is the slow part)

counter = actor("counter", state={"count": 0, "history": []})


@counter.action
def increment(c, amount=1):
    c.state["count"] += amount
    c.state["history"].append(amount)
    return c.state["count"]


@counter.action
def fail(c):
    raise UserError("the page saw this", code="page_error")


@counter.action
def plan(c):
    c.schedule.after(3600, "increment", 1)
    c.queue.send("jobs", {"kind": "demo"})


notes = actor("notes", state={"text": ""})


@notes.action
def write(c, text):
    c.state["text"] = text


@pytest.fixture(scope="session")
def browser_driver() -> Path:
    """``.cache/node`` with playwright-core installed and the page script copied in."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is required for the inspector page test: {CHROMIUM} is missing "
                    "(sh tests/install-tools.sh installs it)")
    try:
        npm_install(NODE_DIR, "playwright-core", PLAYWRIGHT_VERSION)
    except RuntimeError as error:
        pytest.fail(str(error))
    shutil.copy(SCRIPT, NODE_DIR / SCRIPT.name)
    return NODE_DIR


@pytest.fixture(params=["", "/rivet"], ids=["root", "url-prefix"])
def served(tmp_path, request):
    registry = setup(counter, notes, data_dir=str(tmp_path / "data"))
    app = registry.flask_app(url_prefix=request.param or None)
    server = make_server(app, "127.0.0.1", 0)
    yield registry, app, f"http://127.0.0.1:{server.server_port}{request.param}"
    server.stop(timeout=5)
    registry.shutdown()


class BrowserScript:
    """The node process, read and written one JSON line at a time, every read bounded."""

    def __init__(self, cwd: Path, args: list[str]) -> None:
        self.process = gevent.subprocess.Popen(
            ["node", SCRIPT.name, *args], cwd=cwd, stdin=gevent.subprocess.PIPE, stdout=gevent.subprocess.PIPE,
            stderr=gevent.subprocess.PIPE, text=True,
        )
        self._stderr = gevent.spawn(self.process.stderr.read)

    def step(self, name: str) -> dict[str, Any]:
        with gevent.Timeout(STEP_TIMEOUT, AssertionError(f"the browser did not reach step {name!r}")):
            while True:
                line = self.process.stdout.readline()
                if not line:
                    pytest.fail(f"the browser script ended before {name!r}: {self.stderr()}")
                if line.startswith("{"):
                    break
        message = json.loads(line)
        if message["step"] != name:
            pytest.fail(f"browser script: expected {name!r}, got {message}\n{self.stderr()}")
        return message

    def tell(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stderr(self) -> str:
        self._stderr.join(timeout=5)
        return (self._stderr.value or "")[-3000:]

    def close(self) -> None:
        try:
            self.process.wait(timeout=30)
        except gevent.subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def test_the_page_shows_a_live_state_change_and_calls_actions(browser_driver, served):
    registry, app, base = served
    demo = registry.get_or_create("counter", ["demo"])
    demo.increment(1)
    demo.plan()
    registry.get_or_create("counter", ["other"]).increment(5)
    registry.get_or_create("notes", ["shopping", "list"]).write("milk")
    target = demo.resolve()
    if SCREENSHOT.exists():
        SCREENSHOT.unlink()

    script = BrowserScript(browser_driver, [base, app.extensions["rivetgreen"].admin_token, target, str(SCREENSHOT)])
    try:
        ready = script.step("ready")
        assert ready["listed"] == 3
        assert json.loads(ready["state"]) == {"count": 1, "history": [1]}
        assert "token=" not in ready["addressBar"]  # the admin token is moved out of the address bar
        assert ready["rpcs"] == ["increment", "fail", "plan"]

        assert demo.increment(41) == 42  # the state changes behind the page's back
        script.tell("changed")
        done = script.step("done")
    finally:
        script.close()

    assert json.loads(done["after"]) == {"count": 42, "history": [1, 41]}
    assert done["sameDocument"] is True  # shown without a reload
    assert done["output"] == "50"
    assert "user/page_error: the page saw this" in done["actionError"]
    assert "increment" in done["schedules"] and "jobs" in done["queue"]
    assert done["problems"] == []
    assert demo.increment(0) == 50  # the page's action call reached the actor
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, len(data)
