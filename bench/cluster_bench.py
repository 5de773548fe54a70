"""Broadcasts on a fleet on Redis: 1 node without a manager against 2 nodes sharing Redis.

    .venv/bin/python bench/cluster_bench.py                 # every row, ~1.5-2 min
    .venv/bin/python bench/cluster_bench.py --quick         # tiny counts (the smoke test)
    .venv/bin/python bench/cluster_bench.py --setups fastio-1,node-1 --variants one --per-node 500

Scenario: ``--per-node`` receivers (default 200) on each node of the setup, connected by the load
generator's raw WebSocket clients (fastio.loadgen); one of them, on the first node, is also the
emitter: it sends ``broadcast`` requests, and the server's handler emits ``broadcast`` to every
client of the fleet (``sio.emit`` / ``io.emit``).  Two variants:

* ``one``: ONE request in flight; the emitter sends the next as soon as its own copy of the
  previous broadcast arrived (the other node may lag behind; the measured phase ends only when
  every receiver has every broadcast);
* ``pipe8``: 8 in flight, each batch in one write.

Setups (servers from bench/servers/; each node one process, none pinned):

| setup | nodes | what |
|---|---|---|
| ``fastio-1`` | 1 | fastio_native.py, no manager |
| ``pysio-1`` | 1 | pysio_uvicorn.py (python-socketio 5.x under uvicorn), no manager |
| ``node-1`` | 1 | node_socketio.mjs (socket.io 4.8, ws), no adapter |
| ``fastio-noderedis-2`` | 2 | fastio_cluster.py with ``AsyncNodeRedisManager`` |
| ``fastio-redis-2`` | 2 | fastio_cluster.py with ``AsyncRedisManager`` |
| ``pysio-redis-2`` | 2 | pysio_cluster.py: python-socketio ``AsyncRedisManager`` under uvicorn |
| ``node-redisadapter-2`` | 2 | node_cluster.mjs: socket.io 4.8 with ``@socket.io/redis-adapter`` 8.3 (classic) |

The 2-node setups run on a redis-server this script starts on a free port (and ends by its PID),
not on the machine's shared Redis.  Before the load starts, Redis must count both nodes as
subscribers (PUBSUB NUMSUB), so no broadcast is lost to a late subscription.

Figures per row: broadcasts/s (every receiver got it), deliveries/s, server CPU per broadcast
(utime + stime of every node's process over the measured phase, /proc/<pid>/stat, divided by the
broadcasts), Redis CPU per broadcast, the emitter's round-trip latency p50.  Then the ratios
fastio / Node (fastio-1 / node-1; fastio-noderedis-2 / node-redisadapter-2: the same protocol)
and fastio / python-socketio (fastio-1 / pysio-1; fastio-redis-2 / pysio-redis-2).  The
generator runs in this process; on a shared 2-core machine throughput is noisy, CPU per
broadcast much less so.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as _dt
import gc
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, ROOT)

import run as harness  # noqa: E402  bench/run.py: server specs, ServerProcess, free_port

from fastio import loadgen  # noqa: E402

SERVERS_DIR = harness.SERVERS_DIR
PY = harness.PY


@dataclasses.dataclass
class Setup:
    """One row family: how to start one node, how many, and which Redis channel counts them."""

    name: str
    impl: str               # fastio | pysio | node
    nodes: int
    cmd: list[str]
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    #: the channel every node SUBSCRIBEs (PUBSUB NUMSUB), formatted with the key
    channel: str | None = None
    label: str = ""


def _cluster(name: str, impl: str, cmd: list[str], manager: str | None, channel: str, label: str) -> Setup:
    """A 2-node setup (``manager``: the FASTIO_BENCH_MANAGER of fastio_cluster.py)."""
    env = {"FASTIO_BENCH_MANAGER": manager} if manager else {}
    return Setup(name, impl, 2, cmd, env, channel, label)


SETUPS: dict[str, Setup] = {s.name: s for s in (
    Setup("fastio-1", "fastio", 1, harness.SERVERS["fastio_native"]["cmd"], label="fastio native, no manager"),
    Setup("pysio-1", "pysio", 1, harness.SERVERS["pysio_uvicorn"]["cmd"],
          label="python-socketio + uvicorn, no manager"),
    Setup("node-1", "node", 1, harness.SERVERS["node_socketio"]["cmd"], label="Node socket.io (ws), no adapter"),
    _cluster("fastio-noderedis-2", "fastio", [PY, os.path.join(SERVERS_DIR, "fastio_cluster.py")], "node-redis",
             "{key}-request#/#", "fastio native + AsyncNodeRedisManager"),
    _cluster("fastio-redis-2", "fastio", [PY, os.path.join(SERVERS_DIR, "fastio_cluster.py")], "redis",
             "{key}", "fastio native + AsyncRedisManager"),
    _cluster("pysio-redis-2", "pysio", [PY, os.path.join(SERVERS_DIR, "pysio_cluster.py")], None,
             "{key}", "python-socketio + uvicorn + AsyncRedisManager"),
    _cluster("node-redisadapter-2", "node", ["node", os.path.join(SERVERS_DIR, "node_cluster.mjs")], None,
             "{key}-request#/#", "Node socket.io (ws) + @socket.io/redis-adapter"),
)}
VARIANTS = {"one": (1, False), "pipe8": (8, True)}
#: (numerator, denominator) rows of the ratio table
RATIOS = [("fastio/Node", "fastio-1", "node-1"), ("fastio/Node", "fastio-noderedis-2", "node-redisadapter-2"),
          ("fastio/python-socketio", "fastio-1", "pysio-1"),
          ("fastio/python-socketio", "fastio-redis-2", "pysio-redis-2")]


class OwnRedis:
    """A redis-server on a free port for the 2-node setups, ended by its PID."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("the 2-node setups need redis-server on PATH")
        self.port = harness.free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def ready(self, timeout: float = 10.0) -> None:
        """Wait until it answers PING."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                await writer.drain()
                line = await reader.readline()
                writer.close()
                if line.startswith(b"+PONG"):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            await asyncio.sleep(0.02)

    async def numsub(self, channel: str) -> int:
        """PUBSUB NUMSUB of ``channel`` (a raw RESP exchange: no client library needed here)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            parts = [b"PUBSUB", b"NUMSUB", channel.encode()]
            writer.write(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            await writer.drain()
            await reader.readline()                   # *2
            await reader.readline()                   # $len
            await reader.readline()                   # the channel
            return int((await reader.readline())[1:])  # :count
        finally:
            writer.close()

    def stop(self) -> None:
        """End it by its PID and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; ``RuntimeError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        await asyncio.sleep(0.02)


async def measure(ports: list[int], pids: list[int], redis_pid: int | None, per_node: int, window: int,
                  pipeline: bool, duration: float, warmup: float, subscribed: Callable[[], Awaitable[bool]],
                  drain: float) -> dict[str, Any]:
    """One run: ``per_node`` receivers on each port, the emitter on the first; see the module doc.

    fastio.loadgen's broadcast scenario over several servers (``Options.also``): its clients
    count, per broadcast number, how many receivers got it, whatever node they are on; the CPU
    figures are the sum over ``pids``, Redis's comes apart (``watch_pids``)."""
    first, *others = [loadgen.Target("127.0.0.1", port) for port in ports]
    o = loadgen.Options("broadcast", first, server_pid=list(pids), also=others,
                        watch_pids=[redis_pid] if redis_pid else [], conns=per_node * len(ports), window=window,
                        pipeline=pipeline, duration=duration, warmup=warmup, drain=drain,
                        # python-socketio's managers subscribe on their first connection
                        on_connected=lambda: wait_for(subscribed, 15, "every node to subscribe"))
    r = await loadgen.run_async(o)
    if "error" in r:
        return r
    broadcasts = r["ops"] / r["conns"]
    redis_cpu = r.get("watched_cpu_s", {}).get(str(redis_pid)) if redis_pid else None
    r["broadcasts_sent"] = r["broadcasts"]
    r["deliveries_per_s"] = r["throughput"]
    r["server_cpu_us_per_broadcast"] = r["server_cpu_s"] / broadcasts * 1e6 if broadcasts else None
    r["redis_cpu_us_per_broadcast"] = (redis_cpu / broadcasts * 1e6
                                       if broadcasts and redis_cpu is not None else None)
    return r


async def run_setup(setup: Setup, a: argparse.Namespace, log_path: str) -> dict[str, dict[str, Any]]:
    """Start the setup's nodes (and its Redis), run every variant, stop everything."""
    redis = OwnRedis() if setup.nodes > 1 else None
    nodes: list[harness.ServerProcess] = []
    saved = {k: os.environ.get(k) for k in ("FASTIO_BENCH_REDIS", "FASTIO_BENCH_KEY", "FASTIO_BENCH_MANAGER")}
    out: dict[str, dict[str, Any]] = {}
    try:
        key = "bench-" + secrets.token_hex(4)
        if redis is not None:
            await redis.ready()
            os.environ.update({"FASTIO_BENCH_REDIS": redis.url, "FASTIO_BENCH_KEY": key, **setup.env})
        for _ in range(setup.nodes):
            node = harness.ServerProcess(setup.name, {"cmd": setup.cmd}, False, log_path)
            nodes.append(node)
        for node in nodes:
            if not await asyncio.get_running_loop().run_in_executor(None, node.wait_ready, 30.0):
                raise RuntimeError("%s did not become ready (see %s)" % (setup.name, log_path))

        async def subscribed() -> bool:
            if redis is None or setup.channel is None:
                return True
            return await redis.numsub(setup.channel.format(key=key)) >= setup.nodes

        for variant in a.variants:
            window, pipeline = VARIANTS[variant]
            try:
                out[variant] = await measure([node.port for node in nodes], [node.pid for node in nodes],
                                             redis.proc.pid if redis is not None else None, a.per_node, window,
                                             pipeline, a.duration, a.warmup, subscribed, a.drain)
            except Exception as exc:  # one failed row does not end the table
                out[variant] = {"error": "%s: %s" % (type(exc).__name__, exc)}
    except Exception as exc:
        for variant in a.variants:
            out.setdefault(variant, {"error": "%s: %s" % (type(exc).__name__, exc)})
    finally:
        for node in nodes:
            node.stop()
        if redis is not None:
            redis.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def _f(v: float | None, digits: int = 0) -> str:
    """A table cell: thousands separated, ``-`` for no figure."""
    if v is None:
        return "-"
    return "{:,.{}f}".format(v, digits)


def report(results: dict[str, dict[str, dict[str, Any]]], a: argparse.Namespace) -> str:
    """The table of every row, then the ratio table."""
    lines = ["CLUSTER BROADCASTS: %d receivers per node, emitter on node 1; %.1f s measured after %.1f s warm-up"
             % (a.per_node, a.duration, a.warmup),
             "  one = ONE broadcast request in flight (the emitter waits for its own copy); "
             "pipe8 = 8 in flight, each batch in one write",
             "  server CPU = utime+stime of all nodes / broadcasts (us/deliv: / deliveries); a broadcast counts when",
             "  every receiver has it; p50 = the emitter's own round trip; other = cores kept busy by other processes",
             ""]
    head = "%-7s %-20s %5s %9s %12s %12s %10s %10s %9s %6s  %s" % (
        "variant", "setup", "nodes", "bcast/s", "deliveries/s", "srv CPU us/b", "us/deliv", "redis us/b", "p50 us",
        "other", "notes")
    lines.append(head)
    lines.append("-" * len(head))
    for variant in a.variants:
        for name in a.setups:
            r = results.get(name, {}).get(variant, {})
            setup = SETUPS[name]
            if "error" in r or not r:
                lines.append("%-7s %-20s %5d %s" % (variant, name, setup.nodes, "ERROR " + r.get("error", "no result")))
                continue
            notes = [] if r.get("drained") else ["NOT DRAINED (%d undelivered)" % r.get("undelivered", 0)]
            if r.get("errors") or r.get("lost"):
                notes.append("errors %d lost %d" % (r.get("errors", 0), r.get("lost", 0)))
            lines.append("%-7s %-20s %5d %9s %12s %12s %10s %10s %9s %6s  %s" % (
                variant, name, setup.nodes, _f(r["broadcasts_per_s"]), _f(r["deliveries_per_s"]),
                _f(r["server_cpu_us_per_broadcast"], 1), _f(r["server_cpu_us_per_op"], 2),
                _f(r["redis_cpu_us_per_broadcast"], 1), _f((r.get("latency_us") or {}).get("p50")),
                _f(r.get("other_load"), 2), " ".join(notes)))
    lines += ["", "RATIOS (bcast/s: higher is better for fastio; CPU: lower is better for fastio)"]
    head = "%-7s %-22s %-42s %9s %9s" % ("variant", "ratio", "rows", "bcast/s", "CPU/b")
    lines += [head, "-" * len(head)]
    for variant in a.variants:
        for title, num, den in RATIOS:
            if num not in a.setups or den not in a.setups:
                continue
            x, y = results.get(num, {}).get(variant, {}), results.get(den, {}).get(variant, {})
            ok = all(k in r and r[k] for r in (x, y) for k in ("broadcasts_per_s", "server_cpu_us_per_broadcast"))
            lines.append("%-7s %-22s %-42s %9s %9s" % (
                variant, title, "%s / %s" % (num, den),
                "%.2f" % (x["broadcasts_per_s"] / y["broadcasts_per_s"]) if ok else "-",
                "%.2f" % (x["server_cpu_us_per_broadcast"] / y["server_cpu_us_per_broadcast"]) if ok else "-"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with the defaults (or the ``--quick`` ones) filled in."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setups", default=",".join(SETUPS), help="comma-separated, from: " + ", ".join(SETUPS))
    p.add_argument("--variants", default="one,pipe8", help="comma-separated: one, pipe8")
    p.add_argument("--per-node", type=int, default=None, help="receivers per node (default 200; --quick 10)")
    p.add_argument("--duration", type=float, default=None, help="measured seconds (default 2; --quick 0.3)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds (default 0.5; --quick 0.1)")
    p.add_argument("--drain", type=float, default=10.0, help="longest wait for the last deliveries")
    p.add_argument("--quick", action="store_true", help="tiny counts: a smoke test, not a measurement")
    p.add_argument("--out", default=None, help="JSON results (default bench/results/cluster-<stamp>.json)")
    a = p.parse_args(argv)
    a.setups = [s.strip() for s in a.setups.split(",") if s.strip()]
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [s for s in a.setups if s not in SETUPS] + [v for v in a.variants if v not in VARIANTS]
    if unknown:
        p.error("unknown setup or variant: " + ", ".join(unknown))
    if a.per_node is None:
        a.per_node = 10 if a.quick else 200
    if a.duration is None:
        a.duration = 0.3 if a.quick else 2.0
    if a.warmup is None:
        a.warmup = 0.1 if a.quick else 0.5
    return a


async def main_async(a: argparse.Namespace, log_path: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every setup in turn: setup -> variant -> result."""
    results = {}
    for name in a.setups:
        print("  %s ..." % name, file=sys.stderr, flush=True)
        results[name] = await run_setup(SETUPS[name], a, log_path)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run, print the tables, write the JSON; exit status 1 when a row failed."""
    a = parse_args(argv)
    os.makedirs(harness.RESULTS, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = a.out or os.path.join(harness.RESULTS, "cluster-%s.json" % stamp)
    log_path = os.path.join(harness.RESULTS, "cluster-%s.log" % stamp)
    loadgen.raise_fd_limit()
    try:
        import uvloop
        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    gc.disable()
    try:
        results = runner(main_async(a, log_path))
    finally:
        gc.enable()
    text = report(results, a)
    print(text)
    with open(out, "w") as f:
        json.dump({"setups": a.setups, "variants": a.variants, "per_node": a.per_node, "duration": a.duration,
                   "warmup": a.warmup, "labels": {n: SETUPS[n].label for n in a.setups}, "results": results,
                   "table": text}, f, indent=1, default=str)
    print("results: " + os.path.relpath(out, ROOT))
    return 0 if all("error" not in r for rows in results.values() for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
