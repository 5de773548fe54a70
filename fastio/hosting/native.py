"""fastio's built-in server: uvloop + the compiled HTTP/WebSocket protocol.

``await serve(app, host, port)`` starts serving and returns an ``HTTPServer``; ``run(app, host, port)``
blocks until SIGINT/SIGTERM, then shuts down gracefully (every session gets a close packet,
pending polls are answered, clients that read get what was queued for them within
``shutdown_timeout``; then every connection left is aborted) and returns.

Every connection is bounded in time and memory (docs/reliability.md): ``max_header_size``
(bytes of a request line and headers, 431 past it), ``headers_timeout`` (a request's head must
arrive within it, 60 s), ``request_timeout`` (the whole request, and a peer that does not read its
responses, 300 s), ``keep_alive_timeout`` (an idle keep-alive connection, 5 s),
``upgrade_timeout`` (a WebSocket upgrade, 10 s), ``close_timeout`` (a closing connection whose
peer does not read what is left, 5 s).  A timeout of 0 disables it.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from fastio.base.util import new_event_loop
from fastio.hosting.asgi import ASGIApp
from fastio.hosting.asgi_host import AsgiHost
from fastio.hosting.router import Router
from fastio.hosting.tuning import raise_fd_limit, tune_gc, tune_malloc
from fastio._core.protocol import Limits

__all__ = ["HTTPServer", "serve", "run"]

logger = logging.getLogger("fastio.hosting")


def _split_app(app: Any, other_app: Any) -> tuple[Any, Any]:
    """Accept an ASGIApp wrapping a server, and turn an ASGI callable into a host."""
    if isinstance(app, ASGIApp):
        if other_app is None and (app.other_asgi_app is not None or app.static_files
                                  or app.on_startup is not None or app.on_shutdown is not None):
            # The ASGIApp itself serves the other paths: its static files before its other
            # app, its lifespan hooks, and the methods a subclass overrides.
            other_app = app
        app = app.sio
    if other_app is not None and not hasattr(other_app, "handle_request"):
        other_app = AsgiHost(other_app)
    return app, other_app


_LIMIT_OPTIONS = ("max_header_size", "headers_timeout", "request_timeout", "keep_alive_timeout",
                  "upgrade_timeout", "close_timeout")


def _limits(options: dict[str, Any]) -> Limits:
    unknown = set(options) - set(_LIMIT_OPTIONS)
    if unknown:
        raise TypeError("unknown server option(s): %s" % ", ".join(sorted(unknown)))
    return Limits(**options)


class HTTPServer:
    """A running native server (fastio's own HTTP/WebSocket server). ``port`` is the bound port;
    ``close()`` shuts it down.

    ``limits``: the connection limits and timeouts (see the module's documentation);
    ``shutdown_timeout``: how long ``close()`` lets clients read what is left for them."""

    def __init__(self, app: Any, host: str, port: int, other_app: Any = None, *,
                 shutdown_timeout: float = 10.0, **limits: Any) -> None:
        if getattr(app, "run_native", None) is not None:
            raise TypeError("a sync fastio.Server serves from its own event loop thread: use "
                            "sio.start_server(host, port, app=wsgi_app) or fastio.run(sio, app=wsgi_app)")
        app, other_app = _split_app(app, other_app)
        self.app = app
        self.other_app = other_app
        self.host = host
        self.requested_port = port
        self.shutdown_timeout = shutdown_timeout
        self._router = Router(app, other_app, _limits(limits))
        self._server: asyncio.base_events.Server | None = None

    @property
    def connections(self) -> int:
        """How many TCP connections are open."""
        return len(self._router.connections)

    async def start(self) -> "HTTPServer":
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        tune_malloc()
        if isinstance(self.other_app, AsgiHost):
            await self.other_app.startup()
        engine = self._router.engine
        router = self._router
        self._server = await loop.create_server(router.new_protocol, self.host, self.requested_port,
                                                reuse_address=True, backlog=4096)
        sockets = self._server.sockets
        if len(sockets) == 1 and self.host not in ("", "0.0.0.0", "::", None):
            # Bound to one address: every accepted connection has it as its local address,
            # which saves a getsockname() per connection.
            router.local_addr = sockets[0].getsockname()[:2]
        engine.ensure_started()
        router.start_sweeper()
        initialize = getattr(self.app, "initialize_manager", None)  # a Socket.IO server
        if initialize is not None:
            initialize()
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
        """Stop listening, close every session with a close packet, then the connections:
        each is closed gracefully (what is queued for it is sent first), and those still open
        after ``shutdown_timeout`` seconds (peers that do not read) are aborted."""
        if self._server is None:
            return
        self._server.close()
        router = self._router
        router.limits.shutting_down = True
        router.stop_sweeper()
        app = self.app
        shutdown = getattr(app, "shutdown", None)
        if shutdown is not None:
            await shutdown()
        for proto in list(router.connections):
            proto.close_transport()
        if not await router.wait_closed(self.shutdown_timeout):
            logger.warning("%d connection(s) still open %.1f s after shutdown; aborting them",
                           len(router.connections), self.shutdown_timeout)
            router.abort_all()
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
                other_app: Any = None, shutdown_timeout: float = 10.0, **limits: Any) -> HTTPServer:
    """Start serving ``sio`` (a fastio AsyncServer, Engine.IO AsyncServer, or an ASGIApp wrapping
    one); ``app`` (an ASGI application, also accepted as ``other_app``) serves every other path.
    ``limits``: ``max_header_size``, ``headers_timeout``, ``request_timeout``,
    ``keep_alive_timeout``, ``upgrade_timeout``, ``close_timeout`` (see the module's documentation).
    Returns the running HTTPServer."""
    return await HTTPServer(sio, host, port, app if app is not None else other_app,
                            shutdown_timeout=shutdown_timeout, **limits).start()


def run(sio: Any, host: str = "127.0.0.1", port: int = 5000, *, app: Any = None, other_app: Any = None,
        log_level: str | None = None, workers: int = 1, wsgi_threads: int = 32, shutdown_timeout: float = 10.0,
        **limits: Any) -> None:
    """Serve ``sio`` on uvloop until SIGINT/SIGTERM, then shut down gracefully and return.

    ``app`` (also accepted as ``other_app``) is an ASGI application for every other path;
    ``shutdown_timeout`` and ``limits`` as for ``serve``. A sync ``fastio.Server`` (or a
    ``WSGIApp`` wrapping one) takes a WSGI application instead and serves from its own event loop
    thread (``run_native``), the WSGI app in a pool of ``wsgi_threads`` threads.
    ``workers`` > 1: that many processes behind the port, long-polling sessions kept on their
    worker (see ``fastio.hosting.workers``; asyncio servers only), each with the same limits.
    """
    if app is not None:
        other_app = app
    if log_level is not None:
        level = log_level.upper()
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        # The server objects set their own loggers' levels from logger=/engineio_logger=;
        # an explicit level here wins.
        for name in ("fastio", "fastio.socketio", "fastio.engineio"):
            logging.getLogger(name).setLevel(level)
    _limits(limits)  # a misspelt option fails here, not once serving
    raise_fd_limit()
    run_native = getattr(sio, "run_native", None)
    if run_native is not None:
        if workers > 1:
            raise ValueError("workers > 1 serves an AsyncServer; a sync fastio.Server runs in one process")
        run_native(host, port, app=other_app, wsgi_threads=wsgi_threads)
        return
    if workers > 1:
        from fastio.hosting.workers import run_workers
        served, other_app = _split_app(sio, other_app)
        run_workers(served, host, port, workers, other_app=other_app, limits=_limits(limits),
                    shutdown_timeout=shutdown_timeout)
        return
    loop = new_event_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        server = await serve(sio, host, port, other_app=other_app, shutdown_timeout=shutdown_timeout,
                             **limits)
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
