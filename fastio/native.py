"""fastio's built-in server: uvloop + the compiled HTTP/WebSocket protocol.

``await serve(app, host, port)`` starts serving and returns a ``Server``; ``run(app, host, port)``
blocks until SIGINT/SIGTERM, then shuts down gracefully (every session gets a close packet,
pending polls are answered) and returns.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any
from urllib.parse import unquote

from fastio._core.protocol import HttpProtocol

__all__ = ["Server", "serve", "run", "tune_gc", "tune_malloc"]

logger = logging.getLogger("fastio.server")


_malloc_tuned: bool | None = None


def tune_malloc(trim_threshold: int = 32 << 20, mmap_threshold: int = 4 << 20) -> bool:
    """Keep freed heap memory mapped instead of returning it to the kernel at once (glibc).

    With glibc's defaults, freeing a block at the top of the heap shrinks the heap as soon as
    128 KiB are free there, and the next large message maps those pages again: every 64 KiB
    payload then costs its pages' faults (more than half of the server's CPU time for 64 KiB
    binary messages).  This raises the trim threshold to ``trim_threshold`` and the size served
    by ``mmap`` to ``mmap_threshold``; the price is up to ``trim_threshold`` bytes kept mapped.

    fastio's own servers (``run``, ``serve``, ``ASGIApp.uvicorn_ws``) call it once; set
    ``FASTIO_MALLOC_TUNING=0``, or glibc's ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_``,
    to keep your own settings.  Returns True when the settings were applied (glibc only).
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = False
    env = os.environ
    if (env.get("FASTIO_MALLOC_TUNING", "1") == "0" or "MALLOC_TRIM_THRESHOLD_" in env
            or "MALLOC_MMAP_THRESHOLD_" in env or not sys.platform.startswith("linux")):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    _malloc_tuned = bool(mallopt(m_trim_threshold, trim_threshold)) and bool(mallopt(m_mmap_threshold, mmap_threshold))
    return _malloc_tuned


def tune_gc(threshold0: int = 7000, threshold1: int = 10, threshold2: int = 100, freeze: bool = True) -> bool:
    """Make Python's cyclic garbage collector run less often in a server process.

    Each connection allocates many container objects, and with the default thresholds
    (700, 10, 10) the collector runs every few connections and rescans what they keep alive.
    This freezes what exists now (``gc.freeze()``: start-up objects are never scanned again)
    and raises the thresholds; cycles are still collected.  Measured with bench/loadgen.py: full
    handshakes cost 46 -> 41 us on the native server, and 420 -> 270 us for fastio.ASGIApp under
    uvicorn, where most of the objects are uvicorn's.

    ``fastio.run`` calls it once the server is listening; call it yourself at start-up under
    another server (uvicorn: in a lifespan startup hook).  ``FASTIO_GC_TUNING=0`` disables it.
    Returns True when applied.
    """
    import gc

    if os.environ.get("FASTIO_GC_TUNING", "1") == "0":
        return False
    if freeze:
        gc.freeze()
    gc.set_threshold(threshold0, threshold1, threshold2)
    return True


def _engine_of(app: Any) -> Any:
    """The Engine.IO server behind ``app`` (an Engine.IO or Socket.IO AsyncServer)."""
    eio = getattr(app, "eio", None)
    return eio if eio is not None else app


class _Router:
    """What every native connection calls into: routes requests and tracks connections."""

    def __init__(self, app: Any, other_app: Any = None) -> None:
        self.app = app
        self.engine = _engine_of(app)
        self.other_app = other_app
        self.connections: set[HttpProtocol] = set()
        self.local_addr: tuple[str, int] | None = None

    def handle_request(self, req: Any) -> None:
        if self.engine.handles_path(req.path):
            self.engine.handle_request(req)
        elif self.other_app is not None:
            self.other_app.handle_request(req)
        else:
            req.respond(404, [("Content-Type", "text/plain")], b"Not Found")

    def _connection_made(self, proto: HttpProtocol) -> None:
        self.connections.add(proto)

    def _connection_lost(self, proto: HttpProtocol) -> None:
        self.connections.discard(proto)

    def _upgraded(self, conn: Any, ws: Any) -> None:
        self.engine._upgraded(conn, ws)

    def _log_exception(self, message: str, exc: BaseException) -> None:
        logger.error(message, exc_info=exc)

    def _log_ws_error(self, proto: Any, code: int, reason: str) -> None:
        logger.info("websocket from %s closed with %d: %s", proto.peername, code, reason)


class AsgiHost:
    """Serves an ASGI application (FastAPI, Starlette, ...) on the native server's connections.

    HTTP requests only (bodies, streamed responses, disconnect detection) plus lifespan events.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._lifespan_queue: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan_task: asyncio.Task[None] | None = None
        self._lifespan_events: asyncio.Queue[dict[str, Any]] | None = None

    def handle_request(self, req: Any) -> None:
        """Run the ASGI app for one request."""
        asyncio.get_running_loop().create_task(self._run(req))

    async def _run(self, req: Any) -> None:
        loop = asyncio.get_running_loop()
        disconnected: asyncio.Future[None] = loop.create_future()

        def aborted(_: Any) -> None:
            if not disconnected.done():
                disconnected.set_result(None)

        req.on_abort = aborted
        raw_path = req.url.split(b"?", 1)[0]
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": req.http_version, "method": req.method, "scheme": "http",
            "path": unquote(req.path), "raw_path": raw_path, "query_string": req.query_string,
            "root_path": "", "headers": req.headers, "client": req.client, "server": req.server,
            "state": dict(self.state),
        }
        body_sent = False
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        streaming = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": req.body, "more_body": False}
            await disconnected
            return {"type": "http.disconnect"}

        async def send(msg: dict[str, Any]) -> None:
            nonlocal status, headers, streaming
            if msg["type"] == "http.response.start":
                status = msg["status"]
                headers = [(k, v) for k, v in msg.get("headers", [])
                           if k.lower() not in (b"content-length", b"transfer-encoding")]
            elif msg["type"] == "http.response.body":
                body = msg.get("body", b"")
                more = msg.get("more_body", False)
                if not streaming and not more:
                    req.respond(status, headers, body)
                    return
                if not streaming:
                    streaming = True
                    req.start_response(status, headers)
                req.write(body)
                if not more:
                    req.end()
                if req.closed:
                    raise OSError("client disconnected")

        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if not req.closed:
                logger.error("ASGI application failed on %s %s", req.method, req.path, exc_info=exc)
            if not req.responded:
                req.respond(500, [(b"content-type", b"text/plain")], b"Internal Server Error")
            elif streaming:
                req.end()

    async def startup(self) -> None:
        """Run the app's lifespan startup (apps without lifespan support are fine)."""
        self._lifespan_queue = asyncio.Queue()
        self._lifespan_events = asyncio.Queue()
        queue, events = self._lifespan_queue, self._lifespan_events

        async def receive() -> dict[str, Any]:
            return await queue.get()

        async def send(msg: dict[str, Any]) -> None:
            await events.put(msg)

        async def lifespan() -> None:
            try:
                await self.app({"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                                "state": self.state}, receive, send)
            except Exception as exc:
                await events.put({"type": "lifespan.unsupported", "message": str(exc)})

        self._lifespan_task = asyncio.get_running_loop().create_task(lifespan())
        await queue.put({"type": "lifespan.startup"})
        msg = await events.get()
        if msg["type"] == "lifespan.startup.failed":
            raise RuntimeError("ASGI lifespan startup failed: %s" % msg.get("message", ""))
        if msg["type"] == "lifespan.unsupported":
            self._lifespan_task = None

    async def shutdown(self) -> None:
        """Run the app's lifespan shutdown."""
        if self._lifespan_task is None or self._lifespan_queue is None or self._lifespan_events is None:
            return
        await self._lifespan_queue.put({"type": "lifespan.shutdown"})
        try:
            msg = await asyncio.wait_for(self._lifespan_events.get(), 10)
            if msg["type"] == "lifespan.shutdown.failed":
                logger.error("ASGI lifespan shutdown failed: %s", msg.get("message", ""))
        except asyncio.TimeoutError:
            logger.error("ASGI lifespan shutdown did not finish")
        self._lifespan_task = None


def _split_app(app: Any, other_app: Any) -> tuple[Any, Any]:
    """Accept an ASGIApp wrapping a server, and turn an ASGI callable into a host."""
    from fastio.asgi import ASGIApp

    if isinstance(app, ASGIApp):
        if other_app is None:
            other_app = app.other_asgi_app
            if other_app is None and app.static_files:
                other_app = app
        app = app.sio
    if other_app is not None and not hasattr(other_app, "handle_request"):
        other_app = AsgiHost(other_app)
    return app, other_app


class Server:
    """A running native server. ``port`` is the bound port; ``close()`` shuts it down."""

    def __init__(self, app: Any, host: str, port: int, other_app: Any = None) -> None:
        app, other_app = _split_app(app, other_app)
        self.app = app
        self.other_app = other_app
        self.host = host
        self.requested_port = port
        self._router = _Router(app, other_app)
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> "Server":
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        tune_malloc()
        if isinstance(self.other_app, AsgiHost):
            await self.other_app.startup()
        engine = self._router.engine
        max_body = max(engine.max_http_buffer_size + 4096, 1_000_000)
        max_msg = engine.max_http_buffer_size
        router = self._router
        def protocol() -> Any:  # an asyncio protocol, implemented in the compiled core
            return HttpProtocol(router, max_body, max_msg)

        self._server = await loop.create_server(protocol, self.host, self.requested_port,
                                                reuse_address=True, backlog=4096)
        sockets = self._server.sockets
        if len(sockets) == 1 and self.host not in ("", "0.0.0.0", "::", None):
            # Bound to one address: every accepted connection has it as its local address,
            # which saves a getsockname() per connection.
            router.local_addr = sockets[0].getsockname()[:2]
        engine._ensure_started()
        return self

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return "http://%s:%d" % (self.host, self.port)

    async def close(self) -> None:
        """Stop listening, close every session with a close packet, then the connections."""
        if self._server is None:
            return
        self._server.close()
        app = self.app
        shutdown = getattr(app, "shutdown", None)
        if shutdown is not None:
            await shutdown()
        for proto in list(self._router.connections):
            proto.close_transport()
        try:
            await asyncio.wait_for(self._server.wait_closed(), 5)
        except asyncio.TimeoutError:
            logger.warning("connections still open after shutdown")
        self._server = None
        if isinstance(self.other_app, AsgiHost):
            await self.other_app.shutdown()

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()


async def serve(sio: Any, host: str = "127.0.0.1", port: int = 5000, *, app: Any = None,
                other_app: Any = None) -> Server:
    """Start serving ``sio`` (a fastio AsyncServer, Engine.IO AsyncServer, or an ASGIApp wrapping
    one); ``app`` (an ASGI application, also accepted as ``other_app``) serves every other path.
    Returns the running Server."""
    return await Server(sio, host, port, app if app is not None else other_app).start()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # Windows, or uvloop missing: the stdlib loop works too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(sio: Any, host: str = "127.0.0.1", port: int = 5000, *, app: Any = None, other_app: Any = None,
        log_level: str | None = None) -> None:
    """Serve ``sio`` on uvloop until SIGINT/SIGTERM, then shut down gracefully and return.

    ``app`` (also accepted as ``other_app``) is an ASGI application for every other path.
    """
    if app is not None:
        other_app = app
    if log_level is not None:
        level = log_level.upper()
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        # The server objects set their own loggers' levels from logger=/engineio_logger=;
        # an explicit level here wins.
        for name in ("fastio", "fastio.server", "fastio.engineio"):
            logging.getLogger(name).setLevel(level)
    loop = _new_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        server = await serve(sio, host, port, other_app=other_app)
        tune_gc()
        print("fastio serving on http://%s:%d" % (host, server.port), flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                signal.signal(sig, lambda *a: loop.call_soon_threadsafe(stop.set))
        await stop.wait()
        logger.info("shutting down")
        await server.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
