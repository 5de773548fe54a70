"""fastio's built-in server: uvloop + the compiled HTTP/WebSocket protocol.

``await serve(app, host, port)`` starts serving and returns a ``Server``; ``run(app, host, port)``
blocks until SIGINT/SIGTERM, then shuts down gracefully (every session gets a close packet,
pending polls are answered) and returns.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from fastio._core.protocol import HttpProtocol

__all__ = ["Server", "serve", "run"]

logger = logging.getLogger("fastio.server")


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


class Server:
    """A running native server. ``port`` is the bound port; ``close()`` shuts it down."""

    def __init__(self, app: Any, host: str, port: int, other_app: Any = None) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._router = _Router(app, other_app)
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> "Server":
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        engine = self._router.engine
        max_body = max(engine.max_http_buffer_size + 4096, 1_000_000)
        max_msg = engine.max_http_buffer_size
        router = self._router
        self._server = await loop.create_server(
            lambda: HttpProtocol(router, max_body, max_msg), self.host, self.requested_port,
            reuse_address=True, backlog=4096)
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

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()


async def serve(app: Any, host: str = "127.0.0.1", port: int = 5000, *, other_app: Any = None) -> Server:
    """Start serving ``app`` (a fastio Socket.IO or Engine.IO AsyncServer); returns the Server."""
    return await Server(app, host, port, other_app).start()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # Windows, or uvloop missing: the stdlib loop works too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(app: Any, host: str = "127.0.0.1", port: int = 5000, *, other_app: Any = None,
        log_level: str | None = None) -> None:
    """Serve ``app`` on uvloop until SIGINT/SIGTERM, then shut down gracefully and return."""
    if log_level is not None:
        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loop = _new_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        server = await serve(app, host, port, other_app=other_app)
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
