"""The object every native connection calls into: request routing and connection tracking."""
from __future__ import annotations

import logging
from typing import Any

from fastio._core.protocol import HttpProtocol

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

    def __init__(self, app: Any, other_app: Any = None) -> None:
        self.app = app
        self.engine = _engine_of(app)
        self.other_app = other_app
        self.connections: set[HttpProtocol] = set()
        self.local_addr: tuple[str, int] | None = None

    def new_protocol(self) -> HttpProtocol:
        """A protocol for one new TCP connection, sized by the engine's ``max_http_buffer_size``:
        a request body may carry a whole payload plus headroom, a WebSocket message one payload."""
        limit = self.engine.max_http_buffer_size
        return HttpProtocol(self, max(limit + BODY_HEADROOM, MIN_BODY_LIMIT), limit)

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

    def log_exception(self, message: str, exc: BaseException) -> None:
        """A request handler raised ``exc``."""
        logger.error(message, exc_info=exc)

    def log_ws_error(self, proto: Any, code: int, reason: str) -> None:
        """The peer broke the WebSocket protocol; the connection is closed with ``code``."""
        logger.info("websocket from %s closed with %d: %s", proto.peername, code, reason)
