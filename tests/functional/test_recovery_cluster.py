"""Connection state recovery with a pub/sub manager (two servers sharing a message bus).

Each process logs the broadcasts it delivers, with its own offsets: a client that comes back to
the same server is recovered, broadcasts from the other server included; one that comes back to
the other server gets a fresh session (docs/recovery.md, "Across processes").
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fastio
from pubsub_bus import Bus, BusManager

pytestmark = pytest.mark.timeout(30)

DELAY = 0.02


async def test_recovery_per_process_with_a_pubsub_manager():
    bus = Bus()
    servers = []
    for _ in range(2):
        sio = fastio.AsyncServer(client_manager=BusManager(bus, channel="c"),
                                 connection_state_recovery={"max_disconnection_duration": 60})

        @sio.event
        async def connect(sid, environ, auth, sio=sio):
            if not sio.is_recovered(sid):
                await sio.enter_room(sid, "r")

        srv = await fastio.serve(sio, "127.0.0.1", 0)
        await sio.manager.ready()
        servers.append((sio, srv))
    (sio1, srv1), (sio2, srv2) = servers
    got: asyncio.Queue[Any] = asyncio.Queue()
    connected: asyncio.Queue[Any] = asyncio.Queue()
    client = fastio.AsyncClient(reconnection_delay=DELAY, reconnection_delay_max=DELAY, handle_sigint=False)
    client.on("n", lambda *args: got.put_nowait(args))
    client.on("connect", lambda: connected.put_nowait((client.get_sid(), client.recovered)))
    try:
        await client.connect(srv2.url, transports=["websocket"])
        sid, recovered = await connected.get()
        assert not recovered
        await sio1.emit("n", 0, to="r")  # from the other server, through the bus
        assert await asyncio.wait_for(got.get(), 5) == (0,)

        # lost, then back to the same server: recovered, the other server's broadcasts included
        witness = fastio.AsyncClient(reconnection=False, handle_sigint=False)
        seen: asyncio.Queue[Any] = asyncio.Queue()
        witness.on("n", lambda *args: seen.put_nowait(args))
        await witness.connect(srv2.url, transports=["websocket"])
        sio2.eio.sockets[sio2.manager.eio_sid_from_sid(sid, "/")].close("transport error", False)
        await sio1.emit("n", 1, to="r")
        assert await asyncio.wait_for(seen.get(), 5) == (1,)  # server 2 has delivered (and logged) it
        await sio2.emit("n", 2, to="r")
        await witness.disconnect()
        sid2, recovered = await asyncio.wait_for(connected.get(), 10)
        assert (sid2, recovered) == (sid, True)
        assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == [(1,), (2,)]

        # lost again, but the reconnection reaches the other server: a fresh session there
        client.connection_url = srv1.url
        sio2.eio.sockets[sio2.manager.eio_sid_from_sid(sid, "/")].close("transport error", False)
        sid3, recovered = await asyncio.wait_for(connected.get(), 10)
        assert sid3 != sid and not recovered
        await sio2.emit("n", 3, to="r")  # the new socket is in "r" on server 1: it arrives by the bus
        assert await asyncio.wait_for(got.get(), 5) == (3,)
        assert got.empty()
    finally:
        await client.disconnect()
        await srv1.close()
        await srv2.close()
