"""fastio.ASGIApp under uvicorn, beside a FastAPI app, with the official socket.io-client.

uvicorn runs in this event loop (``uvicorn.Server.serve()`` on port 0, the asyncio loop); the
client is socket.io-client 4.8.x in Node over polling, WebSocket, and polling upgraded to
WebSocket.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from integration_support import (
    MODES,
    Log,
    build_sio,
    client_scenario,
    raw_polling_client,
    routes_beside_socketio,
    upgrades_promptly,
    uvicorn_server,
)
from fastapi import FastAPI

import fastio


def build_app(log: Log, **asgi_options):
    sio = build_sio(log)
    api = FastAPI()

    @api.get("/api/hello")
    async def hello(name: str = "world"):
        return {"hello": name, "clients": len(sio.eio.sockets)}

    @api.post("/api/notify")
    async def notify(body: dict):
        await sio.emit("notice", body)
        return {"sent": True}

    app = fastio.ASGIApp(sio, other_asgi_app=api, **asgi_options)
    return sio, api, app


@pytest.fixture(params=["websockets-sansio", "wsproto"])
async def asgi_env(request, sio_client):
    """fastio under uvicorn with each of uvicorn's WebSocket implementations (its default, the
    ``websockets`` one, and ``wsproto``)."""
    log = Log()
    sio, api, app = build_app(log)
    async with uvicorn_server(app, ws=request.param) as (server, port):
        yield sio, log, port
        await sio.shutdown()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
async def test_socketio_client_over_uvicorn(asgi_env, sio_client, mode):
    sio, log, port = asgi_env
    await client_scenario(f"http://127.0.0.1:{port}", sio, log, sio_client, mode, port)


@pytest.mark.timeout(60)
async def test_fastapi_routes_beside_socketio(asgi_env, sio_client):
    sio, log, port = asgi_env
    await routes_beside_socketio(
        f"http://127.0.0.1:{port}",
        sio,
        sio_client,
        "asgi",
        {"text": "from http", "n": [1, 2]},
        not_found={"detail": "Not Found"},
    )


@pytest.mark.timeout(180)
async def test_upgrades_complete_promptly(asgi_env):
    sio, log, port = asgi_env
    await upgrades_promptly(f"http://127.0.0.1:{port}")


@pytest.mark.timeout(30)
async def test_environ_names_the_real_peer(asgi_env):
    sio, log, port = asgi_env
    await raw_polling_client(port, log)


@pytest.mark.timeout(30)
async def test_lifespan_hooks_and_custom_path(sio_client):
    """ASGIApp's own on_startup/on_shutdown under uvicorn, and a socketio_path of its own."""
    log = Log()
    calls: list[str] = []

    async def startup():
        calls.append("startup")

    def shutdown():
        calls.append("shutdown")

    sio, api, app = build_app(log, socketio_path="rt", on_startup=startup, on_shutdown=shutdown)
    async with uvicorn_server(app) as (server, port):
        assert calls == ["startup"]
        url = f"http://127.0.0.1:{port}"
        # (a WebSocket: uvicorn runs the lifespan shutdown only once its requests are done,
        # and a pending long poll would hold it for timeout_graceful_shutdown)
        proc = await sio_client(url, "websocket", path="/rt")
        sid = (await proc.expect("connect", socket="/"))["id"]
        assert (await log.expect("connect", sid=sid))["path"] == "/rt/"
        await proc.send("emit", name="add", args=[2, 3], ack=True, id="p")
        assert (await proc.expect("ack", id="p"))["args"] == [5]
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            assert (await http.get("/api/hello")).json()["hello"] == "world"
    # shutdown ran, and closed the Socket.IO connection (the client is told)
    assert calls == ["startup", "shutdown"]
    assert (await proc.expect("disconnect", socket="/", timeout=10))["reason"] in (
        "transport close",
        "io server disconnect",
        "transport error",
    )
    await asyncio.wait_for(log.expect("disconnect", sid=sid), 10)
