"""``fastio bench URL``: the load generator as a command, run against real servers on 127.0.0.1.

The peers are a fastio server in this process (on a namespace, with other event names than the
defaults) and Node's socket.io 4.8 on its default ``ws`` engine and on uWebSockets.js (the
benchmark servers bench/servers/node_socketio.mjs and node_uws.mjs, started on port 0). Every
run is bounded: a few connections, 0.3 s measured per scenario.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import time
from typing import Any

import pytest

import fastio
from integration_support import REPO_ROOT, check_node_modules, node_executable, run_to_exit

SCENARIOS = ["echo", "ack", "broadcast", "connect", "idle"]
SMALL = ["-c", "6", "-w", "2", "--clients", "40", "--concurrency", "8", "-d", "0.3", "--warmup", "0.1",
         "--settle", "0.1"]


async def fastio_bench(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run ``python -m fastio.cli bench <args>`` from this checkout; (returncode, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    returncode, out, err = await run_to_exit(
        [sys.executable, "-m", "fastio.cli", "bench", *args], timeout, cwd=REPO_ROOT, env=env
    )
    return returncode, out.decode(), err.decode()


def check_results(results: list[dict[str, Any]], receivers: int) -> dict[str, dict[str, Any]]:
    by = {r["scenario"]: r for r in results}
    assert list(by) == SCENARIOS
    for name, r in by.items():
        assert "error" not in r, r
        assert r["ops"] > 0, r
        assert r["errors"] == 0 and r["lost"] == 0, r
        assert r["latency_us"]["p50"] is not None, r
        assert r["latency_us"]["p50"] <= r["latency_us"]["p90"] <= r["latency_us"]["p99"], r
    for name in ("echo", "ack"):
        assert by[name]["drained"] and by[name]["unanswered"] == 0
        assert by[name]["window"] == 2 and by[name]["conns"] == 6
    assert by["broadcast"]["drained"] and by["broadcast"]["undelivered"] == 0
    assert by["broadcast"]["unexpected_events"] == 0
    assert by["idle"]["clients"] == by["idle"]["alive"] == 40
    return by


@pytest.mark.timeout(60)
async def test_bench_a_fastio_server_on_a_namespace_with_its_own_event_names():
    sio = fastio.AsyncServer()
    calls = {"ping_me": 0, "shout": 0}

    @sio.on("ping_me", namespace="/load")
    async def ping_me(sid, *args):
        calls["ping_me"] += 1
        await sio.emit("pong", args[0] if len(args) == 1 else list(args), to=sid, namespace="/load")
        return args

    @sio.on("shout", namespace="/load")
    async def shout(sid, data):
        calls["shout"] += 1
        await sio.emit("shout", data, namespace="/load")

    server = await fastio.serve(sio, "127.0.0.1", 0)
    try:
        rc, out, err = await fastio_bench(
            server.url + "/load", "-s", ",".join(SCENARIOS), *SMALL,
            "--echo-event", "ping_me", "--broadcast-event", "shout", "--json")
    finally:
        await server.close()
    assert rc == 0, out + err
    doc = json.loads(out)
    assert doc["target"].endswith("/socket.io/load")
    by = check_results(doc["results"], receivers=6)
    # The generator counted answers the server really sent: no more than it handled.
    assert 0 < by["echo"]["ops"] + by["ack"]["ops"] <= calls["ping_me"]
    assert 0 < by["broadcast"]["ops"] // 6 <= calls["shout"]
    assert by["echo"]["params"]["echo_event"] == "ping_me"
    # The progress line went to stderr (one line per tick when stderr is not a terminal).
    assert "[echo ws://127.0.0.1:" in err and " done " in err


def start_node(script: str) -> Any:
    check_node_modules()
    for package in ("socket.io", "@trufflesuite/uws-js-unofficial"):
        if not (REPO_ROOT / "node_modules" / package / "package.json").is_file():
            pytest.fail("the Node servers need %s from package-lock.json: run `npm ci` in %s" % (package, REPO_ROOT),
                        pytrace=False)
    return asyncio.create_subprocess_exec(
        node_executable(), str(REPO_ROOT / "bench" / "servers" / script), "--host", "127.0.0.1", "--port", "0",
        cwd=str(REPO_ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("script", ["node_socketio.mjs", "node_uws.mjs"])
async def test_bench_nodes_socketio_server(script):
    proc = await start_node(script)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("READY "), line + (await proc.stderr.read()).decode()
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        port, pid = int(fields["port"]), int(fields["pid"])
        assert pid == proc.pid
        url = "http://127.0.0.1:%d" % port
        rc, out, err = await fastio_bench(url, "-s", ",".join(SCENARIOS), *SMALL, "--server-pid", str(pid),
                                          "--json", "-q")
        assert rc == 0, out + err
        assert err == ""  # -q: no progress line
        by = check_results(json.loads(out)["results"], receivers=6)
        for name in ("echo", "ack", "broadcast"):
            r = by[name]
            assert r["server_cpu_us_per_op"] is not None
            assert r["server_utime_us_per_op"] + r["server_stime_us_per_op"] == pytest.approx(r["server_cpu_us_per_op"])
        assert by["idle"]["bytes_per_client"] is not None
        # The table: one row per scenario with the server CPU column.
        rc, out, err = await fastio_bench(url, "-s", "echo,broadcast", *SMALL, "--server-pid", str(pid))
        assert rc == 0, out + err
        lines = out.splitlines()
        assert lines[0] == "fastio bench ws://127.0.0.1:%d/socket.io" % port
        assert lines[1].split()[:8] == ["scenario", "load", "ops", "rate/s", "p50", "p90", "p99", "errors"]
        assert "server CPU us/op (u/s)" in lines[1]
        assert [line.split()[0] for line in lines[3:5]] == ["echo", "broadcast"]
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.mark.timeout(30)
async def test_bench_reports_a_server_that_is_not_there():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        rc, out, err = await fastio_bench("http://127.0.0.1:%d" % port, "-s", "echo", "--quick", "-q")
    assert rc == 1
    assert out.splitlines()[3].startswith("echo       error: RuntimeError: opened 0 of 10 clients")


@pytest.mark.timeout(30)
async def test_bench_rejects_unknown_scenarios_and_urls():
    rc, out, err = await fastio_bench("http://127.0.0.1:1", "-s", "echo,storm")
    assert rc == 2 and "unknown scenario storm" in err
    rc, out, err = await fastio_bench("ftp://127.0.0.1:1")
    assert rc == 2 and "unsupported URL scheme" in err


async def numsub(channel: str) -> int:
    """How many nodes listen on ``channel`` of the Redis on 127.0.0.1:6379."""
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        return (await r.pubsub_numsub(channel))[0][1]
    finally:
        await r.aclose()


@pytest.mark.timeout(60)
async def test_bench_broadcast_over_two_fastio_nodes_on_redis():
    channel = "fastio-cli-bench-" + secrets.token_hex(4)
    calls = {"broadcast": 0}
    servers = []
    try:
        for _ in range(2):
            sio = fastio.AsyncServer(client_manager=fastio.AsyncRedisManager("redis://127.0.0.1:6379/0",
                                                                             channel=channel))

            @sio.event
            async def broadcast(sid, data, sio=sio):
                calls["broadcast"] += 1
                await sio.emit("broadcast", data)

            servers.append(await fastio.serve(sio, "127.0.0.1", 0))
        deadline = time.monotonic() + 10
        while await numsub(channel) < 2:
            assert time.monotonic() < deadline, "the nodes did not subscribe"
            await asyncio.sleep(0.02)
        pid = str(os.getpid())
        rc, out, err = await fastio_bench(servers[0].url, servers[1].url, "-c", "5", "-w", "2", "-d", "0.3",
                                          "--warmup", "0.1", "--server-pid", pid, "--server-pid", pid, "--json", "-q")
        assert rc == 0, out + err
        doc = json.loads(out)
        # Several URLs and no -s: the broadcast scenario alone.
        assert [r["scenario"] for r in doc["results"]] == ["broadcast"]
        r = doc["results"][0]
        assert doc["targets"] == r["targets"] == [s.url.replace("http://", "ws://") + "/socket.io" for s in servers]
        assert r["receivers_per_target"] == dict(zip(r["targets"], [3, 2]))
        assert r["drained"] and r["undelivered"] == 0 and r["errors"] == 0 and r["lost"] == 0, r
        assert r["ops_all_phases"] == calls["broadcast"] * 5 > 0
        assert r["server_cpu_us_per_op"] is not None
        # The table names both servers; the other scenarios are refused with several URLs.
        rc, out, err = await fastio_bench(servers[0].url, servers[1].url, "-c", "4", "-d", "0.2", "--warmup", "0.1",
                                          "-q")
        assert rc == 0, out + err
        assert out.splitlines()[0] == "fastio bench " + " ".join(r["targets"])
        assert out.splitlines()[3].split()[0] == "broadcast"
        rc, out, err = await fastio_bench(servers[0].url, servers[1].url, "-s", "echo")
        assert rc == 2 and "broadcast scenario only" in err
    finally:
        for s in servers:
            await s.close()
