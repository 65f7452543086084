"""WebSocket load benchmark (not CI): N concurrent ``/connect`` clients on one host, one broadcast to all of them.

Three processes on loopback: the host (``make_server``, gevent.pywsgi), this script holding the N clients (raw
gevent sockets + wsproto, subscribed to the ``tick`` event), and an HTTP prober calling an action on another actor in
a loop. It reports the time until every client got the broadcast, the prober's p99 latency during the broadcast and
outside it (the fan-out must yield: target < 100 ms), and the host's RSS and file descriptors per idle connection.

    python bench/ws_load_bench.py            # 10,000 connections
    python bench/ws_load_bench.py --quick    # 1,000 connections
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.pool
import gevent.socket
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rivetgreen.encoding import client_protocol as protocol  # noqa: E402

CONNECT_CONCURRENCY = 200
PROBERS = 4
PROBE_SECONDS = 6.0
RESULTS = ROOT / "bench" / "results" / "ws_load.json"

HOST_SCRIPT = """
import gc, resource, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
import gevent
from rivetgreen import actor, setup
from rivetgreen.server.serve import make_server
from rivetgreen.settings import HostSettings
fanout = actor("fanout")
@fanout.action
def ready(c):
    return True
@fanout.action
def tick(c, sent_at):
    c.broadcast("tick", sent_at)
other = actor("other")
@other.action
def hello(c):
    return 1
stalls = [0.0, 0.0]  # the longest event-loop stall and the longest full garbage collection, seconds
def watch_the_loop():  # how late a 5 ms timer fires
    while True:
        started = time.monotonic()
        gevent.sleep(0.005)
        stalls[0] = max(stalls[0], time.monotonic() - started - 0.005)
collection_started = [0.0]
def time_full_collections(phase, info):
    if phase == "start":
        collection_started[0] = time.monotonic()
    elif info["generation"] == 2:
        stalls[1] = max(stalls[1], time.monotonic() - collection_started[0])
gc.callbacks.append(time_full_collections)
gevent.spawn(watch_the_loop)
@other.action
def longest_stalls(c):
    longest = list(stalls)
    stalls[:] = [0.0, 0.0]
    return longest
# The default connection limit is half the open-file limit (10,000 here), too few for 10,000 WebSockets and the
# probes: leave 1,024 descriptors for everything else.
settings = HostSettings(max_connections=hard - 1024)
server = make_server(setup(fanout, other, data_dir=sys.argv[1]).flask_app(), "127.0.0.1", 0, settings)
print(server.server_port, flush=True)
server.serve_forever()
"""

PROBE_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from rivetgreen.client import Client
handle = Client(f"http://127.0.0.1:{sys.argv[1]}").other.get_or_create(["probe"])
handle.hello()
import gevent
samples = []
def probe():
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        started = time.time()
        handle.hello()
        samples.append((started, time.time() - started))
print("ready", flush=True)
gevent.joinall([gevent.spawn(probe) for _ in range(int(sys.argv[4]))])
print(json.dumps(samples), flush=True)
"""


def raise_open_files_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def gateway(name: str, path: str, key: str) -> str:
    return (f"/gateway/{name}{path}?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default"
            f"&rvt-key={key}&rvt-crash-policy=sleep")


class Subscriber:
    """One /connect client subscribed to ``tick``; records when the broadcast arrives."""

    def __init__(self, port: int) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{port}", target=gateway("fanout", "/connect", "f"),
                                               subprotocols=["rivet", "rivet_encoding.bare"])))
        self.pending: list[Any] = []
        accepted = self._next()
        assert isinstance(accepted, AcceptConnection), accepted
        assert isinstance(protocol.decode_to_client("bare", self._message()), protocol.Init)
        self.sock.sendall(self.ws.send(BytesMessage(protocol.encode_to_server(
            "bare", protocol.SubscriptionRequest("tick", True)))))
        self.sock.sendall(self.ws.send(BytesMessage(protocol.encode_to_server(
            "bare", protocol.ActionRequest(0, "ready", [])))))
        assert isinstance(protocol.decode_to_client("bare", self._message()), protocol.ActionResponse)
        self.sock.settimeout(None)
        self.arrived: float | None = None

    def _next(self) -> Any:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the host closed a subscriber")
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    def _message(self) -> bytes:
        while True:
            event = self._next()
            if isinstance(event, BytesMessage) and event.message_finished:
                return bytes(event.data)

    def await_tick(self, delivered: list[float], all_delivered: gevent.event.Event, total: int) -> None:
        event = protocol.decode_to_client("bare", self._message())
        assert isinstance(event, protocol.Event) and event.name == "tick", event
        delivered.append(time.time())
        if len(delivered) == total:
            all_delivered.set()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def run(count: int) -> dict[str, Any]:
    raise_open_files_limit()
    data_dir = tempfile.mkdtemp(prefix="ws-load-")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    host = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT, data_dir], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        port = int(host.stdout.readline())
        from rivetgreen.client import Client
        fanout = Client(f"http://127.0.0.1:{port}").fanout.get_or_create(["f"])
        fanout.ready()  # the actor exists and is awake before the baseline is read
        Subscriber(port).sock.close()
        gevent.sleep(0.5)
        rss_before, fds_before = proc_status_kib(host.pid, "VmRSS"), descriptors(host.pid)

        other = Client(f"http://127.0.0.1:{port}").other.get_or_create(["probe"])
        other.longest_stalls()
        started = time.monotonic()
        pool = gevent.pool.Pool(CONNECT_CONCURRENCY)
        subscribers = pool.map(lambda _: Subscriber(port), range(count))
        connect_seconds = time.monotonic() - started
        gevent.sleep(1.0)  # let the host settle before reading its memory
        rss_after, fds_after = proc_status_kib(host.pid, "VmRSS"), descriptors(host.pid)
        connecting_loop, connecting_gc = other.longest_stalls()

        delivered: list[float] = []
        all_delivered = gevent.event.Event()
        readers = [gevent.spawn(s.await_tick, delivered, all_delivered, count) for s in subscribers]
        prober = subprocess.Popen(
            [sys.executable, "-c", PROBE_SCRIPT, str(port), str(PROBE_SECONDS), str(ROOT), str(PROBERS)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert prober.stdout is not None and prober.stdout.readline().strip() == "ready"
        other.longest_stalls()
        gevent.sleep(1.5)  # the prober's quiet baseline
        quiet_loop, quiet_gc = other.longest_stalls()
        sent_at = time.time()
        fanout.tick(sent_at)
        fan_out_seconds = time.time() - sent_at
        if not all_delivered.wait(60):
            raise RuntimeError(f"only {len(delivered)} of {count} subscribers got the broadcast in 60 s")
        delivery_seconds = max(delivered) - sent_at
        broadcast_loop, broadcast_gc = other.longest_stalls()
        samples = json.loads(prober.communicate(timeout=60)[0].strip().splitlines()[-1])
        during = [latency for begin, latency in samples if sent_at <= begin <= sent_at + delivery_seconds]
        quiet = [latency for begin, latency in samples if begin < sent_at]
        gevent.killall(readers)
        for subscriber in subscribers:
            subscriber.sock.close()
        return {
            "connections": count,
            "subscribers_reached": len(delivered),
            "connect_seconds": round(connect_seconds, 2),
            "broadcast_action_seconds": round(fan_out_seconds, 3),
            "delivery_to_all_seconds": round(delivery_seconds, 3),
            "http_p99_during_broadcast_ms": round(percentile(during, 0.99) * 1000, 1),
            "http_max_during_broadcast_ms": round(max(during, default=float("nan")) * 1000, 1),
            "http_requests_during_broadcast": len(during),
            "http_p99_quiet_ms": round(percentile(quiet, 0.99) * 1000, 1),
            "host_loop_longest_stall_during_broadcast_ms": round(broadcast_loop * 1000, 1),
            "host_loop_longest_stall_quiet_ms": round(quiet_loop * 1000, 1),
            "host_longest_full_gc_during_broadcast_ms": round(broadcast_gc * 1000, 1),
            "host_longest_full_gc_quiet_ms": round(quiet_gc * 1000, 1),
            "host_loop_longest_stall_while_connecting_ms": round(connecting_loop * 1000, 1),
            "host_longest_full_gc_while_connecting_ms": round(connecting_gc * 1000, 1),
            "host_rss_per_connection_kib": round((rss_after - rss_before) / count, 1),
            "host_fds_per_connection": round((fds_after - fds_before) / count, 3),
            "host_rss_before_mib": round(rss_before / 1024, 1),
            "host_rss_after_mib": round(rss_after / 1024, 1),
        }
    finally:
        host.terminate()
        errors = host.communicate(timeout=30)[1]
        if "Traceback" in errors:
            print(errors[-3000:], file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 connections")
    options = parser.parse_args()
    result = run(1_000 if options.quick else options.connections)
    width = max(len(name) for name in result)
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
