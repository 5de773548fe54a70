"""The native server hosting a FastAPI application beside Socket.IO.

``fastio.serve(sio, host, 0, app=api)``: Socket.IO on /socket.io/ (socket.io-client in Node),
every other path goes to FastAPI (httpx). Routes answer while Socket.IO traffic flows, a
streamed response arrives piece by piece, and FastAPI's lifespan runs around the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from integration_support import MODES, Log, build_sio, client_scenario, upgrades_promptly
from pydantic import BaseModel

import fastio


class Item(BaseModel):
    name: str
    qty: int
    tags: list[str] = []


class Api:
    """A FastAPI app with lifespan hooks, JSON routes, a route that emits to Socket.IO clients
    and a streaming route the test paces."""

    def __init__(self, sio: Any) -> None:
        self.sio = sio
        self.events: list[str] = []
        self.release = asyncio.Event()
        self.stream_closed = asyncio.Event()
        self.stream_finished = False

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI):
            self.events.append("startup")
            yield {"greeting": "hello from lifespan"}
            self.events.append("shutdown")

        api = FastAPI(lifespan=lifespan)
        self.app = api

        @api.get("/api/hello")
        async def hello(request: Request, name: str = "world"):
            self.events.append("request")
            return {
                "hello": name,
                "state": request.state.greeting,
                "clients": len(sio.eio.sockets),
            }

        @api.post("/api/items", status_code=201)
        async def create_item(item: Item):
            self.events.append("request")
            await sio.emit("item", item.model_dump(), room="watchers")
            return {"created": item.model_dump(), "total": item.qty * 2}

        @api.get("/api/stream")
        async def stream(parts: int = 5):
            async def body():
                try:
                    yield b"part-0\n"
                    await self.release.wait()
                    for i in range(1, parts):
                        yield f"part-{i}\n".encode()
                        await asyncio.sleep(0)
                    self.stream_finished = True
                finally:
                    self.stream_closed.set()

            return StreamingResponse(body(), media_type="text/plain")


@contextlib.asynccontextmanager
async def native() -> AsyncIterator[tuple[Log, Any, Api, Any]]:
    """build_sio's server and an Api served by ``fastio.serve`` on port 0; yields (log, sio,
    api, server) and closes the server after."""
    log = Log()
    sio = build_sio(log)
    api = Api(sio)
    server = await fastio.serve(sio, "127.0.0.1", 0, app=api.app)
    try:
        yield log, sio, api, server
    finally:
        await asyncio.wait_for(server.close(), 15)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
async def test_socketio_client_beside_fastapi(sio_client, mode):
    async with native() as (log, sio, api, server):
        await client_scenario(server.url, sio, log, sio_client, mode, server.port)


@pytest.mark.timeout(180)
async def test_upgrades_complete_promptly():
    async with native() as (log, sio, api, server):
        await upgrades_promptly(server.url)


@pytest.mark.timeout(60)
async def test_routes_answer_while_clients_exchange_messages(sio_client):
    async with native() as (log, sio, api, server):
        # the lifespan startup ran before the server took its first request
        assert api.events == ["startup"]
        url = server.url

        a = await sio_client(url, "websocket")
        b = await sio_client(url, "polling")
        sid_a = (await a.expect("connect", socket="/"))["id"]
        sid_b = (await b.expect("connect", socket="/"))["id"]
        for proc in (a, b):
            await proc.send("emit", name="join", args=["watchers"], ack=True, id="join")
            assert (await proc.expect("ack", id="join"))["args"] == ["watchers"]

        count = 150
        await a.send("burst", name="tick", count=count)
        await b.send("burst", name="tick", count=count)

        async with httpx.AsyncClient(base_url=url, timeout=10) as http:

            async def get(i: int) -> None:
                r = await http.get("/api/hello", params={"name": f"n{i}"})
                assert r.status_code == 200, r.text
                assert r.json() == {"hello": f"n{i}", "state": "hello from lifespan", "clients": 2}

            async def post(i: int) -> None:
                r = await http.post("/api/items", json={"name": f"item{i}", "qty": i, "tags": ["x", str(i)]})
                assert r.status_code == 201, r.text
                assert r.json() == {"created": {"name": f"item{i}", "qty": i, "tags": ["x", str(i)]}, "total": 2 * i}

            await asyncio.gather(*(get(i) for i in range(25)), *(post(i) for i in range(25)))

            # FastAPI's own validation and 404
            r = await http.post("/api/items", json={"name": "no qty"})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "qty"]
            r = await http.post("/api/items", content=b"{not json", headers={"content-type": "application/json"})
            assert r.status_code == 422
            r = await http.get("/nowhere")
            assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
            # a Socket.IO path with an unknown sid is Engine.IO's answer, not FastAPI's
            r = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": "nope"})
            assert r.status_code == 400

        # every tick reached the server in order, and each client got the other's ticks
        for sid in (sid_a, sid_b):
            for i in range(count):
                await log.expect("tick", sid=sid, i=i)
        for proc in (a, b):
            got = [(await proc.expect("ev", type="tock"))["args"][0] for _ in range(count)]
            assert sorted(got) == list(range(count))
            # each client got every item broadcast by the POST route
            items = [(await proc.expect("ev", type="item"))["args"][0]["name"] for _ in range(25)]
            assert sorted(items) == sorted(f"item{i}" for i in range(25))

        # and Socket.IO still answers after all that
        await a.send("emit", name="add", args=[20, 22], ack=True, id="done")
        assert (await a.expect("ack", id="done"))["args"] == [42]
        assert api.events.count("shutdown") == 0

    # server.close(): the lifespan shutdown ran, and the clients were disconnected
    assert api.events[0] == "startup" and api.events[-1] == "shutdown"
    assert api.events.count("request") == 50  # the 422s never reach the handler
    for proc in (a, b):
        ev = await proc.expect("disconnect", socket="/")
        assert ev["reason"] in ("io server disconnect", "transport close"), ev
    assert {e["sid"] for e in log.all("disconnect")} == {sid_a, sid_b}


@pytest.mark.timeout(30)
async def test_streaming_response(sio_client):
    async with native() as (log, sio, api, server):
        proc = await sio_client(server.url, "websocket")
        await proc.expect("connect", socket="/")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            async with http.stream("GET", "/api/stream", params={"parts": 50}) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/plain")
                chunks = r.aiter_bytes()
                first = await asyncio.wait_for(chunks.__anext__(), 10)
                # the first part arrived while the body is still being produced
                assert first.startswith(b"part-0\n")
                assert not api.stream_finished
                # Socket.IO keeps working while the response is open
                await proc.send("emit", name="add", args=[1, 1], ack=True, id="mid")
                assert (await proc.expect("ack", id="mid"))["args"] == [2]
                api.release.set()
                rest = b"".join([c async for c in chunks])
            body = first + rest
            assert body == b"".join(f"part-{i}\n".encode() for i in range(50))
            assert api.stream_finished

            # the connection is reused for the next request
            r = await http.get("/api/hello")
            assert r.status_code == 200 and r.json()["clients"] == 1


@pytest.mark.timeout(30)
async def test_streaming_response_client_goes_away():
    """A client that closes the connection mid-stream: the app's receive() reports
    http.disconnect, so Starlette cancels the body generator while it waits (as under
    uvicorn) instead of leaving it waiting for data it can never send."""
    async with native() as (log, sio, api, server):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(f"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        data = b""
        while b"part-0" not in data:
            chunk = await asyncio.wait_for(reader.read(4096), 10)
            assert chunk, data
            data += chunk
        assert b"transfer-encoding: chunked" in data.lower()
        writer.close()
        await writer.wait_closed()
        try:
            await asyncio.wait_for(api.stream_closed.wait(), 5)
        except asyncio.TimeoutError:
            pytest.fail(
                "the body generator still waits 5 s after the client closed the connection: "
                "the ASGI app was never given http.disconnect"
            )
        finally:
            api.release.set()
        assert not api.stream_finished
        # the server still answers afterwards
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            r = await http.get("/api/hello")
            assert r.status_code == 200


@pytest.mark.timeout(30)
async def test_lifespan_startup_before_first_request_and_shutdown_on_close():
    sio = build_sio(Log())
    api = Api(sio)
    assert api.events == []
    server = await fastio.serve(sio, "127.0.0.1", 0, app=api.app)
    url = server.url
    try:
        assert api.events == ["startup"]
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            r = await http.get("/api/hello")
            assert r.status_code == 200 and r.json()["state"] == "hello from lifespan"
        assert api.events == ["startup", "request"]
    finally:
        await asyncio.wait_for(server.close(), 15)
    assert api.events == ["startup", "request", "shutdown"]
    # nothing listens on the port any more
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/api/hello")


@pytest.mark.timeout(30)
async def test_lifespan_startup_failure_stops_serve():
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        raise RuntimeError("database unreachable")
        yield

    api = FastAPI(lifespan=lifespan)
    sio = build_sio(Log())
    with pytest.raises(Exception, match="database unreachable|startup failed"):
        server = await fastio.serve(sio, "127.0.0.1", 0, app=api)
        await server.close()
