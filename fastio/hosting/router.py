"""The object every native connection calls into: request routing and connection tracking."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastio._core.protocol import HttpProtocol, Limits, expired

__all__ = ["Router"]

logger = logging.getLogger("fastio.hosting")

# A polling POST carries a payload of up to max_http_buffer_size plus its framing; no body limit
# is set under 1 MB.
BODY_HEADROOM = 4096
MIN_BODY_LIMIT = 1_000_000


def _engine_of(app: Any) -> Any:
    """The Engine.IO server behind ``app`` (an Engine.IO or Socket.IO AsyncServer)."""
    eio = getattr(app, "eio", None)
    return eio if eio is not None else app


class Router:
    """What every native connection calls into: routes requests and tracks connections."""

    def __init__(self, app: Any, other_app: Any = None, limits: Limits | None = None) -> None:
        self.app = app
        self.engine = _engine_of(app)
        self.other_app = other_app
        self.connections: set[HttpProtocol] = set()
        self.local_addr: tuple[str, int] | None = None
        if limits is None:
            limits = Limits()
        # A connection's unread responses count against the sessions' write budget.
        limits.max_write_buffer = getattr(self.engine, "max_write_buffer", limits.max_write_buffer)
        self.limits = limits
        self._sweeper: asyncio.Task[None] | None = None
        self._idle: asyncio.Event | None = None

    def new_protocol(self) -> HttpProtocol:
        """A protocol for one new TCP connection, sized by the engine's ``max_http_buffer_size``:
        a request body may carry a whole payload plus headroom, a WebSocket message one payload."""
        limit = self.engine.max_http_buffer_size
        return HttpProtocol(self, max(limit + BODY_HEADROOM, MIN_BODY_LIMIT), limit, self.limits)

    # -- deadlines ----------------------------------------------------------------------------------

    def start_sweeper(self, until_idle: bool = False) -> None:
        """Start the one task that ends connections past their deadline (idempotent).
        ``until_idle``: the task ends once no connection is open (a host that does not own the
        loop's lifetime starts it again with the next connection)."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(until_idle))

    def stop_sweeper(self) -> None:
        """Stop the deadline task."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def sweep(self, now: float | None = None) -> int:
        """End every connection whose deadline has passed; returns how many."""
        late = expired(self.connections, time.monotonic() if now is None else now)
        for proto in late:
            try:
                proto.timed_out()
            except Exception:  # one broken transport must not stop the sweep
                logger.exception("ending a timed-out connection failed")
        if late:
            logger.info("%d connection(s) past their deadline closed", len(late))
        return len(late)

    async def _sweep(self, until_idle: bool = False) -> None:
        # One pass per tick over every open connection (a C loop reading one double each),
        # instead of a timer per connection.  The tick is 1 s, shorter when a timeout is.
        shortest = self.limits.shortest_timeout()
        tick = min(1.0, shortest / 4) if shortest > 0 else 1.0
        tick = max(tick, 0.01)
        while True:
            await asyncio.sleep(tick)
            try:
                self.sweep()
            except Exception:
                logger.exception("connection sweep failed")
            if until_idle and not self.connections:
                return

    async def wait_closed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no connection is open; True if none is."""
        if not self.connections:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return not self.connections
        finally:
            self._idle = None
        return True

    def abort_all(self) -> int:
        """Abort every open connection at the transport level; returns how many."""
        protos = list(self.connections)
        for proto in protos:
            proto.abort()
        return len(protos)

    def handle_request(self, req: Any) -> None:
        """Serve ``req``: the engine's path goes to the engine, anything else to ``other_app``."""
        if self.engine.handles_path(req.path):
            self.engine.handle_request(req)
        elif self.other_app is not None:
            self.other_app.handle_request(req)
        else:
            req.respond(404, [("Content-Type", "text/plain")], b"Not Found")

    def connection_opened(self, proto: HttpProtocol) -> None:
        """A TCP connection was accepted."""
        self.connections.add(proto)

    def connection_closed(self, proto: HttpProtocol) -> None:
        """A TCP connection ended."""
        self.connections.discard(proto)
        if self._idle is not None and not self.connections:
            self._idle.set()

    def log_exception(self, message: str, exc: BaseException) -> None:
        """A request handler raised ``exc``."""
        logger.error(message, exc_info=exc)

    def log_ws_error(self, proto: Any, code: int, reason: str) -> None:
        """The peer broke the WebSocket protocol; the connection is closed with ``code``."""
        logger.info("websocket from %s closed with %d: %s", proto.peername, code, reason)
