"""Core benchmarks of rivetgreen, in one process, on the real clock.

What it measures, each phase on a fresh temporary data directory (removed at the end):

1. In-process action calls per second on ONE actor, through ``ActorHandle``:
   (a) sequential calls from one greenlet (by a name+key handle, and by an id-pinned handle);
   (b) 1,000 concurrent greenlets each making N calls.
   Each figure is also given as a ratio against a baseline measured in the same run: the same number of calls of
   a plain Python function through a minimal gevent round trip (spawn a greenlet that sets an ``AsyncResult``,
   the caller ``.get()``s it). Machines are noisy; the ratios are what we report.
2. Wake latency of a sleeping actor: K actors are created, called once, put to sleep with ``registry.sleep``, then
   one action call on each is timed (it opens the actor's SQLite file and runs startup). p50 / p99 in ms, next
   to the latency of a call on the same actor once it is awake (and of putting an actor to sleep).
3. Memory per idle awake actor: process RSS (``VmRSS``) and open file descriptors before and after waking M actors
   with one action each and leaving them awake (``sleep_timeout`` = 1 h), after ``gc.collect()``. Measured twice:
   with each actor's SQLite connection open (parking off), and once the actors have been idle long enough to park
   their connection (``database_idle_timeout`` = 1 s; the default is 10 s). Run first, so memory freed by the
   other phases cannot be reused and hide the growth.

Every loop is bounded in count and in time (a phase stops after ~60 s and says so). A table is printed at the
end and the results are written as JSON to ``bench/results/core.json``.

Run it from the repository root::

    python bench/core_bench.py            # full run (one to two minutes)
    python bench/core_bench.py --quick    # ~10 s smoke run
    python bench/core_bench.py --profile  # cProfile phase 1a and the wakes of phase 2; prints, writes nothing
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import gc
import json
import logging
import math
import os
import platform
import pstats
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import gevent
import gevent.event

from rivetgreen import ActorDefinition, Registry, actor, setup

PHASE_LIMIT_S = 60.0
RESULTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "core.json")
GIB = 1024**3
FDS_PER_ACTOR_GUESS = 3  # the database file, its -wal and its -shm
WARMUP_CALLS = 200
PROFILE_TOP = 10
TARGET_CALLS_PER_S = 100_000
TARGET_WAKE_P50_MS = 2.0
TARGET_ACTORS_PER_GIB = 100_000


@dataclass(frozen=True)
class Config:
    """How much work each phase does."""

    sequential_calls: int
    greenlets: int
    calls_per_greenlet: int
    wake_actors: int
    memory_actors: int
    repeats: int = 3
    phase_limit_s: float = PHASE_LIMIT_S


FULL = Config(sequential_calls=10_000, greenlets=1_000, calls_per_greenlet=10, wake_actors=200, memory_actors=5_000)
QUICK = Config(sequential_calls=1_000, greenlets=1_000, calls_per_greenlet=1, wake_actors=50, memory_actors=1_000)


@dataclass
class Run:
    """How many calls a timed loop made, in how long, and whether it hit its time limit."""

    calls: int
    seconds: float
    stopped_early: bool

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


Measure = Callable[[float], Run]  # runs one timed loop, given its time limit in seconds


# ---------------------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------------------
def make_counter(database_idle_timeout: float = 10.0) -> ActorDefinition:
    """The actor under test: one integer of state, one action. Stays awake for an hour when idle."""
    options = {"sleep_timeout": 3600.0, "database_idle_timeout": database_idle_timeout}
    definition = actor("counter", state={"count": 0}, options=options)

    @definition.action
    def increment(c: Any, amount: int) -> int:
        c.state["count"] += amount
        return c.state["count"]

    return definition


@contextmanager
def fresh_registry(limit_s: float, notes: list[str], database_idle_timeout: float = 10.0) -> Iterator[Registry]:
    """A registry on a new temporary data directory; shut down (bounded in time) and removed afterwards."""
    data_dir = tempfile.mkdtemp(prefix="rivetgreen-bench-")
    registry = setup(make_counter(database_idle_timeout), data_dir=data_dir)
    try:
        yield registry
    finally:
        shutdown_bounded(registry, limit_s, notes)
        shutil.rmtree(data_dir, ignore_errors=True)


def shutdown_bounded(registry: Registry, limit_s: float, notes: list[str]) -> None:
    started = time.perf_counter()
    awake = len(registry.engine.instances)
    try:
        with gevent.Timeout(limit_s):
            registry.shutdown()
    except gevent.Timeout:
        notes.append(f"registry.shutdown() with {awake} awake actors did not finish in {limit_s:.0f} s")
        return
    elapsed = time.perf_counter() - started
    if awake > 100:
        notes.append(f"registry.shutdown() put {awake} awake actors to sleep in {elapsed:.2f} s")


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted``; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def rss_bytes() -> int:
    """Resident memory, after handing freed heap back to the OS: otherwise memory freed earlier (a parked
    connection, a previous phase) stays resident and hides or inflates the growth being measured."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: RSS is read as it is
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------------------------------
# Timed loops
# ---------------------------------------------------------------------------------------------------------------
def run_sequential(call: Callable[[], Any], count: int, limit_s: float) -> Run:
    """``call()`` ``count`` times from this greenlet, stopping at ``limit_s``."""
    started = time.perf_counter()
    deadline = started + limit_s
    done = 0
    while done < count:
        call()
        done += 1
        if done % 256 == 0 and time.perf_counter() > deadline:
            break
    return Run(done, time.perf_counter() - started, done < count)


def run_concurrent(call: Callable[[], Any], greenlets: int, per_greenlet: int, limit_s: float) -> Run:
    """``greenlets`` greenlets each calling ``call()`` ``per_greenlet`` times; all stop at ``limit_s``."""
    done = [0]
    started = time.perf_counter()
    deadline = started + limit_s

    def worker() -> None:
        for _ in range(per_greenlet):
            if time.perf_counter() > deadline:
                return
            call()
            done[0] += 1

    workers = [gevent.spawn(worker) for _ in range(greenlets)]
    gevent.joinall(workers, timeout=limit_s + 10, raise_error=True)
    gevent.killall([w for w in workers if not w.dead], block=False)
    return Run(done[0], time.perf_counter() - started, done[0] < greenlets * per_greenlet)


def _deliver(result: gevent.event.AsyncResult, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    result.set(function(*args))


def gevent_round_trip(function: Callable[..., Any], *args: Any) -> Any:
    """The baseline: run ``function`` in a new greenlet and wait for its result through an AsyncResult."""
    result = gevent.event.AsyncResult()
    gevent.spawn(_deliver, result, function, args)
    return result.get()


def baseline_call() -> Callable[[], Any]:
    """A plain-Python counter increment through one gevent round trip."""
    box = {"count": 0}

    def increment(amount: int) -> int:
        box["count"] += amount
        return box["count"]

    return lambda: gevent_round_trip(increment, 1)


# ---------------------------------------------------------------------------------------------------------------
# Phase 1: in-process calls per second
# ---------------------------------------------------------------------------------------------------------------
def measure_pair(subject: Measure, baseline: Measure, repeats: int, deadline: float) -> tuple[list[Run], list[Run]]:
    """Alternate baseline and subject runs ``repeats`` times (so both see the same machine noise) until
    ``deadline``."""
    subject_runs: list[Run] = []
    baseline_runs: list[Run] = []
    for _ in range(repeats):
        if time.perf_counter() >= deadline:
            break
        baseline_runs.append(baseline(max(0.1, deadline - time.perf_counter())))
        subject_runs.append(subject(max(0.1, deadline - time.perf_counter())))
    return subject_runs, baseline_runs


def sequential(call: Callable[[], Any], count: int) -> Measure:
    return lambda limit_s: run_sequential(call, count, limit_s)


def concurrent(call: Callable[[], Any], greenlets: int, per_greenlet: int) -> Measure:
    return lambda limit_s: run_concurrent(call, greenlets, per_greenlet, limit_s)


def phase_calls(config: Config, notes: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    share = config.phase_limit_s / 3
    result: dict[str, Any] = {}
    with fresh_registry(config.phase_limit_s, notes) as registry:
        by_key = registry.get_or_create("counter", ["calls"])
        by_id = registry.get_for_id(by_key.resolve())
        calls_made = run_sequential(lambda: by_key.increment(1), WARMUP_CALLS, share).calls
        run_sequential(baseline_call(), WARMUP_CALLS, share)
        plans = {
            "sequential_by_key": (sequential(lambda: by_key.increment(1), config.sequential_calls),
                                  sequential(baseline_call(), config.sequential_calls)),
            "sequential_by_id": (sequential(lambda: by_id.increment(1), config.sequential_calls),
                                 sequential(baseline_call(), config.sequential_calls)),
            "concurrent_by_key": (concurrent(lambda: by_key.increment(1), config.greenlets, config.calls_per_greenlet),
                                  concurrent(baseline_call(), config.greenlets, config.calls_per_greenlet)),
        }
        for index, (name, (subject, baseline)) in enumerate(plans.items()):
            runs, baselines = measure_pair(subject, baseline, config.repeats, started + share * (index + 1))
            note_early_stops(f"phase 1 {name}", runs + baselines, config.repeats, notes)
            if runs:
                result[name] = calls_summary(runs, baselines)
            calls_made += sum(run.calls for run in runs)
        final = by_id.increment(0)
    if final != calls_made:
        notes.append(f"phase 1: the counter reads {final}, but {calls_made} increments were made")
    return result


def note_early_stops(label: str, runs: list[Run], repeats: int, notes: list[str]) -> None:
    if len(runs) < 2 * repeats:
        notes.append(f"{label}: only {len(runs) // 2} of {repeats} repeats fit in the time limit")
    for run in runs:
        if run.stopped_early:
            notes.append(f"{label}: a run stopped early at the time limit after {run.calls} calls")


def calls_summary(runs: list[Run], baselines: list[Run]) -> dict[str, Any]:
    """Best of the repeats (as ``timeit`` does) for the subject and for its baseline, and their ratio."""
    best = max(runs, key=lambda run: run.per_second)
    best_baseline = max(baselines, key=lambda run: run.per_second)
    return {
        "calls_per_run": best.calls,
        "calls_per_s": round(best.per_second, 1),
        "us_per_call": round(1e6 / best.per_second, 2) if best.per_second else None,
        "baseline_calls_per_s": round(best_baseline.per_second, 1),
        "ratio_to_baseline": round(best.per_second / best_baseline.per_second, 4),
        "all_calls_per_s": [round(run.per_second, 1) for run in runs],
        "all_baseline_calls_per_s": [round(run.per_second, 1) for run in baselines],
    }


# ---------------------------------------------------------------------------------------------------------------
# Phase 2: wake latency
# ---------------------------------------------------------------------------------------------------------------
def timed_ms(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def create_sleeping_actors(registry: Registry, count: int, deadline: float) -> tuple[list[str], list[float]]:
    """Create up to ``count`` actors, call each once and put it to sleep; their ids and the sleep latencies."""
    ids: list[str] = []
    sleep_ms: list[float] = []
    for index in range(count):
        if time.perf_counter() > deadline:
            break
        handle = registry.get_or_create("counter", [f"wake-{index}"])
        handle.increment(1)
        actor_id = handle.resolve()
        sleep_ms.append(timed_ms(lambda actor_id=actor_id: registry.sleep(actor_id)))
        ids.append(actor_id)
    return ids, sleep_ms


def phase_wake(config: Config, notes: list[str]) -> dict[str, Any]:
    deadline = time.perf_counter() + config.phase_limit_s
    with fresh_registry(config.phase_limit_s, notes) as registry:
        ids, sleep_ms = create_sleeping_actors(registry, config.wake_actors, deadline)
        still_awake = sum(actor_id in registry.engine.instances for actor_id in ids)
        if still_awake:
            notes.append(f"phase 2: {still_awake} actors were still awake after registry.sleep()")
        wake_ms: list[float] = []
        awake_ms: list[float] = []
        for actor_id in ids:
            if time.perf_counter() > deadline:
                break
            handle = registry.get_for_id(actor_id)
            wake_ms.append(timed_ms(lambda handle=handle: handle.increment(1)))
            awake_ms.append(timed_ms(lambda handle=handle: handle.increment(1)))
    if len(wake_ms) < config.wake_actors:
        notes.append(f"phase 2: stopped early at the time limit after {len(wake_ms)} of {config.wake_actors} wakes")
    return {
        "actors": len(wake_ms),
        "wake_ms": latency_summary(wake_ms),
        "awake_call_ms": latency_summary(awake_ms),
        "sleep_ms": latency_summary(sleep_ms),
    }


def latency_summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 50), 4),
        "p99": round(percentile(samples, 99), 4),
        "max": round(max(samples), 4),
        "mean": round(sum(samples) / len(samples), 4),
    }


# ---------------------------------------------------------------------------------------------------------------
# Phase 3: memory and file descriptors per idle awake actor
# ---------------------------------------------------------------------------------------------------------------
def wake_many(registry: Registry, count: int, deadline: float) -> int:
    """Create and wake up to ``count`` actors with one action each; returns how many."""
    for index in range(count):
        if time.perf_counter() > deadline:
            return index
        registry.get_or_create("counter", [f"idle-{index}"]).increment(1)
    return count


PARK_AFTER_S = 1.0


def wait_parked(registry: Registry, limit_s: float) -> int:
    """Wait (bounded) until every awake actor has parked its database connection; returns how many did."""
    deadline = time.perf_counter() + limit_s
    while True:
        tasks = [instance.task for instance in registry.engine.instances.values() if instance.task is not None]
        parked = sum(1 for task in tasks if task.store.db.parked)
        if parked == len(tasks) or time.perf_counter() > deadline:
            return parked
        gevent.sleep(0.2)


def phase_memory(config: Config, notes: list[str], parked: bool = False) -> dict[str, Any]:
    fd_limit = raise_fd_limit(config.memory_actors * FDS_PER_ACTOR_GUESS + 256)
    planned = min(config.memory_actors, (fd_limit - 256) // FDS_PER_ACTOR_GUESS)
    if planned < config.memory_actors:
        notes.append(f"phase 3: open-files limit {fd_limit} allows only {planned} awake actors")
    idle_timeout = PARK_AFTER_S if parked else 0.0  # 0: never park
    with fresh_registry(config.phase_limit_s, notes, idle_timeout) as registry:
        registry.get_or_create("counter", ["warm-up"]).increment(1)  # first-use allocations outside the delta
        gc.collect()
        rss_before, fds_before = rss_bytes(), open_fds()
        started = time.perf_counter()
        woken = wake_many(registry, planned, started + config.phase_limit_s)
        wake_seconds = time.perf_counter() - started
        if parked and wait_parked(registry, PARK_AFTER_S + 10) < woken:
            notes.append("phase 3: not every actor parked its database in time")
        gc.collect()
        rss_after, fds_after = rss_bytes(), open_fds()
        awake = len(registry.engine.instances) - 1
    if woken < planned:
        notes.append(f"phase 3: stopped early at the time limit after {woken} of {planned} actors")
    if awake != woken:
        notes.append(f"phase 3: {awake} of {woken} actors were still awake at the second measurement")
    per_actor = (rss_after - rss_before) / awake if awake else 0.0
    return {
        "actors": awake,
        "create_and_wake_s": round(wake_seconds, 3),
        "create_ms_mean": round(wake_seconds / woken * 1000, 3) if woken else 0.0,
        "rss_before_mib": round(rss_before / 2**20, 1),
        "rss_after_mib": round(rss_after / 2**20, 1),
        "kib_per_actor": round(per_actor / 1024, 2),
        "actors_per_gib": int(GIB / per_actor) if per_actor > 0 else None,
        "fds_before": fds_before,
        "fds_after": fds_after,
        "fds_per_actor": round((fds_after - fds_before) / awake, 3) if awake else None,
    }


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def calls_rows(calls: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    labels = {
        "sequential_by_key": "1a calls/s, sequential, name+key handle",
        "sequential_by_id": "1a calls/s, sequential, id handle",
        "concurrent_by_key": "1b calls/s, 1000 greenlets, name+key handle",
    }
    for name, label in labels.items():
        entry = calls.get(name)
        if entry is None:
            continue
        ok = entry["calls_per_s"] >= TARGET_CALLS_PER_S
        rows.append((label, f"{entry['calls_per_s']:>10,.0f}", f"{entry['ratio_to_baseline']:.3f} x baseline",
                     f">= {TARGET_CALLS_PER_S:,}  {verdict(ok)}"))
        rows.append(("   its baseline: gevent round trip", f"{entry['baseline_calls_per_s']:>10,.0f}", "", ""))
    return rows


def wake_rows(wake: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    labels = (
        ("wake_ms", "2  wake call (sleeping actor), ms"),
        ("awake_call_ms", "2  call on the same actor awake, ms"),
        ("sleep_ms", "2  registry.sleep(), ms"),
    )
    for key, label in labels:
        entry = wake[key]
        if not entry["n"]:
            continue
        value = f"p50 {entry['p50']:.3f}"
        extra = f"p99 {entry['p99']:.3f}  (n={entry['n']})"
        target = ""
        if key == "wake_ms":
            target = f"p50 <= {TARGET_WAKE_P50_MS} ms  {verdict(entry['p50'] <= TARGET_WAKE_P50_MS)}"
        rows.append((label, value, extra, target))
    return rows


def phase_memory_parked(config: Config, notes: list[str]) -> dict[str, Any]:
    return phase_memory(config, notes, parked=True)


def memory_rows(memory: dict[str, Any], label: str = "database open") -> list[tuple[str, str, str, str]]:
    per_gib = memory["actors_per_gib"] or 0
    return [
        (f"3  RSS per idle awake actor ({label}), KiB", f"{memory['kib_per_actor']:>10,.1f}",
         f"n={memory['actors']}", ""),
        (f"3  idle awake actors per GiB ({label})", f"{per_gib:>10,}", "",
         f">= {TARGET_ACTORS_PER_GIB:,}  {verdict(per_gib >= TARGET_ACTORS_PER_GIB)}"),
        (f"3  open fds per awake actor ({label})", f"{memory['fds_per_actor']:>10}", "", ""),
        ("3  create + first call of a new actor, ms", f"{memory['create_ms_mean']:>10.2f}", "mean", ""),
    ]


def parked_memory_rows(memory: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return memory_rows(memory, "database parked")[:3]


def print_table(results: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    for key, make_rows in (
        ("calls", calls_rows), ("wake", wake_rows), ("memory", memory_rows), ("memory_parked", parked_memory_rows),
    ):
        if results.get(key) is not None:
            rows += make_rows(results[key])
    if not rows:
        rows = [("no phase finished", "", "", "")]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print()
    print(f"rivetgreen core bench ({results['mode']}) - python {results['env']['python']}, "
          f"gevent {results['env']['gevent']}, {results['env']['cpus']} cpus")
    print("-" * (sum(widths) + 6))
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print("-" * (sum(widths) + 6))
    for note in results["notes"]:
        print(f"note: {note}")


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "gevent": gevent.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def write_json(results: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(RESULTS_PATH), exist_ok=True)
    with open(RESULTS_PATH, "w") as out:
        json.dump(results, out, indent=2)
        out.write("\n")
    print(f"results written to {os.path.relpath(RESULTS_PATH)}")


# ---------------------------------------------------------------------------------------------------------------
# Profiles (``--profile``): phase 1a, and the wake calls of phase 2
# ---------------------------------------------------------------------------------------------------------------
def profile_calls(calls: int, top: int) -> None:
    """cProfile ``calls`` sequential name+key calls on one awake actor."""
    notes: list[str] = []
    profiler = cProfile.Profile()
    with fresh_registry(PHASE_LIMIT_S, notes) as registry:
        handle = registry.get_or_create("counter", ["profile"])
        run_sequential(lambda: handle.increment(1), WARMUP_CALLS, PHASE_LIMIT_S)
        profiler.enable()
        run = run_sequential(lambda: handle.increment(1), calls, PHASE_LIMIT_S)
        profiler.disable()
    print_stats(f"phase 1a: {run.calls} sequential calls in {run.seconds:.2f} s under cProfile", profiler,
                run.calls, top)


def profile_wakes(actors: int, top: int) -> None:
    """cProfile one action call on each of ``actors`` sleeping actors (each call wakes its actor)."""
    notes: list[str] = []
    profiler = cProfile.Profile()
    with fresh_registry(PHASE_LIMIT_S, notes) as registry:
        ids, _ = create_sleeping_actors(registry, actors, time.perf_counter() + PHASE_LIMIT_S)
        handles = [registry.get_for_id(actor_id) for actor_id in ids]
        started = time.perf_counter()
        profiler.enable()
        for handle in handles:
            handle.increment(1)
        profiler.disable()
        seconds = time.perf_counter() - started
    print_stats(f"phase 2: {len(handles)} wake calls in {seconds:.2f} s under cProfile", profiler, len(handles), top)


def print_stats(title: str, profiler: cProfile.Profile, calls: int, top: int) -> None:
    """The top cumulative entries inside rivetgreen, and the top own-time entries of everything."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    print(f"\n=== {title}")
    ours = [(key, value) for key, value in stats.items() if f"{os.sep}rivetgreen{os.sep}" in key[0]]
    print_profile(f"top {top} cumulative, inside rivetgreen", sorted(ours, key=lambda kv: -kv[1][3])[:top], calls)
    print_profile(f"top {top} own time (tottime), everything", sorted(stats.items(), key=lambda kv: -kv[1][2])[:top],
                  calls)


def print_profile(title: str, entries: list[tuple[Any, Any]], calls: int) -> None:
    print(f"\n{title}  (the last two columns are per action call)")
    print(f"{'ncalls':>8} {'tottime s':>9} {'cumtime s':>9} {'own us':>8} {'cum us':>8}  function")
    for (filename, line, name), (ncalls, _, tottime, cumtime, _) in entries:  # primitive (non-recursive) calls
        where = filename.split(f"{os.sep}site-packages{os.sep}", 1)[-1]
        where = where.split(f"{os.sep}rivetgreen{os.sep}", 1)[-1]
        print(f"{ncalls:>8} {tottime:>9.3f} {cumtime:>9.3f} {tottime / calls * 1e6:>8.1f} {cumtime / calls * 1e6:>8.1f}"
              f"  {where}:{line}({name})")


# ---------------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~10 s smoke run with smaller counts")
    parser.add_argument("--profile", action="store_true", help="only cProfile phase 1a and the wakes of phase 2")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("rivetgreen").setLevel(logging.WARNING)
    config = QUICK if args.quick else FULL
    if args.profile:
        profile_calls(config.sequential_calls // 2, PROFILE_TOP)
        profile_wakes(config.wake_actors // 2, PROFILE_TOP)
        return 0
    results = run_all(config, "quick" if args.quick else "full")
    print_table(results)
    print(f"total {results['total_seconds']} s")
    write_json(results)
    return 0


class PhaseHung(Exception):
    """A phase ran far past its time limit: some call never returned."""


def guarded(label: str, phase: Callable[[Config, list[str]], dict[str, Any]], config: Config,
            notes: list[str]) -> dict[str, Any] | None:
    """Run a phase under a watchdog (its limit, plus room for the bounded teardown); None if it hung."""
    limit_s = config.phase_limit_s * 3
    try:
        with gevent.Timeout(limit_s, PhaseHung):
            return phase(config, notes)
    except PhaseHung:
        notes.append(f"{label}: aborted by the watchdog after {limit_s:.0f} s; a call never returned")
        return None


def run_all(config: Config, mode: str) -> dict[str, Any]:
    """Every phase, memory first (see the module docstring), and the results as one JSON-ready dict."""
    notes: list[str] = []
    started = time.perf_counter()
    memory_parked = guarded("phase 3 (memory, parked)", phase_memory_parked, config, notes)
    memory = guarded("phase 3 (memory)", phase_memory, config, notes)
    calls = guarded("phase 1 (calls)", phase_calls, config, notes)
    wake = guarded("phase 2 (wake)", phase_wake, config, notes)
    return {
        "mode": mode,
        "config": asdict(config),
        "env": environment(),
        "calls": calls,
        "wake": wake,
        "memory": memory,
        "memory_parked": memory_parked,
        "targets": {
            "calls_per_s": TARGET_CALLS_PER_S,
            "wake_p50_ms": TARGET_WAKE_P50_MS,
            "idle_awake_actors_per_gib": TARGET_ACTORS_PER_GIB,
        },
        "notes": notes,
        "total_seconds": round(time.perf_counter() - started, 2),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
