"""fastio.ASGIApp under uvicorn with ``ws=app.uvicorn_ws``: Socket.IO WebSockets go to fastio's
compiled protocol, HTTP (long-polling too) stays on ASGI, and the other app's WebSocket routes
still get uvicorn's own WebSocket protocol.

Peers: socket.io-client 4.8.x in Node over polling, WebSocket and polling upgraded to WebSocket;
the ``websockets`` client for a FastAPI WebSocket route.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from fastapi import FastAPI, WebSocket
from integration_support import (
    MODES,
    Log,
    build_sio,
    client_scenario,
    upgrades_promptly,
    uvicorn_server,
)

import fastio


def build_app(log: Log):
    sio = build_sio(log)
    api = FastAPI()

    @api.get("/api/hello")
    async def hello():
        return {"clients": len(sio.eio.sockets)}

    @api.websocket("/ws/echo")
    async def ws_echo(ws: WebSocket):
        await ws.accept()
        while True:
            text = await ws.receive_text()
            await ws.send_text("echo:" + text)

    return sio, fastio.ASGIApp(sio, other_asgi_app=api)


@pytest.fixture(params=["httptools", "h11"])
async def native_ws_env(request, sio_client):
    """Both of uvicorn's HTTP implementations hand upgrades to the ``ws`` protocol."""
    log = Log()
    sio, app = build_app(log)
    async with uvicorn_server(app, ws=app.uvicorn_ws, http=request.param) as (server, port):
        yield sio, app, server, log, port
        await sio.shutdown()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
async def test_socketio_client_with_fastio_websockets_under_uvicorn(native_ws_env, sio_client, mode):
    sio, app, server, log, port = native_ws_env
    await client_scenario(f"http://127.0.0.1:{port}", sio, log, sio_client, mode, port)


@pytest.mark.timeout(60)
async def test_socketio_websockets_are_native_and_other_routes_are_uvicorns(native_ws_env, sio_client):
    sio, app, server, log, port = native_ws_env
    proc = await sio_client(f"http://127.0.0.1:{port}", "websocket")
    sid = (await proc.expect("connect", socket="/"))["id"]
    # the Socket.IO WebSocket is carried by fastio's protocol and tracked for uvicorn's shutdown
    assert len(app.uvicorn_ws.connections) == 1
    assert len(server.server_state.connections) == 1
    # a FastAPI WebSocket route next to it is served by uvicorn's own WebSocket protocol
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 10) == "echo:hi"
        assert len(app.uvicorn_ws.connections) == 1
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert (await http.get("/api/hello")).json() == {"clients": 1}
    await proc.send("emit", name="add", args=[4, 5], ack=True, id="a")
    assert (await proc.expect("ack", id="a"))["args"] == [9]
    await proc.send("disconnect")
    await asyncio.wait_for(log.expect("disconnect", sid=sid), 10)
    # nothing is left behind in uvicorn's or fastio's connection sets
    for _ in range(200):
        if not app.uvicorn_ws.connections and not server.server_state.connections:
            break
        await asyncio.sleep(0.01)
    assert not app.uvicorn_ws.connections
    assert not server.server_state.connections


@pytest.mark.timeout(180)
async def test_upgrades_complete_promptly_with_fastio_websockets(native_ws_env):
    sio, app, server, log, port = native_ws_env
    await upgrades_promptly(f"http://127.0.0.1:{port}", count=30)


@pytest.mark.timeout(30)
async def test_bad_upgrade_under_the_socketio_path_gets_fastios_400(native_ws_env):
    sio, app, server, log, port = native_ws_env
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /socket.io/?EIO=4&transport=websocket&sid=unknown HTTP/1.1\r\nHost: x\r\n"
                 b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    assert status.startswith(b"HTTP/1.1 400")
    writer.close()
    # the server still serves everyone else
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert (await http.get("/api/hello")).status_code == 200


@pytest.mark.timeout(30)
async def test_uvicorn_shutdown_closes_fastio_websockets(sio_client):
    log = Log()
    sio, app = build_app(log)
    async with uvicorn_server(app, ws=app.uvicorn_ws) as (server, port):
        proc = await sio_client(f"http://127.0.0.1:{port}", "websocket")
        sid = (await proc.expect("connect", socket="/"))["id"]
    # leaving the block shut uvicorn down: the client was disconnected and the session ended
    assert (await proc.expect("disconnect", socket="/", timeout=10))["reason"] in (
        "transport close", "io server disconnect", "transport error")
    await asyncio.wait_for(log.expect("disconnect", sid=sid), 10)
    assert not app.uvicorn_ws.connections


@pytest.mark.timeout(30)
@pytest.mark.parametrize("native", [True, False])
async def test_environ_as_asgi_builds_it_behind_a_proxy(native):
    """Behind a trusted proxy (uvicorn's forwarded_allow_ips), a WebSocket session's environ has
    the forwarded client and scheme and an asgi.scope, whether fastio or ASGI carries it."""
    sio = fastio.AsyncServer()
    seen: asyncio.Queue = asyncio.Queue()

    @sio.event
    async def connect(sid, environ, auth):
        scope = environ.get("asgi.scope") or {}
        seen.put_nowait((environ["REMOTE_ADDR"], environ["wsgi.url_scheme"], scope.get("type"),
                         scope.get("path"), environ.get("HTTP_X_FORWARDED_FOR")))

    app = fastio.ASGIApp(sio)
    options = {"ws": app.uvicorn_ws} if native else {}
    async with uvicorn_server(app, **options) as (server, port):
        async with websockets.connect(
                f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                additional_headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}) as ws:
            assert (await asyncio.wait_for(ws.recv(), 10)).startswith("0{")
            await ws.send("40")
            assert (await asyncio.wait_for(ws.recv(), 10)).startswith("40{")
            assert await asyncio.wait_for(seen.get(), 10) == (
                "203.0.113.7", "wss", "websocket", "/socket.io/", "203.0.113.7")
            assert len(app.uvicorn_ws.connections) == (1 if native else 0)
        await sio.shutdown()
