"""Serving an ASGI application (FastAPI, Starlette, ...) on the native server's connections."""
from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote

__all__ = ["AsgiHost"]

logger = logging.getLogger("fastio.hosting")


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
