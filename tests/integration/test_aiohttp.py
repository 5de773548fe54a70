"""``sio.attach(web.Application())`` under aiohttp's AppRunner, with the official socket.io-client.

The aiohttp application runs in this event loop on port 0, with routes of its own beside the
Socket.IO ones; the client is socket.io-client 4.8.x in Node over polling, WebSocket, and
polling upgraded to WebSocket.
"""

from __future__ import annotations

import pytest
from aiohttp import web
from integration_support import (
    MODES,
    Log,
    aiohttp_server,
    build_sio,
    client_scenario,
    raw_polling_client,
    routes_beside_socketio,
    upgrades_promptly,
)


def build_app(log: Log, **attach_options):
    sio = build_sio(log)
    app = web.Application()
    sio.attach(app, **attach_options)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.query.get("name", "world"), "clients": len(sio.eio.sockets)})

    async def notify(request: web.Request) -> web.Response:
        await sio.emit("notice", await request.json())
        return web.json_response({"sent": True})

    app.router.add_get("/api/hello", hello)
    app.router.add_post("/api/notify", notify)
    return sio, app


@pytest.fixture
async def aiohttp_env(sio_client):
    log = Log()
    sio, app = build_app(log)
    async with aiohttp_server(app) as port:
        yield sio, log, port
        await sio.shutdown()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
async def test_socketio_client_over_aiohttp(aiohttp_env, sio_client, mode):
    sio, log, port = aiohttp_env
    await client_scenario(f"http://127.0.0.1:{port}", sio, log, sio_client, mode, port)


@pytest.mark.timeout(60)
async def test_aiohttp_routes_beside_socketio(aiohttp_env, sio_client):
    sio, log, port = aiohttp_env
    await routes_beside_socketio(f"http://127.0.0.1:{port}", sio, sio_client, "aio", {"text": "from http"})


@pytest.mark.timeout(180)
async def test_upgrades_complete_promptly(aiohttp_env):
    sio, log, port = aiohttp_env
    await upgrades_promptly(f"http://127.0.0.1:{port}")


@pytest.mark.timeout(30)
async def test_environ_names_the_real_peer(aiohttp_env):
    sio, log, port = aiohttp_env
    await raw_polling_client(port, log)


@pytest.mark.timeout(30)
async def test_custom_socketio_path(sio_client):
    log = Log()
    sio, app = build_app(log, socketio_path="rt")
    async with aiohttp_server(app) as port:
        proc = await sio_client(f"http://127.0.0.1:{port}", "polling", path="/rt")
        sid = (await proc.expect("connect", socket="/"))["id"]
        assert (await log.expect("connect", sid=sid))["path"] == "/rt/"
        await proc.send("emit", name="echo", args=[{"$bin": "AAEC"}], ack=True, id="p")
        assert (await proc.expect("ack", id="p"))["args"] == [{"$bin": "AAEC"}]
        await sio.shutdown()
        assert (await proc.expect("disconnect", socket="/"))["reason"] in ("io server disconnect", "transport close")
        await log.expect("disconnect", sid=sid)


@pytest.mark.timeout(30)
async def test_client_manager_starts_with_the_aiohttp_app():
    """A pub/sub manager must listen from start-up: attach() starts it in aiohttp's on_startup,
    before any client connects."""
    import fastio

    started = []

    class RecordingManager(fastio.AsyncManager):
        def initialize(self) -> None:
            started.append(len(sio.eio.sockets))
            super().initialize()

    sio = fastio.AsyncServer(client_manager=RecordingManager())
    app = web.Application()
    sio.attach(app)
    assert started == []
    async with aiohttp_server(app):
        assert started == [0]
    await sio.shutdown()
