"""python-socketio's / python-engineio's ASGIApp API under uvicorn, with python-socketio's and
python-engineio's clients as the peers: overridable ``lifespan``/``not_found``/
``serve_static_file``, static files served before ``other_asgi_app``, ``socketio_path=None``,
and ``fastio.engineio.ASGIApp`` for an Engine.IO-only server."""
from __future__ import annotations

import asyncio

import engineio as pyeio
import httpx
import pytest
import socketio as pysio
from integration_support import uvicorn_server
from plain_asgi import complete_lifespan

import fastio
import fastio.engineio


def echo_server() -> fastio.AsyncServer:
    sio = fastio.AsyncServer()

    @sio.event
    async def echo(sid, data):
        return data

    return sio


async def roundtrip(url: str, **connect: object) -> None:
    """python-socketio's client connects, gets an acknowledgement and leaves."""
    client = pysio.AsyncClient(reconnection=False)
    try:
        await client.connect(url, wait_timeout=10, **connect)
        assert await client.call("echo", {"x": [1, b"\x02"]}, timeout=10) == {"x": [1, b"\x02"]}
    finally:
        await client.disconnect()


async def other_app(scope, receive, send):
    """A plain ASGI app naming the path it was given."""
    if scope["type"] == "lifespan":
        await complete_lifespan(receive, send)
        return
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"other " + scope["path"].encode()})


@pytest.fixture
def static_dir(tmp_path):
    (tmp_path / "index.html").write_text("<h1>index</h1>")
    (tmp_path / "app.js").write_text("console.log(1)")
    return tmp_path


@pytest.mark.timeout(30)
async def test_static_files_come_before_the_other_app(static_dir):
    app = fastio.ASGIApp(echo_server(), other_asgi_app=other_app, static_files={
        "/": str(static_dir / "index.html"),
        "/static": str(static_dir),
    })
    async with uvicorn_server(app) as (server, port):
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            r = await http.get("/")
            assert (r.status_code, r.text, r.headers["content-type"]) == (200, "<h1>index</h1>", "text/html")
            r = await http.get("/static/app.js")
            assert (r.status_code, r.text) == (200, "console.log(1)")
            # a static prefix whose file does not exist, and any other path: the other app
            assert (await http.get("/static/missing.js")).text == "other /static/missing.js"
            assert (await http.get("/api")).text == "other /api"
        await roundtrip(url)


class Custom(fastio.ASGIApp):
    """Overrides python-engineio's three hooks."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lifespan_events: list[str] = []

    async def lifespan(self, scope, receive, send):
        while True:
            msg = await receive()
            self.lifespan_events.append(msg["type"])
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                await self.sio.shutdown()
                return

    async def not_found(self, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": [(b"x-custom", b"1")]})
        await send({"type": "http.response.body", "body": b"custom 404"})

    async def serve_static_file(self, static_file, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-custom", b"1")]})
        await send({"type": "http.response.body", "body": b"custom " + static_file["content_type"].encode()})


@pytest.mark.timeout(30)
async def test_a_subclass_overrides_lifespan_not_found_and_serve_static_file(static_dir):
    app = Custom(echo_server(), static_files={"/": str(static_dir / "index.html")})
    async with uvicorn_server(app) as (server, port):
        assert app.lifespan_events == ["lifespan.startup"]
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            r = await http.get("/")
            assert (r.status_code, r.text, r.headers["x-custom"]) == (200, "custom text/html", "1")
            r = await http.get("/nowhere")
            assert (r.status_code, r.text, r.headers["x-custom"]) == (404, "custom 404", "1")
        await roundtrip(url)
    assert app.lifespan_events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("path", [None, ""])
async def test_socketio_path_none_sends_every_request_to_the_server(path, static_dir):
    """python-engineio's engineio_path=None (and "", which it turns into "/"): every HTTP and
    WebSocket request is the server's, whatever its path; static files and the other app are
    not consulted."""
    app = fastio.ASGIApp(echo_server(), other_asgi_app=other_app, socketio_path=path,
                         static_files={"/": str(static_dir / "index.html")})
    assert app.engineio_path is None
    async with uvicorn_server(app) as (server, port):
        url = f"http://127.0.0.1:{port}"
        for transports in (["polling"], ["websocket"]):
            await roundtrip(url, socketio_path="mounted/here", transports=transports)
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            r = await http.get("/")
            assert r.status_code == 400  # Engine.IO's answer to a request without its query


@pytest.mark.timeout(30)
async def test_engineio_asgi_app():
    eio = fastio.engineio.AsyncServer()
    got: asyncio.Queue = asyncio.Queue()

    @eio.on("message")
    async def message(sid, data):
        await eio.send(sid, data[::-1])

    app = fastio.engineio.ASGIApp(eio, other_asgi_app=other_app)
    assert isinstance(app, fastio.ASGIApp) and app.engineio_server is eio
    async with uvicorn_server(app) as (server, port):
        url = f"http://127.0.0.1:{port}"
        client = pyeio.AsyncClient()
        client.on("message", got.put)
        for transports in (["polling"], ["websocket"]):
            await client.connect(url, transports=transports)
            await client.send("olleh")
            assert await asyncio.wait_for(got.get(), 10) == "hello"
            await client.disconnect()
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            assert (await http.get("/socket.io/")).text == "other /socket.io/"


@pytest.mark.timeout(30)
async def test_asgi_app_on_the_native_server(static_dir):
    """The same ASGIApp objects through fastio.serve: static files before the other app."""
    app = fastio.ASGIApp(echo_server(), other_asgi_app=other_app,
                         static_files={"/": str(static_dir / "index.html")})
    server = await fastio.serve(app, "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get("/")).text == "<h1>index</h1>"
            assert (await http.get("/api")).text == "other /api"
        await roundtrip(server.url)
    finally:
        await server.close()
