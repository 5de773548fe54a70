"""ASGI integration: ``ASGIApp(sio, other_asgi_app)`` under uvicorn, hypercorn or granian.

The ASGI server does HTTP and WebSocket framing; fastio does Engine.IO, Socket.IO, rooms and
fan-out.  Requests outside the Socket.IO path go to ``other_asgi_app`` (a FastAPI or Starlette
app, say), or to ``static_files``, or get a 404.
"""
from __future__ import annotations

import asyncio
import mimetypes
import os
from typing import Any, Awaitable, Callable

from fastio.base.frameworks import register_asgi_app
from fastio.engineio.environ import build_environ
from fastio.hosting.bridge import BridgeRequest
from fastio.hosting.uvicorn import UvicornWebSocketFactory

__all__ = ["ASGIApp", "EngineIOASGIApp", "get_static_file"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def get_static_file(path: str, static_files: dict[str, Any]) -> dict[str, str] | None:
    """Resolve ``path`` with python-engineio's static file rules: {"filename", "content_type"}."""
    extra = ""
    entry = static_files.get(path)
    p = path
    while entry is None and p:
        p, last = p.rsplit("/", 1) if "/" in p else ("", p)
        extra = "/" + last + extra
        entry = static_files.get(p) or static_files.get(p + "/")
    if entry is None or "../" in extra:
        return None
    f = {"filename": entry} if isinstance(entry, str) else dict(entry)
    if f["filename"].endswith("/") and extra.startswith("/"):
        extra = extra[1:]
    f["filename"] += extra
    if f["filename"].endswith("/"):
        index = static_files.get("")
        if index is None:
            f["filename"] += "index.html"
        elif isinstance(index, str):
            f["filename"] += index
        else:
            f["filename"] += index["filename"]
            if "content_type" in index:
                f["content_type"] = index["content_type"]
    if "content_type" not in f:
        f["content_type"] = mimetypes.guess_type(f["filename"])[0] or "application/octet-stream"
    return f


def _environ(scope: Scope, receive: Receive, send: Send) -> dict[str, Any]:
    qs = scope.get("query_string", b"")
    path = scope["path"]
    return build_environ(scope.get("method", "GET"), path, qs, path + ("?" + qs.decode("latin-1") if qs else ""),
                         scope.get("http_version", "1.1"), scope.get("client"), scope.get("server"),
                         scope.get("headers", []), script_name=scope.get("root_path", ""),
                         url_scheme=scope.get("scheme", "http"), software="asgi",
                         extra={"asgi.scope": scope, "asgi.receive": receive, "asgi.send": send})


class ASGIApp:
    """An ASGI application serving a fastio ``AsyncServer`` (python-socketio's ``ASGIApp``).

    Requests under the Socket.IO path go to the server; any other HTTP request is answered
    with a file of ``static_files`` when one matches, else handed to ``other_asgi_app``, else
    answered by :meth:`not_found`. Lifespan events go to :meth:`lifespan`. A subclass may
    override :meth:`lifespan`, :meth:`not_found` and :meth:`serve_static_file`.

    :param socketio_server: the fastio ``AsyncServer`` (or Engine.IO ``AsyncServer``).
    :param other_asgi_app: an ASGI app for every other path (and for lifespan events).
    :param static_files: python-engineio's static file map, e.g. ``{"/": "index.html"}``.
    :param socketio_path: the URL path of Socket.IO (default ``socket.io``). ``None`` (or
        ``""``) sends every HTTP and WebSocket request to the server, routing being done by
        another layer; ``static_files`` and ``other_asgi_app`` then only see lifespan events.
    :param on_startup: a callable (sync or async) run at lifespan startup.
    :param on_shutdown: a callable (sync or async) run at lifespan shutdown.
    """

    def __init__(self, socketio_server: Any, other_asgi_app: Any = None, static_files: dict[str, Any] | None = None,
                 socketio_path: str | None = "socket.io", on_startup: Callable[[], Any] | None = None,
                 on_shutdown: Callable[[], Any] | None = None) -> None:
        self.sio = socketio_server
        self.engine = getattr(socketio_server, "eio", socketio_server)
        #: python-engineio's form: ``"/socket.io/"``, or None when every path is the server's.
        self.engineio_path: str | None = None
        if socketio_path is not None and socketio_path.strip("/"):
            self.engine.engineio_path = socketio_path.strip("/")
            self.engineio_path = "/" + self.engine.engineio_path + "/"
        self.engine.async_mode = "asgi"
        self.other_asgi_app = other_asgi_app
        self.static_files = static_files or {}
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self._uvicorn_ws: Any = None

    @property
    def uvicorn_ws(self) -> Any:
        """A uvicorn ``ws`` protocol serving this app's Socket.IO WebSockets natively.

        ``uvicorn.run(app, ws=app.uvicorn_ws)`` (or ``uvicorn module:app --ws module:app.uvicorn_ws``):
        WebSocket connections under the Socket.IO path skip ASGI and are served by fastio's
        compiled protocol; other WebSocket paths, HTTP and long-polling are served as usual.
        """
        if self._uvicorn_ws is None:
            self._uvicorn_ws = UvicornWebSocketFactory(self.sio)
        return self._uvicorn_ws

    def handles_path(self, path: str) -> bool:
        """True when an HTTP or WebSocket request for ``path`` goes to the server."""
        return self.engineio_path is None or self.engine.handles_path(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # A pub/sub manager listens from start-up, not from the first client.
            initialize = getattr(self.sio, "initialize_manager", None)
            if initialize is not None:
                initialize()
            await self.lifespan(scope, receive, send)
        elif kind in ("http", "websocket") and self.handles_path(scope["path"]):
            if kind == "http":
                await self._http(scope, receive, send)
            else:
                await self._websocket(scope, receive, send)
        else:
            f = get_static_file(scope["path"], self.static_files) \
                if kind == "http" and self.static_files else None
            if f is not None and os.path.isfile(f["filename"]):
                await self.serve_static_file(f, receive, send)
            elif self.other_asgi_app is not None:
                await self.other_asgi_app(scope, receive, send)
            elif kind == "http":
                await self.not_found(receive, send)
            elif kind == "websocket":
                await send({"type": "websocket.close", "code": 1000})

    # -- HTTP ---------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        limit = self.engine.max_http_buffer_size + 4096
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if len(body) > limit:
                await self._send_response(send, 413, [("Content-Type", "application/json")],
                                          b'{"code":3,"message":"Payload too large"}')
                return
            if not msg.get("more_body"):
                break
        req = self._request(scope, receive, send, bytes(body), False)
        self.engine.handle_request(req)
        if not req.response.done():
            # A long poll: answer when data comes, or give up if the client goes away.
            watcher = asyncio.ensure_future(self._watch_disconnect(receive))
            try:
                waiting: list[asyncio.Future[Any]] = [req.response, watcher]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                watcher.cancel()
            if not req.response.done():
                if req.on_abort is not None:
                    req.on_abort(req)
                return
        status, headers, payload = req.response.result()
        await self._send_response(send, status, headers, payload)

    @staticmethod
    async def _watch_disconnect(receive: Receive) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return

    @staticmethod
    async def _send_response(send: Send, status: int, headers: list[Any], body: bytes) -> None:
        raw = [(k.encode("latin-1") if isinstance(k, str) else k, v.encode("latin-1") if isinstance(v, str) else v)
               for k, v in headers]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    def _request(self, scope: Scope, receive: Receive, send: Send, body: bytes, upgrade: bool) -> BridgeRequest:
        headers = [(k.lower(), v) for k, v in scope.get("headers", [])]
        method = scope.get("method", "GET")
        return BridgeRequest(method, scope["path"], scope.get("query_string", b""), headers, body,
                             tuple(scope["client"]) if scope.get("client") else None,
                             tuple(scope["server"]) if scope.get("server") else None,
                             upgrade, _environ(scope, receive, send), scope.get("http_version", "1.1"),
                             scope.get("scheme", "http"))

    async def serve_static_file(self, static_file: dict[str, str], receive: Receive, send: Send) -> None:
        """Answer with the file ``static_file["filename"]`` (python-engineio's method: a
        subclass may override it)."""
        with open(static_file["filename"], "rb") as fh:
            payload = fh.read()
        await self._send_response(send, 200, [("Content-Type", static_file["content_type"])], payload)

    async def not_found(self, receive: Receive, send: Send) -> None:
        """Answer 404 Not Found (an HTTP request no route took; a subclass may override it)."""
        await self._send_response(send, 404, [("Content-Type", "text/plain")], b"Not Found")

    # -- WebSocket ------------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        msg = await receive()
        if msg["type"] != "websocket.connect":
            return
        req = self._request(scope, receive, send, b"", True)
        self.engine.handle_request(req)
        status, headers, payload = await req.response
        ws = req.websocket
        if status != 101 or ws is None:
            # Refused before the handshake: an HTTP response where the server supports it.
            try:
                await self._send_response_ws_denial(send, status, headers, payload)
            except Exception:
                await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        ws.attach_asgi(send)
        try:
            while not ws.closed:
                msg = await receive()
                t = msg["type"]
                if t == "websocket.receive":
                    text = msg.get("text")
                    if text is not None:
                        ws.receive_text(text)
                    else:
                        ws.receive_bytes(msg.get("bytes") or b"")
                elif t == "websocket.disconnect":
                    break
        finally:
            ws.lost("transport close")

    @staticmethod
    async def _send_response_ws_denial(send: Send, status: int, headers: list[Any], body: bytes) -> None:
        raw = [(k.encode("latin-1") if isinstance(k, str) else k, v.encode("latin-1") if isinstance(v, str) else v)
               for k, v in headers]
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body})

    # -- lifespan ---------------------------------------------------------------------------------

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the ASGI lifespan protocol: ``other_asgi_app``'s when it is given and neither
        ``on_startup`` nor ``on_shutdown`` is; otherwise run those and shut the server down at
        the end (python-engineio's method: a subclass may override it)."""
        if self.other_asgi_app is not None and self.on_startup is None and self.on_shutdown is None:
            await self.other_asgi_app(scope, receive, send)
            return
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    if self.on_startup is not None:
                        r = self.on_startup()
                        if asyncio.iscoroutine(r):
                            await r
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                try:
                    if self.on_shutdown is not None:
                        r = self.on_shutdown()
                        if asyncio.iscoroutine(r):
                            await r
                    await self.sio.shutdown()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


class EngineIOASGIApp(ASGIApp):
    """python-engineio's ``ASGIApp``, for an Engine.IO-only server: ``fastio.engineio.ASGIApp``.

    :param engineio_server: the ``fastio.engineio.AsyncServer``.
    :param other_asgi_app: an ASGI app for every other path (and for lifespan events).
    :param static_files: python-engineio's static file map.
    :param engineio_path: the URL path of Engine.IO (default ``engine.io``); ``None`` (or
        ``""``) sends every HTTP and WebSocket request to the server.
    :param on_startup: a callable (sync or async) run at lifespan startup.
    :param on_shutdown: a callable (sync or async) run at lifespan shutdown.
    """

    def __init__(self, engineio_server: Any, other_asgi_app: Any = None, static_files: dict[str, Any] | None = None,
                 engineio_path: str | None = "engine.io", on_startup: Callable[[], Any] | None = None,
                 on_shutdown: Callable[[], Any] | None = None) -> None:
        super().__init__(engineio_server, other_asgi_app, static_files=static_files, socketio_path=engineio_path,
                         on_startup=on_startup, on_shutdown=on_shutdown)
        self.engineio_server = engineio_server


register_asgi_app("engineio", EngineIOASGIApp)
