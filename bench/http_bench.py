"""Network benchmarks of rivetgreen through the OFFICIAL RivetKit client (npm ``rivetkit@2.3.19``, under node).

Each figure is measured next to a baseline served the same way in the same run, and reported as a ratio:

1. HTTP action calls per second. 64 actors, 64 concurrent callers: caller ``i`` loops on
   ``client.counter.getOrCreate([`k${i}`]).increment(1)`` (bare encoding) for a bounded time.
   Baseline: a bare Flask app on ``gevent.pywsgi`` with ``GET /metadata`` and one route ``POST /gateway/<path:p>``
   that reads the body and returns the 4-byte bare response ``04 00 01 05``, driven by the same official client with
   the same concurrency (it accepts that answer), so the client's own CPU weighs on both sides. Target >= 0.80.
2. Sequential HTTP action calls per second: ONE official-client caller on one actor, each call after the previous
   answer, on a keep-alive connection: the latency of one call, where a server that sends a response's head and
   body in two writes without ``TCP_NODELAY`` waits for the client's delayed ACK (~40 ms) every time. Baseline: the
   same bare Flask app on a bare ``gevent.pywsgi`` server (no ``TCP_NODELAY``: what plain gevent gives), same client.
   Target ratio >= 0.80.
3. WebSocket action calls per second on ONE connection (``getOrCreate(["ws"]).connect()``) with a window of 1,000
   calls in flight. Baseline: a flask-sock echo app on gevent (monkey-patched, as simple-websocket uses threads
   otherwise) that sends an ``Init`` and answers every binary message with a fixed ``ActionResponse`` frame, driven
   by a node script speaking the minimal bare protocol with the ``ws`` package, same window. Target ratio >= 0.60.

Diagnostic rows (not part of the targets): both servers driven by plain ``fetch`` POSTs with the URL, headers and
chunked body the official client sends (client-protocol.md §3, A.1), and rivetgreen driven by raw ``ws``, which
separate what the server costs from what the official client costs; and, for every
run, the server's and the client's CPU time per call. On a 2-core machine the two processes compete for the cores,
so a heavier client lowers the rate too.

Every server runs in its own process (a fresh one per measurement; rivetgreen on a fresh temporary data directory,
imported from a copy of ``rivetgreen/`` taken at the start of the run, so edits during a run cannot mix versions).
The load generator is one node process (``bench/http_bench.mjs``, copied next to the installed client in
``.cache/node``): on a 2-core machine, one core each. The server's CPU time is sampled over the measured window.
A phase whose ratio is below its target (every phase with ``--profile``) is run once more on each server under
cProfile, enabled only for the measured window, and the top rivetgreen entries are printed; the ``.prof`` files
go to ``bench/results/``.

Every loop is bounded in count and in time, and every child process is killed at the end, even on error.
Results are printed as a table and written to ``bench/results/http.json`` (gitignored).

Run it from the repository root, after installing the official client once
(``pytest -q tests/compat -k "actions and bare"`` does it)::

    python bench/http_bench.py              # full run: 5 s phases, best of 2 rounds, about 2.5 minutes
    python bench/http_bench.py --quick      # ~1 s phases, one round: a ~30 s smoke run
    python bench/http_bench.py --duration 10 --repeats 3
    python bench/http_bench.py --profile    # profile both phases even if their ratios meet the targets
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import pstats
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
NODE_DIR = ROOT / ".cache" / "node"
LOADGEN = BENCH_DIR / "http_bench.mjs"
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_PATH = RESULTS_DIR / "http.json"
CLIENT_VERSION = "2.3.19"

TARGET_HTTP_RATIO = 0.80
TARGET_HTTP_SEQUENTIAL_RATIO = 0.80
TARGET_WS_RATIO = 0.60
SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 15.0
LOAD_GRACE_S = 90.0  # beyond warm-up + duration, for node start-up, actor creation and draining the window
PROFILE_TOP = 15

BARE_ACTION_RESPONSE = bytes([0x04, 0x00, 0x01, 0x05])  # version 4, HttpActionResponse{output: CBOR 5}
WS_INIT = bytes([0x04, 0x00, 0x00, 0x05]) + b"actor" + bytes([0x04]) + b"conn"  # Init{actorId, connectionId}
WS_ACTION_RESPONSE = bytes([0x04, 0x00, 0x02, 0x00, 0x01, 0x06])  # ActionResponse{id 0, output: CBOR 6}


@dataclass(frozen=True)
class Config:
    """How long and how hard each phase runs."""

    duration_s: float
    warmup_s: float
    repeats: int  # each measurement is made this many times (fresh processes); the best run is kept
    actors: int = 64
    window: int = 1_000
    max_calls: int = 5_000_000  # per phase, whatever the duration


FULL = Config(duration_s=5.0, warmup_s=1.0, repeats=2)
QUICK = Config(duration_s=1.0, warmup_s=0.5, repeats=1)


@dataclass
class Measurement:
    """One load run against one server."""

    server: str
    mode: str
    calls: int
    errors: int
    seconds: float
    per_second: float
    p50_ms: float | None
    p99_ms: float | None
    client_cpu_s: float
    server_cpu_s: float | None
    server_busy: float | None  # server CPU seconds per wall second over the measured window
    server_cpu_ms_per_call: float | None
    client_cpu_ms_per_call: float | None
    first_error: str | None = None


@dataclass
class Comparison:
    """A rivetgreen figure against its baseline."""

    name: str
    unit: str
    target: float
    rivetgreen: list[Measurement] = field(default_factory=list)
    baseline: list[Measurement] = field(default_factory=list)
    # Diagnostic: both servers driven by a plain load generator (plain fetch / raw ws), which separates the
    # server's cost from the official client's. For WS the baseline has only this plain form, so the headline
    # baseline doubles as the plain one (baseline_plain stays empty).
    rivetgreen_plain: list[Measurement] = field(default_factory=list)
    baseline_plain: list[Measurement] = field(default_factory=list)

    @staticmethod
    def best(runs: list[Measurement]) -> Measurement | None:
        return max(runs, key=lambda run: run.per_second) if runs else None

    @property
    def ratio(self) -> float | None:
        return self.ratio_of(self.rivetgreen)

    @property
    def plain_ratio(self) -> float | None:
        return self.ratio_of(self.rivetgreen_plain, self.baseline_plain or self.baseline)

    def ratio_of(self, runs: list[Measurement], baseline: list[Measurement] | None = None) -> float | None:
        ours, theirs = self.best(runs), self.best(self.baseline if baseline is None else baseline)
        if ours is None or theirs is None or theirs.per_second == 0:
            return None
        return ours.per_second / theirs.per_second

    def as_json(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio, "target": self.target, "plain_load_ratio": self.plain_ratio,
            "rivetgreen": [asdict(m) for m in self.rivetgreen], "baseline": [asdict(m) for m in self.baseline],
            "rivetgreen_plain_load": [asdict(m) for m in self.rivetgreen_plain],
            "baseline_plain_load": [asdict(m) for m in self.baseline_plain],
        }


# ---------------------------------------------------------------------------------------------------------------
# Servers (each runs in its own process: ``http_bench.py --serve KIND``)
# ---------------------------------------------------------------------------------------------------------------
def serve_main(kind: str, data_dir: str | None, profile_path: str | None) -> None:
    """Serve ``kind`` on a free loopback port, print ``READY <port> <rivetgreen module path or ->``, run until SIGTERM.

    With ``profile_path``, SIGUSR1 starts cProfile and SIGUSR2 stops it and writes the stats there."""
    if kind == "ws-baseline":
        from gevent import monkey  # before flask-sock and simple-websocket are imported, so they use greenlets

        monkey.patch_all()
    import cProfile

    import gevent
    import gevent.event

    logging.disable(logging.CRITICAL)
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if kind == "rivetgreen":
        from rivetgreen.server.serve import make_server

        registry = rivetgreen_registry(data_dir or tempfile.mkdtemp(prefix="rivetgreen-bench-"))
        server = make_server(registry.flask_app(), "127.0.0.1", 0)
        cleanup = registry.shutdown
    else:
        from gevent.pywsgi import WSGIServer

        app = http_baseline_app() if kind == "http-baseline" else ws_baseline_app()
        server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
        server.start()

    stop = gevent.event.Event()
    profiler = cProfile.Profile()

    def stop_profile() -> None:
        profiler.disable()
        assert profile_path is not None
        profiler.dump_stats(profile_path + ".tmp")
        os.replace(profile_path + ".tmp", profile_path)

    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    if profile_path:
        gevent.signal_handler(signal.SIGUSR1, profiler.enable)
        gevent.signal_handler(signal.SIGUSR2, stop_profile)
    print(f"READY {server.server_port} {sys.modules['rivetgreen'].__file__ if kind == 'rivetgreen' else '-'}",
          flush=True)
    stop.wait()
    server.stop(timeout=2)
    with gevent.Timeout(10, False):
        cleanup()


def rivetgreen_registry(data_dir: str) -> Any:
    """The counter actor of the benchmark: one integer of state, ``increment``; awake for an hour when idle."""
    import rivetgreen

    counter = rivetgreen.actor("counter", state={"count": 0}, options={"sleep_timeout": 3600.0})

    @counter.action
    def increment(c: Any, amount: int) -> int:
        c.state["count"] += amount
        return c.state["count"]

    return rivetgreen.setup(counter, data_dir=data_dir)


def http_baseline_app() -> Any:
    """A bare Flask app answering every gateway POST with a fixed bare action response."""
    from flask import Flask, Response, request

    app = Flask("http-baseline")

    @app.post("/gateway/<path:p>")
    def gateway(p: str) -> Response:
        request.get_data()
        return Response(BARE_ACTION_RESPONSE, content_type="application/octet-stream")

    @app.get("/metadata")
    def metadata() -> Response:
        return Response("{}", content_type="application/json")

    return app


def ws_baseline_app() -> Any:
    """A flask-sock app that sends ``Init`` and answers every binary message with a fixed ``ActionResponse``."""
    from flask import Flask
    from flask_sock import Sock

    app = Flask("ws-baseline")
    app.config["SOCK_SERVER_OPTIONS"] = {"subprotocols": ["rivet"]}
    sock = Sock(app)

    @sock.route("/gateway/<path:p>")
    def gateway(ws: Any, p: str) -> None:
        ws.send(WS_INIT)
        while True:
            message = ws.receive()
            if message is None:
                return
            if isinstance(message, bytes):
                ws.send(WS_ACTION_RESPONSE)

    return app


# ---------------------------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------------------------
class LineReader:
    """Reads a child's stdout lines on a thread, so the parent can wait for one with a timeout."""

    def __init__(self, stream: Any) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self, timeout: float) -> str | None:
        """The next line; None at end of output. Raises ``TimeoutError`` if none comes in ``timeout`` seconds."""
        try:
            return self._lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            raise TimeoutError from None


class Children:
    """Every process the benchmark started; :meth:`kill_all` ends them (by pid), politely and then not."""

    def __init__(self, workdir: Path, source_root: Path) -> None:
        self.workdir = workdir
        self.source_root = source_root  # the snapshot of rivetgreen the servers import
        self.processes: list[subprocess.Popen[str]] = []
        self._count = 0

    def start(self, args: list[str], name: str, cwd: Path | None = None) -> tuple[subprocess.Popen[str], Path]:
        self._count += 1
        log_path = self.workdir / f"{self._count:02d}-{name}.stderr"
        with open(log_path, "w") as stderr:
            process = subprocess.Popen(
                args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
                env={**os.environ, "RIVET_LOG_LEVEL": "error", "PYTHONUNBUFFERED": "1",
                     "PYTHONPATH": os.pathsep.join([str(self.source_root), os.environ.get("PYTHONPATH", "")])},
            )
        self.processes.append(process)
        return process, log_path

    def stop(self, process: subprocess.Popen[str], timeout: float = SERVER_STOP_TIMEOUT_S) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stdout:
            process.stdout.close()
        if process in self.processes:
            self.processes.remove(process)

    def kill_all(self) -> None:
        for process in list(self.processes):
            try:
                self.stop(process, timeout=5)
            except Exception as error:  # keep going: every child must be ended
                print(f"could not stop pid {process.pid}: {error}", file=sys.stderr)


def tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A benchmark server in its own process."""

    def __init__(self, children: Children, kind: str, profile_path: Path | None = None) -> None:
        self.children = children
        self.kind = kind
        self.profile_path = profile_path
        args = [sys.executable, str(Path(__file__).resolve()), "--serve", kind]
        if kind == "rivetgreen":
            self.data_dir: str | None = tempfile.mkdtemp(prefix="rivetgreen-bench-", dir=children.workdir)
            args += ["--data-dir", self.data_dir]
        else:
            self.data_dir = None
        if profile_path is not None:
            args += ["--profile-to", str(profile_path)]
        self.process, self.log_path = children.start(args, kind)
        lines = LineReader(self.process.stdout)
        try:
            line = lines.next(SERVER_START_TIMEOUT_S)
        except TimeoutError:
            line = None
        if not line or not line.startswith("READY "):
            raise RuntimeError(f"the {kind} server did not start: {line!r}\n{tail(self.log_path)}")
        _, port, imported = line.split(maxsplit=2)
        if kind == "rivetgreen" and not imported.startswith(str(children.source_root) + os.sep):
            raise RuntimeError(f"the server imported rivetgreen from {imported}, not from the run's snapshot")
        self.endpoint = f"http://127.0.0.1:{int(port)}"

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.process.pid)

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        self.children.stop(self.process)
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def run_load(children: Children, config: Config, server: Server, mode: str) -> Measurement:
    """Run the node load generator in ``mode`` against ``server``; sample the server around the measured window."""
    options = {
        "endpoint": server.endpoint, "warmupMs": config.warmup_s * 1000, "durationMs": config.duration_s * 1000,
        "maxCalls": config.max_calls, "actors": config.actors, "window": config.window,
    }
    node, log_path = children.start(["node", LOADGEN.name, mode, json.dumps(options)], mode, cwd=NODE_DIR)
    lines = LineReader(node.stdout)
    deadline = time.monotonic() + config.warmup_s + config.duration_s + LOAD_GRACE_S
    cpu_start: float | None = None
    cpu_end: float | None = None
    wall_start = wall_end = 0.0
    result: dict[str, Any] | None = None
    try:
        while result is None:
            try:
                line = lines.next(deadline - time.monotonic())
            except TimeoutError:
                raise RuntimeError(f"{mode}: the load generator gave no result in time\n{tail(log_path)}") from None
            if line is None:
                raise RuntimeError(f"{mode}: the load generator ended without a result\n{tail(log_path)}")
            if line == "MEASURE_START":
                if server.profile_path:
                    server.signal(signal.SIGUSR1)
                cpu_start, wall_start = server.cpu_seconds(), time.monotonic()
            elif line == "MEASURE_END":
                cpu_end, wall_end = server.cpu_seconds(), time.monotonic()
                if server.profile_path:
                    server.signal(signal.SIGUSR2)
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
    finally:
        children.stop(node, timeout=5)
    if not result.get("ok") and "calls" not in result:
        raise RuntimeError(f"{mode} against {server.kind} failed: {result.get('error')}\n{tail(log_path)}")
    server_cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
    wall = wall_end - wall_start
    calls = result["calls"]
    return Measurement(
        server=server.kind, mode=mode, calls=calls, errors=result["errors"], seconds=result["seconds"],
        per_second=result["perSecond"], p50_ms=result["p50Ms"], p99_ms=result["p99Ms"],
        client_cpu_s=result["clientCpuSeconds"], server_cpu_s=server_cpu,
        server_busy=None if server_cpu is None or wall <= 0 else server_cpu / wall,
        server_cpu_ms_per_call=None if server_cpu is None or not calls else server_cpu * 1000 / calls,
        client_cpu_ms_per_call=result["clientCpuSeconds"] * 1000 / calls if calls else None,
        first_error=result["firstError"],
    )


def measure(children: Children, config: Config, kind: str, mode: str, profile_path: Path | None = None) -> Measurement:
    server = Server(children, kind, profile_path)
    try:
        run = run_load(children, config, server, mode)
        if profile_path is not None:
            wait_for(profile_path, 30.0)
        return run
    finally:
        server.stop()


def wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server wrote no profile to {path}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------------------------------------------
def profile_summary(path: Path, requests: int, source_root: Path) -> dict[str, Any]:
    """The top rivetgreen entries by cumulative time and the top entries overall by own time.

    Under gevent, cProfile's cumulative time of a function that blocks includes the time other greenlets ran
    while it waited (a switch is not a return); own time and call counts are reliable."""
    stats = pstats.Stats(str(path))
    package_dir = str(source_root / "rivetgreen") + os.sep
    rows = []
    for (filename, line, function), (primitive, calls, own, cumulative, _) in stats.stats.items():
        rows.append({
            "function": f"{short_path(filename, source_root)}:{line}({function})",
            "calls": calls, "primitive_calls": primitive,
            "calls_per_request": calls / requests if requests else None, "tottime": own, "cumtime": cumulative,
            "rivetgreen": filename.startswith(package_dir),
        })
    ours = sorted((row for row in rows if row["rivetgreen"]), key=lambda row: row["cumtime"], reverse=True)
    return {
        "requests": requests,
        "total_seconds": stats.total_tt,
        "function_calls": stats.total_calls,
        "function_calls_per_request": stats.total_calls / requests if requests else None,
        "rivetgreen_own_seconds": sum(row["tottime"] for row in ours),
        "top_rivetgreen_cumulative": ours[:PROFILE_TOP],
        "top_rivetgreen_own": sorted(ours, key=lambda row: row["tottime"], reverse=True)[:PROFILE_TOP],
        "top_overall_own": sorted(rows, key=lambda row: row["tottime"], reverse=True)[:PROFILE_TOP],
    }


def short_path(filename: str, source_root: Path) -> str:
    for root in (str(source_root), str(ROOT)):
        if filename.startswith(root + os.sep):
            return filename[len(root) + 1:]
    for marker in ("site-packages" + os.sep, "lib" + os.sep + "python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def print_profile(title: str, summary: dict[str, Any]) -> None:
    print(f"\n{title}: {summary['requests']:,} calls profiled, {summary['function_calls']:,} function calls "
          f"({summary['function_calls_per_request']:.0f} per call), {summary['total_seconds']:.2f} s profiled "
          f"(rivetgreen's own code: {summary['rivetgreen_own_seconds']:.2f} s)")
    sections = [("top rivetgreen entries by cumulative time", "top_rivetgreen_cumulative"),
                ("top entries overall by own time", "top_overall_own")]
    for heading, key in sections:
        if not summary[key]:
            continue
        print(f"  {heading}:")
        print(f"    {'cumtime':>8} {'tottime':>8} {'calls/req':>9}  function")
        for row in summary[key]:
            print(f"    {row['cumtime']:8.3f} {row['tottime']:8.3f} {row['calls_per_request'] or 0:9.2f}  "
                  f"{row['function']}")


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------
def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(comparisons: list[Comparison]) -> None:
    header = f"{'measurement':<40} {'rivetgreen':>14} {'baseline':>14} {'ratio':>7} {'target':>7}  verdict"
    print("\n" + header + "\n" + "-" * len(header))
    for comparison in comparisons:
        ours, theirs = Comparison.best(comparison.rivetgreen), Comparison.best(comparison.baseline)
        plain = Comparison.best(comparison.rivetgreen_plain)
        ratio = comparison.ratio
        verdict = "-" if ratio is None else ("ok" if ratio >= comparison.target else "BELOW TARGET")
        print(f"{comparison.name:<40} {fmt(ours and ours.per_second, ',.0f'):>14} "
              f"{fmt(theirs and theirs.per_second, ',.0f'):>14} {fmt(ratio, '.3f'):>7} "
              f"{'>=' + format(comparison.target, '.2f'):>7}  {verdict}")
        details: list[tuple[str, Callable[[Measurement], str]]] = [
            ("  latency p50 / p99 (ms)", lambda m: f"{fmt(m.p50_ms, '.1f')} / {fmt(m.p99_ms, '.1f')}"),
            ("  server CPU busy", lambda m: fmt(m.server_busy and m.server_busy * 100, ".0f") + " %"),
            ("  server CPU per call (ms)", lambda m: fmt(m.server_cpu_ms_per_call, ".3f")),
            ("  client CPU per call (ms)", lambda m: fmt(m.client_cpu_ms_per_call, ".3f")),
            ("  calls / errors", lambda m: f"{m.calls:,} / {m.errors}"),
        ]
        for label, show in details:
            print(f"{label:<40} {show(ours) if ours else '-':>14} {show(theirs) if theirs else '-':>14}")
        every = ", ".join(f"{run.per_second:,.0f}" for run in comparison.rivetgreen)
        print(f"{'  every run (' + comparison.unit + ')':<40} {every:>14} "
              f"{', '.join(f'{run.per_second:,.0f}' for run in comparison.baseline):>14}")
        if plain is not None:
            plain_base = Comparison.best(comparison.baseline_plain) or theirs
            print(f"{'  diagnostic: both under plain load':<40} {plain.per_second:>14,.0f} "
                  f"{fmt(plain_base and plain_base.per_second, ',.0f'):>14} {fmt(comparison.plain_ratio, '.3f'):>7}")
            print(f"{'    (' + plain.mode + '); server CPU/call, busy':<40} "
                  f"{fmt(plain.server_cpu_ms_per_call, '.3f') + ' ms':>14} "
                  f"{fmt(plain.server_busy and plain.server_busy * 100, '.0f') + ' %':>14}")


def git_state() -> dict[str, Any]:
    """The commit, and the rivetgreen files that differ from it (benchmarks of a dirty tree say so)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "rivetgreen_changed_files": git("status", "--porcelain", "--", "rivetgreen").splitlines()}


def snapshot_sources(source_root: Path) -> str:
    """Copy rivetgreen's sources to ``source_root`` (every server of the run imports this copy, so edits made to
    the working tree during a run cannot mix versions); returns a sha256 of the copied ``.py`` files."""
    shutil.copytree(ROOT / "rivetgreen", source_root / "rivetgreen", ignore=shutil.ignore_patterns("__pycache__"))
    digest = hashlib.sha256()
    for path in sorted((source_root / "rivetgreen").rglob("*.py")):
        digest.update(str(path.relative_to(source_root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def loadavg() -> list[str]:
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return []


def environment() -> dict[str, Any]:
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return {
        "python": platform.python_version(), "node": node_version, "client": f"rivetkit@{CLIENT_VERSION}",
        "platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_at_end": loadavg(),
    }


def check_client() -> None:
    package = NODE_DIR / "node_modules" / "rivetkit" / "package.json"
    version = json.loads(package.read_text())["version"] if package.exists() else None
    if version != CLIENT_VERSION:
        sys.exit(f"rivetkit@{CLIENT_VERSION} is not installed in {NODE_DIR} (found {version}); install it once with\n"
                 f'    pytest -q tests/compat -k "actions and bare"')
    if shutil.which("node") is None:
        sys.exit("node is required")
    shutil.copy(LOADGEN, NODE_DIR / LOADGEN.name)


def run(config: Config, force_profile: bool, skip_profile: bool, workdir: Path) -> dict[str, Any]:
    load = loadavg()
    if load and float(load[0]) > 0.5:
        print(f"note: the machine is already busy (load average {load[0]}); the figures will be noisy")
    state = git_state()  # before the snapshot: the snapshot is at least as new as what this lists
    source_root = workdir / "src"
    state["rivetgreen_sources_sha256"] = snapshot_sources(source_root)
    children = Children(workdir, source_root)
    http = Comparison("HTTP action calls/s, 64 callers", "calls/s", TARGET_HTTP_RATIO)
    sequential = Comparison("HTTP action calls/s, 1 sequential caller", "calls/s", TARGET_HTTP_SEQUENTIAL_RATIO)
    ws = Comparison("WS action calls/s, 1 conn, window 1000", "msgs/s", TARGET_WS_RATIO)
    profiles: dict[str, Any] = {}
    try:
        for round_number in range(config.repeats):
            plan = [
                # HTTP: the official client drives both servers (the baseline serves /metadata and the action
                # route), so the client's own CPU weighs on both sides alike.
                ("http-baseline", "http-client", http.baseline), ("rivetgreen", "http-client", http.rivetgreen),
                ("http-baseline", "http-client-seq", sequential.baseline),
                ("rivetgreen", "http-client-seq", sequential.rivetgreen),
                ("http-baseline", "http-fetch", http.baseline_plain),
                ("rivetgreen", "http-fetch", http.rivetgreen_plain),
                ("ws-baseline", "ws-raw", ws.baseline), ("rivetgreen", "ws-client", ws.rivetgreen),
                ("rivetgreen", "ws-raw", ws.rivetgreen_plain),
            ]
            if round_number % 2:  # alternate the order, so a drift of the machine favours neither side
                plan.reverse()
            for kind, mode, runs in plan:
                print(f"round {round_number + 1}/{config.repeats}: {mode:<11} against {kind:<13} ...", end=" ",
                      flush=True)
                runs.append(measure(children, config, kind, mode))
                print(f"{runs[-1].per_second:,.0f}/s")
        # A phase below its target (or every phase with --profile) is run once more on each server under cProfile.
        to_profile = [
            (phase, comparison, pairs) for phase, comparison, pairs in (
                ("http", http, (("rivetgreen", "http-client"), ("http-baseline", "http-client"))),
                ("ws", ws, (("rivetgreen", "ws-client"), ("ws-baseline", "ws-raw"))),
            )
            if force_profile or (not skip_profile and (comparison.ratio or 0.0) < comparison.target)
        ]
        for phase, _, pairs in to_profile:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            for kind, mode in pairs:
                path = RESULTS_DIR / f"{phase}-{kind}.prof"
                path.unlink(missing_ok=True)
                print(f"profiling: {mode:<11} against {kind:<13} ...", end=" ", flush=True)
                profiled = measure(children, config, kind, mode, profile_path=path)
                print(f"{profiled.per_second:,.0f}/s under cProfile")
                profiles.setdefault(phase, {})[kind] = {
                    "file": str(path.relative_to(ROOT)), "measurement": asdict(profiled),
                    **profile_summary(path, profiled.calls, source_root),
                }
    finally:
        children.kill_all()
    print_table([http, sequential, ws])
    for phase, found in profiles.items():
        ours, base = found["rivetgreen"], next(value for kind, value in found.items() if kind != "rivetgreen")
        print_profile(f"cProfile of the rivetgreen server, {phase.upper()} phase", ours)
        print(f"\n  the baseline server under cProfile: {base['function_calls_per_request']:.0f} function calls per "
              f"request (rivetgreen: {ours['function_calls_per_request']:.0f})")
    return {
        "config": asdict(config), "environment": {**environment(), "loadavg_at_start": load}, "sources": state,
        "http": http.as_json(), "http_sequential": sequential.as_json(), "websocket": ws.as_json(),
        "profiles": profiles,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~1 s phases, one round")
    parser.add_argument("--duration", type=float, help="seconds of each measured phase (default 5, quick 1)")
    parser.add_argument("--repeats", type=int, help="rounds; the best run of each side is kept (default 2, quick 1)")
    parser.add_argument("--profile", action="store_true", help="profile both phases whatever the ratios")
    parser.add_argument("--no-profile", action="store_true", help="never profile")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: run one server
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_main(args.serve, args.data_dir, args.profile_to)
        return

    config = QUICK if args.quick else FULL
    if args.duration is not None:
        config = Config(**{**asdict(config), "duration_s": min(max(args.duration, 0.1), 600.0)})
    if args.repeats is not None:
        config = Config(**{**asdict(config), "repeats": min(max(args.repeats, 1), 20)})
    check_client()
    # SIGTERM ends the run like Ctrl-C, so the children are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"terminated by signal {signum}"))
    workdir = Path(tempfile.mkdtemp(prefix="rivetgreen-http-bench-"))
    try:
        results = run(config, args.profile, args.no_profile, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {RESULTS_PATH.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
