"""Broadcast operators with a pub/sub manager: an operator's emit reaches the other processes
(``except_`` and ``volatile`` travel as extra keys of python-socketio's emit message), ``local``
keeps it in this process; fetch_sockets reaches the other process."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import socketio as pysio

import fastio
from pubsub_bus import Bus, BusManager

pytestmark = pytest.mark.timeout(30)


async def test_operator_emits_cross_processes():
    bus = Bus()
    servers = []
    warnings: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    log = logging.getLogger("test-node-features-cluster")
    log.addHandler(ListHandler())
    log.setLevel(logging.WARNING)
    for _ in range(2):
        sio = fastio.AsyncServer(client_manager=BusManager(bus, channel="c", logger=log))

        @sio.event
        async def connect(sid, environ, auth, sio=sio):
            for room in auth["rooms"]:
                await sio.enter_room(sid, room)

        srv = await fastio.serve(sio, "127.0.0.1", 0)
        await sio.manager.ready()
        servers.append((sio, srv))
    (sio1, srv1), (sio2, srv2) = servers
    inboxes: dict[str, asyncio.Queue[Any]] = {}
    clients = []
    for name, url, rooms in (("a", srv1.url, ["r"]), ("b", srv2.url, ["r"]), ("c", srv2.url, ["r", "vip"])):
        c = pysio.AsyncClient(reconnection=False)
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        c.on("*", lambda event, *args, inbox=inbox: inbox.put_nowait((event, list(args))))
        await c.connect(url, auth={"rooms": rooms}, transports=["websocket"])
        inboxes[name] = inbox
        clients.append(c)
    try:
        await sio1.to("r").except_("vip").emit("news", 1, {"two": b"\x02"})
        await sio1.local.emit("local-only")
        await sio1.to(clients[1].get_sid()).volatile.emit("v")
        await sio1.emit("marker")
        for name in "abc":
            got = []
            while not got or got[-1][0] != "marker":
                got.append(await asyncio.wait_for(inboxes[name].get(), 5))
            inboxes[name] = got  # type: ignore[assignment]
        assert inboxes["a"] == [("news", [1, {"two": b"\x02"}]), ("local-only", []), ("marker", [])]
        assert inboxes["b"] == [("news", [1, {"two": b"\x02"}]), ("v", []), ("marker", [])]
        assert inboxes["c"] == [("marker", [])]
        # fetch_sockets reaches the other process once the two know each other (heartbeats);
        # with local, this process's sockets only
        deadline = asyncio.get_running_loop().time() + 5
        while not (sio1.manager.peers and sio2.manager.peers):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        found = await sio1.in_("r").except_("vip").fetch_sockets()
        assert sorted(s.sid for s in found) == sorted(c.get_sid() for c in clients[:2])
        assert [s.sid for s in await sio1.local.in_("r").fetch_sockets()] == [clients[0].get_sid()]
        assert not warnings
    finally:
        for c in clients:
            await c.disconnect()
        await srv1.close()
        await srv2.close()
