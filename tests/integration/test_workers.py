"""``fastio run module:sio --workers 2``: two worker processes behind one port.

The server runs as a real subprocess on port 0 (the master prints the port it bound) and is
stopped by its PID. Clients: socket.io-client in Node (many sessions at once, polling-only,
WebSocket-only and upgrading) and fastio's AsyncClient. Every session must complete on its
worker, room emits reach the clients of every worker, acknowledgements cross workers, a worker
that dies is started again and its clients reconnect, and SIGTERM stops every worker gracefully.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest
from integration_support import MODES, NODE_DIR, TRANSPORTS
from nodeproc import NodeProcess

import fastio

APP = "tests.integration.workers_app:sio"


@pytest.fixture
async def cluster(fastio_command):
    srv = await fastio_command("run", APP, "--workers", "2", "--log-level", "warning")
    yield srv
    await srv.stop()


def worker_pids(srv) -> set[int]:
    out = srv.stdout.decode()
    line = next(ln for ln in out.splitlines() if ln.startswith("fastio: 2 workers (pids "))
    return {int(p) for p in line.split("(pids ", 1)[1].rstrip(")").split()}


class Peer:
    """A fastio AsyncClient that records ``told`` events and answers ``question``."""

    def __init__(self, name: str, reconnection: bool = False) -> None:
        self.name = name
        self.client = fastio.AsyncClient(reconnection=reconnection, reconnection_delay=0.05,
                                         reconnection_delay_max=0.1, randomization_factor=0)
        self.told: asyncio.Queue = asyncio.Queue()
        self.connects = 0
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.reasons: list = []

        @self.client.on("told")
        async def told(msg):
            self.told.put_nowait(msg)

        @self.client.on("question")
        async def question(data):
            return ["answer", self.name, data]

        @self.client.event
        async def connect():
            self.connects += 1
            self.connected.set()

        @self.client.event
        async def disconnect(reason=None):
            self.reasons.append(reason)
            self.disconnected.set()

    async def connect(self, url: str, mode: str) -> dict:
        await self.client.connect(url, transports=TRANSPORTS[mode], wait_timeout=5)
        return await self.client.call("whoami", timeout=5)


async def peers_on_both_workers(url: str, mode: str, count: int = 4) -> tuple[list[Peer], list[dict]]:
    peers = [Peer("p%d" % i) for i in range(count)]
    mes = [await p.connect(url, mode) for p in peers]
    assert len({me["pid"] for me in mes}) == 2, mes
    return peers, mes


async def close_all(peers: list[Peer]) -> None:
    for p in peers:
        if p.client.connected:
            await p.client.disconnect()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", MODES)
async def test_node_clients_every_session_completes(cluster, node_ready, mode):
    """Ten socket.io-client sessions at once: all connect (and upgrade), spread over both
    workers, all receive a room emit made on one worker, and ``sio.call`` to each of them from
    client 0's worker is answered across workers."""
    proc = NodeProcess(NODE_DIR / "workers_clients.mjs",
                       {"url": f"http://127.0.0.1:{cluster.port}", "transports": TRANSPORTS[mode],
                        "upgrade": mode == "upgrade", "count": 10, "timeoutMs": 20000})
    try:
        await proc.start()
        summary = await proc.expect("summary", timeout=20)
        await proc.expect_exit(0)
    finally:
        await proc.aclose()
    assert summary["count"] == 10
    assert set(summary["pids"]) == worker_pids(cluster), summary
    assert summary["told"] == 10 and summary["answers"] == 9, summary
    final = "polling" if mode == "polling" else "websocket"
    assert summary["transports"] == [final] * 10, summary
    tellers = {e["by"] for e in proc.seen("told")}
    assert len(tellers) == 1, tellers  # one emit, made on one worker, reached both


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", MODES)
async def test_rooms_acks_and_disconnects_cross_workers(cluster, mode):
    url = f"http://127.0.0.1:{cluster.port}"
    peers, mes = await peers_on_both_workers(url, mode)
    try:
        a = peers[0]
        other = next(i for i, me in enumerate(mes) if me["pid"] != mes[0]["pid"])
        same = next(i for i, me in enumerate(mes[1:], 1) if me["pid"] == mes[0]["pid"])
        b_sid = mes[other]["sid"]

        # a room joined from another worker, emitted to from a's worker
        assert await a.client.call("put_in", (b_sid, "team"), timeout=5) is True
        assert await a.client.call("put_in", (mes[same]["sid"], "team"), timeout=5) is True
        by = await a.client.call("tell", ("team", 1), timeout=5)
        assert (await asyncio.wait_for(peers[other].told.get(), 5)) == {"data": 1, "by": by}
        assert (await asyncio.wait_for(peers[same].told.get(), 5)) == {"data": 1, "by": by}

        # the emit to the whole room "all" reaches everyone, from the other worker too
        by2 = await peers[other].client.call("tell", ("all", 2), timeout=5)
        assert by2 != by
        for p in peers:
            assert (await asyncio.wait_for(p.told.get(), 5)) == {"data": 2, "by": by2}

        # leave_room and close_room for a client of another worker
        assert await a.client.call("take_out", (b_sid, "team"), timeout=5) is True
        await a.client.call("tell", ("team", 3), timeout=5)
        assert (await asyncio.wait_for(peers[same].told.get(), 5))["data"] == 3
        # Messages from one worker to another keep their order: "direct" comes after 3.
        await a.client.call("tell", (b_sid, "direct"), timeout=5)
        assert (await asyncio.wait_for(peers[other].told.get(), 5))["data"] == "direct"
        assert await peers[other].client.call("close", ("team",), timeout=5) is True
        # Messages between two workers keep their order: once this emit from b's worker
        # reached a client of a's worker, so did the close_room before it.
        await peers[other].client.call("tell", (mes[same]["sid"], "after close"), timeout=5)
        assert (await asyncio.wait_for(peers[same].told.get(), 5))["data"] == "after close"
        await a.client.call("tell", ("team", 4), timeout=5)
        await a.client.call("tell", (mes[same]["sid"], "direct"), timeout=5)
        assert (await asyncio.wait_for(peers[same].told.get(), 5))["data"] == "direct"

        # acknowledgements cross workers: a's worker calls b, b's answer comes back
        assert await a.client.call("ask", (b_sid,), timeout=5) == ["answer", peers[other].name, {"from": by}]

        # a disconnect asked on one worker ends a session of the other
        assert await a.client.call("kick", (b_sid,), timeout=5) is True
        await asyncio.wait_for(peers[other].disconnected.wait(), 5)
        assert peers[other].reasons == [peers[other].client.reason.SERVER_DISCONNECT]
    finally:
        await close_all(peers)


@pytest.mark.timeout(30)
async def test_operators_cross_workers(cluster):
    """fetch_sockets, all_sockets, server_side_emit_with_ack and emit_with_ack to a room, asked
    on each worker, reach the other worker (the workers know each other from heartbeats)."""
    url = f"http://127.0.0.1:{cluster.port}"
    peers, mes = await peers_on_both_workers(url, "websocket")
    try:
        sids = sorted(me["sid"] for me in mes)
        other = next(i for i, me in enumerate(mes) if me["pid"] != mes[0]["pid"])
        for i in (0, other):
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                got = await peers[i].client.call("cluster_ops", timeout=15)
                if got["servers"] == 2:
                    break
                assert asyncio.get_running_loop().time() < deadline, got
                await asyncio.sleep(0.05)
            assert got["pid"] == mes[i]["pid"]
            assert got["sids"] == sids and got["fetched"] == sids
            assert got["server_side"] == [mes[other if i == 0 else 0]["pid"]]
            assert got["acks"] == sorted(["answer", p.name, "ack"] for p in peers)
    finally:
        await close_all(peers)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_killed_worker_restarts_and_clients_reconnect(cluster, mode):
    url = f"http://127.0.0.1:{cluster.port}"
    before = worker_pids(cluster)
    peer = Peer("k", reconnection=True)
    me = await peer.connect(url, mode)
    try:
        peer.connected.clear()
        os.kill(me["pid"], signal.SIGKILL)
        await asyncio.wait_for(peer.disconnected.wait(), 10)
        await asyncio.wait_for(peer.connected.wait(), 10)
        again = await peer.client.call("whoami", timeout=5)
        assert again["sid"] != me["sid"]
        # the killed worker was started again: a new session can land on either worker, and
        # both answer
        others = [Peer("n%d" % i) for i in range(4)]
        pids = {(await p.connect(url, mode))["pid"] for p in others}
        await close_all(others)
        assert me["pid"] not in pids and len(pids) == 2, (me, pids)
        assert len(pids - before) == 1
        assert "worker 0 exited" in cluster.stderr.decode() or "worker 1 exited" in cluster.stderr.decode()
    finally:
        await close_all([peer])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_worker_crash_in_handler(cluster, mode):
    """A worker that exits by itself (os._exit in a handler) is replaced too."""
    url = f"http://127.0.0.1:{cluster.port}"
    peer = Peer("c", reconnection=True)
    me = await peer.connect(url, mode)
    try:
        peer.connected.clear()
        await peer.client.emit("crash")
        await asyncio.wait_for(peer.connected.wait(), 10)
        assert (await peer.client.call("whoami", timeout=5))["sid"] != me["sid"]
    finally:
        await close_all([peer])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_graceful_stop(cluster, sig):
    url = f"http://127.0.0.1:{cluster.port}"
    peers = [Peer("s%d" % i) for i in range(4)]
    modes = ["websocket", "polling", "websocket", "polling"]
    pids = {(await p.connect(url, m))["pid"] for p, m in zip(peers, modes)}
    assert len(pids) == 2
    cluster.send_signal(sig)
    assert await cluster.wait(timeout=15) == 0, cluster.describe()
    for p in peers:
        await asyncio.wait_for(p.disconnected.wait(), 5)
        assert p.reasons == [p.client.reason.SERVER_DISCONNECT], (p.name, p.reasons)
    for pid in pids:  # every worker is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "Traceback" not in cluster.stderr.decode(), cluster.describe()
    # the port is free again
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", cluster.port), 5)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


@pytest.mark.timeout(30)
async def test_keep_alive_connection_reused_across_sessions(cluster):
    """A browser reuses an idle keep-alive connection for a request of another session, which
    may live on another worker: the connection is handed over and the request answered by the
    session's worker, and the connection then serves both sessions' requests."""
    conns = []
    sids = []
    host = f"127.0.0.1:{cluster.port}"
    for _ in range(2):  # one handshake per connection: round-robin puts them on both workers
        reader, writer = await asyncio.open_connection("127.0.0.1", cluster.port)
        writer.write(f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, body = await asyncio.wait_for(_response(reader), 5)
        assert status == 200 and body[:1] == b"0", body
        sids.append(json.loads(body[1:])["sid"])
        conns.append((reader, writer))
    assert {s.split(".")[0] for s in sids} == {"0", "1"}, sids
    reader, writer = conns[0]

    async def request(method: str, sid: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: {host}\r\n"
        if method == "POST":
            head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        return await asyncio.wait_for(_response(reader), 5)

    try:
        # Over the first connection (which the master gave to the first session's worker):
        # the second session, then the first, then the second again.
        for sid in (sids[1], sids[0]):
            assert await request("POST", sid, b"40") == (200, b"ok"), sid
            status, body = await request("GET", sid)
            assert status == 200 and body.startswith(b'40{"sid":"'), body
        big = b'42["echo",' + json.dumps("x" * 20000).encode() + b"]"
        assert await request("POST", sids[1], big) == (200, b"ok")
        for sid in sids:
            assert await request("POST", sid, b"1") == (200, b"ok"), sid
    finally:
        for _, w in conns:
            w.close()


@pytest.mark.timeout(30)
async def test_redis_manager_joins_workers_and_other_hosts(fastio_command):
    """With ``client_manager=AsyncRedisManager`` the workers keep it (each with a host id of its
    own) and share rooms and acks with a server of another host on the same channel."""
    import uuid

    from workers_app import build

    channel = "fastio-workers-" + uuid.uuid4().hex
    srv = await fastio_command("run", "tests.integration.workers_app:redis_sio", "--workers", "2",
                               env={"FASTIO_TEST_CHANNEL": channel})
    mgr = fastio.AsyncRedisManager("redis://127.0.0.1:6379/0", channel=channel)
    elsewhere = build(fastio.AsyncServer(client_manager=mgr))
    other_host = await fastio.serve(elsewhere, "127.0.0.1", 0)
    peers: list[Peer] = []
    try:
        await asyncio.wait_for(mgr.ready(), 5)
        peers, mes = await peers_on_both_workers(f"http://127.0.0.1:{srv.port}", "websocket")
        remote = Peer("remote")
        peers.append(remote)
        r_me = await remote.connect(f"http://127.0.0.1:{other_host.port}", "polling")
        # an emit on the other host reaches the clients of both workers
        await remote.client.call("tell", ("all", "x"), timeout=5)
        for p in peers:
            assert (await asyncio.wait_for(p.told.get(), 5))["data"] == "x"
        # and an emit on a worker reaches the other host; an ack crosses hosts
        await peers[0].client.call("tell", ("all", "y"), timeout=5)
        for p in peers:
            assert (await asyncio.wait_for(p.told.get(), 5))["data"] == "y"
        answer = await peers[1].client.call("ask", (r_me["sid"],), timeout=5)
        assert answer == ["answer", "remote", {"from": mes[1]["pid"]}]
    finally:
        await close_all(peers)
        await other_host.close()
        await srv.stop()


@pytest.mark.timeout(30)
async def test_asgi_app_beside_socketio_in_every_worker(fastio_command):
    """An ASGIApp with another ASGI app (FastAPI): each worker runs the app's lifespan and
    serves its paths; Socket.IO sessions land on both workers."""
    import httpx

    srv = await fastio_command("run", "tests.integration.example_app:app", "--workers", "2")
    url = f"http://127.0.0.1:{srv.port}"
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            for _ in range(4):
                r = await http.get(f"{url}/api/hello")
                assert r.status_code == 200 and r.json()["hello"] == "from fastio run"
        peers = [Peer("a%d" % i) for i in range(2)]
        for p in peers:
            await p.client.connect(url, transports=["polling"], wait_timeout=5)
            assert await p.client.call("whoami", timeout=5) == "asgi"
        await close_all(peers)
    finally:
        await srv.stop()
    assert "Traceback" not in srv.stderr.decode(), srv.describe()


@pytest.mark.timeout(30)
async def test_engineio_server_with_workers(fastio_command):
    """An Engine.IO server alone (no client manager): polling sessions stay on their worker."""
    import httpx

    srv = await fastio_command("run", "tests.integration.workers_app:eio", "--workers", "2")
    base = f"http://127.0.0.1:{srv.port}/engine.io/?EIO=4&transport=polling"
    pids = set()
    async with httpx.AsyncClient(timeout=5) as http:
        for i in range(4):  # a new connection per request: the master routes every one
            r = await http.get(base, headers={"Connection": "close"})
            sid = json.loads(r.text[1:])["sid"]
            r = await http.post(f"{base}&sid={sid}", content=f"4hello{i}", headers={"Connection": "close"})
            assert r.text == "ok"
            r = await http.get(f"{base}&sid={sid}", headers={"Connection": "close"})
            pid, _, text = r.text[1:].partition(":")
            assert r.text[0] == "4" and text == f"hello{i}", r.text
            pids.add(int(pid))
    assert pids == worker_pids(srv)
    await srv.stop()


async def _exited(pid: int, timeout: float) -> None:
    """Wait until process ``pid`` (not necessarily a child) has exited (pidfd readiness)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


@pytest.mark.timeout(30)
async def test_workers_stop_when_the_master_dies(cluster):
    """A master killed outright (SIGKILL, nothing forwarded) leaves no worker serving."""
    url = f"http://127.0.0.1:{cluster.port}"
    peer = Peer("orphan")
    await peer.connect(url, "websocket")
    cluster.send_signal(signal.SIGKILL)
    for pid in worker_pids(cluster):
        await _exited(pid, 10)
    await asyncio.wait_for(peer.disconnected.wait(), 5)
    await close_all([peer])


@pytest.mark.timeout(90)
async def test_browser_pooled_connections_carry_every_session(cluster, node_ready, tmp_path):
    """Four long-polling sessions of one page in headless Chromium: the browser reuses its
    keep-alive connections for requests of any session, whichever worker owns it; every
    session completes, acks and a room emit reach all of them. (Without the hand-over between
    workers, a POST fails with 400 within the first rounds. More than four sessions would
    stall on the browser's six connections per host, workers or not.)"""
    from integration_support import REPO_ROOT

    chromium = os.environ.get("FASTIO_CHROMIUM", "/usr/bin/chromium")
    client_script = REPO_ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
    if not os.access(chromium, os.X_OK) or not (REPO_ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail(f"the browser test needs Chromium at {chromium} and playwright-core (scripts/bootstrap)",
                    pytrace=False)
    # Which worker a handshake reaches depends on which pooled connection the browser picks: when
    # all four land on one worker nothing crossed workers, so the page runs again (every run must
    # complete in full); the sessions must have spread over both workers in one of the runs.
    for attempt in range(3):
        proc = NodeProcess(NODE_DIR / "browser_workers.mjs", {
            "url": f"http://127.0.0.1:{cluster.port}", "clientScript": str(client_script),
            "executablePath": chromium, "userDataDir": str(tmp_path / f"profile{attempt}"),
            "count": 4, "rounds": 10, "timeoutMs": 60000})
        try:
            await proc.start()
            result = await proc.expect("result", timeout=60)
            await proc.expect_exit(0, timeout=20)
        finally:
            await proc.aclose()
        assert not proc.seen("page_error"), proc.seen("page_error")
        assert result["acks"] == 40 and result["told"] == 4 and result["errors"] == [], result
        if set(result["pids"]) == worker_pids(cluster):
            break
    assert set(result["pids"]) == worker_pids(cluster), result


async def _status_of(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        line = await reader.readline()
        return int(line.split()[1])
    finally:
        writer.close()


async def test_connection_limits_apply_in_every_worker(fastio_command):
    """``fastio run --workers 2 --max-header-size 1024``: each worker refuses a head over the limit
    with 431 (the default limit, 64 KiB, would let it through), and serves a request under it."""
    srv = await fastio_command("run", APP, "--workers", "2", "--max-header-size", "1024",
                               "--log-level", "warning")
    big = (b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Pad: "
           + b"a" * 2000 + b"\r\n\r\n")
    small = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"
    # new connections go round-robin, so four of each reach both workers
    for _ in range(4):
        assert await _status_of(srv.port, big) == 431
        assert await _status_of(srv.port, small) == 200
