"""Fan-out: one emit to a room of 1,000 WebSocket clients, skip_sid and
leave_room at that scale, and a client that stops reading.

The clients are the minimal raw WebSocket clients of conftest.py (one
asyncio stream each): 1,000 python-socketio clients would measure the
client, not the server, on a small machine.
"""

from __future__ import annotations

import asyncio
import resource
import time

import pytest

from connection_log import log_connections

N_CLIENTS = 1000
CONCURRENT_HANDSHAKES = 64
DISCONNECT_REASONS = {
    "client disconnect", "server disconnect", "ping timeout", "transport close", "transport error", "parse error",
}


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        pytest.fail(f"this test needs {needed} file descriptors; the limit is {soft}", pytrace=False)


async def open_clients(raw_ws, port: int, n: int, namespace: str = "/"):
    sem = asyncio.Semaphore(CONCURRENT_HANDSHAKES)

    async def one():
        async with sem:
            ws = await raw_ws.open(port)
            sid = await ws.sio_connect(namespace)
            return ws, sid

    return await asyncio.gather(*(one() for _ in range(n)))


async def events_until(ws, end_marker: str, timeout: float = 15.0) -> list[tuple[str, list]]:
    """Every EVENT a client gets up to (not including) ``end_marker``."""
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        name, args = await ws.recv_event(max(deadline - loop.time(), 0.001))
        if name == end_marker:
            return got
        got.append((name, args))


@pytest.mark.timeout(30)
async def test_broadcast_to_1000_clients_skip_sid_and_leave_room(make_sio, serve_sio, raw_ws, event_log):
    raise_fd_limit(2 * N_CLIENTS + 200)
    sio = make_sio()
    log = event_log

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, "crowd")

    @sio.event
    async def disconnect(sid, reason):
        log.add("disconnect", sid=sid, reason=reason)

    srv = await serve_sio(sio)
    started = time.monotonic()
    clients = await open_clients(raw_ws, srv.port, N_CLIENTS)
    sids = [sid for _, sid in clients]
    assert len(set(sids)) == N_CLIENTS
    assert len(list(sio.manager.get_participants("/", "crowd"))) == N_CLIENTS
    connected_in = time.monotonic() - started

    # 1. one emit, every member gets it exactly once
    payload = {"seq": 1, "text": "hello everyone", "pad": "x" * 200}
    await sio.emit("news", payload, room="crowd")
    await sio.emit("end", 1)  # to the whole namespace: a per-client end marker
    results = await asyncio.gather(*(events_until(ws, "end") for ws, _ in clients))
    for (ws, sid), got in zip(clients, results):
        assert got == [("news", [payload])], f"{sid} got {got}"

    # 2. skip_sid (a list) and leave_room are honoured at this scale
    skipped = set(sids[:25])
    leavers = set(sids[25:50])
    for sid in leavers:
        await sio.leave_room(sid, "crowd")
    await sio.emit("news", {"seq": 2}, room="crowd", skip_sid=list(skipped))
    await sio.emit("news", {"seq": 3}, room="crowd")
    await sio.emit("end", 2)
    results = await asyncio.gather(*(events_until(ws, "end") for ws, _ in clients))
    for (ws, sid), got in zip(clients, results):
        seqs = [args[0]["seq"] for name, args in got if name == "news"]
        if sid in skipped:
            expected = [3]
        elif sid in leavers:
            expected = []
        else:
            expected = [2, 3]
        assert seqs == expected, f"{sid}: got {got}"
        assert all(name == "news" for name, _ in got)

    # 3. a broadcast with an ack id per client reaches everyone once too
    in_room = [(ws, sid) for ws, sid in clients if sid not in leavers]
    answered = []
    all_answered = asyncio.Event()

    def on_ack(*args):
        answered.append(args)
        if len(answered) == len(in_room):
            all_answered.set()

    await sio.emit("ask", "q", room="crowd", callback=on_ack)
    await sio.emit("end", 3)

    async def answer(ws):
        text = await ws.recv_text()
        assert text.startswith("42"), text
        ack_id = text[2:text.index("[")]
        assert ack_id.isdigit(), text
        ws.send_text(f"43{ack_id}[\"a\"]")
        return await events_until(ws, "end")

    rest = await asyncio.gather(*(answer(ws) for ws, _ in in_room))
    assert all(r == [] for r in rest)
    # the acks come back over the same sockets; wait for all of them
    await asyncio.wait_for(all_answered.wait(), 10)
    assert len(answered) == len(in_room)
    assert set(answered) == {("a",)}
    assert not log.all("disconnect"), "nobody was disconnected"
    assert time.monotonic() - started < 25, f"fan-out took too long (connecting: {connected_in:.1f} s)"


@pytest.mark.timeout(30)
async def test_client_that_stops_reading_is_disconnected(make_sio, serve_sio, raw_ws, event_log):
    sio = make_sio()
    log = event_log
    log_connections(sio, log)

    @sio.event
    async def ping(sid, n):
        return n + 1

    srv = await serve_sio(sio)
    slow = await raw_ws.open_non_reading(srv.port)
    others = await open_clients(raw_ws, srv.port, 20)
    for ws, sid in others:
        await sio.enter_room(sid, "others")

    received: dict[str, list[int]] = {sid: [] for _, sid in others}

    async def reader(ws, sid):
        while True:
            name, args = await ws.recv_event(timeout=30)
            if name == "tick":
                received[sid].append(args[0])
            elif name == "done":
                return

    readers = [asyncio.create_task(reader(ws, sid)) for ws, sid in others]
    big = "y" * (1 << 20)  # 1 MiB of JSON string per emit
    slow_gone = None
    ticks = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    try:
        while loop.time() < deadline:
            await sio.emit("big", big, to=slow.sid)
            ticks += 1
            await sio.emit("tick", ticks, room="others")
            # let the loop write (and the readers read) between emits
            await asyncio.sleep(0)
            gone = log.all("disconnect", sid=slow.sid)
            if gone:
                slow_gone = gone[0]
                # what the others had read by then
                progress = min(len(r) for r in received.values())
                break
        assert slow_gone is not None, (
            f"a client that never reads was not disconnected after {ticks} MiB were emitted to it"
        )
        assert slow_gone["reason"] in DISCONNECT_REASONS
        assert slow_gone["reason"] not in ("client disconnect",)
        assert progress > 0, "the other clients received nothing while the slow one backed up"

        # the others keep receiving, and can still talk to the server
        for _ in range(5):
            ticks += 1
            await sio.emit("tick", ticks, room="others")
        await sio.emit("done", room="others")
        await asyncio.wait_for(asyncio.gather(*readers), 10)
        for _, sid in others:
            assert received[sid] == list(range(1, ticks + 1)), f"{sid} missed ticks"
        for i, (ws, sid) in enumerate(others):
            ws.emit("ping", i, ack_id=1)
            assert await ws.recv_text() == f"431[{i + 1}]"
        assert [e["sid"] for e in log.all("disconnect")] == [slow.sid]
        assert sio.manager.get_socket(slow.sid, "/") is None
    finally:
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
