"""Node's Engine.IO-level server options in fastio: ``connect_timeout`` (a connection that joins
no namespace is closed), ``allow_request`` (refuse a handshake with a status) and the
``on_initial_headers`` / ``on_headers`` hooks."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.timeout(60)


async def test_connect_timeout_closes_a_connection_without_namespace(make_sio, serve_sio, raw_ws):
    sio = make_sio(connect_timeout=0.3)
    srv = await serve_sio(sio)
    loop = asyncio.get_running_loop()
    idle = await raw_ws.open(srv.port)
    await idle.eio_open()
    joined = await raw_ws.open(srv.port)
    await joined.eio_open()
    await joined.sio_connect()
    started = loop.time()
    await idle.wait_closed(timeout=5)
    assert 0.2 <= loop.time() - started < 3
    # the one that joined a namespace stays: it still answers an event after the deadline
    await asyncio.sleep(0.2)
    sio.on("ping_me", lambda sid: "pong")
    joined.emit("ping_me", ack_id=1)
    assert await joined.recv_text() == '431["pong"]'
    assert len(sio.eio.sockets) == 1


async def test_allow_request_refuses_with_a_status(make_sio, serve_sio, node_sio):
    seen: list[str] = []

    async def allow(environ: dict[str, Any]) -> Any:
        await asyncio.sleep(0)
        query = environ.get("QUERY_STRING", "")
        seen.append(query)
        if "who=teapot" in query:
            return (418, "I'm a teapot")
        if "who=nobody" in query:
            return False
        if "who=named" in query:
            return "not today"
        return True

    srv = await serve_sio(make_sio(allow_request=allow))
    async with aiohttp.ClientSession() as http:
        async def handshake(who: str) -> tuple[int, Any]:
            async with http.get(f"{srv.url}/socket.io/?EIO=4&transport=polling&who={who}") as resp:
                body = await resp.read()
                return resp.status, json.loads(body) if resp.status != 200 else body[:1]

        assert await handshake("nobody") == (403, {"code": 4, "message": "Forbidden"})
        assert await handshake("named") == (403, {"code": 4, "message": "not today"})
        assert await handshake("teapot") == (418, {"code": 4, "message": "I'm a teapot"})
        assert await handshake("friend") == (200, b"0")
    assert len(seen) == 4
    # socket.io-client sees the refusal as a connection error
    proc = await node_sio({"url": srv.url, "transports": ["polling"], "query": {"who": "nobody"}})
    err = await proc.expect("connect_error", socket="/")
    assert err["message"] == "xhr poll error"
    ok = await node_sio({"url": srv.url, "transports": ["websocket"], "query": {"who": "friend"}})
    await ok.expect("connect", socket="/")


async def test_header_hooks(make_sio, serve_sio):
    def initial(headers: dict[str, str], environ: dict[str, Any]) -> None:
        headers["X-Handshake"] = "yes"

    def every(headers: dict[str, str], environ: dict[str, Any]) -> None:
        headers["X-Served-By"] = "fastio"
        headers["X-Path"] = environ["PATH_INFO"]

    srv = await serve_sio(make_sio(on_initial_headers=initial, on_headers=every))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/socket.io/?EIO=4&transport=polling") as resp:
            assert resp.status == 200
            assert resp.headers["X-Handshake"] == "yes"
            assert resp.headers["X-Served-By"] == "fastio"
            sid = json.loads((await resp.read())[1:])["sid"]
        async with http.post(f"{srv.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"40") as resp:
            assert resp.status == 200
            assert resp.headers["X-Served-By"] == "fastio" and "X-Handshake" not in resp.headers
        async with http.get(f"{srv.url}/socket.io/?EIO=4&transport=polling&sid={sid}") as resp:
            assert (await resp.read()).startswith(b"40")
            assert resp.headers["X-Path"] == "/socket.io/"
        async with http.get(f"{srv.url}/socket.io/?EIO=3&transport=polling") as resp:
            assert resp.status == 400 and resp.headers["X-Served-By"] == "fastio"
