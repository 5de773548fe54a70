"""The object every native connection calls into: request routing and connection tracking."""
from __future__ import annotations

import logging
from typing import Any

from fastio._core.protocol import HttpProtocol

__all__ = ["Router"]

logger = logging.getLogger("fastio.hosting")


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
