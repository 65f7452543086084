"""The host under gunicorn with rivetgreen's worker (``-k rivetgreen.server.gunicorn.Worker``), in a subprocess:
an action call, a WebSocket opened and closed, a bad request answered in the error shape, then SIGTERM; the
worker's log must hold no traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from rivetgreen.client import Client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

SERVED_MODULE = """
import os
import rivetgreen

counter = rivetgreen.actor("counter", state={"count": 0})


@counter.action
def increment(c, amount=1):
    c.state["count"] += amount
    return c.state["count"]


app = rivetgreen.setup(counter, data_dir=os.environ["SERVED_DATA_DIR"]).flask_app()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, log_path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            assert server.poll() is None, f"gunicorn exited:\n{open(log_path).read()}"
            assert time.monotonic() < deadline, f"gunicorn did not listen in time:\n{open(log_path).read()}"
            time.sleep(0.1)


def test_the_worker_serves_actions_and_websockets_without_errors_in_its_log(tmp_path):
    (tmp_path / "served.py").write_text(SERVED_MODULE)
    port = free_port()
    log_path = str(tmp_path / "gunicorn.log")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, str(tmp_path)]),
           "SERVED_DATA_DIR": str(tmp_path / "data")}
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "rivetgreen.server.gunicorn.Worker", "-w", "1",
             "-b", f"127.0.0.1:{port}", "--access-logfile", "-", "--graceful-timeout", "10", "served:app"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, server, log_path)
        client = Client(f"http://127.0.0.1:{port}")
        try:
            counter = client.counter.get_or_create(["g"])
            assert counter.increment(5) == 5
            connection = counter.connect()
            assert connection.increment(1) == 6
            connection.close()
        finally:
            client.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            reply = b""
            while data := sock.recv(4096):
                reply += data
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["group"] == "host"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(STOP_TIMEOUT)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(5)
    log = open(log_path).read()
    assert "Booting worker" in log and '"GET /gateway/counter/connect' in log, log
    assert "Traceback" not in log and "AttributeError" not in log and "Error" not in log, log
    assert server.returncode == 0, log
