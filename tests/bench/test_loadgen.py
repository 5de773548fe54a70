"""fastio.loadgen: reading a URL, the upgrade request, the frames, the summary table, the probe of
several PIDs, and the broadcast over two fastio servers sharing a Redis manager (Redis on
127.0.0.1:6379, a channel of its own per run)."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import time
from typing import Any

import pytest

import fastio
from fastio import loadgen

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("url,host,port,path,namespace,tls", [
    ("http://127.0.0.1:8000", "127.0.0.1", 8000, "/socket.io/", "/", False),
    ("127.0.0.1:8000", "127.0.0.1", 8000, "/socket.io/", "/", False),
    ("ws://localhost/chat", "localhost", 80, "/socket.io/", "/chat", False),
    ("https://example.org/admin/", "example.org", 443, "/socket.io/", "/admin", True),
    ("wss://[::1]:9000", "::1", 9000, "/socket.io/", "/", True),
])
def test_parse_url_reads_the_namespace_from_the_path_like_socketio_client(url, host, port, path, namespace, tls):
    t = loadgen.parse_url(url)
    assert (t.host, t.port, t.path, t.namespace, t.tls) == (host, port, path, namespace, tls)


def test_parse_url_options_override_namespace_and_path():
    t = loadgen.parse_url("http://127.0.0.1:1/ignored", namespace="load", path="sio")
    assert t.namespace == "/load"
    assert t.path == "/sio/"
    assert t.url() == "ws://127.0.0.1:1/sio/load"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "http://:80"])
def test_parse_url_rejects_what_it_cannot_reach(url):
    with pytest.raises(ValueError):
        loadgen.parse_url(url)


def test_upgrade_request_names_host_path_and_query():
    req = loadgen.upgrade_request(loadgen.parse_url("http://127.0.0.1:8123/?token=abc", path="/rt"))
    head = req.decode()
    assert head.startswith("GET /rt/?EIO=4&transport=websocket&token=abc HTTP/1.1\r\n")
    assert "\r\nHost: 127.0.0.1:8123\r\n" in head
    assert "\r\nSec-WebSocket-Version: 13\r\n" in head
    assert head.endswith("\r\n\r\n")
    default_port = loadgen.upgrade_request(loadgen.parse_url("https://example.org")).decode()
    assert "\r\nHost: example.org\r\n" in default_port


def unmask(frame: bytes) -> bytes:
    """The payload of one short masked client frame."""
    n = frame[1] & 127
    assert n < 126
    key = frame[2:6]
    return bytes(b ^ key[i % 4] for i, b in enumerate(frame[6:6 + n]))


def test_frames_carry_the_namespace_and_event_names():
    t = loadgen.parse_url("http://127.0.0.1:1/room")
    f = loadgen.Frames(t, "ping me", "shout")
    assert unmask(f.connect) == b"40/room,"
    assert unmask(f.echo).startswith(b'42/room,["ping me",{')
    assert unmask(f.broadcast).startswith(b'42/room,["shout",{')
    assert unmask(f.ack[7]).startswith(b'42/room,7["ping me",')
    payload = unmask(f.echo)
    assert json.loads(payload[len(b"42/room,"):])[0] == "ping me"
    root = loadgen.Frames(loadgen.parse_url("http://127.0.0.1:1"), "echo", "broadcast")
    assert unmask(root.connect) == b"40"
    assert unmask(root.sequenced_echo(12)) == b'42["echo",12]'


def test_options_fill_in_the_scenario_defaults():
    t = loadgen.parse_url("http://127.0.0.1:1")
    o = loadgen.Options("echo", t).filled()
    assert (o.conns, o.window, o.pipeline, o.duration, o.warmup) == (100, 1, False, 3.0, 1.0)
    b = loadgen.Options("broadcast", t, window=500).filled()
    assert (b.conns, b.window) == (1000, loadgen.MAX_WINDOW)
    q = loadgen.Options("idle", t, quick=True).filled()
    assert q.clients == 200 and q.duration == 0.3
    with pytest.raises(ValueError):
        loadgen.Options("nope", t).filled()


def test_percentiles_in_microseconds():
    p = loadgen.percentiles([i / 1e6 for i in range(1, 101)])
    assert p["p50"] == pytest.approx(51)
    assert p["p99"] == pytest.approx(100)
    assert p["max"] == pytest.approx(100)
    assert loadgen.percentiles([])["p99"] is None


def test_summary_table_lists_rate_latency_errors_and_the_cpu_split():
    results = [
        {"scenario": "echo", "ops": 12345, "throughput": 4115.0, "errors": 0, "lost": 0, "drained": True,
         "unanswered": 0, "latency_us": {"p50": 80.0, "p90": 150.0, "p99": 2500.0},
         "server_cpu_us_per_op": 9.5, "server_utime_us_per_op": 5.5, "server_stime_us_per_op": 4.0,
         "params": {"conns": 100, "window": 1, "pipeline": False}},
        {"scenario": "broadcast", "ops": 10, "throughput": 5.0, "errors": 1, "lost": 0, "drained": False,
         "undelivered": 4, "latency_us": {"p50": None, "p90": None, "p99": None},
         "server_cpu_us_per_op": None, "params": {"conns": 5, "window": 4, "pipeline": True}},
        {"scenario": "connect", "error": "RuntimeError: opened 0 of 5 clients"},
    ]
    text = loadgen.format_summary(results)
    lines = text.splitlines()
    assert lines[0].split()[:8] == ["scenario", "load", "ops", "rate/s", "p50", "p90", "p99", "errors"]
    echo = next(line for line in lines if line.startswith("echo"))
    assert "100 conns x1" in echo and "12,345" in echo and "4,115" in echo
    assert "80 us" in echo and "2.50 ms" in echo and "9.5 (5.5/4)" in echo
    bcast = next(line for line in lines if line.startswith("broadcast"))
    assert "x4 pipe" in bcast
    assert bcast.split()[-2] == "5"  # 1 error + 4 deliveries that never came
    assert "connect    error: RuntimeError" in text


def test_round_robin_split_puts_the_remainder_on_the_first_servers():
    assert loadgen.split_round_robin(7, 2) == [4, 3]
    assert loadgen.split_round_robin(9, 3) == [3, 3, 3]
    assert loadgen.split_round_robin(2, 3) == [1, 1, 0]
    assert sum(loadgen.split_round_robin(1001, 4)) == 1001


def test_several_servers_are_for_the_broadcast_scenario_only():
    t = loadgen.parse_url("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="broadcast"):
        loadgen.Options("echo", t, also=[loadgen.parse_url("http://127.0.0.1:2")]).filled()
    o = loadgen.Options("broadcast", t, also=[loadgen.parse_url("http://127.0.0.1:2")]).filled()
    assert [x.port for x in o.also] == [2]


def test_probe_of_several_pids_sums_their_cpu_and_memory():
    # Two sleeping processes: their CPU time and RSS do not move while they are read.
    procs = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    try:
        one = [loadgen.ServerProbe(p.pid) for p in procs]
        both = loadgen.ServerProbe([p.pid for p in procs])
        assert both.pid == procs[0].pid and both.pids == [p.pid for p in procs]
        # A process just spawned may still be loading (its RSS grows until it sleeps): read the
        # sum alone, then together, then alone again, until the two lone readings agree.
        for _ in range(200):
            before = (sum(p.rss() for p in one), [p.cpu_split() for p in one])
            rss, (u, s) = both.rss(), both.cpu_split()
            after = (sum(p.rss() for p in one), [p.cpu_split() for p in one])
            if before == after:
                break
            time.sleep(0.01)
        else:
            pytest.fail("two sleeping processes kept changing their RSS or CPU time")
        assert rss == before[0] > 0
        assert (u, s) == (sum(c[0] for c in before[1]), sum(c[1] for c in before[1]))
        assert both.only_cpu() is None
        none = loadgen.ServerProbe(None)
        assert (none.pid, none.cpu(), none.rss(), none.sched_cpu()) == (0, 0.0, 0, 0.0)
    finally:
        for p in procs:
            p.kill()
            p.wait()


async def wait_subscribers(channel: str, count: int, timeout: float = 10.0) -> None:
    """Poll PUBSUB NUMSUB until ``count`` nodes listen on ``channel``."""
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(REDIS_URL)
    try:
        deadline = time.monotonic() + timeout
        while (await r.pubsub_numsub(channel))[0][1] < count:
            assert time.monotonic() < deadline, "the nodes did not subscribe to %s" % channel
            await asyncio.sleep(0.02)
    finally:
        await r.aclose()


async def start_fleet(channel: str, nodes: int = 2) -> tuple[list[Any], dict[str, int]]:
    """``nodes`` fastio servers on port 0 sharing a fastio.AsyncRedisManager on ``channel``."""
    servers = []
    calls = {"broadcast": 0}
    for _ in range(nodes):
        sio = fastio.AsyncServer(client_manager=fastio.AsyncRedisManager(REDIS_URL, channel=channel))

        @sio.event
        async def broadcast(sid, data, sio=sio):
            calls["broadcast"] += 1
            await sio.emit("broadcast", data)

        servers.append(await fastio.serve(sio, "127.0.0.1", 0))
    await wait_subscribers(channel, nodes)
    return servers, calls


@pytest.mark.timeout(60)
async def test_broadcast_over_two_servers_on_redis_counts_every_delivery_on_both():
    channel = "fastio-loadgen-test-" + secrets.token_hex(4)
    servers, calls = await start_fleet(channel)
    try:
        urls = [s.url for s in servers]
        targets = [loadgen.parse_url(u) for u in urls]
        hook: list[int] = []

        async def on_connected() -> None:
            hook.append(calls["broadcast"])  # every client is in, no broadcast sent yet

        o = loadgen.Options("broadcast", targets[0], also=targets[1:], server_pid=[os.getpid()],
                            watch_pids=[os.getpid()], conns=7, window=2, duration=0.3, warmup=0.1,
                            on_connected=on_connected)
        r = await loadgen.run_async(o)
    finally:
        for s in servers:
            await s.close()
    assert r["errors"] == 0 and r["lost"] == 0, r
    assert r["drained"] and r["undelivered"] == 0 and r["unexpected_events"] == 0, r
    assert hook == [0]
    assert r["conns"] == 7
    assert r["receivers_per_target"] == {targets[0].url(): 4, targets[1].url(): 3}
    assert r["targets"] == [t.url() for t in targets]
    # Every broadcast the first node handled reached all 7 receivers, the 3 on the other node too.
    assert calls["broadcast"] > 0
    assert r["ops_all_phases"] == calls["broadcast"] * 7
    assert r["ops"] > 0 and r["broadcasts_per_s"] > 0
    assert r["latency_us"]["p50"] is not None
    assert r["server_cpu_us_per_broadcast"] is not None
    assert list(r["watched_cpu_s"]) == [str(os.getpid())]
